"""What the RedisStore tests share: a key, pacing, a token, a worker program, and small steps."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest
import redis.asyncio

from wemasy_async import Client
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import LimiterStore, Pacing, RateLimit
from wemasy_async.redis import RedisStore
from wemasy_async.schedule import Acquire, Decision, Release, State
from wemasy_async.testing import FakeWemasy

KEY = "wemasy|http://127.0.0.1:1/api|0123456789abcdef01234567"
PACING = Pacing(window=1.0, margin=0.0, ceiling=None)
TOKEN = "redis-test-secret-token-5b1f"
ROOT = Path(__file__).resolve().parent.parent.parent
WORKER = ROOT / "tests" / "support" / "redis_worker.py"
ACQUIRE = Acquire()
# Timing tolerance for lower bounds measured on this machine's monotonic clock.
TOLERANCE = 0.01


def info(limit: int | None = None, remaining: int | None = None) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining)


async def learn(store: LimiterStore, headers: RateLimitInfo, pacing: Pacing = PACING) -> None:
    await store.apply(KEY, pacing, Release(None, info=headers))


async def acquire(store: LimiterStore, pacing: Pacing = PACING) -> Decision:
    return await store.apply(KEY, pacing, ACQUIRE)


def client_for(fake: FakeWemasy, store: RedisStore, window: float) -> Client:
    """A client of ``fake`` paced through ``store``, without retries: a 429 would fail."""
    config = RateLimit(window=window, store=store)
    return Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, retry=False)


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "wemasy_async" and r.levelno == logging.WARNING and "Redis" in r.getMessage()
    ]


async def stored_state(redis_url: str, store: RedisStore, key: str = KEY) -> State:
    reader = redis.asyncio.Redis.from_url(redis_url)
    try:
        value = await reader.get(store.redis_key(key))
    finally:
        await reader.aclose()
    assert value is not None
    return msgspec.json.decode(value, type=State)
