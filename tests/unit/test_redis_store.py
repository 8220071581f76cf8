"""RedisStore against a real redis-server: parity with LocalStore, clients, processes, outages.

The parity test drives a LocalStore and a RedisStore through the same random events with the
same injected clock and asserts the same decisions: the algorithm is one, and the Redis
store only keeps its state. The rest uses Redis's own clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import aiohttp
import anyio
import msgspec
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.redis_store import (
    ACQUIRE,
    KEY,
    PACING,
    ROOT,
    TOKEN,
    WORKER,
    acquire,
    client_for,
    info,
    learn,
    stored_state,
)
from wemasy_async import Client
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import Limiter, LocalStore, Pacing, RateLimit, Ticket
from wemasy_async.redis import RedisStore
from wemasy_async.schedule import Acquire, Confirm, Decision, Event, Release, State
from wemasy_async.testing import FakeWemasy

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


_ANSWERS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 12)),  # X-RateLimit-Limit
        st.one_of(st.none(), st.integers(0, 12)),  # X-RateLimit-Remaining
        st.sampled_from([0.0, 0.0, 0.5, 3.0]),  # a 429's pause
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answers=_ANSWERS)
async def test_the_fallback_learns_a_batch_as_answer_by_answer(
    redis_url: str, answers: list[tuple[int | None, int | None, float]]
) -> None:
    # One commit's releases teach the fallback in fewer transitions; it must end as a store
    # told each answer in turn would (the limit, the credit, every pause).
    now = 1_000.0
    alone = LocalStore(clock=lambda: now)
    fallback = LocalStore(clock=lambda: now)
    events = [
        Release(None, True, RateLimitInfo(limit=limit, remaining=remaining), paused)
        for limit, remaining, paused in answers
    ]
    async with RedisStore(
        redis_url, prefix=f"t{uuid.uuid4().hex}", fallback=fallback, fallback_share=1.0
    ) as store:
        futures = [store.submit(KEY, PACING, event) for event in events]  # one batch
        assert all(future is not None for future in futures)
        await asyncio.gather(*(f for f in futures if f is not None))
        assert not store.on_fallback
    for event in events:
        await alone.apply(KEY, PACING, event)
    assert fallback.state(KEY, PACING) == alone.state(KEY, PACING)


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


async def test_one_round_trip_per_request_when_requests_follow_each_other(redis_url: str) -> None:
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
        assert c.limiter is not None
        await c.limiter.settled()  # the last report committed
        stats = await reader.info("commandstats")
    await reader.aclose()
    calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    # One to reserve each; reports go in the background and ride with the next request's
    # reservation (queued before the commit starts), so one more for the last report.
    assert calls.pop("evalsha") == 11
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


# --- Calls without a task of their own ------------------------------------------------------------


class _CancelsOnHandOver(RedisStore):
    """Cancels the calling task just after a decision is handed to it, before it runs."""

    caller: asyncio.Task[object] | None = None

    def _deliver(self, key: str, item: object, decision: Decision) -> None:
        super()._deliver(key, item, decision)  # type: ignore[arg-type]
        if self.caller is not None:
            self.caller.cancel()
            self.caller = None


async def test_a_caller_cancelled_after_the_hand_over_gives_its_send_back(redis_url: str) -> None:
    async with _CancelsOnHandOver(redis_url) as store:
        await learn(store, info(limit=10, remaining=10))  # the probe's answer: paced from now
        assert store.completes_when_cancelled  # the limiter awaits it directly
        caller = asyncio.ensure_future(store.apply(KEY, PACING, Acquire()))
        store.caller = caller
        with pytest.raises(asyncio.CancelledError):
            await caller
        await store.settled()
        state = await stored_state(redis_url, store)
        assert state.in_flight == 0  # the send it reserved went back: no phantom


async def test_a_limiter_awaits_a_store_that_completes_on_its_own_directly(redis_url: str) -> None:
    # A store call without a task and a shield of its own: the same decisions, and a
    # cancelled waiter still leaves nothing reserved.
    async with RedisStore(redis_url) as store:
        limiter = Limiter(KEY, RateLimit(window=1.0, store=store), store)
        before = len(asyncio.all_tasks())
        probe = await limiter.acquire()
        assert len(asyncio.all_tasks()) <= before + 1  # at most the store's runner
        await limiter.release(probe, RateLimitInfo(limit=2, remaining=1))
        first = await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())  # the window is full: it waits
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await limiter.release(first, RateLimitInfo(limit=2, remaining=0))
        await limiter.settled()
        assert (await stored_state(redis_url, store)).in_flight == 0


def test_stores_say_whether_their_calls_complete_when_cancelled() -> None:
    class Awaiting:
        async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
            await asyncio.sleep(0)
            return Decision(None, 0.0)

    assert LocalStore().completes_when_cancelled
    assert RedisStore("redis://127.0.0.1:1/0").completes_when_cancelled
    # A fallback that may suspend runs in the caller: the store cannot promise it.
    assert not RedisStore("redis://127.0.0.1:1/0", fallback=Awaiting()).completes_when_cancelled


class _SlowCommits(RedisStore):
    """Every compare-and-set waits 0.2 s first: reports are still on their way for a while."""

    async def _cas(self, key: str, expected: str, value: str, ttl_ms: int) -> bool:
        await asyncio.sleep(0.2)
        return await super()._cas(key, expected, value, ttl_ms)


async def test_closing_a_client_commits_the_reports_still_on_their_way(redis_url: str) -> None:
    async with (
        FakeWemasy(rate_limit=100, window=60.0, token=TOKEN) as fake,
        _SlowCommits(redis_url) as store,
        aiohttp.ClientSession() as session,  # the caller's: closing the client awaits nothing
    ):
        client = Client(
            "wemasy",
            base_url=fake.url,
            token=TOKEN,
            session=session,
            rate_limit=RateLimit(window=60.0, store=store),
        )
        assert client.limiter is not None
        assert client.limiter.reports_in_background
        key = client.limiter.key
        await asyncio.gather(*(client.get_conversation(1) for _ in range(5)))
        await client.aclose()  # no settled(): closing waits for the reports
        state = await stored_state(redis_url, store, key)
        assert state.in_flight == 0
        assert state.sent == 5


async def test_settled_waits_for_what_was_queued_not_for_later_traffic(redis_url: str) -> None:
    # A busy key keeps its runner going (something new is queued during every commit);
    # settled(), which a closing client awaits, must still return once what was queued
    # before it is committed. (It once waited for the runner to end: as long as the traffic.)
    async with _SlowCommits(redis_url) as store:
        await learn(store, info(limit=100_000, remaining=100_000))
        reserved = [(await acquire(store)).ticket for _ in range(3)]
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                store.submit(KEY, PACING, Release(None, info=info(limit=100_000)))
                await asyncio.sleep(0.05)  # several during each 0.2 s commit

        background = asyncio.ensure_future(traffic())
        try:
            for ticket in reserved:
                assert ticket is not None
                store.submit(KEY, PACING, Release(ticket))
            with anyio.fail_after(1.5):  # two or three commits, then done
                await store.settled()
            assert (await stored_state(redis_url, store)).in_flight == 0
            assert not background.done()  # the traffic went on all along
        finally:
            stop.set()
            await background
            await store.settled()
