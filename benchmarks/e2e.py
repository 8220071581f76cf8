"""End-to-end: ``Client.get_conversation`` vs a bare aiohttp + msgspec loop.

Both fetch the same conversations from the same fake Wemasy server running in another
process, with the same number of workers. The bare loop is the floor an SDK cannot beat: no
validation, no neutral models, no error mapping. The ratio says what the SDK costs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import msgspec

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
    async with aiohttp.ClientSession() as session:

        async def fetch(i: int) -> object:
            body = msgspec.json.encode({"conversation_id": i})
            async with session.post(endpoint, data=body, headers=headers) as response:
                return decoder.decode(await response.read()).data

        return await _pool(fetch, ids, concurrency)


async def sdk(url: str, ids: range, concurrency: int) -> float:
    async with Client("wemasy", base_url=url, token="bench") as client:
        return await _pool(client.get_conversation, ids, concurrency)


def run(
    url: str, *, requests: int, concurrencies: tuple[int, ...], rounds: int
) -> list[dict[str, object]]:
    """Measure both clients, alternating rounds so drift affects both alike; keep the best."""
    ids = range(1, requests + 1)
    rows: list[dict[str, object]] = []
    for concurrency in concurrencies:
        best = {"bare": 0.0, "sdk": 0.0}
        anyio.run(bare_loop, url, range(1, 201), concurrency)  # warm the server up
        for _ in range(rounds):
            best["bare"] = max(best["bare"], anyio.run(bare_loop, url, ids, concurrency))
            best["sdk"] = max(best["sdk"], anyio.run(sdk, url, ids, concurrency))
        rows.append(
            {
                "concurrency": concurrency,
                "bare_rps": best["bare"],
                "sdk_rps": best["sdk"],
                "ratio": best["sdk"] / best["bare"],
            }
        )
    return rows
