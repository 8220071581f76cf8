"""Noticing a server whose rate-limit window is evidently shorter than the one assumed.

The limiter paces by a window ``W`` it is told (``RateLimit(window=...)``, 60 s by default),
never by the server: no header says the window. A server whose window is 3 s then gets a
twentieth of what it allows, and nothing else would say so. :class:`WindowCheck` reads the
evidence from the answers the limiter sees anyway. It is pure (no I/O, no clock: the caller
passes the times), and it claims nothing the documented model does not imply:

The server counts a token's requests in fixed windows of ``W`` seconds, each admitting ``L``,
and answers each with ``X-RateLimit-Remaining = L - (requests counted in its window so far,
itself included)``. Requests of ours that reached the server within a span shorter than
``W`` fall into at most two of its windows, so of ``n`` such requests one window holds at
least ``ceil(n / 2)``, and the last of those it counted was answered with a Remaining of at
most ``max(L - ceil(n / 2), 0)`` (Remaining is never negative; a refused request says 0);
other clients of the same token only lower Remaining. A request reached the server between
its send and its answer, so ``n`` requests of which every send and every answer lie within
a span shorter than ``W`` qualify. When every one of their answers says more than
``max(L - ceil(n / 2), 0) + 1`` (the one is slack for a server that counts a request after
reporting it) and ``n`` is at least :data:`MIN_SENDS`, the server's window is shorter than
``W``, or it counts otherwise (per instance behind a load balancer, say).

What it cannot see: sends that come in one burst per window. ``L - 1`` sends within a
second fit one 3 s window as they fit one 60 s window, and their answers are the same. It
needs sends spread over the window, as a caller that does some work between requests makes.

Bounded work and memory, whatever the rate: observations are kept in :data:`BUCKETS` buckets
per window by send time (count, least Remaining, greatest limit, earliest send, latest
answer), at most ``BUCKETS + 1`` of them, and the unions of consecutive buckets that end at
the newest are tested (``BUCKETS`` steps) when a bucket opens and after every
:data:`CHECK_EVERY` observations, not on every one.
"""

from __future__ import annotations

import math

import msgspec

__all__ = ["BUCKETS", "CHECK_EVERY", "MIN_SENDS", "ShortWindow", "WindowCheck"]

MIN_SENDS = 8
"""The fewest answers a finding rests on. The slack alone needs 5 (then every answer must
report at most one request counted in its window); at 8 every answer reports at most two,
and a finding rests on several of the server's windows, not on a few requests around one
boundary of a server that is slightly off the model."""

BUCKETS = 16
"""Buckets per window: a finer log tests spans closer to ``W`` at more work per test."""

CHECK_EVERY = 32
"""Observations between two tests of the buckets (one opening also tests)."""


class ShortWindow(msgspec.Struct, frozen=True, kw_only=True):
    """What :class:`WindowCheck` found: ``sends`` answers within ``span`` seconds.

    Attributes:
        sends: How many answers the finding rests on.
        span: Seconds from the earliest of their sends to the latest answer (less than the
            window).
        least_remaining: The least ``X-RateLimit-Remaining`` among them.
        limit: The greatest ``X-RateLimit-Limit`` among them.
        window: The window assumed, in seconds.
    """

    sends: int
    span: float
    least_remaining: int
    limit: int
    window: float

    @property
    def most_remaining(self) -> int:
        """The most that one window of :attr:`window` seconds leaves for the least answer."""
        return max(self.limit - (self.sends + 1) // 2, 0)

    def __str__(self) -> str:
        return (
            f"the server's rate-limit window looks shorter than the {self.window:g} s assumed:"
            f" {self.sends} requests sent and answered within {self.span:.3g} s all reported"
            f" X-RateLimit-Remaining >= {self.least_remaining} of {self.limit}, where one"
            f" {self.window:g} s window would leave at most {self.most_remaining} for one of"
            " them (or the server counts in some other way). If the server's window is"
            " shorter, set it: rate_limit=RateLimit(window=<seconds>)"
        )


class _Bucket:
    """The observations whose sends fall in one ``window / BUCKETS`` of time."""

    __slots__ = ("count", "earliest", "greatest_limit", "index", "latest", "least")

    def __init__(
        self, index: int, sent: float, answered: float, remaining: int, limit: int
    ) -> None:
        self.index = index
        self.count = 1
        self.least = remaining
        self.greatest_limit = limit
        self.earliest = sent
        self.latest = answered

    def add(self, sent: float, answered: float, remaining: int, limit: int) -> None:
        self.count += 1
        if remaining < self.least:
            self.least = remaining
        if limit > self.greatest_limit:
            self.greatest_limit = limit
        if sent < self.earliest:
            self.earliest = sent
        if answered > self.latest:
            self.latest = answered


class WindowCheck:
    """Tests the answers of one key against a window of ``window`` seconds (see the module).

    Args:
        window: The window assumed, in seconds (more than 0).
    """

    __slots__ = ("_buckets", "_end", "_newest", "_start", "_unchecked", "_width", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._width = window / BUCKETS
        self._buckets: list[_Bucket] = []  # by index, ascending
        self._unchecked = 0
        # The newest bucket and the sends it takes: most answers go there, without division.
        self._newest: _Bucket | None = None
        self._start, self._end = math.inf, -math.inf

    def observe(
        self, sent: float, answered: float, remaining: int | None, limit: int | None
    ) -> ShortWindow | None:
        """Take one answer: its send and answer times (one clock, seconds) and headers.

        Args:
            sent: When the request went out, or any earlier time.
            answered: When its answer came, or any later time.
            remaining: Its ``X-RateLimit-Remaining``; ``None`` (not said) is ignored.
            limit: Its ``X-RateLimit-Limit``; ``None`` is ignored.

        Returns:
            A finding when the answers so far show the window to be shorter, else ``None``;
            the caller reports it and stops feeding this check (it would find it again).
        """
        if remaining is None or limit is None or limit <= 0:
            return None  # not said: no evidence
        newest = self._newest
        if (
            newest is not None
            and self._start <= sent < self._end
            and sent <= answered < sent + self.window
        ):
            newest.add(sent, answered, remaining, limit)
        elif not self._file(sent, answered, remaining, limit):
            return None
        self._unchecked += 1
        if self._unchecked >= CHECK_EVERY or self._newest is not newest:  # or a bucket opened
            return self._test()
        return None

    def _file(self, sent: float, answered: float, remaining: int, limit: int) -> bool:
        """File an answer that is not for the newest bucket; False if it is dropped."""
        if not 0.0 <= answered - sent < self.window:
            # Answered before it was sent (no one clock), NaN or infinite times, or a span
            # no shorter than a window on its own: it can take part in no finding.
            return False
        index = int(sent // self._width)
        buckets = self._buckets
        if buckets and index <= buckets[-1].index:
            return self._add_to_older(index, sent, answered, remaining, limit)
        newest = self._newest = _Bucket(index, sent, answered, remaining, limit)
        self._start, self._end = index * self._width, (index + 1) * self._width
        buckets.append(newest)
        while buckets[0].index < index - BUCKETS:
            del buckets[0]  # no span shorter than a window reaches it from the newest
        return True

    def _add_to_older(
        self, index: int, sent: float, answered: float, remaining: int, limit: int
    ) -> bool:
        """File an answer whose send lies at or before the newest bucket's; False if dropped."""
        buckets = self._buckets
        position = len(buckets)
        while position > 0 and buckets[position - 1].index > index:
            position -= 1
        if position > 0 and buckets[position - 1].index == index:
            buckets[position - 1].add(sent, answered, remaining, limit)
            return True
        if index < buckets[-1].index - BUCKETS:
            return False  # too old to matter (or a clock that went back)
        buckets.insert(position, _Bucket(index, sent, answered, remaining, limit))
        return True

    def _test(self) -> ShortWindow | None:
        """Test the unions of consecutive buckets that end at the newest."""
        self._unchecked = 0
        window = self.window
        sends = 0
        least = greatest_limit = -1
        earliest = latest = math.nan
        for bucket in reversed(self._buckets):
            if sends:
                least = min(least, bucket.least)
                greatest_limit = max(greatest_limit, bucket.greatest_limit)
                earliest = min(earliest, bucket.earliest)
                latest = max(latest, bucket.latest)
            else:
                least, greatest_limit = bucket.least, bucket.greatest_limit
                earliest, latest = bucket.earliest, bucket.latest
            sends += bucket.count
            if latest - earliest >= window:
                return None  # and so for every larger union
            if sends >= MIN_SENDS and least > max(greatest_limit - (sends + 1) // 2, 0) + 1:
                return ShortWindow(
                    sends=sends,
                    span=latest - earliest,
                    least_remaining=least,
                    limit=greatest_limit,
                    window=window,
                )
        return None
