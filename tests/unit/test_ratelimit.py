"""The client-side rate limiter: configuration, keys, the store, the front, end to end.

The contract is the module docstring of :mod:`wemasy_async.ratelimit` (the rules themselves:
``test_schedule.py``). ``LocalStore`` is tested with an injected clock (deterministic); the
``Limiter`` front and the end-to-end tests use real time with short windows, and assert
timing only as lower bounds with a tolerance. Retries do not sleep in this suite (autouse
``no_backoff``), but the limiter's pauses are real: that is what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sys
import time
import weakref
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wemasy_async import Client, InvalidRequestError, RateLimitError, RateLimitInfo, schedule
from wemasy_async.ratelimit import (
    Limiter,
    LimiterStore,
    LocalStore,
    Pacing,
    PauseTooLong,
    RateLimit,
    Ticket,
    limiter_key,
    shared_limiter,
)
from wemasy_async.schedule import Acquire, Decision, Event, Release
from wemasy_async.testing import FakeSiteAssist, FakeWemasy

TOKEN = "limiter-token"
GET = "/services/ai/v1/conversations/get"
KEY = "wemasy|https://fake.test/api|0123456789abcdef01234567"
# Timing tolerance for lower bounds measured on one machine's monotonic clock.
TOLERANCE = 0.01


# --- RateLimit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, float("nan"), float("inf"), True, "60", None])
def test_window_must_be_positive(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RateLimit(window=value)  # type: ignore[arg-type]
    assert info.value.argument == "window"


@pytest.mark.parametrize("value", [-0.001, -1, float("nan"), float("inf"), True, "1"])
def test_margin_must_be_non_negative(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RateLimit(margin=value)  # type: ignore[arg-type]
    assert info.value.argument == "margin"


def test_margin_rejects_false() -> None:
    # False == 0.0, but bools are rejected everywhere else (margin=True, window=True, ...).
    with pytest.raises(InvalidRequestError) as info:
        RateLimit(margin=False)
    assert info.value.argument == "margin"


@pytest.mark.parametrize("value", [0, -3, True, False, 1.5, 2.0, "5"])
def test_ceiling_must_be_a_whole_number(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RateLimit(ceiling=value)  # type: ignore[arg-type]
    assert info.value.argument == "ceiling"


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "1", None])
def test_pause_without_hint_must_be_positive(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RateLimit(pause_without_hint=value)  # type: ignore[arg-type]
    assert info.value.argument == "pause_without_hint"


def test_margin_defaults_to_two_and_a_half_percent_of_the_window() -> None:
    assert RateLimit().pacing_margin == pytest.approx(1.5)
    assert RateLimit(window=40).pacing_margin == pytest.approx(1.0)
    assert RateLimit(window=1.0).pacing_margin == pytest.approx(0.025)
    assert RateLimit(window=10, margin=0).pacing_margin == 0.0
    assert RateLimit(window=10, margin=2).pacing_margin == 2.0
    assert RateLimit(ceiling=1).ceiling == 1


# --- Keys and sharing ----------------------------------------------------------------------------


def test_limiter_key_holds_a_digest_not_the_token() -> None:
    token = "sk-live-very-secret-token-123"
    key = limiter_key("wemasy", "https://api.wemasy.nl/api", token)
    assert token not in key
    assert "secret" not in key
    assert key.startswith("wemasy|https://api.wemasy.nl/api|")
    assert key == limiter_key("wemasy", "https://api.wemasy.nl/api", token)


def test_limiter_key_differs_per_token_base_url_and_provider() -> None:
    base = limiter_key("wemasy", "https://a.test/api", "t1")
    others = {
        limiter_key("wemasy", "https://a.test/api", "t2"),
        limiter_key("wemasy", "https://b.test/api", "t1"),
        limiter_key("loop", "https://a.test/api", "t1"),
    }
    assert base not in others
    assert len(others) == 3


def _limiter(client: Client) -> Limiter:
    limiter = client._engine.options.limiter
    assert limiter is not None
    return limiter


def test_clients_with_the_same_key_share_one_limiter() -> None:
    url = "https://share.test/api"
    first = Client("wemasy", token="shared-1", base_url=url)
    same = Client("wemasy", token="shared-1", base_url=url + "/", retry=False)
    other_token = Client("wemasy", token="shared-2", base_url=url)
    other_url = Client("wemasy", token="shared-1", base_url="https://other.test/api")
    assert _limiter(first) is _limiter(same)
    assert _limiter(first) is not _limiter(other_token)
    assert _limiter(first) is not _limiter(other_url)
    assert "shared-1" not in _limiter(first).key


def test_a_second_different_rate_limit_for_a_key_in_use_is_refused() -> None:
    # Once the second client's settings were silently ignored. One server has one limit.
    url = "https://settings.test/api"
    config = RateLimit(window=2.0)
    first = Client("wemasy", token="settings", base_url=url, rate_limit=config)
    with pytest.raises(InvalidRequestError) as raised:
        Client("wemasy", token="settings", base_url=url, rate_limit=RateLimit(window=9.0))
    assert raised.value.argument == "rate_limit"
    assert "settings" not in str(raised.value).replace("share its settings", "")
    # Equal settings share; another store is another limiter, whatever its settings.
    same = Client("wemasy", token="settings", base_url=url, rate_limit=RateLimit(window=2.0))
    assert _limiter(same) is _limiter(first)
    elsewhere = RateLimit(window=9.0, store=LocalStore())
    other = Client("wemasy", token="settings", base_url=url, rate_limit=elsewhere)
    assert _limiter(other) is not _limiter(first)


def test_rate_limit_false_has_no_limiter() -> None:
    client = Client("wemasy", token="nolimit", base_url="https://x.test/api", rate_limit=False)
    assert client._engine.options.limiter is None


def test_a_limiter_is_released_with_its_last_client() -> None:
    url = "https://release.test/api"
    first = Client("wemasy", token="released", base_url=url)
    second = Client("wemasy", token="released", base_url=url)
    copy = first.with_options(timeout=1)
    ref = weakref.ref(_limiter(first))
    del first
    gc.collect()
    assert ref() is not None  # still used by `second` and by the copy
    del second
    gc.collect()
    assert ref() is not None  # the copy still uses it
    del copy
    gc.collect()
    assert ref() is None
    # A new client for the key starts afresh.
    fresh = Client("wemasy", token="released", base_url=url)
    assert _limiter(fresh).key == limiter_key("wemasy", url, "released")
    store = _limiter(fresh).store
    assert isinstance(store, LocalStore)
    assert store.in_flight(_limiter(fresh).key) == 0
    assert store._states == {}


def test_shared_limiter_keys_by_store() -> None:
    config_a = RateLimit(store=LocalStore())
    config_b = RateLimit(store=LocalStore())
    a = shared_limiter("store-key", config_a)
    b = shared_limiter("store-key", config_b)
    again = shared_limiter("store-key", config_a)
    assert a is again
    assert a is not b
    assert a.store is config_a.store
    assert b.store is config_b.store


# --- LocalStore with an injected clock -----------------------------------------------------------
#
# The rules themselves are tested in test_schedule.py; this is the store around them.


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PACING = Pacing(window=10.0, margin=0.25, ceiling=None)
ACQUIRE = Acquire()


def info(
    limit: int | None = None, remaining: int | None = None, retry_after: float | None = None
) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, retry_after=retry_after)


def test_store_keys_are_independent() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    probe = store.apply_now(KEY, PACING, ACQUIRE).ticket
    assert probe is not None
    store.apply_now(KEY, PACING, Release(probe, info=info(limit=2)))
    other = store.apply_now("other|key", PACING, ACQUIRE).ticket
    assert other is not None
    assert other.probe  # a probe of its own
    # Limit 2: one send per window, the probe counted: the next is due a window on.
    assert store.apply_now(KEY, PACING, ACQUIRE).delay == pytest.approx(10.0)
    assert store.in_flight(KEY) == 1
    assert store.in_flight("other|key") == 1
    assert store.in_flight("unknown|key") == 0


async def test_store_reads_its_clock_at_each_call() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.apply(KEY, PACING, Release(None, info=info(remaining=0)))
    assert (await store.apply(KEY, PACING, ACQUIRE)).delay == pytest.approx(10.0)
    clock.advance(4.0)
    assert (await store.apply(KEY, PACING, ACQUIRE)).delay == pytest.approx(6.0)


# --- The Limiter front (real time) -------------------------------------------------------------


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


async def test_far_from_the_limit_acquire_does_not_suspend() -> None:
    limiter = Limiter("fast", RateLimit(window=60.0, ceiling=10_000), LocalStore())
    # A coroutine that never suspends finishes on its first step: no event-loop round trip.
    for _ in range(100):
        coroutine = limiter.acquire()
        with pytest.raises(StopIteration) as done:
            coroutine.send(None)
        ticket = done.value.value
        assert isinstance(ticket, Ticket)
        release = limiter.release(ticket, info(limit=10_000))
        with pytest.raises(StopIteration):
            release.send(None)
    assert in_flight(limiter) == 0


async def test_limiter_serves_waiters_in_arrival_order() -> None:
    # Reservations are first come, first served: nobody overtakes a waiter (woken on time:
    # one more than half the margin late loses its place, hence a margin a busy machine keeps).
    limiter = Limiter("fifo", RateLimit(window=0.2, ceiling=3, margin=0.05), LocalStore())
    order: list[int] = []

    async def waiter(i: int) -> None:
        ticket = await limiter.acquire()
        order.append(i)
        await limiter.release(ticket, info())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(waiter, i)
                await anyio.lowlevel.checkpoint()
    assert order == list(range(8))
    assert limiter.waiting == 0


async def test_each_waiter_costs_a_bounded_number_of_store_calls() -> None:
    store = AwaitingStore(0.0)
    limiter = Limiter("calls", RateLimit(window=0.2, ceiling=40), store)

    async def waiter() -> None:
        await limiter.release(await limiter.acquire(), info())

    await pause(limiter, 0.1)
    store.calls = 0
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(waiter)
    # Wake-ups after the pause, a reservation, a confirmation and a release each: nobody
    # polls behind anybody else, so this grows with the waiters, not with their square.
    assert store.calls <= 5 * 60


async def test_limiter_bursts_then_keeps_the_window_in_real_time() -> None:
    limiter = Limiter("spacing", RateLimit(window=0.5, ceiling=5), LocalStore())
    times: list[float] = []

    async def waiter() -> None:
        ticket = await limiter.acquire()
        times.append(time.monotonic())
        await limiter.release(ticket, info())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(waiter)
    times.sort()
    # Ceiling 5: a burst of 4, then at most 4 in any window (and 5 in window + margin).
    assert times[3] - times[0] < 0.1
    assert all(
        later - earlier >= 0.5 - TOLERANCE for earlier, later in zip(times, times[4:], strict=False)
    )


async def test_limiter_sends_one_probe_until_the_limit_is_learned() -> None:
    limiter = Limiter("probe", RateLimit(window=1.0), LocalStore())
    probe = await limiter.acquire()
    assert probe.probe
    results: list[Ticket] = []

    async def waiter() -> None:
        ticket = await limiter.acquire()
        results.append(ticket)
        await limiter.release(ticket, info(limit=1000))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(waiter)
            await anyio.sleep(0.1)
            assert results == []  # all held back while the probe is out
            started = time.monotonic()
            await limiter.release(probe, info(limit=1000))
        # Woken by the probe's release, not by their next poll.
        assert time.monotonic() - started < schedule.PROBE_POLL
    assert [t.probe for t in results] == [False] * 5
    assert in_flight(limiter) == 0
    assert limiter.allowed_rate == pytest.approx(1000 / 1.025)


async def test_limiter_failed_probe_hands_probing_to_the_next_waiter() -> None:
    limiter = Limiter("probe-fail", RateLimit(window=1.0), LocalStore())
    probe = await limiter.acquire()
    results: list[Ticket] = []
    second_probe = anyio.Event()

    async def waiter() -> None:
        ticket = await limiter.acquire()
        results.append(ticket)
        if ticket.probe:
            second_probe.set()
            return
        await limiter.release(ticket, info())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            await anyio.sleep(0.05)
            await limiter.release(probe, None)  # the probe got no response
            await second_probe.wait()
            await anyio.sleep(0.05)
            assert [t.probe for t in results] == [True]  # one new probe, the rest wait
            await limiter.release(results[0], info())  # headers without a limit: unpaced
    assert [t.probe for t in results] == [True, False, False]


async def test_a_pause_arriving_during_the_wait_is_honoured() -> None:
    limiter = Limiter("late-pause", RateLimit(window=1.0, ceiling=2), LocalStore())
    # Ceiling 2: one send per window. The second is reserved a window on.
    first = await limiter.acquire()
    started = time.monotonic()

    async def late_pause() -> None:
        await anyio.sleep(0.05)
        await limiter.release(first, info(), paused=1.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(late_pause)
        ticket = await limiter.acquire()
    # Its reservation (1 s on) was voided by the pause, which ends at 1.55 s.
    assert time.monotonic() - started >= 1.55 - TOLERANCE
    await limiter.release(ticket, info())
    assert in_flight(limiter) == 0


async def test_a_long_pause_fails_waiters_at_once() -> None:
    limiter = Limiter("pause-too-long", RateLimit(window=1.0), LocalStore())
    await pause(limiter, 30.0)  # as another process's 429 would: this limiter never saw it
    with anyio.fail_after(1), pytest.raises(PauseTooLong) as raised:
        await limiter.acquire(max_pause=5.0)
    assert raised.value.seconds == pytest.approx(30.0, abs=0.1)
    assert limiter.waiting == 0


async def test_limiter_remembers_the_longest_pause_it_saw() -> None:
    limiter = Limiter("paused-for", RateLimit(window=1.0), LocalStore())
    assert limiter.paused_for() == 0.0
    probe = await limiter.acquire()
    await limiter.release(probe, info(limit=10), paused=5.0)
    assert 5.0 - TOLERANCE < limiter.paused_for() <= 5.0
    await limiter.release(probe, info(), paused=1.0)  # a shorter pause does not shorten it
    assert 5.0 - TOLERANCE < limiter.paused_for() <= 5.0


def test_allowed_rate_follows_what_is_known() -> None:
    assert Limiter("rate", RateLimit(window=1.0), LocalStore()).allowed_rate is None
    capped = Limiter("rate", RateLimit(window=2.0, margin=0.0, ceiling=11), LocalStore())
    assert capped.allowed_rate == pytest.approx(10 / 2.0)  # min(10 / 2, 11 / 2)


async def test_allowed_rate_is_learned_and_capped_by_the_ceiling() -> None:
    limiter = Limiter("rate-learned", RateLimit(window=2.0, margin=0.0, ceiling=100), LocalStore())
    ticket = await limiter.acquire()
    await limiter.release(ticket, info(limit=21))
    assert limiter.allowed_rate == pytest.approx(20 / 2.0)
    await limiter.release(ticket, info(limit=5000))
    assert limiter.allowed_rate == pytest.approx(99 / 2.0)
    unpaced = Limiter("rate-unpaced", RateLimit(window=2.0), LocalStore())
    probe = await unpaced.acquire()
    await unpaced.release(probe, info())  # no limit header: not paced
    assert unpaced.allowed_rate is None


# --- Cancellation, at every await point --------------------------------------------------------


async def _cancel(how: str, coroutine: Coroutine[Any, Any, Any], after: float) -> None:
    """Run ``coroutine`` and cancel it ``after`` seconds, the way ``how`` says."""
    if how == "task.cancel":
        task = asyncio.ensure_future(coroutine)
        await asyncio.sleep(after)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elif how == "wait_for":
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(coroutine, after)
    elif how == "timeout":
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(after):
                await coroutine
    else:  # a TaskGroup whose sibling fails

        async def fail() -> None:
            await asyncio.sleep(after)
            raise KeyError("sibling")

        with contextlib.suppress(BaseException):  # the group's ExceptionGroup
            async with asyncio.TaskGroup() as tg:
                tg.create_task(coroutine)
                tg.create_task(fail())


CANCELLERS = ["task.cancel", "wait_for", "timeout", "taskgroup"]


@pytest.mark.parametrize("how", CANCELLERS)
@pytest.mark.parametrize("store_kind", ["local", "awaiting", "swallowing"])
async def test_cancelled_callers_leak_nothing_and_the_next_call_works(
    how: str, store_kind: str
) -> None:
    if how in ("timeout", "taskgroup") and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout and TaskGroup are new in Python 3.11")
    store: LimiterStore = LocalStore()
    if store_kind != "local":
        store = AwaitingStore(swallow=store_kind == "swallowing")
    limiter = Limiter(f"cancel-{how}-{store_kind}", RateLimit(window=0.3, ceiling=3), store)
    rng = random.Random(11)
    completed = 0

    async def request() -> None:
        nonlocal completed
        ticket = await limiter.acquire()
        try:
            await asyncio.sleep(rng.uniform(0, 0.01))  # the exchange
        finally:
            await limiter.release(ticket, info(limit=3))
        completed += 1

    # Waiting for a reservation, inside a store call (reserving, confirming, releasing),
    # in flight: random deadlines land everywhere.
    with anyio.fail_after(20):
        for _ in range(30):
            await asyncio.gather(*(_cancel(how, request(), rng.uniform(0, 0.05)) for _ in range(4)))
        await limiter.settled()
        assert limiter.waiting == 0
        assert in_flight(limiter) == 0
        await limiter.settled()
        ticket = await limiter.acquire()  # the next call works
        await limiter.release(ticket, info())
    assert in_flight(limiter) == 0
    assert completed > 0  # not everything was cancelled: the test exercised both


@pytest.mark.parametrize(("queued", "victim"), [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)])
async def test_cancelling_a_queued_waiter_with_an_awaiting_store(queued: int, victim: int) -> None:
    # Once: with 2 queued a raw IndexError, with 3 the third waiter hung; a slot leaked.
    store = AwaitingStore(0.005)
    limiter = Limiter("queued", RateLimit(window=1.0, ceiling=100), store)
    await pause(limiter, 0.1)
    tasks = [asyncio.ensure_future(limiter.acquire()) for _ in range(queued)]
    for delay in (0.1, 0.003, 0.004):  # around the store calls as the pause ends
        await asyncio.sleep(delay)
        if not tasks[victim].done():
            tasks[victim].cancel()
            break
    with anyio.fail_after(5):
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for i, outcome in enumerate(outcomes):
        if i != victim or not isinstance(outcome, asyncio.CancelledError):
            assert isinstance(outcome, Ticket), outcome
            await limiter.release(outcome, info())
    await limiter.settled()
    assert in_flight(limiter) == 0
    assert limiter.waiting == 0


async def test_a_probe_cancelled_while_releasing_still_ends_the_probe() -> None:
    # Once: the release relied on an anyio shield, which Task.cancel() goes through: the
    # probe was never marked done and the next call hung.
    store = AwaitingStore(0.05)
    limiter = Limiter("probe-release", RateLimit(window=1.0), store)
    probe = await limiter.acquire()
    assert probe.probe
    release = asyncio.ensure_future(limiter.release(probe, info(limit=100)))
    await asyncio.sleep(0.01)  # inside the store call
    release.cancel()
    with pytest.raises(asyncio.CancelledError):
        await release
    with anyio.fail_after(1):  # not a probe's 10 s lease
        ticket = await limiter.acquire()
    assert not ticket.probe
    await limiter.release(ticket, info(limit=100))
    await limiter.settled()
    assert in_flight(limiter) == 0


async def test_a_store_that_swallows_cancellation_cannot_keep_a_caller_going() -> None:
    store = AwaitingStore(0.01, swallow=True)
    limiter = Limiter("swallow", RateLimit(window=1.0), store)
    calls_after: list[int] = []

    async def worker(started: asyncio.Event) -> None:
        while True:
            ticket = await limiter.acquire()
            started.set()
            await limiter.release(ticket, info())

    for _ in range(10):
        started = asyncio.Event()
        task = asyncio.ensure_future(worker(started))
        await started.wait()
        await asyncio.sleep(random.uniform(0, 0.02))
        task.cancel()
        with anyio.fail_after(1), pytest.raises(asyncio.CancelledError):
            await task
        await limiter.settled()
        before = store.calls
        await asyncio.sleep(0.05)
        calls_after.append(store.calls - before)
    assert calls_after == [0] * 10  # every cancel stopped its worker
    assert in_flight(limiter) == 0


# --- End to end against the fakes --------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=5, conversations=50, token=TOKEN) as server:
        yield server


def in_flight_of(client: Client) -> int:
    return in_flight(_limiter(client))


async def test_only_one_probe_before_the_limit_is_known() -> None:
    # 20 per 1 s (rather than 10) keeps the test short; the probe logic is the same.
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=20, window=1.0) as fake:
        fake.queue_delay(0.3, path=GET)  # the probe's answer takes 0.3 s
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for i in range(20):
                        tg.start_soon(client.get_conversation, i + 1)
                    await anyio.sleep(0.15)
                    assert len(fake.requests) == 1
        requests = fake.requests_to(GET)
        assert len(requests) == 20
        # The others waited for the probe's answer, 0.3 s after it was sent, and then 18
        # went at once (19 fit in the window, the probe included); the last a window on.
        assert requests[1].received_at - requests[0].received_at >= 0.3 - TOLERANCE
        assert requests[18].received_at - requests[1].received_at < 0.25
        assert requests[19].received_at - requests[0].received_at >= 1.0 - TOLERANCE
        assert fake.stats.max_in_window <= 19
        assert fake.stats.rate_limited == 0
        assert all(r.status == 200 for r in requests)


async def _hammer(client: Client, tasks: int) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * tasks

    async def one(i: int) -> None:
        try:
            conversation = await client.get_conversation(i % 40 + 1)
            assert conversation.id == str(i % 40 + 1)
        except Exception as error:
            outcomes[i] = error

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(one, i)
    return outcomes


@pytest.mark.slow
async def test_concurrent_load_stays_under_the_limit_without_stalling() -> None:
    # The documented 10 per minute, scaled to 10 per second. The log keeps at most 9 of
    # ours in any second (and 10 in 1.025 s), so Remaining never reaches 0 from our own
    # traffic and the credit never holds the key for a whole window: 60 requests take
    # about (60 - 9) / (10 / 1.025) = 5.2 s at the allowed rate.
    limit, tasks = 10, 60
    async with FakeWemasy(
        conversations=40, token=TOKEN, rate_limit=limit, window=1.0, window_offset=0.37
    ) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            started = time.monotonic()
            with anyio.fail_after(30):
                outcomes = await _hammer(client, tasks)
            elapsed = time.monotonic() - started
        assert outcomes == [None] * tasks
        assert fake.stats.rate_limited == 0
        assert fake.stats.status_counts == {200: tasks}
        assert fake.stats.max_in_window <= limit - 1
        assert in_flight_of(client) == 0
        # No stall: close to the allowed rate (a stalled window would add a whole second).
        assert elapsed < tasks / (limit / 1.025) + 0.5


async def test_the_same_load_without_the_limiter_is_rate_limited() -> None:
    # Proves the test above can fail: the fake really enforces its limit.
    limit, tasks = 10, 60
    async with FakeWemasy(
        conversations=40, token=TOKEN, rate_limit=limit, window=1.0, window_offset=0.37
    ) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=False, retry=False)
        async with client:
            outcomes = await _hammer(client, tasks)
        assert fake.stats.rate_limited > 0
        assert any(isinstance(o, RateLimitError) for o in outcomes)
        assert fake.stats.max_in_window == limit


class FakeWemasyWithoutRemaining(FakeWemasy):
    """Sends X-RateLimit-Limit but not X-RateLimit-Remaining, as some proxies leave it."""

    async def _dispatch(self, request: Any, handler: Any, record: Any) -> Any:
        response = await super()._dispatch(request, handler, record)
        response.headers.popall("X-RateLimit-Remaining", None)
        return response


async def test_start_up_stays_under_the_limit_without_remaining_header() -> None:
    # The probe counts towards the first window: had it not
    # kept its distance, it and `limit` paced sends would land in the server's first window.
    async with FakeWemasyWithoutRemaining(token=TOKEN, rate_limit=2, window=0.4) as fake:
        config = RateLimit(window=0.4)
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, retry=False)
        async with client:
            with anyio.fail_after(10):
                outcomes = await _hammer(client, 3)
        assert fake.stats.rate_limited == 0
        assert outcomes == [None] * 3


async def test_a_429_pauses_every_waiter_then_they_resume_within_the_limit() -> None:
    limit = 20
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=limit, window=1.0) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            await client.get_conversation(1)  # learn the limit
            fake.queue_error(429, path=GET, headers={"Retry-After": "1"})
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.get_conversation, 2)  # answered 429, then retried
                    await anyio.sleep(0.15)
                    assert _limiter(client).paused_for() > 0.5  # the 429 has reached it
                    for i in range(5):
                        tg.start_soon(client.get_conversation, i + 3)
            assert in_flight_of(client) == 0
        requests = fake.requests_to(GET)
        assert [r.status for r in requests] == [200, 429] + [200] * 6
        paused_at = requests[1].received_at
        assert all(r.received_at >= paused_at + 1.0 - TOLERANCE for r in requests[2:])
        assert fake.stats.rate_limited == 0  # the limiter's own windows were respected
        assert fake.stats.max_in_window <= limit - 1


async def test_a_429_without_hint_pauses_for_pause_without_hint(fake: FakeWemasy) -> None:
    config = RateLimit(window=1.0, pause_without_hint=0.4)
    async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as client:
        await client.get_conversation(1)
        # An empty Retry-After is unreadable: no hint.
        fake.queue_error(429, path=GET, headers={"Retry-After": "", "X-RateLimit-Remaining": "9"})
        with anyio.fail_after(5):
            await client.get_conversation(2)
    requests = fake.requests_to(GET)
    assert [r.status for r in requests] == [200, 429, 200]
    assert requests[2].received_at - requests[1].received_at >= 0.4 - TOLERANCE


async def test_siteassist_details_retry_after_pauses_the_key() -> None:
    async with FakeSiteAssist(seed=2, conversations=3, token=TOKEN) as fake:
        ids = fake.conversation_ids
        config = RateLimit(window=1.0)
        async with Client("siteassist", base_url=fake.url, token=TOKEN, rate_limit=config) as c:
            await c.get_conversation(ids[0])
            # The header says 0 and leaves credit; only details.retryAfter asks for a pause.
            fake.queue_error(
                429,
                body=fake.rate_limited_body(1),
                headers={"Retry-After": "0", "X-RateLimit-Remaining": "50"},
            )
            with anyio.fail_after(5):
                conversation = await c.get_conversation(ids[1])
        assert conversation.id == ids[1]
        requests = fake.requests
        assert [r.status for r in requests] == [200, 429, 200]
        assert requests[2].received_at - requests[1].received_at >= 1.0 - TOLERANCE


async def test_cancellation_during_the_exchange_releases_in_flight(fake: FakeWemasy) -> None:
    config = RateLimit(window=1.0)
    async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as client:
        await client.get_conversation(1)  # learned: later sends are counted in flight
        assert in_flight_of(client) == 0
        fake.queue_delay(0.5, path=GET)  # outlives the 0.25 s below
        seen_in_flight: list[int] = []

        async def watch() -> None:
            await anyio.sleep(0.1)
            seen_in_flight.append(in_flight_of(client))

        with anyio.move_on_after(0.25) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await client.get_conversation(2)
        assert scope.cancelled_caught
        assert seen_in_flight == [1]
        assert in_flight_of(client) == 0
        assert _limiter(client).waiting == 0
        with anyio.fail_after(2):
            assert (await client.get_conversation(3)).id == "3"
        assert in_flight_of(client) == 0


async def test_a_cancelled_probe_lets_the_next_request_probe(fake: FakeWemasy) -> None:
    # A token of its own: a fresh key that has learned nothing yet.
    token = "probe-cancel-token"
    fake.token = None
    fake.queue_delay(0.5, path=GET)  # outlives the 0.2 s below
    config = RateLimit(window=1.0)
    async with Client("wemasy", base_url=fake.url, token=token, rate_limit=config) as client:
        with anyio.move_on_after(0.2) as scope:
            await client.get_conversation(1)
        assert scope.cancelled_caught
        with anyio.fail_after(2):
            assert (await client.get_conversation(2)).id == "2"


async def test_requests_are_not_paced_when_the_server_sends_no_headers() -> None:
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=None) as fake:
        config = RateLimit(window=60.0)
        async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as c:
            await c.get_conversation(1)  # the probe: its answer has no rate-limit headers
            limiter = _limiter(c)
            assert isinstance(limiter.store, LocalStore)
            state = limiter.store._states[limiter.key]
            assert (state.learned, state.limit, state.credit) == (True, None, None)
            # Learned and unpaced: sends are due at once, however many (no information is
            # not zero). Paced at even 100 per 60 s, 19 more would take over 11 s.
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for i in range(19):
                        tg.start_soon(c.get_conversation, i + 2)
            pacing = pacing_of(limiter)
            delays = [limiter.store.apply_now(limiter.key, pacing, ACQUIRE) for _ in range(5)]
            assert [d.delay for d in delays] == [0.0] * 5
        assert len(fake.requests) == 20


class FakeWemasyWithConflictingHeaders(FakeWemasy):
    """Enforces its limit, and also sends a looser X-RateLimit-Limit (as a proxy might)."""

    async def _dispatch(self, request: Any, handler: Any, record: Any) -> Any:
        response = await super()._dispatch(request, handler, record)
        response.headers.add("X-RateLimit-Limit", "500")
        response.headers.add("X-RateLimit-Remaining", "499")
        return response


async def test_conflicting_rate_limit_headers_the_stricter_wins() -> None:
    # Once the looser of two X-RateLimit-Limit headers won, and a 5/s server answered 429.
    async with FakeWemasyWithConflictingHeaders(
        conversations=20, token=TOKEN, rate_limit=5, window=0.5
    ) as fake:
        config = RateLimit(window=0.5)
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, retry=False)
        async with client:
            with anyio.fail_after(10):
                outcomes = await _hammer(client, 12)
            assert _limiter(client).allowed_rate == pytest.approx(4 / 0.5)
        assert outcomes == [None] * 12
        assert fake.stats.rate_limited == 0
        assert fake.stats.max_in_window <= 4


# --- Telling the user what pace it keeps ----------------------------------------------------


async def test_the_pace_is_logged_once_when_learned_and_when_it_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = Limiter("wemasy|https://api.example|digest", RateLimit(window=60.0), LocalStore())
    caplog.set_level("INFO", logger="wemasy_async")
    for limit in (100, 100, 100, 50):
        await limiter.release(await limiter.acquire(), info(limit=limit))
    paces = [r.getMessage() for r in caplog.records if r.message.startswith("pacing")]
    assert paces == [
        "pacing wemasy|https://api.example at 100 requests per 60 s window (1.63/s)",
        "pacing wemasy|https://api.example at 50 requests per 60 s window (0.813/s)",
    ]
    assert "digest" not in caplog.text
