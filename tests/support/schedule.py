"""What the schedule's tests share: one key's state driven as a store would, and a span
counter."""

from __future__ import annotations

from wemasy_async import schedule
from wemasy_async.headers import RateLimitInfo
from wemasy_async.schedule import Acquire, Confirm, Decision, Pacing, Release, State, Ticket

ACQUIRE = Acquire()
PACING = Pacing(window=10.0, margin=0.25, ceiling=None)
T0 = 1000.0


def info(
    limit: int | None = None, remaining: int | None = None, retry_after: float | None = None
) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, retry_after=retry_after)


class Key:
    """One key's state and a clock, driven as a store would."""

    def __init__(self, pacing: Pacing = PACING, now: float = T0) -> None:
        self.pacing = pacing
        self.now = now
        self.state: State | None = None

    def apply(self, event: Acquire | Confirm | Release) -> Decision:
        self.state, decision = schedule.apply(self.state, self.pacing, event, self.now)
        return decision

    def acquire(self) -> Decision:
        return self.apply(ACQUIRE)

    def release(
        self,
        ticket: Ticket | None,
        headers: RateLimitInfo | None = None,
        *,
        sent: bool = True,
        paused: float = 0.0,
    ) -> Decision:
        return self.apply(Release(ticket, sent, headers, paused))

    def learn(self, limit: int | None = None, remaining: int | None = None) -> None:
        """A probe and its answer, at once."""
        probe = self.acquire()
        assert probe.ticket is not None
        assert probe.ticket.probe
        self.release(probe.ticket, info(limit, remaining))

    def reserve(self, count: int) -> list[float]:
        """Reserve ``count`` sends now; the times they are due."""
        times = []
        for _ in range(count):
            decision = self.acquire()
            assert decision.ticket is not None, decision
            times.append(self.now + decision.delay)
        return times

    @property
    def in_flight(self) -> int:
        assert self.state is not None
        return self.state.in_flight


def most_in_any_span(times: list[float], span: float) -> int:
    """The most ``times`` in any half-open span ``[t, t + span)``.

    Times computed as ``t + window`` may land a hair short of a window after ``t`` in float
    arithmetic, so the span is shortened by a nanosecond (far below any clock's jitter).
    """
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= span - 1e-9:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
