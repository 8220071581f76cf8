"""OpenTelemetry for the SDK: spans and metrics made from the client's hook events.

::

    from wemasy_async.otel import OpenTelemetryHook

    client = Client("wemasy", hooks=[OpenTelemetryHook()])  # the global providers

Needs the ``otel`` extra (``pip install 'wemasy-async[otel]'``); ``import wemasy_async`` never
imports OpenTelemetry, only this module does.

Spans, per client method (the *operation*):

- one ``INTERNAL`` span named ``"{provider} {operation}"`` (``"wemasy get_conversation"``),
  child of the span current where the method is awaited; ``error.type`` (the SDK's error
  class name) and an error status if it raised; events for each retry, limiter wait and
  429 pause; a ``chat`` span has ``gen_ai.operation.name`` and, when the reply reports them,
  ``gen_ai.usage.input_tokens`` / ``gen_ai.usage.output_tokens``;
- under it one ``CLIENT`` span per HTTP request (each attempt, each follow-up page) named
  after its method (``"GET"``, ``"POST"``), with the stable HTTP client semantic conventions:
  ``http.request.method``, ``server.address``, ``server.port``, ``url.full`` (without the
  query), ``http.response.status_code``, ``error.type`` (the status for a status of 400 or
  more, else the error's class name: ``"APITimeoutError"``) and, on retries,
  ``http.request.resend_count``. It is the current span while aiohttp sends the request,
  so aiohttp's own instrumentation (and the ``traceparent`` it propagates) nests under it.

Metrics:

- ``http.client.request.duration`` (histogram, s): every HTTP request, with the client span's
  attributes but ``url.full`` (too many values for a metric);
- ``http.client.active_requests`` (up-down counter): requests in flight, by method and
  server;
- ``wemasy_async.limiter.wait.duration`` (histogram, s): how long requests waited for the
  rate limiter (only those that waited), by provider and operation;
- ``wemasy_async.rate_limit.pause.duration`` (histogram, s): the 429 pauses of a key, by
  provider and operation.

No attribute holds the token, a header or a query value: everything comes from the hook
events (:mod:`wemasy_async.hooks`), which never carry them.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
except ImportError as missing:  # pragma: no cover - the suite runs with the extra
    raise ImportError(
        "wemasy_async.otel needs OpenTelemetry: install the 'otel' extra"
        " (pip install 'wemasy-async[otel]')"
    ) from missing

from wemasy_async._version import __version__
from wemasy_async.hooks import (
    ALL_EVENTS,
    AnyEvent,
    LimiterWaitEvent,
    NoResponseEvent,
    OperationEndEvent,
    OperationStartEvent,
    PauseEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ["OpenTelemetryHook"]

_SCHEMA_URL = "https://opentelemetry.io/schemas/1.27.0"

# The semantic conventions' advice for http.client.request.duration.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

Attributes = dict[str, "AttributeValue"]


@dataclass
class _Attempt:
    """One HTTP request's span, current (attached) until its response or failure."""

    span: trace.Span
    token: Token[otel_context.Context]
    metric_attributes: Attributes
    active_attributes: Attributes


@dataclass
class _Operation:
    """One client method's span and what its requests share."""

    span: trace.Span
    token: Token[otel_context.Context]
    provider: str
    operation: str
    origin: str
    server: Attributes
    attempt: _Attempt | None = None
    reset: Token[_Operation | None] | None = field(default=None, repr=False)


class OpenTelemetryHook:
    """A hook (for ``Client(hooks=[...])``) that records spans and metrics; see the module.

    Args:
        tracer_provider: Where spans go; ``None`` for the global one (as set by
            ``opentelemetry.trace.set_tracer_provider``, also later).
        meter_provider: Where metrics go; ``None`` for the global one.
    """

    event_kinds = ALL_EVENTS

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(
            "wemasy_async", __version__, tracer_provider, schema_url=_SCHEMA_URL
        )
        meter = metrics.get_meter(
            "wemasy_async", __version__, meter_provider, schema_url=_SCHEMA_URL
        )
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._active = meter.create_up_down_counter(
            "http.client.active_requests",
            unit="{request}",
            description="Number of active HTTP requests.",
        )
        self._waits = meter.create_histogram(
            "wemasy_async.limiter.wait.duration",
            unit="s",
            description="How long requests waited for the rate limiter before being sent.",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self._pauses = meter.create_histogram(
            "wemasy_async.rate_limit.pause.duration",
            unit="s",
            description="How long a 429 answer paused every request of its key.",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        # The operation being awaited in this task: every event of one operation is
        # emitted in the task that awaits it (see wemasy_async.hooks).
        self._current: ContextVar[_Operation | None] = ContextVar(
            f"wemasy_async.otel.{id(self):x}", default=None
        )

    def __repr__(self) -> str:
        return "<OpenTelemetryHook>"

    def __call__(self, event: AnyEvent) -> None:
        """Record ``event`` (a plain function: no suspension, so also during cancellation)."""
        if isinstance(event, RequestEvent):
            self._request(event)
        elif isinstance(event, ResponseEvent):
            self._response(event)
        elif isinstance(event, NoResponseEvent):
            self._no_response(event)
        elif isinstance(event, OperationStartEvent):
            self._start(event)
        elif isinstance(event, OperationEndEvent):
            self._end(event)
        elif isinstance(event, RetryEvent):
            self._retry(event)
        elif isinstance(event, LimiterWaitEvent):
            self._waited(event)
        elif isinstance(event, PauseEvent):
            self._paused(event)
        # BatchProgressEvent: a batch is many operations, each with its own span.

    # --- Operations -----------------------------------------------------------------------

    def _start(self, event: OperationStartEvent) -> None:
        server: Attributes = {"server.address": event.host, "server.port": event.port}
        attributes: Attributes = {
            "wemasy_async.provider": event.provider,
            "wemasy_async.operation": event.operation,
            **server,
        }
        if event.operation == "chat":
            attributes["gen_ai.operation.name"] = "chat"
        span = self._tracer.start_span(
            f"{event.provider} {event.operation}",
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
        )
        operation = _Operation(
            span=span,
            token=otel_context.attach(trace.set_span_in_context(span)),
            provider=event.provider,
            operation=event.operation,
            origin=event.origin,
            server=server,
        )
        operation.reset = self._current.set(operation)

    def _end(self, event: OperationEndEvent) -> None:
        operation = self._current.get()
        if operation is None:
            return
        if operation.attempt is not None:  # not told how it ended: ended with the operation
            self._finish(operation, None, event.error or "unfinished", 0.0)
        span = operation.span
        if event.usage is not None:
            _set_if_known(span, "gen_ai.usage.input_tokens", event.usage.prompt_tokens)
            _set_if_known(span, "gen_ai.usage.output_tokens", event.usage.completion_tokens)
        if event.error is not None:
            span.set_attribute("error.type", event.error)
            span.set_status(trace.StatusCode.ERROR)
        if operation.reset is not None:
            self._current.reset(operation.reset)
        otel_context.detach(operation.token)
        span.end()

    # --- Requests -------------------------------------------------------------------------

    def _request(self, event: RequestEvent) -> None:
        operation = self._current.get()
        if operation is None:
            return  # not an operation's request (see _start): nothing to nest it under
        if operation.attempt is not None:
            self._finish(operation, None, "unfinished", 0.0)
        metric_attributes: Attributes = {"http.request.method": event.method, **operation.server}
        attributes: Attributes = {**metric_attributes, "url.full": operation.origin + event.path}
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        span = self._tracer.start_span(
            event.method, kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        operation.attempt = _Attempt(
            span=span,
            # Current until the response: aiohttp's instrumentation runs in this context.
            token=otel_context.attach(trace.set_span_in_context(span)),
            metric_attributes=metric_attributes,
            active_attributes=dict(metric_attributes),
        )
        self._active.add(1, operation.attempt.active_attributes)

    def _response(self, event: ResponseEvent) -> None:
        operation = self._current.get()
        if operation is not None and operation.attempt is not None:
            error = str(event.status) if event.status >= 400 else None
            self._finish(operation, event.status, error, event.elapsed)

    def _no_response(self, event: NoResponseEvent) -> None:
        operation = self._current.get()
        if operation is not None and operation.attempt is not None:
            self._finish(operation, None, event.error, event.elapsed)

    def _finish(
        self, operation: _Operation, status: int | None, error: str | None, elapsed: float
    ) -> None:
        attempt = operation.attempt
        assert attempt is not None
        operation.attempt = None
        attributes = attempt.metric_attributes
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            attributes["error.type"] = error
        span = attempt.span
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(trace.StatusCode.ERROR)
        otel_context.detach(attempt.token)
        span.end()
        self._active.add(-1, attempt.active_attributes)
        self._duration.record(elapsed, attributes)

    # --- What happens between requests ----------------------------------------------------

    def _retry(self, event: RetryEvent) -> None:
        operation = self._current.get()
        if operation is not None:
            operation.span.add_event(
                "wemasy_async.retry",
                {"attempt": event.attempt, "error.type": event.error, "delay": event.delay},
            )

    def _waited(self, event: LimiterWaitEvent) -> None:
        self._waits.record(event.seconds, _sdk_attributes(event))
        operation = self._current.get()
        if operation is not None:
            operation.span.add_event(
                "wemasy_async.limiter.wait",
                {"attempt": event.attempt, "seconds": event.seconds},
                timestamp=_ago(event.seconds),
            )

    def _paused(self, event: PauseEvent) -> None:
        self._pauses.record(event.seconds, _sdk_attributes(event))
        operation = self._current.get()
        if operation is not None:
            operation.span.add_event(
                "wemasy_async.rate_limit.pause",
                {"attempt": event.attempt, "seconds": event.seconds},
            )


def _sdk_attributes(event: LimiterWaitEvent | PauseEvent) -> Attributes:
    return {"wemasy_async.provider": event.provider, "wemasy_async.operation": event.operation}


def _set_if_known(span: trace.Span, name: str, value: int | None) -> None:
    if value is not None:
        span.set_attribute(name, value)


def _ago(seconds: float) -> int:
    """The time ``seconds`` ago, in OpenTelemetry's nanoseconds since the epoch."""
    return time.time_ns() - int(seconds * 1e9)
