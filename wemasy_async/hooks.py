"""Hooks: what the engine tells the code that embeds the SDK, as typed, frozen events.

A hook is any callable taking one event; it may be a plain function or return an
awaitable (an ``async def``), which is awaited before the request goes on::

    def log_retries(event: Event) -> None:
        if isinstance(event, RetryEvent):
            print(f"retry {event.attempt} after {event.error} in {event.delay:.1f} s")

    client = Client("wemasy", hooks=[log_retries])

Which events a hook receives: the kinds named by its ``event_kinds`` attribute (a tuple of
event classes, e.g. :data:`ALL_EVENTS`), or without one the four kinds of the first release
(:data:`CORE_EVENTS`: request, response, retry, 429 pause), so that a hook written for those
never meets a kind it does not know. The other kinds are an operation's start and end, a
request that got no response (a connection error, a timeout, a cancellation), a wait for the
rate limiter, and a batch's progress::

    class Timings:
        event_kinds = (OperationStartEvent, OperationEndEvent)

        def __call__(self, event: Event) -> None: ...

Events name a request by its method and path (the base URL's path and the operation's,
never the query or a header); only :class:`OperationStartEvent` names the server (scheme,
host and port, never a user name or password of the URL). No event carries the token. A
hook that raises is logged (at WARNING with its traceback the first time, at DEBUG after
that) and never fails the call. The engine only builds events when a client has hooks:
without them the request path is the same as before hooks existed.

All the events of one operation are emitted in the task that awaits it, in order, so a hook
may keep per-operation state in a :class:`contextvars.ContextVar` (as
:class:`~wemasy_async.otel.OpenTelemetryHook` does). On cancellation the end events are still
emitted; an async hook is then cancelled at its first suspension.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, cast

import msgspec

from wemasy_async.errors import InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.models import TokenUsage
from wemasy_async.validation import short_repr

__all__ = [
    "ALL_EVENTS",
    "CORE_EVENTS",
    "AnyEvent",
    "BatchProgressEvent",
    "Event",
    "Hook",
    "LimiterWaitEvent",
    "NoResponseEvent",
    "OperationEndEvent",
    "OperationStartEvent",
    "PauseEvent",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
]

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


class OperationStartEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A client method starts: its requests (attempts, follow-up pages) come next.

    Attributes:
        provider, operation: As in :class:`RequestEvent`.
        origin: The base URL's scheme, host and port (the port only if the URL names one),
            e.g. ``"https://api.wemasy.com"``: what an event's ``path`` is relative to.
        host: The server's host name or address (an IPv6 address without brackets).
        port: The server's port (the scheme's default if the URL names none).
    """

    provider: str
    operation: str
    origin: str
    host: str
    port: int


class OperationEndEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A client method has returned or raised (or was cancelled).

    Attributes:
        provider, operation: As in :class:`RequestEvent`.
        elapsed: Seconds since its :class:`OperationStartEvent`.
        error: The type name of what it raised (``"NotFoundError"``, ``"CancelledError"``),
            ``None`` if it returned.
        usage: The tokens a ``chat`` reply reports having used; ``None`` otherwise.
    """

    provider: str
    operation: str
    elapsed: float
    error: str | None = None
    usage: TokenUsage | None = None


class NoResponseEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A request that ended without a response: a connection error, a timeout, a body over
    ``max_response_bytes``, a cancellation.

    Attributes:
        provider, operation, method, path, attempt: As in :class:`RequestEvent`.
        error: The error's type name, e.g. ``"APITimeoutError"`` or ``"CancelledError"``.
        elapsed: Seconds from sending the request to the failure.
    """

    provider: str
    operation: str
    method: str
    path: str
    attempt: int
    error: str
    elapsed: float


class LimiterWaitEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The rate limiter held a request back before it was sent (only when it waited).

    Attributes:
        provider, operation, method, path, attempt: The request that waited.
        seconds: How long it waited for the limiter (a 429 pause of its key included).
    """

    provider: str
    operation: str
    method: str
    path: str
    attempt: int
    seconds: float


class BatchProgressEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A batch (``fetch_conversations``, ``fetch_messages``) has one more result.

    Emitted after every result, before the consumer gets it.

    Attributes:
        provider: As in :class:`RequestEvent`.
        operation: What the batch calls per id, e.g. ``"get_conversation"``.
        done: Results so far (``succeeded + failed``).
        succeeded: Results holding a value.
        failed: Results holding an error.
        total: Ids read from the batch's ids so far (``done`` plus those in flight); the
            batch's total once ``exhausted``.
        exhausted: Whether every id has been read.
        elapsed: Seconds since the batch started.
    """

    provider: str
    operation: str
    done: int
    succeeded: int
    failed: int
    total: int
    exhausted: bool
    elapsed: float


Event = RequestEvent | ResponseEvent | RetryEvent | PauseEvent
"""The events a hook receives unless its ``event_kinds`` names others (:data:`CORE_EVENTS`)."""

AnyEvent = (
    Event
    | OperationStartEvent
    | OperationEndEvent
    | NoResponseEvent
    | LimiterWaitEvent
    | BatchProgressEvent
)
"""Every kind of event; more kinds may be added, so ignore those you do not know."""

CORE_EVENTS: tuple[type[Event], ...] = (RequestEvent, ResponseEvent, RetryEvent, PauseEvent)
"""What a hook without an ``event_kinds`` attribute receives."""

ALL_EVENTS: tuple[type[AnyEvent], ...] = (
    *CORE_EVENTS,
    OperationStartEvent,
    OperationEndEvent,
    NoResponseEvent,
    LimiterWaitEvent,
    BatchProgressEvent,
)
"""Every kind of event, for a hook's ``event_kinds``."""

Hook = Callable[[Event], object]
"""A callable taking one event; what it returns is awaited if it is awaitable. One whose
``event_kinds`` names more kinds takes an :data:`AnyEvent` (and is a ``Hook`` all the same)."""

_Receiver = Callable[[AnyEvent], object]


class Hooks:
    """The hooks of one client (and its ``with_options`` copies), called in order.

    Never empty: a client without hooks has ``None`` instead, so each point of the engine
    is guarded by a plain ``if hooks:`` that costs no Python call (no ``__bool__`` here).
    """

    __slots__ = ("_by_kind", "_failed", "_hooks", "operations")

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self._hooks = tuple(hooks)
        self._failed: set[int] = set()  # indexes of hooks that raised (logged loudly once)
        by_kind: dict[type[AnyEvent], list[tuple[int, _Receiver]]] = {}
        for index, hook in enumerate(self._hooks):
            for kind in _kinds_of(hook, index):
                # A hook receives only the kinds it names (the core ones by default).
                by_kind.setdefault(kind, []).append((index, cast(_Receiver, hook)))
        # Per kind, the hooks receiving it: the engine asks `wants` before building a kind
        # that none of them receives.
        self._by_kind = {kind: tuple(receivers) for kind, receivers in by_kind.items()}
        # Whether any hook receives an operation's start or end (asked on every call).
        self.operations = self.wants(OperationStartEvent) or self.wants(OperationEndEvent)

    def __repr__(self) -> str:
        return f"<Hooks {len(self._hooks)}>"

    def wants(self, kind: type[AnyEvent]) -> bool:
        """Whether any hook receives events of ``kind``."""
        return kind in self._by_kind

    async def emit(self, event: AnyEvent) -> None:
        """Call every hook that receives ``event``'s kind; an exception in one is logged,
        never raised.

        Cancellation (``BaseException``) is not an error of the hook and propagates.
        """
        for index, hook in self._by_kind.get(type(event), ()):
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._log_failure(index, hook, event)

    def _log_failure(self, index: int, hook: _Receiver, event: AnyEvent) -> None:
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


class _Counters(Protocol):
    """A batch's counters (:class:`~wemasy_async.batch.FetchProgress`, a row beside this one)."""

    @property
    def done(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def elapsed(self) -> float: ...


def batch_reporter(
    hooks: Hooks, provider: str, operation: str
) -> Callable[[_Counters, int, bool], Awaitable[None]] | None:
    """What a batch calls after every result to emit a :class:`BatchProgressEvent`, or
    ``None`` if no hook receives them."""
    if not hooks.wants(BatchProgressEvent):
        return None

    async def report(progress: _Counters, total: int, exhausted: bool) -> None:
        await hooks.emit(
            BatchProgressEvent(
                provider=provider,
                operation=operation,
                done=progress.done,
                succeeded=progress.succeeded,
                failed=progress.failed,
                total=total,
                exhausted=exhausted,
                elapsed=progress.elapsed,
            )
        )

    return report


def _kinds_of(hook: Hook, position: int) -> tuple[type[AnyEvent], ...]:
    kinds = getattr(hook, "event_kinds", None)
    if kinds is None:
        return CORE_EVENTS
    if isinstance(kinds, (str, bytes)) or not isinstance(kinds, (Sequence, frozenset, set)):
        raise InvalidRequestError(
            f"hooks[{position}].event_kinds must be a tuple of event classes,"
            f" got {type(kinds).__name__}",
            argument="hooks",
        )
    unknown = [kind for kind in kinds if kind not in ALL_EVENTS]
    if unknown:
        raise InvalidRequestError(
            f"hooks[{position}].event_kinds holds {short_repr(unknown[0])}, not an event class of"
            " wemasy_async.hooks",
            argument="hooks",
        )
    return tuple(kinds)


def check_hooks(hooks: object) -> Hooks | None:
    """``hooks`` (a sequence of callables, or ``None``) as :class:`Hooks`; ``None`` if none.

    Raises:
        InvalidRequestError: ``hooks`` is not a list or tuple of callables, or a hook's
            ``event_kinds`` is not a collection of event classes.
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
