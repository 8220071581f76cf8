"""Retries: which failures are retried, and how long to wait first.

- Retried: connection errors and timeouts, and HTTP 408, 429, 500, 502, 503 and 504.
- Reads are idempotent and retried on all of those. ``chat`` is not: it is retried only when
  the request certainly was not processed (the connection was refused or never
  established, a 429, or a 503 that carries a retry hint). After an ambiguous failure (a
  timeout after sending, a connection dropped mid-response, a 500) it raises, so a message is
  never delivered twice.
- The wait is the server's hint (``Retry-After``, or a provider's own) when it gives one,
  else exponential backoff with full jitter, capped. A hint beyond ``max_retry_after`` is not
  waited out: the error (e.g. :class:`~wemasy_async.errors.RateLimitError` with its
  ``retry_after``) is raised at once.
- :func:`no_backoff` (or ``WEMASY_ASYNC_NO_BACKOFF=1``) turns the waiting off, for the test
  suites of code that uses the SDK: retries still happen, immediately.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from wemasy_async.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    InvalidRequestError,
)
from wemasy_async.validation import MAX_SECONDS, check_int, check_number, short_repr

__all__ = ["RETRIED_STATUSES", "RetryPolicy", "no_backoff", "retry_delay"]

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


_NO_BACKOFF: ContextVar[bool] = ContextVar("wemasy_async_no_backoff", default=False)


@contextmanager
def no_backoff() -> Iterator[None]:
    """Within this block (and tasks started in it), retries do not sleep.

    For test suites: wrap a test (a synchronous fixture that yields inside it works too)
    so that code retrying against a failing fake does not slow the suite down.
    """
    token = _NO_BACKOFF.set(True)
    try:
        yield
    finally:
        _NO_BACKOFF.reset(token)


def _backoff_disabled() -> bool:
    return _NO_BACKOFF.get() or os.environ.get("WEMASY_ASYNC_NO_BACKOFF", "") not in ("", "0")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How failed requests are retried.

    Args:
        max_attempts: Attempts in all, the first included (1 sends once).
        initial_backoff: The backoff cap of the first retry, in seconds; it doubles with
            each retry. The actual wait is drawn uniformly below it (full jitter).
        max_backoff: The most any backoff may reach, in seconds.
        max_retry_after: The longest server hint to wait out; a longer one raises at once.
        statuses: The HTTP statuses that are retried (any iterable of codes; kept as a
            ``frozenset``).

    The three durations are numbers of seconds from 0 to 86,400 (a day).

    Raises:
        InvalidRequestError: An argument is out of range or of the wrong type (``argument``
            names it).
    """

    max_attempts: int = 4
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = RETRIED_STATUSES

    def __post_init__(self) -> None:
        check_int(self.max_attempts, "max_attempts", minimum=1)
        for name in ("initial_backoff", "max_backoff", "max_retry_after"):
            # A day at most: beyond it a wait is a hang (and headers.py reads any longer
            # Retry-After as unreadable anyway).
            check_number(getattr(self, name), name, minimum=0.0, maximum=MAX_SECONDS)
        object.__setattr__(self, "statuses", _check_statuses(self.statuses))

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first) without a hint."""
        # The exponent is bounded first: 2.0 ** 1024 overflows a float long before any cap.
        cap = min(self.max_backoff, self.initial_backoff * 2.0 ** min(retry - 1, 64))
        return random.uniform(0, cap)


def _check_statuses(value: object) -> frozenset[int]:
    # A str would pass "429 in statuses" checks by accident (or raise TypeError later).
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidRequestError(
            f"statuses must be a set of HTTP status codes, got {type(value).__name__}",
            argument="statuses",
        )
    try:
        codes = frozenset(value)
    except TypeError as exc:  # an unhashable item, e.g. [[429]]
        raise InvalidRequestError(
            f"statuses must hold HTTP status codes (integers 100 to 599): {exc}",
            argument="statuses",
        ) from None
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise InvalidRequestError(
                "statuses must hold HTTP status codes (integers 100 to 599),"
                f" got {short_repr(code)}",
                argument="statuses",
            )
    return codes


def retry_delay(
    policy: RetryPolicy, attempt: int, error: APIError, *, idempotent: bool
) -> float | None:
    """Decide whether to retry after ``error``, and how long to wait first.

    Args:
        policy: The policy.
        attempt: The attempt that just failed (1 for the first).
        error: How it failed.
        idempotent: Whether sending the request twice is harmless.

    Returns:
        Seconds to wait before the next attempt, or ``None`` to raise ``error`` now.
    """
    if attempt >= policy.max_attempts:
        return None
    hint: float | None = None
    if isinstance(error, APIConnectionError):
        if not idempotent and error.request_sent:
            return None  # it may have been processed: sending again could duplicate it
    elif isinstance(error, APIStatusError):
        if error.status not in policy.statuses:
            return None
        hint = error.retry_after
        if not idempotent and not (
            error.status == 429 or (error.status == 503 and hint is not None)
        ):
            return None
        if hint is not None and hint > policy.max_retry_after:
            return None
    else:
        return None  # a body we cannot read will not read better the second time
    if _backoff_disabled():
        return 0.0
    return hint if hint is not None else policy.backoff(attempt)
