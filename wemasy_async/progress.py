"""Terminal progress for the ``fetch`` command: a one-line bar, and the plain summary.

The formatting functions are pure (counters in, text out) so they can be tested without a
terminal; :class:`ProgressBar` only adds the throttled redrawing on a stream.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar", "format_bar", "format_duration", "format_rate", "format_summary"]

#: Redraw at most this often (seconds): about 10 times per second.
REFRESH_INTERVAL = 0.1


def format_duration(seconds: float) -> str:
    """``H:MM:SS``, e.g. ``0:00:11``; ``--:--:--`` when unknown (no rate yet)."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return "-:--:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_rate(per_second: float) -> str:
    """A rate as providers document their limits, per minute: ``60/min``."""
    return f"{per_second * 60:,.0f}/min"


def format_bar(
    done: int,
    total: int,
    failed: int,
    elapsed: float,
    *,
    width: int = 10,
    paced: float | None = None,
) -> str:
    """One line of progress, e.g.
    ``[#####-----] 1,234/10,000 12% | 812/s | ETA 0:00:11 | 3 errors``, or with ``paced``
    ``[#---------] 120/5,000 2% | 2/s | paced by the server: 60/min | ETA 1:21:20 | 0 errors``.

    Args:
        done: Ids finished (succeeded or failed).
        total: Ids to fetch in all (``0`` when there is nothing to do).
        failed: Ids that failed so far.
        elapsed: Seconds since the fetching started.
        width: Characters inside the brackets.
        paced: The server's allowed rate (requests per second) when it is what sets the
            pace (requests wait for the rate limiter), else ``None``. The ETA then counts
            at no more than that rate: the burst at the start does not last.
    """
    fraction = min(done / total, 1.0) if total > 0 else 1.0
    filled = int(fraction * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    expected = rate if paced is None or paced <= 0 else min(rate, paced)
    remaining = max(total - done, 0)
    if remaining == 0:
        eta = 0.0
    elif expected > 0:
        eta = remaining / expected
    else:
        eta = float("inf")
    errors = f"{failed:,} error" + ("" if failed == 1 else "s")
    pace = "" if paced is None else f" | paced by the server: {format_rate(paced)}"
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] {done:,}/{total:,} {int(fraction * 100)}% "
        f"| {rate:,.0f}/s{pace} | ETA {format_duration(eta)} | {errors}"
    )


def format_summary(
    *,
    succeeded: int,
    failed: int,
    total: int,
    elapsed: float,
    skipped: int,
    out: str,
    errors_path: str | None = None,
) -> str:
    """The plain summary line, e.g. ``fetched 9,997 of 10,000 (3 errors) in 12.3 s, 812/s;
    skipped 0 already in out.jsonl``, plus ``; errors in out.errors.jsonl`` when any failed.
    """
    done = succeeded + failed
    rate = done / elapsed if elapsed > 0 else 0.0
    errors = f"{failed:,} error" + ("" if failed == 1 else "s")
    line = (
        f"fetched {succeeded:,} of {total:,} ({errors}) in {elapsed:.1f} s, {rate:,.0f}/s; "
        f"skipped {skipped:,} already in {out}"
    )
    if failed and errors_path is not None:
        line += f"; errors in {errors_path}"
    return line


class ProgressBar:
    """Redraws :func:`format_bar` in place on ``stream`` (a terminal), throttled.

    Call :meth:`update` as often as you like; it draws at most every
    :data:`REFRESH_INTERVAL` seconds. :meth:`finish` draws the final state and ends the
    line.
    """

    def __init__(self, stream: TextIO, *, interval: float = REFRESH_INTERVAL) -> None:
        self._stream = stream
        self._interval = interval
        self._last_draw = float("-inf")
        self._last_width = 0

    def update(
        self,
        done: int,
        total: int,
        failed: int,
        elapsed: float,
        *,
        force: bool = False,
        paced: float | None = None,
    ) -> None:
        """Redraw, unless the last redraw was less than the interval ago (or ``force``);
        ``paced`` as for :func:`format_bar`."""
        now = time.monotonic()
        if not force and now - self._last_draw < self._interval:
            return
        self._last_draw = now
        line = format_bar(done, total, failed, elapsed, paced=paced)
        # Pad over a longer previous line instead of relying on terminal escape codes.
        padding = " " * max(self._last_width - len(line), 0)
        self._last_width = len(line)
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()

    def finish(
        self, done: int, total: int, failed: int, elapsed: float, *, paced: float | None = None
    ) -> None:
        """Draw the final state and end the line."""
        self.update(done, total, failed, elapsed, force=True, paced=paced)
        self._stream.write("\n")
        self._stream.flush()
