"""Reading rate-limit headers: pure functions of a response's headers.

Servers send ``X-RateLimit-Limit`` (requests per window), ``X-RateLimit-Remaining`` and, on a
429, ``Retry-After`` (delta-seconds or an HTTP-date). A header that is missing or unreadable
means "no information", never zero: a proxy that strips headers must not stall a client.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import Mapping

import msgspec

__all__ = ["RateLimitInfo", "parse_retry_after"]

# A Retry-After beyond a day is a server bug or an attack; treat it as unreadable.
_MAX_RETRY_AFTER = 86_400.0


def _non_negative_int(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def parse_retry_after(value: str | None, *, date: str | None = None) -> float | None:
    """Parse a ``Retry-After`` value into seconds to wait.

    Args:
        value: The header value: delta-seconds (``"30"``, also ``"1.5"``) or an HTTP-date.
        date: The response's ``Date`` header; an HTTP-date is read against it so that a
            skewed local clock does not stretch or shrink the wait. Without it, the local
            clock is used.

    Returns:
        Seconds (``>= 0``), or ``None`` when the value is missing or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until_http_date(text, date)
    if seconds is None:
        return None
    if math.isnan(seconds) or seconds < 0 or seconds > _MAX_RETRY_AFTER:
        return None
    return seconds


def _seconds_until_http_date(value: str, date: str | None) -> float | None:
    try:
        target = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    now: float = time.time()
    if date is not None:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            now = email.utils.parsedate_to_datetime(date).timestamp()
    return max(0.0, target.timestamp() - now)


class RateLimitInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a response's headers say about the rate limit; ``None`` means not said.

    Attributes:
        limit: Requests allowed per window (the providers document a one-minute window).
        remaining: Requests left in the current window.
        retry_after: Seconds to wait before the next request.
    """

    limit: int | None = None
    remaining: int | None = None
    retry_after: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        """Read the rate-limit headers; ``headers`` should be case-insensitive."""
        return cls(
            limit=_non_negative_int(headers.get("X-RateLimit-Limit")),
            remaining=_non_negative_int(headers.get("X-RateLimit-Remaining")),
            retry_after=parse_retry_after(headers.get("Retry-After"), date=headers.get("Date")),
        )
