"""What the rate limiter's tests share: the test key, a store with a round trip, and
readers of a limiter's state."""

from __future__ import annotations

import asyncio
import contextlib

from wemasy_async import Client, RateLimitInfo
from wemasy_async.ratelimit import Limiter, LocalStore, Pacing
from wemasy_async.schedule import Acquire, Decision, Event, Release

TOKEN = "limiter-token"
GET = "/services/ai/v1/conversations/get"
KEY = "wemasy|https://fake.test/api|0123456789abcdef01234567"
# Timing tolerance for lower bounds measured on one machine's monotonic clock.
TOLERANCE = 0.01


class Clock:
    """A clock for a LocalStore that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pacing_of(limiter: Limiter) -> Pacing:
    config = limiter.config
    return Pacing(config.window, config.pacing_margin, config.ceiling)


async def pause(limiter: Limiter, seconds: float) -> None:
    await limiter.store.apply(limiter.key, pacing_of(limiter), Release(None, paused=seconds))


def in_flight(limiter: Limiter) -> int:
    store = limiter.store
    if isinstance(store, AwaitingStore):
        store = store.inner
    assert isinstance(store, LocalStore)
    return store.in_flight(limiter.key)


class AwaitingStore:
    """A LocalStore behind a round trip, as any store with I/O (Redis) has.

    ``swallow`` makes it drop a cancellation that lands during the round trip and carry on,
    as redis-py does mid-command.
    """

    def __init__(self, delay: float = 0.002, *, swallow: bool = False) -> None:
        self.inner = LocalStore()
        self.delay = delay
        self.swallow = swallow
        self.calls = 0

    async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
        self.calls += 1
        if self.swallow:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(self.delay)
        else:
            await asyncio.sleep(self.delay)
        return self.inner.apply_now(key, pacing, event)


ACQUIRE = Acquire()


def info(
    limit: int | None = None, remaining: int | None = None, retry_after: float | None = None
) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, retry_after=retry_after)


def limiter_of(client: Client) -> Limiter:
    limiter = client._engine.options.limiter
    assert limiter is not None
    return limiter
