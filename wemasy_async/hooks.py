"""Hooks: what the engine tells the code that embeds the SDK, as typed, frozen events.

A hook is any callable taking one :data:`Event`; it may be a plain function or return an
awaitable (an ``async def``), which is awaited before the request goes on::

    def log_retries(event: Event) -> None:
        if isinstance(event, RetryEvent):
            print(f"retry {event.attempt} after {event.error} in {event.delay:.1f} s")

    client = Client("wemasy", hooks=[log_retries])

Events name a request by its method and path (the base URL's path and the operation's,
never the host, the query or a header), so no event carries the token. A hook that raises
is logged (at WARNING with its traceback the first time, at DEBUG after that) and never
fails the call. The engine only builds events when a client has hooks: without them the
request path is the same as before hooks existed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence

import msgspec

from wemasy_async.errors import InvalidRequestError
from wemasy_async.headers import RateLimitInfo

__all__ = ["Event", "Hook", "PauseEvent", "RequestEvent", "ResponseEvent", "RetryEvent"]

logger = logging.getLogger("wemasy_async.hooks")


class RequestEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A request about to be sent (after any wait for the rate limiter).

    Attributes:
        provider: The provider name, e.g. ``"wemasy"``.
        operation: The client method, e.g. ``"get_conversation"``.
        method: ``"GET"`` or ``"POST"``.
        path: The URL path (base URL path included), without the query.
        attempt: 1 for the first attempt, 2 for the first retry, ...
    """

    provider: str
    operation: str
    method: str
    path: str
    attempt: int


class ResponseEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A response received (any status, before it is read into a result or an error).

    Attributes:
        provider, operation, method, path, attempt: As in :class:`RequestEvent`.
        status: The HTTP status.
        elapsed: Seconds from sending the request to having read the whole response.
        rate_limit: What the response's rate-limit headers say.
    """

    provider: str
    operation: str
    method: str
    path: str
    attempt: int
    status: int
    elapsed: float
    rate_limit: RateLimitInfo


class RetryEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A failed attempt that will be retried.

    Attributes:
        provider, operation, method, path: As in :class:`RequestEvent`.
        attempt: The attempt that failed (the retry is ``attempt + 1``).
        error: The error's type name, e.g. ``"RateLimitError"``.
        delay: Seconds the engine waits before the retry (0 when the rate limiter already
            holds the key for a 429 pause; see :class:`PauseEvent`).
    """

    provider: str
    operation: str
    method: str
    path: str
    attempt: int
    error: str
    delay: float


class PauseEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A 429 answer pauses every request of the key (of all clients sharing its limiter).

    Attributes:
        provider, operation, method, path, attempt: The request that got the 429.
        seconds: How long the limiter holds the key.
    """

    provider: str
    operation: str
    method: str
    path: str
    attempt: int
    seconds: float


Event = RequestEvent | ResponseEvent | RetryEvent | PauseEvent
"""Every event a hook may receive; more kinds may be added, so ignore those you do not know."""

Hook = Callable[[Event], object]
"""A callable taking one event; what it returns is awaited if it is awaitable."""


class Hooks:
    """The hooks of one client (and its ``with_options`` copies), called in order.

    Never empty: a client without hooks has ``None`` instead, so each point of the engine
    is guarded by a plain ``if hooks:`` that costs no Python call (no ``__bool__`` here).
    """

    __slots__ = ("_failed", "_hooks")

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self._hooks = tuple(hooks)
        self._failed: set[int] = set()  # indexes of hooks that raised (logged loudly once)

    def __repr__(self) -> str:
        return f"<Hooks {len(self._hooks)}>"

    async def emit(self, event: Event) -> None:
        """Call every hook with ``event``; an exception in one is logged, never raised.

        Cancellation (``BaseException``) is not an error of the hook and propagates.
        """
        for index, hook in enumerate(self._hooks):
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._log_failure(index, hook, event)

    def _log_failure(self, index: int, hook: Hook, event: Event) -> None:
        first = index not in self._failed
        self._failed.add(index)
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "hook %s raised on %s%s",
            getattr(hook, "__qualname__", type(hook).__qualname__),
            type(event).__name__,
            "" if first else " again",
            exc_info=True,
        )


def check_hooks(hooks: object) -> Hooks | None:
    """``hooks`` (a sequence of callables, or ``None``) as :class:`Hooks`; ``None`` if none.

    Raises:
        InvalidRequestError: ``hooks`` is not a list or tuple of callables.
    """
    if hooks is None:
        return None
    if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Sequence):
        raise InvalidRequestError(
            f"hooks must be a list or tuple of callables, got {type(hooks).__name__}",
            argument="hooks",
        )
    for position, hook in enumerate(hooks):
        if not callable(hook):
            raise InvalidRequestError(
                f"hooks[{position}] must be callable, got {type(hook).__name__}",
                argument="hooks",
            )
    return Hooks(hooks) if hooks else None
