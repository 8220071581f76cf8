"""The client-side rate limiter: configuration, keys, the store, the FIFO front, end to end.

The contract is the module docstring of :mod:`wemasy_async.ratelimit`. ``LocalStore`` is
tested with an injected clock (deterministic); the ``Limiter`` front and the end-to-end
tests use real time with short windows, and assert timing only as lower bounds with a
tolerance. Retries do not sleep in this suite (autouse ``no_backoff``), but the limiter's
pauses are real: that is what is measured.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wemasy_async import Client, InvalidRequestError, RateLimitError, RateLimitInfo
from wemasy_async.ratelimit import (
    Limiter,
    LocalStore,
    Pacing,
    RateLimit,
    limiter_key,
    shared_limiter,
)
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


def test_the_first_client_fixes_the_settings_of_a_key() -> None:
    url = "https://settings.test/api"
    config = RateLimit(window=2.0)
    first = Client("wemasy", token="settings", base_url=url, rate_limit=config)
    second = Client("wemasy", token="settings", base_url=url, rate_limit=RateLimit(window=9.0))
    assert _limiter(second) is _limiter(first)
    assert _limiter(second).config is config


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


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PACING = Pacing(window=10.0, margin=0.25, ceiling=None)


def info(
    limit: int | None = None, remaining: int | None = None, retry_after: float | None = None
) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, retry_after=retry_after)


async def send_times(store: LocalStore, clock: Clock, count: int, pacing: Pacing) -> list[float]:
    """Take ``count`` sends as a limiter's head would: sleep exactly the delay, then retry."""
    times: list[float] = []
    while len(times) < count:
        delay = await store.acquire(KEY, pacing)
        assert delay is not None
        if delay == 0.0:
            times.append(clock.now)
        else:
            assert delay > 0
            clock.advance(delay)
    return times


def max_in_any_window(times: list[float], window: float) -> int:
    """The most ``times`` in any half-open window ``[t, t + window)`` starting at one of them.

    Sends ``window / (limit - 1)`` apart put the ``limit``-th exactly one window after the
    first; float rounding of the summed intervals may land it a hair earlier, so the window
    is shortened by a nanosecond (far below any clock or network jitter).
    """
    return max(sum(1 for t in times if start <= t < start + window - 1e-9) for start in times)


async def test_store_unknown_key_asks_for_a_probe() -> None:
    store = LocalStore(clock=Clock())
    assert await store.acquire(KEY, PACING) is None
    assert await store.acquire(KEY, PACING) is None  # nothing is learned by asking


async def test_store_a_probe_without_response_learns_nothing() -> None:
    store = LocalStore(clock=Clock())
    await store.observe(KEY, PACING, None, sent=False, paused=0.0)
    assert await store.acquire(KEY, PACING) is None


async def test_store_keys_are_independent() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=5), sent=False, paused=0.0)
    # Limit 5, window 10, margin 0.25: max(10.25 / 5 = 2.05, 10 / 4 = 2.5) = 2.5 after the probe.
    assert await store.acquire(KEY, PACING) == pytest.approx(2.5)
    assert await store.acquire("other|key", PACING) is None
    clock.advance(2.5)
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire("other|key", PACING) is None


@pytest.mark.parametrize(
    ("limit", "interval"),
    [
        (1, 10.25),  # window + margin = 10 + 0.25
        (2, 10.0),  # max(10.25 / 2 = 5.125, 10 / 1 = 10)
        (5, 2.5),  # max(10.25 / 5 = 2.05, 10 / 4 = 2.5)
        (100, 0.1025),  # max(10.25 / 100 = 0.1025, 10 / 99 = 0.10101): the margin is wider
    ],
)
async def test_store_spaces_sends_leaving_one_request_of_slack(limit: int, interval: float) -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=limit), sent=False, paused=0.0)
    count = 3 * limit + 3
    times = await send_times(store, clock, count, PACING)
    assert times[0] == pytest.approx(1000.0 + interval)  # one interval after the probe
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([interval] * (count - 1))
    assert max_in_any_window(times, PACING.window) <= max(1, limit - 1)


@pytest.mark.parametrize("limit", [2, 3, 10, 41, 100])
async def test_store_a_burst_never_fills_a_window(limit: int) -> None:
    # At most limit - 1 of our sends, the probe included, in any window of the server's
    # length wherever it starts: X-RateLimit-Remaining never reaches 0 from our own traffic.
    window = 1.0
    pacing = Pacing(window=window, margin=0.025, ceiling=None)  # the default margin, 2.5%
    clock = Clock(1000.3)
    store = LocalStore(clock=clock)
    assert await store.acquire(KEY, pacing) is None
    times = [clock.now]  # the probe
    clock.advance(0.013)  # its response
    await store.observe(KEY, pacing, info(limit=limit), sent=False, paused=0.0)
    times += await send_times(store, clock, 5 * limit, pacing)  # everyone queued at once
    most = max_in_any_window(times, window)
    assert most <= limit - 1
    # And no more conservative than that, up to the margin. It is the wider from limit 42
    # on (1 / 41 = 0.0244 < 0.025; 41 ties at 1.025 / 41 = 1 / 40 = 0.025): limit 100 is
    # paced max(1.025 / 100 = 0.01025, 1 / 99 = 0.0101) = 0.01025 apart, 98 in a window.
    assert most >= limit - 2


async def test_store_a_probe_keeps_its_distance() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    assert await store.acquire(KEY, PACING) is None
    clock.advance(0.5)  # the probe's response comes
    await store.observe(KEY, PACING, info(limit=5), sent=False, paused=0.0)
    assert store._states[KEY].tat == pytest.approx(1003.0)  # 1000.5 + 2.5 (limit 5, above)
    assert store._states[KEY].in_flight == 0  # the probe was never counted
    assert await store.acquire(KEY, PACING) == pytest.approx(2.5)
    # A later probe's response never pulls a later schedule back: a pause holds.
    await store.observe(KEY, PACING, info(limit=5), sent=False, paused=30.0)
    await store.observe(KEY, PACING, info(limit=5), sent=False, paused=0.0)
    assert await store.acquire(KEY, PACING) == pytest.approx(30.0)
    # A probe answered without a limit header sets no distance (no information is not zero).
    other = "unpaced|key"
    await store.observe(other, PACING, info(remaining=50), sent=False, paused=0.0)
    assert await store.acquire(other, PACING) == 0.0


async def test_store_no_burst_after_idling() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=5), sent=False, paused=0.0)
    await send_times(store, clock, 3, PACING)
    clock.advance(3600)
    assert await store.acquire(KEY, PACING) == 0.0
    # No burst: the next send waits. Limit 5: interval max(10.25 / 5, 10 / 4) = 2.5, less the
    # slack a late send absorbs (half of min(margin 0.25, 2.5)) = 2.5 - 0.125 = 2.375.
    assert await store.acquire(KEY, PACING) == pytest.approx(2.375)


async def test_store_follows_a_changed_limit() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=10), sent=False, paused=0.0)
    # Limit 10: max(10.25 / 10 = 1.025, 10 / 9 = 1.1111) = 10 / 9, after the probe too.
    assert await store.acquire(KEY, PACING) == pytest.approx(10 / 9)
    clock.advance(10 / 9)
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == pytest.approx(10 / 9)
    # A response lowers the limit to 2: max(10.25 / 2 = 5.125, 10 / 1 = 10) = 10 from the
    # next send on (the one already scheduled keeps its time).
    await store.observe(KEY, PACING, info(limit=2), sent=True, paused=0.0)
    clock.advance(10 / 9)
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == pytest.approx(10.0)
    # A response without X-RateLimit-Limit keeps what was learned.
    await store.observe(KEY, PACING, info(), sent=True, paused=0.0)
    clock.advance(10.0)
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == pytest.approx(10.0)


async def test_store_ceiling_paces_from_the_start_and_caps_the_rate() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    pacing = Pacing(window=10.0, margin=0.25, ceiling=3)
    # Learned from the start: no probe. Ceiling 3: max(10.25 / 3 = 3.4167, 10 / 2 = 5) = 5;
    # the first send ever is "late" against an empty schedule, absorbing 0.25 / 2 = 0.125.
    assert await store.acquire(KEY, pacing) == 0.0
    assert await store.acquire(KEY, pacing) == pytest.approx(4.875)
    # A higher server limit does not raise the rate above the ceiling...
    await store.observe(KEY, pacing, info(limit=100), sent=True, paused=0.0)
    times = await send_times(store, clock, 5, pacing)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([5.0] * 4)
    # ...and a lower one lowers it: limit 1, window + margin = 10.25.
    await store.observe(KEY, pacing, info(limit=1), sent=True, paused=0.0)
    clock.advance(5.0)
    assert await store.acquire(KEY, pacing) == 0.0
    assert await store.acquire(KEY, pacing) == pytest.approx(10.25)


async def test_store_headers_missing_means_learned_and_unpaced() -> None:
    store = LocalStore(clock=Clock())
    await store.observe(KEY, PACING, info(), sent=False, paused=0.0)
    assert [await store.acquire(KEY, PACING) for _ in range(50)] == [0.0] * 50


async def test_store_remaining_is_a_credit_for_a_window() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    # Unpaced (no limit header) so that only the credit holds sends back.
    await store.observe(KEY, PACING, info(remaining=2), sent=False, paused=0.0)
    assert await store.acquire(KEY, PACING) == 0.0
    clock.advance(1.0)
    assert await store.acquire(KEY, PACING) == 0.0
    # Spent: wait until a full window after the response that gave the credit.
    assert await store.acquire(KEY, PACING) == pytest.approx(9.0)
    clock.advance(9.0)
    assert [await store.acquire(KEY, PACING) for _ in range(5)] == [0.0] * 5


async def test_store_remaining_zero_waits_a_window() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=1000, remaining=0), sent=False, paused=0.0)
    assert await store.acquire(KEY, PACING) == pytest.approx(10.0)
    clock.advance(4.0)
    assert await store.acquire(KEY, PACING) == pytest.approx(6.0)
    clock.advance(6.0)
    assert await store.acquire(KEY, PACING) == 0.0


async def test_store_credit_counts_requests_in_flight() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(), sent=False, paused=0.0)
    for _ in range(3):
        assert await store.acquire(KEY, PACING) == 0.0  # three in flight
    # One comes back saying 3 remain; the 2 still in flight may not be counted in that yet.
    await store.observe(KEY, PACING, info(remaining=3), sent=True, paused=0.0)
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == pytest.approx(PACING.window)


async def test_store_in_flight_never_goes_negative() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(), sent=False, paused=0.0)
    for _ in range(3):  # more releases than sends
        await store.observe(KEY, PACING, None, sent=True, paused=0.0)
    assert store._states[KEY].in_flight == 0
    # A negative count would inflate the credit beyond what the server said remains.
    await store.observe(KEY, PACING, info(remaining=1), sent=False, paused=0.0)
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == pytest.approx(PACING.window)


async def test_store_in_flight_follows_acquire_and_observe() -> None:
    store = LocalStore(clock=Clock())
    await store.observe(KEY, PACING, info(), sent=False, paused=0.0)
    for _ in range(4):
        await store.acquire(KEY, PACING)
    assert store._states[KEY].in_flight == 4
    for _ in range(4):
        await store.observe(KEY, PACING, info(), sent=True, paused=0.0)
    assert store._states[KEY].in_flight == 0
    await store.observe(KEY, PACING, info(), sent=False, paused=0.0)  # a probe: not counted
    assert store._states[KEY].in_flight == 0


async def test_store_pause_holds_the_key_then_paces() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=5), sent=False, paused=0.0)
    # Limit 5: max(10.25 / 5 = 2.05, 10 / 4 = 2.5) = 2.5, the first send as well (the probe).
    assert await send_times(store, clock, 1, PACING) == [pytest.approx(1002.5)]
    await store.observe(KEY, PACING, info(limit=5, remaining=0), sent=True, paused=30.0)
    state = store._states[KEY]
    assert state.paused_until == pytest.approx(1032.5)
    assert state.tat >= 1032.5
    assert await store.acquire(KEY, PACING) == pytest.approx(30.0)
    clock.advance(12.0)
    assert await store.acquire(KEY, PACING) == pytest.approx(18.0)
    clock.advance(18.0)
    # After the pause the waiters go out one interval apart, not all at once.
    times = await send_times(store, clock, 4, PACING)
    assert times[0] == pytest.approx(1032.5)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([2.5] * 3)


async def test_store_pause_pushes_tat_but_not_back() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(limit=1), sent=False, paused=0.0)
    # Limit 1: window + margin = 10.25 apart, from the probe as well.
    clock.advance(10.25)
    assert await store.acquire(KEY, PACING) == 0.0  # next due in 10.25
    await store.observe(KEY, PACING, info(), sent=True, paused=2.0)
    assert await store.acquire(KEY, PACING) == pytest.approx(10.25)  # the later of the two
    await store.observe(KEY, PACING, info(), sent=False, paused=20.0)
    assert await store.acquire(KEY, PACING) == pytest.approx(20.0)
    await store.observe(KEY, PACING, info(), sent=False, paused=1.0)  # shorter: no effect
    assert await store.acquire(KEY, PACING) == pytest.approx(20.0)


async def test_store_pause_on_an_unpaced_key() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    await store.observe(KEY, PACING, info(), sent=False, paused=0.0)
    await store.observe(KEY, PACING, info(), sent=False, paused=1.5)
    assert await store.acquire(KEY, PACING) == pytest.approx(1.5)
    clock.advance(1.5)
    assert [await store.acquire(KEY, PACING) for _ in range(3)] == [0.0] * 3


# --- The Limiter front (real time) -------------------------------------------------------------


def pacing_of(limiter: Limiter) -> Pacing:
    config = limiter.config
    return Pacing(config.window, config.pacing_margin, config.ceiling)


async def pause(limiter: Limiter, seconds: float) -> None:
    await limiter.store.observe(limiter.key, pacing_of(limiter), None, sent=False, paused=seconds)


def in_flight(limiter: Limiter) -> int:
    assert isinstance(limiter.store, LocalStore)
    return limiter.store._states[limiter.key].in_flight


async def test_limiter_serves_waiters_in_fifo_order() -> None:
    limiter = Limiter("fifo", RateLimit(window=0.2, ceiling=40), LocalStore())
    await pause(limiter, 0.1)  # everyone queues before anyone is due
    order: list[int] = []

    async def waiter(i: int) -> None:
        counted = await limiter.acquire()
        order.append(i)
        await limiter.release(counted, info())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(waiter, i)
                await anyio.lowlevel.checkpoint()
    assert order == list(range(20))
    assert not limiter._queue


async def test_limiter_only_the_head_consults_the_store() -> None:
    calls = 0
    store = LocalStore()

    class CountingStore:
        async def acquire(self, key: str, pacing: Pacing) -> float | None:
            nonlocal calls
            calls += 1
            return await store.acquire(key, pacing)

        async def observe(
            self, key: str, pacing: Pacing, info: RateLimitInfo | None, *, sent: bool, paused: float
        ) -> None:
            await store.observe(key, pacing, info, sent=sent, paused=paused)

    limiter = Limiter("head", RateLimit(window=0.2, ceiling=40), CountingStore())
    await pause(limiter, 0.2)

    async def waiter() -> None:
        await limiter.release(await limiter.acquire(), info())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(waiter)
    # About two look-ups per send (one to learn the delay, one to take the send); waiters
    # polling behind the head would make this grow with the square of the queue.
    assert calls <= 3 * 20


async def test_limiter_spaces_sends_in_real_time() -> None:
    limiter = Limiter("spacing", RateLimit(window=0.5, ceiling=10), LocalStore())
    times: list[float] = []

    async def waiter() -> None:
        counted = await limiter.acquire()
        times.append(time.monotonic())
        await limiter.release(counted, info())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(waiter)
    # Ceiling 10, window 0.5, margin 0.0125: max(0.5125 / 10 = 0.05125, 0.5 / 9 = 0.0556).
    interval = 0.5 / 9
    assert all(b - a >= interval - TOLERANCE for a, b in itertools.pairwise(times))
    # At most 9 in any window: the 10th goes out a full window after the first.
    assert times[-1] - times[0] >= 0.5 - TOLERANCE


async def test_limiter_sends_one_probe_until_the_limit_is_learned() -> None:
    limiter = Limiter("probe", RateLimit(window=1.0), LocalStore())
    assert await limiter.acquire() is False  # the probe, not counted in flight
    results: list[bool] = []

    async def waiter() -> None:
        counted = await limiter.acquire()
        results.append(counted)
        await limiter.release(counted, info(limit=1000))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(waiter)
            await anyio.sleep(0.1)
            assert results == []  # all held back while the probe is out
            await limiter.release(False, info(limit=1000))
    assert results == [True] * 5
    assert in_flight(limiter) == 0


async def test_limiter_failed_probe_hands_probing_to_the_next_waiter() -> None:
    limiter = Limiter("probe-fail", RateLimit(window=1.0), LocalStore())
    assert await limiter.acquire() is False
    results: list[bool] = []
    second_probe = anyio.Event()

    async def waiter() -> None:
        counted = await limiter.acquire()
        results.append(counted)
        if not counted:
            second_probe.set()
            return
        await limiter.release(counted, info())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            await anyio.sleep(0.05)
            await limiter.release(False, None)  # the probe got no response
            await second_probe.wait()
            await anyio.sleep(0.05)
            assert results == [False]  # exactly one new probe, the rest still wait
            await limiter.release(False, info())  # headers without a limit: unpaced
    assert results == [False, True, True]


async def test_limiter_probe_counts_towards_the_first_window() -> None:
    # With a server that sends X-RateLimit-Limit but no X-RateLimit-Remaining, the probe
    # must keep its distance like any paced send, or limit + 1 leave within one window.
    window = 0.4
    limiter = Limiter("probe-window", RateLimit(window=window), LocalStore())
    times = [time.monotonic()]
    assert await limiter.acquire() is False
    await limiter.release(False, info(limit=2))  # no X-RateLimit-Remaining
    for _ in range(2):
        assert await limiter.acquire() is True
        times.append(time.monotonic())
        await limiter.release(True, info(limit=2))
    # Limit 2, window 0.4, margin 0.01: max(0.41 / 2 = 0.205, 0.4 / 1 = 0.4) = 0.4, so one
    # send per window, the probe included.
    assert all(b - a >= window - TOLERANCE for a, b in itertools.pairwise(times))


async def test_cancelled_waiters_leak_nothing() -> None:
    limiter = Limiter("cancel", RateLimit(window=0.2, ceiling=40), LocalStore())
    await pause(limiter, 0.2)
    scopes = [anyio.CancelScope() for _ in range(20)]
    done: list[int] = []

    async def waiter(i: int) -> None:
        with scopes[i]:
            counted = await limiter.acquire()
            try:
                await anyio.sleep(0.005)  # the "request"
            finally:
                await limiter.release(counted, info())
            done.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(waiter, i)
                await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.05)
            assert len(limiter._queue) == 20
            for i in range(0, 20, 2):  # the head among them
                scopes[i].cancel()
    assert done == list(range(1, 20, 2))
    assert not limiter._queue
    assert in_flight(limiter) == 0
    with anyio.fail_after(1):  # the next request is not blocked by a leaked turn
        counted = await limiter.acquire()
    assert counted is True
    await limiter.release(counted, info())
    assert in_flight(limiter) == 0


async def test_a_cancelled_head_passes_the_turn_on() -> None:
    limiter = Limiter("cancel-head", RateLimit(window=1.0, ceiling=100), LocalStore())
    await pause(limiter, 0.3)
    head_scope = anyio.CancelScope()
    done: list[str] = []

    async def waiter(name: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            counted = await limiter.acquire()
            await limiter.release(counted, info())
            done.append(name)

    started = time.monotonic()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "head", head_scope)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(waiter, "second")
            tg.start_soon(waiter, "third")
            await anyio.sleep(0.1)
            assert len(limiter._queue) == 3
            head_scope.cancel()
    assert done == ["second", "third"]
    assert time.monotonic() - started >= 0.3 - TOLERANCE  # the pause still held
    assert not limiter._queue


async def test_a_waiter_cancelled_as_its_turn_comes_passes_it_on() -> None:
    limiter = Limiter("cancel-handoff", RateLimit(window=1.0, ceiling=100), LocalStore())
    await pause(limiter, 0.1)
    second_scope = anyio.CancelScope()
    done: list[str] = []

    async def first() -> None:
        counted = await limiter.acquire()
        # Our turn was just handed to "second": cancel it before it gets to run.
        second_scope.cancel()
        await limiter.release(counted, info())
        done.append("first")

    async def waiter(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            counted = await limiter.acquire()
            await limiter.release(counted, info())
            done.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(waiter, "second", second_scope)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(waiter, "third", anyio.CancelScope())
    assert done == ["first", "third"]
    assert not limiter._queue
    assert in_flight(limiter) == 0


async def test_a_pause_arriving_during_the_wait_is_honoured() -> None:
    limiter = Limiter("late-pause", RateLimit(window=1.0, ceiling=5), LocalStore())
    # Ceiling 5, window 1, margin 0.025: max(1.025 / 5 = 0.205, 1 / 4 = 0.25) = 0.25.
    assert await limiter.acquire() is True  # next due in 0.25 s
    started = time.monotonic()

    async def late_pause() -> None:
        await anyio.sleep(0.05)
        await limiter.release(True, info(), paused=0.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(late_pause)
        counted = await limiter.acquire()
    assert time.monotonic() - started >= 0.55 - TOLERANCE
    await limiter.release(counted, info())


async def test_limiter_remembers_the_longest_pause_it_saw() -> None:
    limiter = Limiter("paused-for", RateLimit(window=1.0), LocalStore())
    assert limiter.paused_for() == 0.0
    await limiter.release(False, info(limit=10), paused=5.0)
    assert 5.0 - TOLERANCE < limiter.paused_for() <= 5.0
    await limiter.release(True, info(), paused=1.0)  # a shorter pause does not shorten it
    assert 5.0 - TOLERANCE < limiter.paused_for() <= 5.0
    await limiter.release(True, info())  # nor does a response without one
    assert 5.0 - TOLERANCE < limiter.paused_for() <= 5.0


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
        # The first paced send keeps one interval from the probe's response, 0.3 s after
        # it was sent. Limit 20, window 1, margin 0.025: max(1.025 / 20 = 0.05125,
        # 1 / 19 = 0.05263) = 1 / 19.
        assert requests[1].received_at - requests[0].received_at >= 0.3 + 1 / 19 - TOLERANCE
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
    # The documented 10 per minute, scaled to 10 per second; 60 requests take ~6.6 s.
    # Sends 1 / 9 s apart (limit 10, window 1, margin 0.025: max(1.025 / 10 = 0.1025,
    # 1 / 9 = 0.1111)) put 9 of ours in each server window, never 10: Remaining stays above
    # 0, so the credit never holds the key for a whole window. Paced at 1.025 / 10 s, the
    # 10th request of a window drove Remaining to 0 and windows went 10, 1, 9, 2, ...
    limit, tasks = 10, 60
    async with FakeWemasy(
        conversations=40, token=TOKEN, rate_limit=limit, window=1.0, window_offset=0.37
    ) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            with anyio.fail_after(30):
                outcomes = await _hammer(client, tasks)
        assert outcomes == [None] * tasks
        assert fake.stats.rate_limited == 0
        assert fake.stats.status_counts == {200: tasks}
        assert fake.stats.max_in_window <= limit
        counts = fake.stats.window_counts
        assert sum(counts.values()) == tasks
        assert in_flight_of(client) == 0
        # Every full window, i.e. all but the first and the last (a window with no request
        # at all would be missing from the stats), holds 9 give or take jitter.
        full = {i: counts.get(i, 0) for i in range(min(counts) + 1, max(counts))}
        assert len(full) >= 4
        # No window stalls (the credit once made every other window nearly empty: 9, 1, 9, 2).
        assert all(n >= limit - 2 for n in full.values()), counts


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
    # As test_limiter_probe_counts_towards_the_first_window, end to end: had the probe not
    # kept its distance, it and `limit` paced sends would land in the server's first window.
    async with FakeWemasyWithoutRemaining(token=TOKEN, rate_limit=2, window=0.4) as fake:
        config = RateLimit(window=0.4)
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, retry=False)
        async with client:
            with anyio.fail_after(10):
                outcomes = await _hammer(client, 3)
        assert fake.stats.rate_limited == 0
        assert outcomes == [None] * 3


async def test_a_429_pauses_every_waiter_then_they_go_out_paced() -> None:
    limit = 20
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=limit, window=1.0) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            await client.get_conversation(1)  # learn the limit
            fake.queue_error(429, path=GET, headers={"Retry-After": "1"})
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for i in range(5):
                        tg.start_soon(client.get_conversation, i + 2)
        requests = fake.requests_to(GET)
        assert [r.status for r in requests] == [200, 429] + [200] * 5
        paused_at = requests[1].received_at
        after = [r.received_at for r in requests[2:]]
        assert all(t >= paused_at + 1.0 - TOLERANCE for t in after)
        # Limit 20, window 1, margin 0.025: max(1.025 / 20 = 0.05125, 1 / 19 = 0.05263).
        interval = 1 / 19
        assert all(b - a >= interval - 2 * TOLERANCE for a, b in itertools.pairwise(after))
        assert fake.stats.rate_limited == 0  # the limiter's own windows were respected


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
        assert not _limiter(client)._queue
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
            delays = [await limiter.store.acquire(limiter.key, pacing) for _ in range(5)]
            assert delays == [0.0] * 5
        assert len(fake.requests) == 20


class _GrantingStore:
    """Makes the first caller wait once, then grants everything; counts sends in flight.

    When it grants the send of ``cancel_on_grant``'s waiter (its 4th call: the head's
    fast path, its wait, its own send, then the first follower's), it cancels that task, so
    the follower is cancelled after being granted and before it runs.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.cancel_on_grant: asyncio.Task[bool] | None = None

    async def acquire(self, key: str, pacing: Pacing) -> float | None:
        self.calls += 1
        if self.calls <= 2:
            return 0.05
        if self.calls == 4 and self.cancel_on_grant is not None:
            self.cancel_on_grant.cancel()
        self.in_flight += 1
        return 0.0

    async def observe(
        self, key: str, pacing: Pacing, info: RateLimitInfo | None, *, sent: bool, paused: float
    ) -> None:
        if sent:
            self.in_flight -= 1


async def test_queue_drains_at_once_and_a_cancelled_grant_is_given_back() -> None:
    store = _GrantingStore()
    limiter = Limiter("k", RateLimit(window=1.0), store)
    head = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)  # the head is now waiting out its 0.05 s
    follower = asyncio.create_task(limiter.acquire())
    others = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    store.cancel_on_grant = follower
    await asyncio.sleep(0.01)
    assert len(limiter._queue) == 5
    assert await head is True
    # The head granted every follower the store allowed, in the same pass: no trickle.
    assert [await task for task in others] == [True, True, True]
    with pytest.raises(asyncio.CancelledError):
        await follower
    assert not limiter._queue
    # head + 3 others are in flight; the cancelled follower's grant was given back.
    assert store.in_flight == 4
