"""End-to-end: ``Client.get_conversation`` vs a bare aiohttp + msgspec loop and httpx + pydantic.

All clients fetch the same conversations from the same fake Wemasy server running in another
process, with the same number of workers (``concurrency`` tasks pulling ids from one shared
iterator). Contenders:

- ``bare``: aiohttp + ``msgspec.json.Decoder`` into minimal Structs (timestamps left as
  strings). The floor an SDK cannot beat: no validation beyond the types, no neutral
  models, no error mapping, no rate limiter.
- ``sdk``: ``Client("wemasy")`` with its defaults, rate limiter on (the fake announces a
  limit of 10 million per window, so the limiter never waits; this is what users get).
- ``sdk_nolimit``: the same with ``rate_limit=False`` (an extra row, not a target).
- ``httpx``: what an openai-style SDK does: ``httpx.AsyncClient`` and
  ``Model.model_validate_json(response.content)`` into pydantic v2 models of the same wire
  schema as the SDK's Structs (:mod:`benchmarks.decode`), after ``raise_for_status()``.

Every contender is opened once (one client, its connections kept warm, as a user's program
holds one) and all of them stay open for the run; then many short rounds (``paired_rounds``:
a few hundred requests of each, a tenth of a second or so, the order reversing every round).
A ratio is taken within each round and the median over the rounds is reported (req/s and
CPU are medians too): the load of a shared machine drifts over seconds, so it falls on every
contender of a short round alike. (Rounds of thousands of requests, each contender opening
its own client, gave per-round on / off ratios from 0.83x to 1.26x for the same code, and
the same code against itself 0.88x-1.18x between quartiles even in short rounds: the
median of some 30-100 rounds is what tells a few percent.) httpx + pydantic runs a quarter
of the requests (it is 10-15 times slower; a rate needs no more). Next to requests per
second, each contender's client CPU per request is reported: the CPU time of this process
(user + system, ``time.process_time()``) over the round divided by its requests. The
server's CPU is not in it (another process), so a client that is fast only because the
server is slow does not hide behind a 1.0x.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import aiohttp
import anyio
import httpx
import msgspec

from benchmarks.decode import PdWemasyEnvelope
from wemasy_async import Client


class BareMessage(msgspec.Struct):
    id: int
    role: str
    content: str | None = None
    tool_calls: list[Any] | None = None
    usage: dict[str, int] | None = None
    created_at: str | None = None


class BareConversation(msgspec.Struct):
    id: int
    agent_id: str
    status: str
    goal: str
    cost_tokens: int
    cost_amount: Decimal
    started_at: str
    ended_at: str | None
    messages: list[BareMessage]


class BareEnvelope(msgspec.Struct):
    success: bool
    data: BareConversation


Fetch = Callable[[int], Awaitable[object]]


async def _pool(fetch: Fetch, ids: range, concurrency: int) -> float:
    """Run ``fetch`` over ``ids`` with ``concurrency`` workers; return requests per second."""
    queue = iter(ids)

    async def worker() -> None:
        for i in queue:
            await fetch(i)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return len(ids) / (time.perf_counter() - started)


@asynccontextmanager
async def open_bare(url: str, concurrency: int) -> AsyncIterator[Fetch]:
    """aiohttp + msgspec: a session and a ``fetch(id)`` for as long as the block lasts."""
    decoder = msgspec.json.Decoder(BareEnvelope)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    endpoint = url + "/services/ai/v1/conversations/get"
    # A pool as large as the concurrency: aiohttp's default of 100 would cap it there.
    connector = aiohttp.TCPConnector(limit=max(100, concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(i: int) -> object:
            body = msgspec.json.encode({"conversation_id": i})
            async with session.post(endpoint, data=body, headers=headers) as response:
                return decoder.decode(await response.read()).data

        yield fetch


@asynccontextmanager
async def open_sdk(url: str, concurrency: int) -> AsyncIterator[Fetch]:
    """``Client("wemasy")`` with its defaults (the rate limiter on)."""
    async with Client("wemasy", base_url=url, token="bench") as client:
        yield client.get_conversation


@asynccontextmanager
async def open_sdk_nolimit(url: str, concurrency: int) -> AsyncIterator[Fetch]:
    """The same with ``rate_limit=False``."""
    async with Client("wemasy", base_url=url, token="bench", rate_limit=False) as client:
        yield client.get_conversation


@asynccontextmanager
async def open_httpx(url: str, concurrency: int) -> AsyncIterator[Fetch]:
    """httpx + pydantic v2, as an openai-style SDK does it."""
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=max(100, concurrency))
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

        async def fetch(i: int) -> object:
            body = msgspec.json.encode({"conversation_id": i})
            response = await client.post("/services/ai/v1/conversations/get", content=body)
            response.raise_for_status()
            return PdWemasyEnvelope.model_validate_json(response.content).data

        yield fetch


Opener = Callable[[str, int], AbstractAsyncContextManager[Fetch]]


def _once(opener: Opener) -> Callable[[str, range, int], Awaitable[float]]:
    async def run(url: str, ids: range, concurrency: int) -> float:
        async with opener(url, concurrency) as fetch:
            return await _pool(fetch, ids, concurrency)

    run.__doc__ = f"Open ({opener.__name__}), fetch ``ids`` with ``concurrency`` workers: req/s."
    return run


bare_loop = _once(open_bare)
sdk = _once(open_sdk)
sdk_nolimit = _once(open_sdk_nolimit)

CONTENDERS: dict[str, Opener] = {
    "bare": open_bare,
    "sdk": open_sdk,
    "sdk_nolimit": open_sdk_nolimit,
    "httpx": open_httpx,
}


class Round(msgspec.Struct, frozen=True):
    """One contender's share of one round."""

    rps: float
    cpu: float  # seconds of this process's CPU time per request


async def paired_rounds(
    url: str,
    openers: dict[str, Opener],
    *,
    concurrency: int,
    counts: dict[str, int],
    rounds: int,
) -> dict[str, list[Round]]:
    """Every contender open at once, then ``rounds`` short rounds of each in turn.

    Each contender keeps one client (its connections warm) for the whole run, as a user's
    program does; a round runs ``counts[name]`` requests of each, the order reversing every
    round. Rounds are short (a tenth of a second or so) and many, so that the load of a
    shared machine, which drifts over seconds, falls on every contender of a round alike:
    a ratio taken within each round then says what the code costs (longer rounds, each
    with its own client, gave per-round on / off ratios from 0.83x to 1.26x for the same
    code).
    """
    names = list(openers)
    results: dict[str, list[Round]] = {name: [] for name in names}
    async with AsyncExitStack() as stack:
        fetches = {
            name: await stack.enter_async_context(openers[name](url, concurrency)) for name in names
        }
        for name in names:  # warm up: connections open, caches filled
            await _pool(fetches[name], range(1, min(counts[name], 200) + 1), concurrency)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                ids = range(1, counts[name] + 1)
                started = time.process_time()
                rps = await _pool(fetches[name], ids, concurrency)
                results[name].append(Round(rps, (time.process_time() - started) / len(ids)))
    return results


def paired(rounds: dict[str, list[Round]], top: str, bottom: str, *, cpu: bool = False) -> float:
    """The median over the rounds of ``top``'s req/s (or CPU) over ``bottom``'s."""
    pairs = zip(rounds[top], rounds[bottom], strict=True)
    return statistics.median((a.cpu / b.cpu) if cpu else (a.rps / b.rps) for a, b in pairs)


def run(
    url: str,
    *,
    requests: int,
    concurrencies: tuple[int, ...],
    rounds: int,
    requests_c1: int | None = None,
) -> list[dict[str, object]]:
    """Measure every contender in paired rounds; the medians (see the module docstring).

    ``requests`` (``requests_c1`` at concurrency 1) is each contender's requests per round.
    """
    rows: list[dict[str, object]] = []
    for concurrency in concurrencies:
        count = requests if concurrency != 1 or requests_c1 is None else requests_c1
        counts = {name: max(1, count // 4) if name == "httpx" else count for name in CONTENDERS}
        results = anyio.run(
            partial(
                paired_rounds,
                url,
                CONTENDERS,
                concurrency=concurrency,
                counts=counts,
                rounds=rounds,
            )
        )
        rows.append(
            {
                "concurrency": concurrency,
                "requests": count,
                "rounds": rounds,
                **{
                    f"{name}_rps": statistics.median(r.rps for r in v)
                    for name, v in results.items()
                },
                **{
                    f"{name}_cpu_us": statistics.median(r.cpu for r in v) * 1e6
                    for name, v in results.items()
                },
                "ratio": paired(results, "sdk", "bare"),
                "ratio_nolimit": paired(results, "sdk_nolimit", "bare"),
                "vs_httpx": paired(results, "sdk", "httpx"),
                "cpu_ratio": paired(results, "sdk", "bare", cpu=True),
                "cpu_ratio_nolimit": paired(results, "sdk_nolimit", "bare", cpu=True),
            }
        )
    return rows


def _cell(row: dict[str, Any], name: str) -> str:
    return f"{row[name + '_rps']:,.0f} req/s, {row[name + '_cpu_us']:.0f} µs CPU"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| concurrency | requests | bare aiohttp+msgspec | wemasy-async (limiter on) "
        "| wemasy-async (limiter off) | httpx+pydantic | ours / bare (target >= 0.93x) "
        "| limiter off / bare (target >= 0.95x) | ours / httpx+pydantic (target >= 4x at 64) "
        "| CPU per request, limiter on / off / bare |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio_mark = "(met)" if row["ratio"] >= 0.93 else "(MISSED)"
        nolimit_mark = "(met)" if row["ratio_nolimit"] >= 0.95 else "(MISSED)"
        if row["concurrency"] == 64:
            httpx_mark = " (met)" if row["vs_httpx"] >= 4 else " (MISSED)"
        else:
            httpx_mark = ""
        lines.append(
            f"| {row['concurrency']} | {row['requests']:,} | {_cell(row, 'bare')} "
            f"| {_cell(row, 'sdk')} | {_cell(row, 'sdk_nolimit')} | {_cell(row, 'httpx')} "
            f"| {row['ratio']:.2f}x {ratio_mark} | {row['ratio_nolimit']:.2f}x {nolimit_mark} "
            f"| {row['vs_httpx']:.2f}x{httpx_mark} "
            f"| {row['cpu_ratio']:.2f}x / {row['cpu_ratio_nolimit']:.2f}x / 1.00x |"
        )
    lines += [
        "",
        f"{rows[0]['rounds'] if rows else 0} short rounds with every contender open at once,"
        " each running the four back to back (the order reversing every round); requests:"
        " each contender's per round; ratios: the median of the rounds' own ratios;"
        " req/s and µs CPU (the client process's CPU time, user + system, per request; the"
        " fake server runs in another process): medians; httpx + pydantic ran a quarter of"
        " the requests.",
    ]
    return "\n".join(lines)
