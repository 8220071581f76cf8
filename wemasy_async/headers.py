"""Reading rate-limit headers: pure functions of a response's headers.

Servers send ``X-RateLimit-Limit`` (requests per window), ``X-RateLimit-Remaining`` and, on a
429, ``Retry-After`` (delta-seconds or an HTTP-date). A header that is missing or unreadable
means "no information", never zero: a proxy that strips headers must not stall a client.
A header sent twice (or folded into one, comma-separated, by a proxy) with different values
is read as the stricter: the lowest limit and remaining, the longest ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from multidict import istr

from wemasy_async.validation import MAX_SECONDS

__all__ = ["RateLimitInfo", "parse_retry_after", "still_at_least"]

# Case-insensitive keys made once: aiohttp's header multidicts look them up about twice as
# fast as plain strings, which they would fold on every lookup (every response reads these).
_RETRY_AFTER = istr("Retry-After")
_DATE = istr("Date")
_LIMIT = istr("X-RateLimit-Limit")
_REMAINING = istr("X-RateLimit-Remaining")

# RFC 9110's delta-seconds is 1*DIGIT; a fraction is accepted as some servers send one.
_DELTA_SECONDS = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,9})?")


def _non_negative_int(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit() and value.isascii():  # the usual case, no spaces: kept quick
        return int(value) if len(value) <= 18 else None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def parse_retry_after(value: str | None, *, date: str | None = None) -> float | None:
    """Parse a ``Retry-After`` value into seconds to wait.

    Args:
        value: The header value: delta-seconds in ASCII digits (``"30"``, also ``"1.5"``)
            or an HTTP-date. Other spellings of numbers (``"1e3"``, ``"-1"``, ``"nan"``) are
            unreadable.
        date: The response's ``Date`` header; an HTTP-date is read against it so that a
            skewed local clock does not stretch or shrink the wait. Without it, the local
            clock is used.

    Returns:
        Seconds, a finite ``float`` from 0 to 86,400 (a date in the past gives ``0.0``), or
        ``None`` when the value is missing, unreadable or longer than a day.
    """
    if value is None:
        return None
    text = value.strip()
    seconds: float | None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
    elif text[:1].isdigit() or text[:1] in "+-.":
        # A number in some other spelling ("-1", "1e3", "1_000", non-ASCII digits, "+5"),
        # which float() would read: not delta-seconds, and not a date either.
        seconds = None
    else:
        seconds = _seconds_until_http_date(text, date)
    # Beyond a day is a server bug or an attack: unreadable. The comparison refuses NaN too.
    if seconds is None or not 0 <= seconds <= MAX_SECONDS:
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


class RateLimitInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
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
        """Read the rate-limit headers; ``headers`` should be case-insensitive.

        Every value of a repeated header is read (with a multidict, as aiohttp gives), and
        the stricter wins: see the module docstring. Unreadable values among readable ones
        are ignored.
        """
        getall = getattr(headers, "getall", None)
        retry_after = headers.get(_RETRY_AFTER)
        if retry_after is None and getall is not None:
            # Every response of a paced key comes this way: one value of each count, plain
            # digits. Read inline (the general path below costs four times the bytecode).
            limits = getall(_LIMIT, None)
            remainings = getall(_REMAINING, None)
            if (
                limits is not None
                and remainings is not None
                and len(limits) == 1
                and len(remainings) == 1
            ):
                limit, remaining = limits[0], remainings[0]
                if (
                    limit.isdigit()
                    and remaining.isdigit()
                    and limit.isascii()
                    and remaining.isascii()
                    and len(limit) <= 18
                    and len(remaining) <= 18
                ):
                    return cls(limit=int(limit), remaining=int(remaining))
        wait = None
        if retry_after is not None:  # mostly absent: kept quick
            date = headers.get(_DATE)
            values = [retry_after] if getall is None else getall(_RETRY_AFTER)
            waits = [parse_retry_after(v, date=date) for v in values]
            wait = max((w for w in waits if w is not None), default=None)
        return cls(
            limit=_least(headers, _LIMIT, getall),
            remaining=_least(headers, _REMAINING, getall),
            retry_after=wait,
        )


def still_at_least(headers: Mapping[str, str], limits: list[str], floor: str) -> bool:
    """Whether ``headers`` say exactly the limit in ``limits`` and at least ``floor`` remaining.

    The cheap question a far-away limit asks of each answer (see ``Limiter.answered``):
    ``True`` only when :meth:`RateLimitInfo.from_headers` would read one value of each count,
    the limit the same, ``remaining >= int(floor)`` and no ``Retry-After``; ``False`` means
    only "read them properly". ``floor`` is a count as ``str(int)`` writes it (no leading
    zero): compared as text, digits to digits, as ``int()`` was a quarter of the look's cost.
    """
    try:  # aiohttp's multidict; a plain mapping cannot say whether a header repeats
        getall: Callable[[str, Any], Any] = headers.getall  # type: ignore[attr-defined]
    except AttributeError:
        return False
    if getall(_LIMIT, None) != limits or _RETRY_AFTER in headers:
        return False
    try:
        remaining: str
        (remaining,) = getall(_REMAINING, ())  # exactly one value
    except ValueError:  # none, or several
        return False
    if not (remaining.isdigit() and remaining.isascii()):
        return False
    # Digit strings of one length compare as their numbers; a longer one is the larger
    # unless it starts with a zero (then: read properly). 18 digits: what from_headers reads.
    size, least = len(remaining), len(floor)
    if size == least:
        return remaining >= floor
    return least < size <= 18 and remaining[0] != "0"


def _least(
    headers: Mapping[str, str], name: str, getall: Callable[[str, None], list[str] | None] | None
) -> int | None:
    """The lowest readable count among the values of ``name``, comma-separated ones too."""
    if getall is None:
        value = headers.get(name)
        if value is None:
            return None
        values = [value]
    else:
        found = getall(name, None)  # one lookup: most responses have one value or none
        if found is None:
            return None
        values = found
    if len(values) == 1 and "," not in values[0]:  # the usual case, kept quick
        return _non_negative_int(values[0])
    counts = [_non_negative_int(part) for item in values for part in item.split(",")]
    return min((c for c in counts if c is not None), default=None)
