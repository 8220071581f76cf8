"""The client-side rate limiter: configuration, keys, the store, the front.

The contract is the module docstring of :mod:`wemasy_async.ratelimit` (the rules themselves:
``test_schedule.py``). ``LocalStore`` is tested with an injected clock (deterministic); the
``Limiter`` front and the end-to-end tests use real time with short windows, and assert
timing only as lower bounds with a tolerance. Retries do not sleep in this suite (autouse
``no_backoff``), but the limiter's pauses are real: that is what is measured.
"""

from __future__ import annotations

import gc
import time
import weakref

import anyio
import anyio.lowlevel
import pytest

from tests.support.limiter import (
    ACQUIRE,
    KEY,
    TOLERANCE,
    AwaitingStore,
    Clock,
    in_flight,
    info,
    limiter_of,
    pause,
)
from wemasy_async import Client, InvalidRequestError, schedule
from wemasy_async.ratelimit import (
    Limiter,
    LocalStore,
    Pacing,
    PauseTooLong,
    RateLimit,
    Ticket,
    limiter_key,
    shared_limiter,
)
from wemasy_async.schedule import Release

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


def test_clients_with_the_same_key_share_one_limiter() -> None:
    url = "https://share.test/api"
    first = Client("wemasy", token="shared-1", base_url=url)
    same = Client("wemasy", token="shared-1", base_url=url + "/", retry=False)
    other_token = Client("wemasy", token="shared-2", base_url=url)
    other_url = Client("wemasy", token="shared-1", base_url="https://other.test/api")
    assert limiter_of(first) is limiter_of(same)
    assert limiter_of(first) is not limiter_of(other_token)
    assert limiter_of(first) is not limiter_of(other_url)
    assert "shared-1" not in limiter_of(first).key


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
    assert limiter_of(same) is limiter_of(first)
    elsewhere = RateLimit(window=9.0, store=LocalStore())
    other = Client("wemasy", token="settings", base_url=url, rate_limit=elsewhere)
    assert limiter_of(other) is not limiter_of(first)


def test_rate_limit_false_has_no_limiter() -> None:
    client = Client("wemasy", token="nolimit", base_url="https://x.test/api", rate_limit=False)
    assert client._engine.options.limiter is None


def test_a_limiter_is_released_with_its_last_client() -> None:
    url = "https://release.test/api"
    first = Client("wemasy", token="released", base_url=url)
    second = Client("wemasy", token="released", base_url=url)
    copy = first.with_options(timeout=1)
    ref = weakref.ref(limiter_of(first))
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
    assert limiter_of(fresh).key == limiter_key("wemasy", url, "released")
    store = limiter_of(fresh).store
    assert isinstance(store, LocalStore)
    assert store.in_flight(limiter_of(fresh).key) == 0
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


PACING = Pacing(window=10.0, margin=0.25, ceiling=None)


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
