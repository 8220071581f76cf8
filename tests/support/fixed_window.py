"""A discrete-event run of the schedule against a fixed-window server: workers acquire,
sleep until their slot (woken up to ``lag`` late), send (arriving up to ``jitter`` later),
and release with the server's ``Remaining``, all on a simulated clock."""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field

from wemasy_async import schedule
from wemasy_async.headers import RateLimitInfo
from wemasy_async.schedule import Acquire, Confirm, Pacing, Release, State, Ticket

T0 = 1000.0


@dataclass
class Run:
    """What a run left: the key's state, and what the server counted."""

    state: State
    counts: list[int]  # accepted in each whole server window, in order
    refused: int  # 429s
    sends: list[float] = field(default_factory=list)  # arrival times at the server


def run(
    *,
    limit: int = 100,
    window: float = 2.0,
    server_window: float | None = None,
    offset: float = 0.37,
    latency: float = 0.2,
    workers: int = 60,
    windows: int = 40,
    jitter: float = 0.0,
    lag: float = 0.0,
    seed: int = 1,
    sliding: bool = False,
) -> Run:
    """``windows`` windows of traffic; the server's windows begin ``offset`` after T0.

    ``sliding``: the server limits every span of its window instead (a sliding log), and
    ``counts`` holds what it accepted in each window-long span from T0 + ``offset``.
    """
    served = server_window or window
    pacing = Pacing(window=window, margin=window * 0.025, ceiling=None)
    rng = random.Random(seed)
    state: State | None = None
    counts: dict[int, int] = {}
    refused = 0
    sends: list[float] = []
    accepted: list[float] = []  # the sliding server's log
    order = itertools.count()
    events: list[tuple[float, int, str, object]] = []

    def push(at: float, kind: str, data: object = None) -> None:
        heapq.heappush(events, (at, next(order), kind, data))

    def apply(event: schedule.Event, now: float) -> schedule.Decision:
        nonlocal state
        state, decision = schedule.apply(state, pacing, event, now)
        return decision

    for worker in range(workers):
        push(T0 + worker * 1e-4, "acquire")
    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > T0 + windows * window:
            break
        if kind == "acquire":
            decision = apply(Acquire(), now)
            if decision.ticket is None:
                push(now + max(decision.delay, 1e-4), "acquire")
            elif decision.delay > 0:
                push(now + decision.delay + rng.random() * lag, "confirm", decision.ticket)
            else:
                push(now, "send", decision.ticket)
        elif kind == "confirm":
            assert isinstance(data, Ticket)
            decision = apply(Confirm(data), now)
            if decision.ticket is None:
                apply(Release(data, sent=False), now)
                push(now, "acquire")
            else:
                push(now, "send", decision.ticket)
        elif kind == "send":
            arrive = now + rng.random() * jitter
            sends.append(arrive)
            index = math.floor((arrive - T0 - offset) / served)
            if sliding:
                held = len(accepted) - bisect.bisect_right(accepted, arrive - served)
                used = held + 1
            else:
                used = counts.get(index, 0) + 1
            if used > limit:
                refused += 1
                answer = RateLimitInfo(limit=limit, remaining=0, retry_after=1.0)
                push(arrive + latency, "answer", (data, answer, 1.0))
            else:
                counts[index] = counts.get(index, 0) + 1
                accepted.append(arrive)
                answer = RateLimitInfo(limit=limit, remaining=limit - used)
                push(arrive + latency, "answer", (data, answer, 0.0))
        else:
            ticket, answer, paused = data  # type: ignore[misc]
            apply(Release(ticket, True, answer, paused), now)
            push(now, "acquire")
    assert state is not None
    indices = sorted(counts)
    return Run(state, [counts[index] for index in indices[1:-1]], refused, sends)
