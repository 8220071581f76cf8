"""The rate limiter cancelled at every await point: waiting, acquiring, reporting back.

Asyncio's own cancellation (``Task.cancel()``, ``wait_for``, task groups), not only anyio
scopes, with the in-process store and with stores that have a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import Coroutine
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.support.limiter import (
    AwaitingStore,
    in_flight,
    info,
    pause,
)
from wemasy_async.ratelimit import (
    Limiter,
    LimiterStore,
    LocalStore,
    Pacing,
    RateLimit,
    Ticket,
)
from wemasy_async.schedule import Confirm, Decision, Event

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


@pytest.mark.parametrize("delay", [0.005, 0.2])  # on time, and late enough to be moved
async def test_a_waiter_cancelled_in_its_confirmation_leaks_no_send(delay: float) -> None:
    """Cancelled while the store confirms its reservation (which may confirm it, move it to
    now, or void it: the waiter cannot know which), the send goes back all the same."""

    class Confirming(AwaitingStore):
        """Confirmations take ``delay`` (landing that late), other calls 5 ms."""

        def __init__(self) -> None:
            super().__init__(0.005)
            self.confirming = asyncio.Event()

        async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
            if isinstance(event, Confirm):
                self.confirming.set()
                await asyncio.sleep(delay)
            return await super().apply(key, pacing, event)

    store = Confirming()
    limiter = Limiter("confirming", RateLimit(window=1.0, ceiling=3), store)
    for _ in range(2):  # the window's two sends, answered (logged, not in flight)
        await limiter.release(await limiter.acquire(), info())
    waiter = asyncio.ensure_future(limiter.acquire())  # due a window on
    with anyio.fail_after(5):
        await store.confirming.wait()
        # Just before the store applies it (after 5 ms more): a give-back now lands after.
        await asyncio.sleep(delay + 0.002)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await limiter.settled()
    # Before its lease could expire (a window after its time): nothing in flight.
    assert in_flight(limiter) == 0
