"""RedisStore against a real redis-server: parity with LocalStore, clients, processes, outages.

The parity test drives a LocalStore and a RedisStore through the same random events with the
same injected clock and asserts the same decisions: the algorithm is one, and the Redis
store only keeps its state. The rest uses Redis's own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import msgspec
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wemasy_async import Client, InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import Limiter, LimiterStore, LocalStore, Pacing, RateLimit, Ticket
from wemasy_async.redis import RedisStore
from wemasy_async.schedule import Acquire, Confirm, Decision, Event, Release, State
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


# --- Parity: the same events, the same decisions ----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


_headers = st.builds(
    RateLimitInfo,
    limit=st.none() | st.integers(0, 60),
    remaining=st.none() | st.integers(0, 60),
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.integers(1, 6)),
        st.tuples(st.just("confirm"), st.integers(0, 50)),
        st.tuples(st.just("release"), st.integers(0, 50), st.none() | _headers),
        st.tuples(st.just("give back"), st.integers(0, 50)),
        st.tuples(st.just("429"), st.floats(0.0, 5.0), _headers),
        st.tuples(st.just("learn"), _headers),
        st.tuples(st.just("advance"), st.floats(0.0, 3.0)),
        st.tuples(st.just("jump"), st.sampled_from([-600.0, 3_600.0])),
    ),
    max_size=60,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    window=st.sampled_from([0.5, 1.0, 60.0]),
    margin=st.sampled_from([0.0, 0.025, 1.5]),
    ceiling=st.none() | st.integers(1, 40),
    steps=_steps,
)
def test_local_and_redis_stores_decide_alike(
    redis_server: str,
    window: float,
    margin: float,
    ceiling: int | None,
    steps: list[tuple[object, ...]],
) -> None:
    pacing = Pacing(window, margin, ceiling)
    key = f"parity|{uuid.uuid4().hex}"  # a fresh key per example, on the session's server

    async def run() -> None:
        clock = Clock()
        local = LocalStore(clock=clock)
        async with RedisStore(redis_server, clock=clock) as shared:
            held: list[Ticket] = []

            async def both(event: Event) -> Decision:
                expected = local.apply_now(key, pacing, event)
                got = await shared.apply(key, pacing, event)
                assert got == expected, event
                return expected

            def pick(index: object) -> Ticket | None:
                assert isinstance(index, int)
                return held.pop(index % len(held)) if held else None

            for step in steps:
                kind = step[0]
                if kind == "acquire":
                    for _ in range(int(step[1])):  # type: ignore[call-overload]
                        decision = await both(ACQUIRE)
                        if decision.ticket is not None:
                            held.append(decision.ticket)
                elif kind == "confirm" and held:
                    await both(Confirm(held[int(step[1]) % len(held)]))  # type: ignore[call-overload]
                elif kind == "release" and held:
                    headers = step[2]
                    assert headers is None or isinstance(headers, RateLimitInfo)
                    await both(Release(pick(step[1]), True, headers))
                elif kind == "give back" and held:
                    await both(Release(pick(step[1]), sent=False))
                elif kind == "429":
                    assert isinstance(step[2], RateLimitInfo)
                    await both(Release(pick(0), True, step[2], float(step[1])))  # type: ignore[arg-type]
                elif kind == "learn":
                    assert isinstance(step[1], RateLimitInfo)
                    await both(Release(None, info=step[1]))
                elif kind in ("advance", "jump"):
                    clock.now += float(step[1])  # type: ignore[arg-type]
            assert not shared.on_fallback
            if key in local._states:  # and the very same state
                assert shared._values[key] == msgspec.json.encode(local._states[key]).decode()

    asyncio.run(run())


# --- Scenarios on Redis's clock ---------------------------------------------------------------


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    async with RedisStore(redis_url) as redis_store:
        yield redis_store
        assert not redis_store.on_fallback


async def test_probes_until_a_response_tells(store: RedisStore) -> None:
    probe = await acquire(store)
    assert probe.ticket is not None
    assert probe.ticket.probe
    assert (await acquire(store)).ticket is None  # one probe at a time, for every process
    await store.apply(KEY, PACING, Release(probe.ticket, info=info(limit=10, remaining=9)))
    paced = await acquire(store)
    assert paced.ticket is not None
    assert not paced.ticket.probe
    assert paced.limit == 10


async def test_a_burst_then_the_window(store: RedisStore) -> None:
    await learn(store, info(limit=4))
    delays = [(await acquire(store)).delay for _ in range(5)]
    # Limit 4: three at once, then the next a window after them (margin 0).
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert 0.9 < delays[3] <= 1.0
    assert 0.9 < delays[4] <= 1.0  # the same time, as the log holds 3 in that window


async def test_no_rate_limit_headers_means_unpaced(store: RedisStore) -> None:
    await learn(store, info())
    for _ in range(20):
        assert (await acquire(store)).delay == 0.0


async def test_credit_lasts_one_window(store: RedisStore) -> None:
    pacing = Pacing(window=0.3, margin=0.0, ceiling=None)
    await learn(store, info(remaining=0), pacing)
    delay = (await acquire(store, pacing)).delay
    assert 0.2 < delay <= 0.3
    await anyio.sleep(delay)
    assert (await acquire(store, pacing)).delay == 0.0  # no credit any more: unpaced again


async def test_pause_blocks_every_process(store: RedisStore, redis_url: str) -> None:
    await learn(store, info(limit=10))
    await store.apply(KEY, PACING, Release(None, info=info(), paused=0.5))
    async with RedisStore(redis_url) as other:
        held = await acquire(other)
        assert held.ticket is None
        assert 0.4 < held.paused <= 0.5


# --- Shared between stores and processes --------------------------------------------------


@pytest.fixture
async def two_stores(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    async with RedisStore(redis_url) as first, RedisStore(redis_url) as second:
        yield first, second


async def test_stores_share_one_log(two_stores: tuple[RedisStore, RedisStore]) -> None:
    first, second = two_stores
    await learn(first, info(limit=3))
    assert (await acquire(first)).delay == 0.0
    assert (await acquire(second)).delay == 0.0
    assert (await acquire(first)).delay > 0.9  # limit 3: two in a window, whoever sent them


async def test_credit_counts_other_stores_in_flight(
    two_stores: tuple[RedisStore, RedisStore],
) -> None:
    first, second = two_stores
    await learn(first, info())
    assert (await acquire(first)).delay == 0.0
    assert (await acquire(first)).delay == 0.0
    await learn(second, info(remaining=5))  # 2 still in flight, in another process
    for _ in range(3):
        assert (await acquire(second)).delay == 0.0
    assert (await acquire(second)).delay > 0.0


async def test_in_flight_of_a_dead_process_lapses(redis_url: str) -> None:
    pacing = Pacing(window=0.5, margin=0.0, ceiling=None)
    async with RedisStore(redis_url) as dead:
        await learn(dead, info(), pacing)
        for _ in range(3):
            assert (await acquire(dead, pacing)).delay == 0.0
    # Its process died with three requests in flight; after their leases they no longer count.
    await anyio.sleep(0.6)
    async with RedisStore(redis_url) as alive:
        await learn(alive, info(remaining=2), pacing)
        assert (await acquire(alive, pacing)).delay == 0.0
        assert (await acquire(alive, pacing)).delay == 0.0
        assert (await acquire(alive, pacing)).ticket is None  # the credit of 2 is spent
        assert (await stored_state(redis_url, alive)).in_flight == 2  # alive's only


async def test_concurrent_calls_of_one_process_are_committed_together(
    redis_url: str,
) -> None:
    reader = redis.asyncio.Redis.from_url(redis_url)
    async with RedisStore(redis_url) as store:
        await learn(store, info())
        await reader.config_resetstat()
        decisions = await asyncio.gather(*(acquire(store) for _ in range(50)))
        stats = await reader.info("commandstats")
        assert (await stored_state(redis_url, store)).in_flight == 50
    await reader.aclose()
    assert all(d.delay == 0.0 for d in decisions)
    assert len({d.ticket for d in decisions}) >= 1
    assert stats["cmdstat_evalsha"]["calls"] <= 5  # not 50


async def test_contending_processes_agree(redis_url: str) -> None:
    # Four stores (as four processes) reserve concurrently: compare-and-set retries make
    # every reservation count once, so the log holds exactly what was taken.
    pacing = Pacing(window=2.0, margin=0.0, ceiling=None)
    stores = [RedisStore(redis_url) for _ in range(4)]
    try:
        await learn(stores[0], info(limit=41), pacing)
        decisions = await asyncio.gather(*(acquire(s, pacing) for s in stores for _ in range(25)))
    finally:
        for s in stores:
            await s.aclose()
    delays = sorted(d.delay for d in decisions)
    assert delays[:40] == [0.0] * 40  # limit - 1 fit in a window, whoever sent them
    assert all(d > 1.5 for d in delays[40:])
    state = await stored_state(redis_url, stores[0])
    assert (state.sent, state.in_flight) == (100, 100)  # each counted once


def test_usable_in_one_event_loop_after_another(redis_url: str) -> None:
    store = RedisStore(redis_url)

    async def busy() -> None:
        await asyncio.gather(*(learn(store, info()) for _ in range(5)))
        assert (await acquire(store)).delay == 0.0
        assert not store.on_fallback
        await store.aclose()

    asyncio.run(busy())
    asyncio.run(busy())


async def test_clients_through_redis_get_no_429(redis_url: str) -> None:
    async with (
        FakeWemasy(rate_limit=20, window=0.5, token=TOKEN) as fake,
        RedisStore(redis_url) as store,
        client_for(fake, store, 0.5) as client,
    ):
        await asyncio.gather(*(client.get_conversation(n % 20 + 1) for n in range(50)))
        assert not store.on_fallback
    assert fake.stats.accepted == 50
    assert fake.stats.rate_limited == 0
    assert fake.stats.max_in_window <= 20


async def test_processes_sharing_a_token_stay_within_the_limit(redis_url: str) -> None:
    processes, each, limit = 3, 12, 20  # 36 requests, ~1.9 s
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with FakeWemasy(rate_limit=limit, window=1.0, token=TOKEN) as fake:
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                fake.url,
                TOKEN,
                redis_url,
                str(each),
                "1.0",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=ROOT,
                env=env,
            )
            for _ in range(processes)
        ]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(worker.communicate() for worker in workers)), timeout=60
        )
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr.decode()
        assert b"unreachable" not in stderr  # no worker fell back to local pacing
        result = json.loads(stdout)
        assert result == {"ok": each, "errors": []}
    assert fake.stats.accepted == processes * each
    assert fake.stats.rate_limited == 0
    assert fake.stats.max_in_window <= limit


async def test_keys_hold_a_digest_and_expire(redis_url: str) -> None:
    async with (
        # A high limit: the second request waits one interval of the default minute window
        # after the probe, max(61.5 / 1000 = 0.0615, 60 / 999 = 0.06006) = 0.0615 s.
        FakeWemasy(rate_limit=1000, window=1.0, token=TOKEN) as fake,
        RedisStore(redis_url, prefix="test-prefix") as store,
        Client(
            "wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(store=store)
        ) as client,
    ):
        await client.get_conversation(1)
        await client.get_conversation(2)
    reader = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [str(key) async for key in reader.scan_iter()]
        assert len(keys) == 1
        assert keys[0].startswith("test-prefix:wemasy|")
        assert TOKEN not in keys[0]
        value = await reader.get(keys[0])
        assert TOKEN not in value
        assert msgspec.json.decode(value, type=State).limit == 1000
        # Kept two windows of the default (60 s) after the last send, and a second.
        assert 0 < await reader.pttl(keys[0]) <= 2 * 60_000 + 1_000
    finally:
        await reader.aclose()


async def test_at_most_two_round_trips_per_request(redis_url: str) -> None:
    reader = redis.asyncio.Redis.from_url(redis_url)
    async with (
        FakeWemasy(rate_limit=None) as fake,  # no headers: learned after a probe, unpaced
        RedisStore(redis_url) as store,
        Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(store=store)) as c,
    ):
        await c.get_conversation(1)  # the probe; loads the script
        await reader.config_resetstat()
        for n in range(10):
            await c.get_conversation(n + 1)
        stats = await reader.info("commandstats")
    await reader.aclose()
    calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    assert calls.pop("evalsha") == 20  # one to reserve, one to report back
    # Everything else came from inside the script, or from this test.
    assert set(calls) <= {"time", "get", "set", "info", "config|resetstat"}


async def test_scripts_reload_after_script_flush(redis_url: str) -> None:
    async with RedisStore(redis_url) as store:
        await learn(store, info())
        admin = redis.asyncio.Redis.from_url(redis_url)
        await admin.script_flush()
        await admin.aclose()
        assert (await acquire(store)).delay == 0.0
        assert not store.on_fallback


async def test_given_client_is_used_and_not_closed(redis_url: str) -> None:
    given = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        store = RedisStore(given)  # decode_responses=True: the state is text, it works
        await learn(store, info(limit=2))
        assert (await acquire(store)).delay == 0.0
        assert 0.9 < (await acquire(store)).delay <= 1.0
        assert not store.on_fallback
        await store.aclose()
        assert await given.exists(store.redis_key(KEY)) == 1
    finally:
        await given.aclose()


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
