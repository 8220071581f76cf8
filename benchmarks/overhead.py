"""Rate-limiter overhead per request, with a limit high enough never to wait.

Two measurements against the same fake Wemasy server in another process, which announces a
limit of 10 million requests per window (the limiter learns it from the first response and
from then on never waits):

- End-to-end: ``Client`` with the default limiter vs ``rate_limit=False``, same load
  (``requests`` ``get_conversation`` calls by ``concurrency`` workers), alternating for
  ``rounds`` rounds. Per-request time is wall time / requests (the client is CPU-bound at
  these concurrencies, so this is its CPU cost per request); the figure is the difference of
  the medians, as a percentage of the limiter-on per-request time. It includes noise of a
  few percent either way, hence the second measurement.
- In isolation: the exact work the engine adds per request when the limiter is on
  (``Limiter.acquire``, ``RateLimitInfo.from_headers`` on a real response's headers,
  ``Limiter.release``), timed in a loop on one event loop with nothing else running, as a
  percentage of the same limiter-on per-request time. This is the limiter's own CPU cost;
  the end-to-end difference (what the target is judged on) also includes its effect on
  scheduling (e.g. extra suspensions while queued).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import aiohttp
import anyio
from multidict import CIMultiDictProxy

from benchmarks.e2e import _pool
from wemasy_async import Client, RateLimit
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import Limiter, LocalStore

GET_PATH = "/services/ai/v1/conversations/get"


async def _client(url: str, ids: range, concurrency: int, limiter: bool) -> float:
    """Seconds per request for one round."""
    async with Client("wemasy", base_url=url, token="bench", rate_limit=limiter) as client:
        rps = await _pool(client.get_conversation, ids, concurrency)
    return 1 / rps


async def _real_headers(url: str) -> CIMultiDictProxy[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + GET_PATH, data=b'{"conversation_id": 1}', headers={"Authorization": "Bearer b"}
        ) as response,
    ):
        await response.read()
        return response.headers


async def _isolated(headers: CIMultiDictProxy[str], iterations: int) -> float:
    """Seconds per request of the limiter's own work on the engine's path."""
    limiter = Limiter("bench", RateLimit(), LocalStore())
    # Teach it the limit, as the first response does in a real run.
    counted = await limiter.acquire()
    await limiter.release(counted, RateLimitInfo.from_headers(headers))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(iterations):
            counted = await limiter.acquire()
            info = RateLimitInfo.from_headers(headers)
            await limiter.release(counted, info)
        best = min(best, (time.perf_counter() - started) / iterations)
    return best


def run(
    url: str, *, requests: int = 5000, concurrencies: tuple[int, ...] = (16, 64), rounds: int = 5
) -> list[dict[str, Any]]:
    headers = anyio.run(_real_headers, url)
    isolated = anyio.run(_isolated, headers, 20_000)
    ids = range(1, requests + 1)
    rows = []
    for concurrency in concurrencies:
        times: dict[bool, list[float]] = {True: [], False: []}
        anyio.run(_client, url, range(1, 201), concurrency, True)  # warm up
        for _ in range(rounds):
            for limiter in (True, False):
                times[limiter].append(anyio.run(_client, url, ids, concurrency, limiter))
        on, off = statistics.median(times[True]), statistics.median(times[False])
        rows.append(
            {
                "concurrency": concurrency,
                "requests": requests,
                "rounds": rounds,
                "on_us": on * 1e6,
                "off_us": off * 1e6,
                "e2e_overhead_pct": (on - off) / on * 100,
                "isolated_us": isolated * 1e6,
                "isolated_pct": isolated / on * 100,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| concurrency | per request, limiter on | per request, limiter off "
        "| end-to-end difference (target <= 5%) | limiter work in isolation "
        "| isolated share |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mark = "(met)" if row["e2e_overhead_pct"] <= 5 else "(MISSED)"
        lines.append(
            f"| {row['concurrency']} | {row['on_us']:.1f} µs | {row['off_us']:.1f} µs "
            f"| {row['e2e_overhead_pct']:+.1f}% {mark} | {row['isolated_us']:.1f} µs "
            f"| {row['isolated_pct']:.1f}% |"
        )
    return "\n".join(lines)
