"""What the batch tests share: a Wemasy fake that can be slow, and ways to drain a batch."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from aiohttp import web

from wemasy_async import BatchFetch, Client, FetchResult
from wemasy_async.testing import FakeWemasy

TOKEN = "batch-token"
GET = "/services/ai/v1/conversations/get"


class SlowWemasy(FakeWemasy):
    """``FakeWemasy`` whose ``conversations/get`` handler sleeps and counts overlapping calls.

    Every request sleeps ``delay`` seconds; ids in ``slow_ids`` sleep ``slow_delay``. The
    counting happens in the handler, i.e. after the request fully arrived at the server.
    """

    def __init__(
        self,
        *,
        delay: float = 0.01,
        slow_ids: frozenset[int] = frozenset(),
        slow_delay: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.slow_ids = slow_ids
        self.slow_delay = slow_delay
        self.in_flight = 0
        self.peak_in_flight = 0
        self.handled: list[Any] = []

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            body = self.record_of(request).json
            raw_id = body.get("conversation_id") if isinstance(body, dict) else None
            await asyncio.sleep(self.slow_delay if raw_id in self.slow_ids else self.delay)
            self.handled.append(raw_id)
            return await super()._handle_get(request)
        finally:
            self.in_flight -= 1


async def warm_up(client: Client, fake: FakeWemasy) -> None:
    """Let the rate limiter learn the server's limit first.

    Until it has, the limiter sends one request at a time (a probe), which would hide the
    batch's own parallelism and ordering.
    """
    await client.get_conversation(1)
    fake.reset_log()
    if isinstance(fake, SlowWemasy):
        fake.peak_in_flight = 0
        fake.handled.clear()


def sent_ids(fake: FakeWemasy) -> list[Any]:
    """The ``conversation_id`` of every ``conversations/get`` request the fake received."""
    return [r.json["conversation_id"] for r in fake.requests_to(GET)]


async def wait_until_done(tasks: list[asyncio.Task[None]], within: float = 1.0) -> None:
    """Give cancelled workers a few loop turns (at most ``within`` seconds) to finish."""
    with anyio.move_on_after(within):
        while not all(task.done() for task in tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def collect_all(batch: BatchFetch[Any]) -> list[FetchResult[Any]]:
    async with batch:
        return [result async for result in batch]


async def unwrap_all(batch: BatchFetch[Any], into: list[Any] | None = None) -> None:
    """Consume ``batch`` inside ``async with``, unwrapping every result into ``into``."""
    async with batch:
        async for result in batch:
            if into is not None:
                into.append(result.unwrap())


async def raise_in_body(batch: BatchFetch[Any]) -> None:
    async with batch:
        async for _ in batch:
            raise KeyError("consumer bug")
