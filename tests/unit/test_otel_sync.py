"""wemasy_async.otel through the blocking client: its calls nest under the caller's span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.threaded import fake_wemasy_in_thread
from wemasy_async.otel import OpenTelemetryHook
from wemasy_async.sync import Client
from wemasy_async.testing import FakeWemasy

TOKEN = "sync-token"


@pytest.fixture
def fake() -> Iterator[FakeWemasy]:
    """A fake Wemasy served from a loop in a thread of its own."""
    with fake_wemasy_in_thread(seed=3, conversations=40, token=TOKEN) as server:
        yield server


def test_a_blocking_call_nests_under_the_callers_span(fake: FakeWemasy) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    hook = OpenTelemetryHook(tracer_provider=provider)
    tracer = provider.get_tracer("app")
    with (
        Client("wemasy", base_url=fake.url, token=TOKEN, hooks=[hook]) as client,
        tracer.start_as_current_span("caller") as caller,
    ):
        client.get_conversation(1)
    request, operation, _caller = spans.get_finished_spans()
    # The call runs in the client's loop thread, in a copy of the calling thread's context.
    assert operation.parent is not None
    assert operation.parent.span_id == caller.get_span_context().span_id
    assert request.parent is not None
    assert request.parent.span_id == operation.context.span_id
    provider.shutdown()
