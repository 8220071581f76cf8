"""The fakes' rate limiter: fixed windows, each admitting a number of requests."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["FixedWindow"]


class FixedWindow:
    """Fixed windows of ``window`` seconds, each admitting ``limit`` requests.

    With ``limit`` None nothing is limited (`admit` and `remaining` are not to be called),
    yet the windows still tell the time (`seconds_until_reset`).

    Window 0 starts at the clock reading of `restart` (call it when serving starts) plus
    ``offset``; a request is counted
    only when admitted (a rejected one does not use up budget, as in Laravel's throttle).
    All times come from ``clock``, so tests can drive it by hand.

    Args:
        limit: Requests admitted per window (>= 1), or None.
        window: Window length in seconds (> 0).
        offset: Seconds added to the start time to place the window boundaries.
        clock: Monotonic clock in seconds.

    Raises:
        ValueError: ``limit`` < 1 or ``window`` <= 0.
    """

    def __init__(
        self, limit: int | None, window: float, offset: float, clock: Callable[[], float]
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate_limit must be >= 1 or None")
        if window <= 0:
            raise ValueError("window must be > 0")
        self.limit = limit
        self.window = float(window)
        self.offset = float(offset)
        self._clock = clock
        self._origin = 0.0
        #: The window the last admitted request fell in, and how many it admitted.
        self.index = 0
        self.count = 0

    def restart(self) -> None:
        """Align window 0 to now (plus the offset) with nothing counted."""
        self._origin = self._clock() + self.offset
        self.index = self._window_at(self._clock())
        self.count = 0

    def _window_at(self, now: float) -> int:
        return math.floor((now - self._origin) / self.window)

    def seconds_until_reset(self) -> float:
        """Seconds until the current window ends."""
        now = self._clock()
        return self._origin + (self._window_at(now) + 1) * self.window - now

    def admit(self) -> int | None:
        """Count one request; return the budget left in its window, or None if it is over."""
        limit = self.limit
        assert limit is not None, "admit() without a limit"
        index = self._window_at(self._clock())
        if index != self.index:
            self.index = index
            self.count = 0
        if self.count >= limit:
            return None
        self.count += 1
        return limit - self.count

    def remaining(self) -> int:
        """The budget left in the current window, without counting anything."""
        limit = self.limit
        assert limit is not None, "remaining() without a limit"
        if self._window_at(self._clock()) != self.index:
            return limit
        return max(0, limit - self.count)
