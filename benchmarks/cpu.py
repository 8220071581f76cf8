"""Client CPU per request, and a profile of the request path.

A fast client behind a slow server shows 1.0x on wall-clock alone, so this measures what
the client process itself spends: ``time.process_time()`` (user + system CPU of this
process) around ``requests`` ``get_conversation`` calls by ``concurrency`` workers, divided
by the number of requests. The fake Wemasy server runs in another process (started by
``python -m benchmarks.cpu serve``, here so that every conversation has exactly
``messages`` messages), so none of its CPU is counted. Contenders, as in
:mod:`benchmarks.e2e`:

- ``bare``: aiohttp + ``msgspec.json.Decoder`` into minimal Structs; the floor.
- ``sdk_nolimit``: ``Client("wemasy", rate_limit=False)``: the request path and decoding.
- ``sdk``: ``Client("wemasy")`` with its defaults (the limiter on, never waiting).
- ``sdk_path``: the request path alone: ``Client(rate_limit=False)`` with an adapter whose
  ``get_conversation`` parses the body with the bare loop's decoder (no neutral models), so
  that ``sdk_path / bare`` is what the client, engine and transport add to aiohttp, and
  ``sdk_nolimit - sdk_path`` is what decoding into neutral models adds.

Rounds alternate between the contenders so drift affects all alike; the least CPU per
request of all rounds counts (the machine may be shared: other processes slow a round down,
never speed it up).

:func:`profile` runs ``cProfile`` over the client (limiter off) doing the same calls and
returns the top of the profile, by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import msgspec

from benchmarks.e2e import BareEnvelope, _pool, bare_loop
from benchmarks.fake_process import server_process
from wemasy_async import Client
from wemasy_async.protocols import ConversationId
from wemasy_async.providers.base import Call
from wemasy_async.providers.wemasy import WemasyProvider

MESSAGES = (20, 100)
CONCURRENCY = 16


@contextmanager
def fake_server(messages: int, conversations: int) -> Iterator[str]:
    """A fake Wemasy server in another process whose conversations have ``messages`` each."""
    command = [sys.executable, "-m", "benchmarks.cpu", "serve", str(messages), str(conversations)]
    with server_process(command) as url:
        yield url


async def _serve(messages: int, conversations: int) -> None:
    from wemasy_async.testing.wemasy import FakeWemasy

    server = FakeWemasy(
        conversations=conversations,
        messages_per_conversation=(messages, messages),
        # The limiter learns this limit from the first response and never waits.
        rate_limit=10_000_000,
        record_requests=False,
    )
    await server.start()
    try:
        sys.stdout.write(f"URL {server.url}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()  # until terminated
    finally:
        await server.close()


async def _sdk(url: str, ids: range, concurrency: int, rate_limit: bool) -> float:
    async with Client("wemasy", base_url=url, token="bench", rate_limit=rate_limit) as client:
        return await _pool(client.get_conversation, ids, concurrency)


async def sdk(url: str, ids: range, concurrency: int) -> float:
    return await _sdk(url, ids, concurrency, True)


async def sdk_nolimit(url: str, ids: range, concurrency: int) -> float:
    return await _sdk(url, ids, concurrency, False)


_BARE = msgspec.json.Decoder(BareEnvelope)


class _BareDecoding(WemasyProvider):
    """The Wemasy adapter with the bare loop's decoding: the request path without models."""

    def get_conversation(self, conversation_id: ConversationId) -> Call[Any]:
        call = super().get_conversation(conversation_id)
        return Call(call.request, lambda response: _BARE.decode(response.body).data)


async def sdk_path(url: str, ids: range, concurrency: int) -> float:
    async with Client(_BareDecoding(), base_url=url, token="bench", rate_limit=False) as client:
        return await _pool(client.get_conversation, ids, concurrency)


CONTENDERS: dict[str, Callable[[str, range, int], Awaitable[float]]] = {
    "bare": bare_loop,
    "sdk_nolimit": sdk_nolimit,
    "sdk": sdk,
    "sdk_path": sdk_path,
}


def measure(
    contender: Callable[[str, range, int], Awaitable[float]],
    url: str,
    ids: range,
    concurrency: int,
) -> tuple[float, float]:
    """One round: (CPU seconds of this process per request, requests per second)."""
    started = time.process_time()
    rps = anyio.run(contender, url, ids, concurrency)
    return (time.process_time() - started) / len(ids), rps


def run(
    *,
    requests: int = 3000,
    rounds: int = 5,
    messages: tuple[int, ...] = MESSAGES,
    concurrency: int = CONCURRENCY,
) -> list[dict[str, Any]]:
    """The least CPU per request (and the best req/s) of each contender, per message count."""
    rows = []
    ids = range(1, requests + 1)
    for count in messages:
        cpu = dict.fromkeys(CONTENDERS, float("inf"))
        rps = dict.fromkeys(CONTENDERS, 0.0)
        with fake_server(count, requests) as url:
            anyio.run(bare_loop, url, range(1, 201), concurrency)  # warm the server up
            for _ in range(rounds):
                for name, contender in CONTENDERS.items():
                    seconds, rate = measure(contender, url, ids, concurrency)
                    cpu[name] = min(cpu[name], seconds)
                    rps[name] = max(rps[name], rate)
        rows.append(
            {
                "messages": count,
                "requests": requests,
                "concurrency": concurrency,
                "rounds": rounds,
                **{f"{name}_cpu_us": cpu[name] * 1e6 for name in CONTENDERS},
                **{f"{name}_rps": rps[name] for name in CONTENDERS},
                "ratio_nolimit": cpu["sdk_nolimit"] / cpu["bare"],
                "ratio": cpu["sdk"] / cpu["bare"],
                "ratio_path": cpu["sdk_path"] / cpu["bare"],
            }
        )
    return rows


def profile(*, requests: int = 3000, messages: int = 20, concurrency: int = CONCURRENCY) -> str:
    """The top of a cProfile of the client (limiter off) doing ``requests`` calls."""
    with fake_server(messages, requests) as url:
        ids = range(1, requests + 1)
        anyio.run(sdk_nolimit, url, range(1, 201), concurrency)  # warm up both sides
        profiler = cProfile.Profile()
        profiler.enable()
        anyio.run(sdk_nolimit, url, ids, concurrency)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    _shorten_paths(stats)
    sections = []
    for order, title in (("cumulative", "cumulative time"), ("tottime", "own time")):
        out.seek(0)
        out.truncate()
        stats.sort_stats(order).print_stats(40)
        lines = [line.rstrip() for line in out.getvalue().splitlines()]
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        # The event loop's and the benchmark's own frames hold everything: left out.
        kept = [line for line in lines[start + 1 :] if line and not _SCAFFOLDING.search(line)]
        sections += [f"Top by {title}:", lines[start], *kept[:15]]
    header = (
        f"cProfile of Client.get_conversation (limiter off), {requests:,} calls,"
        f" {messages} messages each, {concurrency} workers, fake server in another process;"
        " a coroutine's ncalls counts each resumption, the event loop's frames are left out"
    )
    return header + "\n" + "\n".join(sections)


def _short(function: tuple[str, int, str]) -> tuple[str, int, str]:
    filename, line, name = function
    # "aiohttp/client.py" and "wemasy_async/client.py" stay apart (strip_dirs merges them).
    return "/".join(filename.replace("\\", "/").split("/")[-2:]), line, name


def _shorten_paths(stats: pstats.Stats) -> None:
    """Like ``Stats.strip_dirs``, keeping each file's directory."""
    table: Any = stats
    table.stats = {
        _short(function): (*numbers, {_short(caller): v for caller, v in callers.items()})
        for function, (*numbers, callers) in table.stats.items()
    }
    table.top_level = {_short(function) for function in table.top_level}
    table.max_name_len = max(len(pstats.func_std_string(f)) for f in table.stats)
    table.fcn_list = 0


_SCAFFOLDING = re.compile(
    r"_eventloop\.py|_asyncio\.py:\d+\(run\)|runners\.py|base_events\.py:\d+\(run_|"
    r"base_events\.py:\d+\(_run_once\)|events\.py:\d+\(_run\)|'run' of '_contextvars|"
    r"_tasks\.py:\d+\(_run_coro\)|e2e\.py:\d+\(worker\)"
)


def format_table(rows: list[dict[str, Any]], profile_text: str | None = None) -> str:
    lines = [
        "| messages | bare aiohttp+msgspec | wemasy-async (limiter off) "
        "| wemasy-async (limiter on) | request path alone (bare decoding) "
        "| limiter off / bare | limiter on / bare | request path alone / bare |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    targets = {20: 1.05, 100: 1.1}
    for row in rows:
        target = targets.get(row["messages"])
        mark = ""
        if target is not None:
            met = row["ratio_nolimit"] <= target
            mark = f" (target <= {target}x: {'met' if met else 'MISSED'})"
        lines.append(
            f"| {row['messages']} | {row['bare_cpu_us']:.1f} µs ({row['bare_rps']:,.0f} req/s) "
            f"| {row['sdk_nolimit_cpu_us']:.1f} µs ({row['sdk_nolimit_rps']:,.0f} req/s) "
            f"| {row['sdk_cpu_us']:.1f} µs ({row['sdk_rps']:,.0f} req/s) "
            f"| {row['sdk_path_cpu_us']:.1f} µs ({row['sdk_path_rps']:,.0f} req/s) "
            f"| {row['ratio_nolimit']:.2f}x{mark} | {row['ratio']:.2f}x "
            f"| {row['ratio_path']:.2f}x |"
        )
    first = rows[0] if rows else {"requests": 0, "concurrency": 0, "rounds": 0}
    lines += [
        "",
        f"Client process CPU time (user + system) per request, least of {first['rounds']}"
        f" alternating rounds of {first['requests']:,} `get_conversation` calls by"
        f" {first['concurrency']} workers (best req/s in brackets); the fake server runs in"
        " another process. Decoding is part of it.",
    ]
    if profile_text is not None:
        lines += ["", "```", profile_text, "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the fake server (prints 'URL <url>')")
    serve.add_argument("messages", type=int)
    serve.add_argument("conversations", type=int)
    args = parser.parse_args()
    asyncio.run(_serve(args.messages, args.conversations))


if __name__ == "__main__":
    main()
