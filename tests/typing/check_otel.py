"""Static typing of :mod:`wemasy_async.otel` and of hooks taking every kind of event.

As ``check_client.py``: each ``assert_type`` pins a type, each ``type: ignore[code]`` a call
that must stay a type error.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from typing_extensions import assert_type

from wemasy_async import (
    ALL_EVENTS,
    AnyEvent,
    BatchProgressEvent,
    Client,
    Hook,
    LimiterWaitEvent,
    OperationEndEvent,
)
from wemasy_async.otel import OpenTelemetryHook


def otel_hook() -> None:
    hook = OpenTelemetryHook(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    Client("wemasy", token="t", hooks=[hook, OpenTelemetryHook()])
    checked: Hook = hook  # takes every kind, so also the core ones
    assert_type(checked, Hook)
    OpenTelemetryHook(TracerProvider())  # type: ignore[call-arg]


def every_kind() -> None:
    class Everything:
        event_kinds = ALL_EVENTS

        def __call__(self, event: AnyEvent) -> None:
            if isinstance(event, BatchProgressEvent):
                assert_type(event.total, int)
            elif isinstance(event, OperationEndEvent):
                assert_type(event.error, str | None)
            elif isinstance(event, LimiterWaitEvent):
                assert_type(event.seconds, float)

    Client("wemasy", token="t", hooks=[Everything()])
