"""A clock the test advances by hand, for the fakes' ``clock=`` argument."""

from __future__ import annotations


class ManualClock:
    """A clock the test advances by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
