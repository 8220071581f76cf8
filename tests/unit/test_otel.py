"""wemasy_async.otel: spans and metrics, recorded by the real OpenTelemetry SDK (in memory)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from wemasy_async import Client, Hook, InternalServerError, NotFoundError, RateLimit
from wemasy_async.otel import OpenTelemetryHook
from wemasy_async.testing import FakeWemasy

TOKEN = "otel-token-0123456789abcdef"
GET = "/services/ai/v1/conversations/get"
CHAT = "/services/ai/v1/chat"


@dataclass
class Telemetry:
    """A tracer provider and a meter provider of the real SDK, recording in memory."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def hook(self) -> OpenTelemetryHook:
        return OpenTelemetryHook(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=7, conversations=6, token=TOKEN) as server:
        yield server


def make_client(fake: FakeWemasy, *hooks: Hook, **options: Any) -> Client:
    options.setdefault("rate_limit", False)
    return Client("wemasy", base_url=fake.url, token=TOKEN, hooks=list(hooks), **options)


def times(span: ReadableSpan) -> tuple[int, int]:
    """When ``span`` started and ended (it has ended)."""
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time, span.end_time


def port_of(fake: FakeWemasy) -> int:
    return int(fake.url.removeprefix("http://").split("/")[0].split(":")[1])


async def test_a_retried_call_is_two_client_spans_under_one_operation_span(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
    async with make_client(fake, telemetry.hook()) as client:
        await client.get_conversation(2)
    (operation,) = telemetry.named("wemasy get_conversation")
    first, second = telemetry.named("POST")
    assert operation.kind is SpanKind.INTERNAL
    assert operation.status.status_code is StatusCode.UNSET
    assert operation.attributes == {
        "wemasy_async.provider": "wemasy",
        "wemasy_async.operation": "get_conversation",
        "server.address": "127.0.0.1",
        "server.port": port_of(fake),
    }
    assert [event.name for event in operation.events] == ["wemasy_async.retry"]
    assert operation.events[0].attributes == {
        "attempt": 1,
        "error.type": "InternalServerError",
        "delay": 0.0,
    }
    common = {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": port_of(fake),
        "url.full": fake.url + GET,
    }
    for span in (first, second):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == operation.context.span_id
        assert span.context.trace_id == operation.context.trace_id
        assert times(operation)[0] <= times(span)[0] <= times(span)[1] <= times(operation)[1]
    assert first.attributes == {**common, "http.response.status_code": 503, "error.type": "503"}
    assert first.status.status_code is StatusCode.ERROR
    assert second.attributes == {
        **common,
        "http.response.status_code": 200,
        "http.request.resend_count": 1,
    }
    assert second.status.status_code is StatusCode.UNSET
    assert times(first)[1] <= times(second)[0]


async def test_the_request_duration_and_in_flight_metrics(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
    async with make_client(fake, telemetry.hook()) as client:
        await client.get_conversation(2)
        await client.get_conversation(3)
    server = {"server.address": "127.0.0.1", "server.port": port_of(fake)}
    durations = telemetry.points("http.client.request.duration")
    assert all(isinstance(point, HistogramDataPoint) for point in durations)
    by_status = {point.attributes["http.response.status_code"]: point for point in durations}
    assert by_status[503].count == 1
    assert by_status[503].attributes == {
        "http.request.method": "POST",
        **server,
        "http.response.status_code": 503,
        "error.type": "503",
    }
    assert by_status[200].count == 2
    assert 0 < by_status[200].sum < 10
    (active,) = telemetry.points("http.client.active_requests")
    assert isinstance(active, NumberDataPoint)
    assert active.value == 0  # two sent and answered
    assert active.attributes == {"http.request.method": "POST", **server}


async def test_requests_in_flight_are_counted_while_they_run(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    sent: list[object] = []
    both_sent = asyncio.Event()

    def count(event: object) -> None:  # after the OpenTelemetry hook, which counts first
        sent.append(event)
        if len(sent) == 2:
            both_sent.set()

    fake.queue_delay(0.3, path=GET, times=2)
    async with make_client(fake, telemetry.hook(), count) as client:
        calls = [asyncio.ensure_future(client.get_conversation(i)) for i in (1, 2)]
        await both_sent.wait()  # two requests, no response yet
        (active,) = telemetry.points("http.client.active_requests")
        assert active.value == 2
        await asyncio.gather(*calls)
    (active,) = telemetry.points("http.client.active_requests")
    assert active.value == 0


async def test_concurrent_calls_each_have_their_own_spans(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    async with make_client(fake, telemetry.hook()) as client:
        await asyncio.gather(*(client.get_conversation(i) for i in range(1, 6)))
    operations = telemetry.named("wemasy get_conversation")
    requests = telemetry.named("POST")
    assert len(operations) == len(requests) == 5
    parents = sorted(span.parent.span_id for span in requests if span.parent is not None)
    assert parents == sorted(span.context.span_id for span in operations)
    assert len({span.context.trace_id for span in operations}) == 5


async def test_operation_spans_nest_under_the_callers_span(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    async with make_client(fake, telemetry.hook()) as client:
        with tracer.start_as_current_span("handle request") as parent:
            await client.list_messages(1)
            assert trace.get_current_span() is parent
    (operation,) = telemetry.named("wemasy list_messages")
    assert operation.parent is not None
    assert operation.parent.span_id == parent.get_span_context().span_id


async def test_chat_spans_carry_the_token_usage(fake: FakeWemasy, telemetry: Telemetry) -> None:
    async with make_client(fake, telemetry.hook()) as client:
        reply = await client.chat("hello, how are you")
    assert reply.usage is not None
    (operation,) = telemetry.named("wemasy chat")
    assert operation.attributes is not None
    assert operation.attributes["gen_ai.operation.name"] == "chat"
    assert operation.attributes["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert operation.attributes["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    (request,) = telemetry.named("POST")
    assert request.attributes is not None
    assert request.attributes["url.full"] == fake.url + CHAT


async def test_an_error_status_marks_both_spans(fake: FakeWemasy, telemetry: Telemetry) -> None:
    async with make_client(fake, telemetry.hook()) as client:
        with pytest.raises(NotFoundError):
            await client.get_conversation(999_999)
    (operation,) = telemetry.named("wemasy get_conversation")
    (request,) = telemetry.named("POST")
    assert operation.status.status_code is StatusCode.ERROR
    assert operation.attributes is not None
    assert operation.attributes["error.type"] == "NotFoundError"
    assert request.attributes is not None
    assert request.attributes["error.type"] == "404"
    assert request.attributes["http.response.status_code"] == 404


async def test_a_timeout_is_a_client_span_without_a_status(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    fake.queue_delay(1.0, path=GET)
    async with make_client(fake, telemetry.hook(), timeout=0.05, retry=False) as client:
        with pytest.raises(TimeoutError):
            await client.get_conversation(1)
    (request,) = telemetry.named("POST")
    assert request.attributes is not None
    assert request.attributes["error.type"] == "APITimeoutError"
    assert "http.response.status_code" not in request.attributes
    assert request.status.status_code is StatusCode.ERROR
    (duration,) = telemetry.points("http.client.request.duration")
    assert duration.attributes["error.type"] == "APITimeoutError"
    assert duration.sum >= 0.04


async def test_the_client_span_is_current_while_aiohttp_sends(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    # What aiohttp's own instrumentation sees: it starts its span from the current context.
    current: list[trace.Span] = []

    async def on_request_start(*_: object) -> None:
        current.append(trace.get_current_span())

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
        async with make_client(fake, telemetry.hook(), session=session) as client:
            await client.get_conversation(1)
    requests = telemetry.named("POST")
    assert [span.get_span_context().span_id for span in current] == [
        span.context.span_id for span in requests
    ]


async def test_cancellation_ends_the_spans_and_restores_the_context(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    fake.queue_delay(1.0, path=GET)
    async with make_client(fake, telemetry.hook()) as client:
        with tracer.start_as_current_span("caller") as caller:
            before = otel_context.get_current()
            # Cancelled in this very task: a context left attached would show here.
            with anyio.move_on_after(0.1) as scope:
                await client.get_conversation(1)
            assert scope.cancelled_caught
            assert otel_context.get_current() == before
            assert trace.get_current_span() is caller
    (operation,) = telemetry.named("wemasy get_conversation")
    (request,) = telemetry.named("POST")
    for span in (operation, request):
        assert span.end_time is not None
        assert span.attributes is not None
        assert span.attributes["error.type"] == "CancelledError"
    (active,) = telemetry.points("http.client.active_requests")
    assert active.value == 0


async def test_a_limiter_wait_and_a_429_pause_are_recorded(
    fake: FakeWemasy, telemetry: Telemetry
) -> None:
    fake.queue_error(429, path=CHAT, headers={"Retry-After": "0.1"})
    async with make_client(fake, telemetry.hook(), rate_limit=RateLimit(window=1.0)) as client:
        await client.chat("once")
    (operation,) = telemetry.named("wemasy chat")
    assert [event.name for event in operation.events] == [
        "wemasy_async.rate_limit.pause",
        "wemasy_async.retry",
        "wemasy_async.limiter.wait",
    ]
    labels = {"wemasy_async.provider": "wemasy", "wemasy_async.operation": "chat"}
    (pause,) = telemetry.points("wemasy_async.rate_limit.pause.duration")
    assert (pause.count, pause.sum, pause.attributes) == (1, pytest.approx(0.1), labels)
    (wait,) = telemetry.points("wemasy_async.limiter.wait.duration")
    assert wait.count == 1
    assert 0.05 < wait.sum < 5  # the retry waited for the pause to end
    assert wait.attributes == labels
    first, second = telemetry.named("POST")
    assert first.attributes is not None
    assert first.attributes["http.response.status_code"] == 429
    assert second.attributes is not None
    assert second.attributes["http.request.resend_count"] == 1


def _attribute_values(telemetry: Telemetry) -> list[str]:
    values: list[str] = []
    for span in telemetry.finished():
        values += [span.name, span.status.description or ""]
        values += [str(v) for v in (span.attributes or {}).values()]
        values += [str(k) for k in (span.attributes or {})]
        for event in span.events:
            values += [event.name, *(str(v) for v in (event.attributes or {}).values())]
    data = telemetry.metrics.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for found in scope.metrics:
                for point in found.data.data_points:
                    values += [str(v) for v in (point.attributes or {}).values()]
    return values


async def test_no_attribute_holds_the_token(fake: FakeWemasy, telemetry: Telemetry) -> None:
    fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
    fake.queue_disconnect(times=1, path=GET)
    fake.queue_error(429, path=CHAT, headers={"Retry-After": "0.05"})
    async with make_client(fake, telemetry.hook(), rate_limit=RateLimit(window=1.0)) as client:
        await client.get_conversation(1)
        await client.chat("hello")
        with pytest.raises(NotFoundError):
            await client.get_conversation(999_999)
        await client.list_messages(2, limit=1)
        async with client.fetch_conversations([3, 4]) as batch:
            _ = [result async for result in batch]
    values = _attribute_values(telemetry)
    assert len(telemetry.finished()) >= 14
    assert any(fake.url in value for value in values)  # the scan sees the URLs
    for value in values:
        assert TOKEN not in value
        assert "Bearer" not in value
        assert "?" not in value  # no query


async def test_a_failing_hook_or_telemetry_never_breaks_the_call(
    fake: FakeWemasy, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise RuntimeError("processor bug")

    broken = TracerProvider()
    broken.add_span_processor(Exploding())

    def failing(event: object) -> None:
        raise ValueError("hook bug")

    before = otel_context.get_current()
    caplog.set_level(logging.WARNING, logger="wemasy_async.hooks")
    fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
    hooks: list[Hook] = [
        failing,
        OpenTelemetryHook(tracer_provider=broken),
        telemetry.hook(),
        failing,
    ]
    async with make_client(fake, *hooks) as client:
        assert (await client.get_conversation(1)).id == "1"
        fake.queue_error(503, path=CHAT)
        with pytest.raises(InternalServerError):
            await client.chat("hi")
    assert otel_context.get_current() == before
    assert len(telemetry.named("POST")) == 3  # the healthy hook still records everything
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # once per failing hook (the same function twice)
    (otel,) = [r for r in warnings if "OpenTelemetryHook" in r.getMessage()]
    assert otel.exc_info is not None
    assert isinstance(otel.exc_info[1], RuntimeError)
    broken.shutdown()


def test_the_hook_defaults_to_the_global_providers() -> None:
    # In a process of its own: the global providers can be set only once per process.
    script = """
import asyncio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from wemasy_async import Client
from wemasy_async.otel import OpenTelemetryHook
from wemasy_async.testing import FakeWemasy

hook = OpenTelemetryHook()  # made before the providers are set: they are looked up later
spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

async def main():
    async with FakeWemasy(conversations=1, token="t" * 20) as fake:
        async with Client("wemasy", base_url=fake.url, token="t" * 20, hooks=[hook]) as c:
            await c.get_conversation(1)

asyncio.run(main())
names = [m.name for r in reader.get_metrics_data().resource_metrics
         for s in r.scope_metrics for m in s.metrics]
print(sorted(s.name for s in spans.get_finished_spans()), "http.client.request.duration" in names)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['POST', 'wemasy get_conversation'] True"


def test_importing_the_package_does_not_import_opentelemetry() -> None:
    script = (
        "import sys, wemasy_async, wemasy_async.hooks\n"
        "wemasy_async.Client('wemasy', token='t' * 20, hooks=[print])\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_extra_the_import_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "wemasy_async.otel")
    with pytest.raises(ImportError, match=r"wemasy-async\[otel\]") as raised:
        importlib.import_module("wemasy_async.otel")
    assert isinstance(raised.value.__cause__, ImportError)


def test_the_hook_receives_every_kind_and_has_a_plain_repr(telemetry: Telemetry) -> None:
    from wemasy_async import ALL_EVENTS

    hook = telemetry.hook()
    assert hook.event_kinds == ALL_EVENTS
    assert repr(hook) == "<OpenTelemetryHook>"
