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

Rounds alternate between the contenders so drift affects all alike; the best round counts.
Next to requests per second, each contender's client CPU per request is reported: the CPU
time of this process (user + system, ``time.process_time()``) over the round divided by its
requests, the least of all rounds. The server's CPU is not in it (another process), so a
client that is fast only because the server is slow does not hide behind a 1.0x.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
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


async def bare_loop(url: str, ids: range, concurrency: int) -> float:
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

        return await _pool(fetch, ids, concurrency)


async def sdk(url: str, ids: range, concurrency: int) -> float:
    async with Client("wemasy", base_url=url, token="bench") as client:
        return await _pool(client.get_conversation, ids, concurrency)


async def sdk_nolimit(url: str, ids: range, concurrency: int) -> float:
    async with Client("wemasy", base_url=url, token="bench", rate_limit=False) as client:
        return await _pool(client.get_conversation, ids, concurrency)


async def httpx_pydantic(url: str, ids: range, concurrency: int) -> float:
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=max(100, concurrency))
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

        async def fetch(i: int) -> object:
            body = msgspec.json.encode({"conversation_id": i})
            response = await client.post("/services/ai/v1/conversations/get", content=body)
            response.raise_for_status()
            return PdWemasyEnvelope.model_validate_json(response.content).data

        return await _pool(fetch, ids, concurrency)


CONTENDERS: dict[str, Callable[[str, range, int], Awaitable[float]]] = {
    "bare": bare_loop,
    "sdk": sdk,
    "sdk_nolimit": sdk_nolimit,
    "httpx": httpx_pydantic,
}


def run(
    url: str,
    *,
    requests: int,
    concurrencies: tuple[int, ...],
    rounds: int,
    requests_c1: int | None = None,
) -> list[dict[str, object]]:
    """Measure every contender, alternating rounds so drift affects all alike; keep the best.

    ``requests_c1`` (default ``requests``) is the number of requests at concurrency 1.
    """
    rows: list[dict[str, object]] = []
    for concurrency in concurrencies:
        count = requests if concurrency != 1 or requests_c1 is None else requests_c1
        ids = range(1, count + 1)
        best = dict.fromkeys(CONTENDERS, 0.0)
        cpu = dict.fromkeys(CONTENDERS, float("inf"))
        anyio.run(bare_loop, url, range(1, 201), concurrency)  # warm the server up
        for _ in range(rounds):
            for name, contender in CONTENDERS.items():
                started = time.process_time()
                best[name] = max(best[name], anyio.run(contender, url, ids, concurrency))
                cpu[name] = min(cpu[name], (time.process_time() - started) / count)
        rows.append(
            {
                "concurrency": concurrency,
                "requests": count,
                **{f"{name}_rps": rps for name, rps in best.items()},
                **{f"{name}_cpu_us": seconds * 1e6 for name, seconds in cpu.items()},
                "ratio": best["sdk"] / best["bare"],
                "ratio_nolimit": best["sdk_nolimit"] / best["bare"],
                "vs_httpx": best["sdk"] / best["httpx"],
                "cpu_ratio": cpu["sdk"] / cpu["bare"],
                "cpu_ratio_nolimit": cpu["sdk_nolimit"] / cpu["bare"],
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
        "req/s: the best round; µs CPU: the client process's CPU time (user + system) per"
        " request, the least of the rounds (the fake server runs in another process).",
    ]
    return "\n".join(lines)
