"""RedisStore against a real redis-server when Redis fails, cancellation through redis-py, and
the store's construction (see ``test_redis_store.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
import redis.asyncio

from tests.support.redis_store import (
    KEY,
    PACING,
    ROOT,
    TOKEN,
    acquire,
    client_for,
    info,
    redis_warnings,
    stored_state,
)
from wemasy_async import Client, InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import Limiter, Pacing, RateLimit
from wemasy_async.redis import RedisStore
from wemasy_async.schedule import Release
from wemasy_async.testing import FakeWemasy


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    async with RedisStore(redis_url) as redis_store:
        yield redis_store
        assert not redis_store.on_fallback


# --- When Redis fails -------------------------------------------------------------------------


async def test_redis_down_falls_back_and_recovers(
    free_port: int, start_redis: Callable[[int], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wemasy_async")
    url = f"redis://127.0.0.1:{free_port}/0"
    async with (
        FakeWemasy(rate_limit=10, window=0.5, token=TOKEN) as fake,
        RedisStore(url, fallback_share=0.5, reconnect_interval=0.3) as store,
        client_for(fake, store, 0.5) as client,
    ):
        await asyncio.gather(*(client.get_conversation(n % 20 + 1) for n in range(15)))
        assert store.on_fallback
        assert fake.stats.rate_limited == 0
        # The fallback's share, half of 10, is what any window may hold, the probe included
        # (at most 4 of ours in any window).
        assert fake.stats.max_in_window <= 5
        assert len(redis_warnings(caplog)) == 1

        start_redis(free_port)
        await anyio.sleep(0.4)  # past the reconnect interval
        await asyncio.gather(*(client.get_conversation(n + 1) for n in range(5)))
        assert not store.on_fallback
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        reader = redis.asyncio.Redis.from_url(url)
        assert len([key async for key in reader.scan_iter()]) == 1
        await reader.aclose()
    assert fake.stats.accepted == 20
    assert fake.stats.rate_limited == 0
    assert len(redis_warnings(caplog)) == 1


async def test_a_hung_redis_cannot_hold_requests(caplog: pytest.LogCaptureFixture) -> None:
    # Accepts connections and never answers, as a Redis behind a black-holed network would.
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.2) as store:
            started = time.monotonic()
            probe = await acquire(store)  # the fallback knows nothing yet: a probe
            assert probe.ticket is not None
            assert probe.ticket.probe
            await store.apply(KEY, PACING, Release(probe.ticket, info=info(limit=10)))
            # Learned, and paced by the fallback at its share, 10 * 0.25 rounded down = 2:
            # one send per window, the probe's included.
            assert 0.9 < (await acquire(store)).delay <= 1.0
            assert time.monotonic() - started < 2.0
            assert store.on_fallback
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(redis_warnings(caplog)) == 1


async def test_fallback_takes_its_share_of_the_limit(free_port: int) -> None:
    pacing = Pacing(window=1.0, margin=0.0, ceiling=16)
    async with RedisStore(f"redis://127.0.0.1:{free_port}/0", fallback_share=0.25) as store:
        # The fallback, at a ceiling of 16 / 4: three at once, then a window on.
        first = await acquire(store, pacing)
        assert [first.delay] + [(await acquire(store, pacing)).delay for _ in range(2)] == [0.0] * 3
        assert 0.9 < (await acquire(store, pacing)).delay <= 1.0
        # The credit, 7 / 4 rounded down, with 3 still unanswered of the 4 reserved.
        assert first.ticket is not None
        assert first.ticket.source != 0  # the fallback's, and released there
        await store.apply(KEY, pacing, Release(first.ticket, info=info(remaining=7)))
        assert store.on_fallback


class _AnswersOK:
    """A "Redis" that answers every command with +OK (a proxy, a wrong port...)."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while await reader.read(1024):
            writer.write(b"+OK\r\n")
            await writer.drain()


async def test_a_server_answering_nonsense_is_treated_as_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Once every call raised a raw ValueError (could not convert string to float).
    answers = _AnswersOK()
    server = await asyncio.start_server(answers, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with (
            FakeWemasy(rate_limit=10, window=0.5, token=TOKEN) as fake,
            RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5) as store,
            client_for(fake, store, 0.5) as client,
        ):
            with anyio.fail_after(10):
                conversations = await asyncio.gather(
                    *(client.get_conversation(n + 1) for n in range(6))
                )
            assert [c.id for c in conversations] == [str(n + 1) for n in range(6)]
            assert store.on_fallback
    finally:
        for writer in answers.writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert fake.stats.rate_limited == 0
    assert len(redis_warnings(caplog)) == 1


async def test_an_unreadable_stored_state_starts_afresh(redis_url: str) -> None:
    async with RedisStore(redis_url) as store:
        admin = redis.asyncio.Redis.from_url(redis_url)
        await admin.set(store.redis_key(KEY), b"not a state")
        await admin.aclose()
        probe = await acquire(store)
        assert probe.ticket is not None
        assert probe.ticket.probe
        assert not store.on_fallback


# --- Cancellation through redis-py ----------------------------------------------------------------


async def test_wait_for_with_random_deadlines_leaves_no_phantom_in_flight(redis_url: str) -> None:
    # Once: 3 x 300 calls under wait_for with deadlines up to 50 ms left Redis's in-flight
    # count at 19-204 with nothing in flight, throttling every later call, for good.
    rng = random.Random(7)
    async with FakeWemasy(rate_limit=10_000, window=1.0, token=TOKEN) as fake:
        stores = [RedisStore(redis_url) for _ in range(3)]
        clients = [client_for(fake, s, 1.0) for s in stores]
        try:
            await clients[0].get_conversation(1)  # learn the limit

            async def call(client: Client) -> None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(client.get_conversation(1), rng.uniform(0, 0.05))

            with anyio.fail_after(60):
                await asyncio.gather(*(call(c) for c in clients for _ in range(300)))
                for client in clients:
                    limiter = client._engine.options.limiter
                    assert limiter is not None
                    await limiter.settled()
            state = await stored_state(redis_url, stores[0], clients[0]._engine.options.limiter.key)  # type: ignore[union-attr]
            assert state.in_flight == 0
            assert not any(s.on_fallback for s in stores)
            with anyio.fail_after(2):  # and the next call works at once
                assert (await clients[1].get_conversation(2)).id == "2"
        finally:
            for client in clients:
                await client.aclose()
            for s in stores:
                await s.aclose()


async def test_a_cancel_that_lands_mid_command_is_not_swallowed(redis_url: str) -> None:
    # redis-py (8.x; 5.x with socket_timeout) drops a cancellation that arrives while a
    # command is on the wire. Once a worker cancelled there kept going (1,099 more calls in
    # a second; 13 of 20 random cancels ignored).
    rng = random.Random(3)
    async with RedisStore(redis_url) as store:
        limiter = Limiter("swallow|redis", RateLimit(window=1.0, store=store), store)
        probe = await limiter.acquire()
        await limiter.release(probe, info())  # learned, unpaced: every call is a round trip
        calls = 0

        async def worker() -> None:
            nonlocal calls
            while True:
                ticket = await limiter.acquire()
                calls += 1
                await limiter.release(ticket, info())

        ignored = 0
        for _ in range(20):
            task = asyncio.ensure_future(worker())
            await asyncio.sleep(rng.uniform(0.001, 0.02))
            task.cancel()
            try:
                with anyio.fail_after(1):
                    await asyncio.shield(task)
            except asyncio.CancelledError:
                pass
            except TimeoutError:
                ignored += 1
                task.cancel()
            before = calls
            await asyncio.sleep(0.05)
            ignored += calls != before
        await limiter.settled()
        assert ignored == 0
        state = await stored_state(redis_url, store, limiter.key)
        assert state.in_flight == 0


# --- Construction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "argument"),
    [
        (("http://localhost",), {}, "redis"),
        ((42,), {}, "redis"),
        (("redis://localhost",), {"prefix": ""}, "prefix"),
        (("redis://localhost",), {"fallback_share": 0}, "fallback_share"),
        (("redis://localhost",), {"fallback_share": 1.5}, "fallback_share"),
        (("redis://localhost",), {"timeout": 0}, "timeout"),
        (("redis://localhost",), {"reconnect_interval": float("nan")}, "reconnect_interval"),
    ],
)
def test_invalid_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        RedisStore(*args, **kwargs)  # type: ignore[arg-type]
    assert raised.value.argument == argument


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, wemasy_async; print(sorted(m for m in sys.modules if 'redis' in m))"
    assert _python(code).stdout.strip() == "[]"


def test_without_the_redis_package_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from wemasy_async import InvalidRequestError\n"
        "from wemasy_async.redis import RedisStore\n"
        "try:\n    RedisStore('redis://localhost')\n"
        "except InvalidRequestError as error:\n    print(error)\n"
    )
    assert "pip install 'wemasy-async[redis]'" in _python(code).stdout


async def test_first_request_probes_at_once_through_redis(redis_url: str) -> None:
    # Regression: the limiter's first look at the store claims the shared probe; discarding
    # that answer made the process wait out its own claim (min(window, 10) s).
    async with RedisStore(redis_url) as store:
        limiter = Limiter("probe|at-once", RateLimit(window=60.0, store=store), store)
        with anyio.fail_after(5):  # a hang guard: the bug waits 10 s here
            probe = await limiter.acquire()
        assert probe.probe
        await limiter.release(probe, RateLimitInfo(limit=100, remaining=99))
        with anyio.fail_after(5):
            ticket = await limiter.acquire()
        assert not ticket.probe
        await limiter.release(ticket, RateLimitInfo(limit=100, remaining=98))
