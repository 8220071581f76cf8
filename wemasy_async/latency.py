"""How long something takes: a running average, and the least of recent periods.

Self-tuning batches size their pools by it (Little's law), from the exchanges an engine
times and the store calls a limiter times.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

__all__ = ["Latency"]


class Latency:
    """How long one thing takes: an engine's exchanges (from sending the request to having
    read the whole response) or a limiter's calls to its store.

    ``seconds`` is a running average, exponentially weighted (each new sample weighs
    ``WEIGHT``). Per period (one ends with each :meth:`end_period`): :meth:`floor` is the
    least one took over the last ``PERIODS`` periods, :meth:`calm` the least period mean,
    :meth:`least` the least one took over the last ``LONG_PERIODS``. A batch's Little's law
    reads the calm mean capped by the long least (``client._with_store``): the running
    average grows with every request queued in a saturated client or server, so a pool
    sized by it only confirms itself, while the floor is one lucky call that did not wait
    for a core. An engine's is shared by its ``with_options`` copies.
    """

    __slots__ = ("_count", "_least", "_low", "_means", "_total", "seconds")

    WEIGHT = 0.1
    PERIODS = 8
    #: Periods :meth:`least` looks back over: a batch's periods last at least 0.1 s, so at
    #: least 10 s, long enough to reach back before a saturated machine's queues grew.
    LONG_PERIODS = 100

    def __init__(self) -> None:
        self.seconds: float | None = None  # None until the first response
        self._low: float | None = None  # the least this period
        self._total = 0.0  # this period's samples, summed
        self._count = 0
        self._means: deque[float] = deque(maxlen=self.PERIODS)
        self._least: deque[float] = deque(maxlen=self.LONG_PERIODS)  # each period's least

    def observe(self, seconds: float) -> None:
        mean = self.seconds
        self.seconds = seconds if mean is None else mean + self.WEIGHT * (seconds - mean)
        if self._low is None or seconds < self._low:
            self._low = seconds
        self._total += seconds
        self._count += 1

    def __call__(self) -> float | None:
        return self.seconds

    def floor(self) -> float | None:
        """End a period; the least an exchange took in the last ``PERIODS`` periods (a
        period ends with each call), ``None`` before the first response."""
        self.end_period()
        least = self._least  # the newest PERIODS of the periods' least
        return min(islice(reversed(least), self.PERIODS)) if least else None

    def end_period(self) -> None:
        """End a period (:meth:`floor` does too): its least and its mean join the last
        periods' that :meth:`floor`, :meth:`calm` and :meth:`least` read."""
        if self._low is not None:
            self._least.append(self._low)
            self._low = None
        if self._count:
            self._means.append(self._total / self._count)
            self._total, self._count = 0.0, 0

    def calm(self) -> float | None:
        """The least of the last ``PERIODS`` periods' means (see :meth:`end_period`): what
        one takes in the calmest recent period, queueing included, ``None`` before any."""
        return min(self._means) if self._means else None

    def least(self) -> float | None:
        """The least one took in the last ``LONG_PERIODS`` periods (see :meth:`end_period`),
        ``None`` before any: what it takes with nothing queued, from before a queue that
        has lasted the few periods :meth:`floor` and :meth:`calm` remember."""
        return min(self._least) if self._least else None
