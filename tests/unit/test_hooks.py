"""Hooks: the typed events of :mod:`wemasy_async.hooks`, through the public ``Client``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import msgspec
import pytest

from wemasy_async import (
    Client,
    Event,
    InternalServerError,
    InvalidRequestError,
    PauseEvent,
    RateLimit,
    RateLimitInfo,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from wemasy_async.testing import FakeLoop, FakeWemasy

# Long enough (16+) to be blanked wherever it occurs, so a leak would show as itself.
TOKEN = "hooks-token-0123456789abcdef"
GET = "/services/ai/v1/conversations/get"
CHAT = "/services/ai/v1/chat"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=5, conversations=5, token=TOKEN) as server:
        yield server


def make_client(fake: FakeWemasy, *hooks: object, rate_limit: RateLimit | bool = False) -> Client:
    return Client(
        "wemasy",
        base_url=fake.url,
        token=TOKEN,
        rate_limit=rate_limit,
        hooks=list(hooks),  # type: ignore[arg-type]  # tests pass non-callables too
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]


async def test_a_call_emits_a_request_and_a_response(fake: FakeWemasy) -> None:
    recorder = Recorder()
    async with make_client(fake, recorder) as client:
        await client.get_conversation(3)
    request, response = recorder.events
    assert request == RequestEvent(
        provider="wemasy", operation="get_conversation", method="POST", path="/api" + GET, attempt=1
    )
    assert isinstance(response, ResponseEvent)
    assert (response.operation, response.path, response.attempt) == (
        "get_conversation",
        "/api" + GET,
        1,
    )
    assert response.status == 200
    assert 0 < response.elapsed < 5
    assert isinstance(response.rate_limit, RateLimitInfo)
    assert response.rate_limit.limit is not None


async def test_events_are_frozen_and_never_hold_the_token(fake: FakeWemasy) -> None:
    recorder = Recorder()
    fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
    async with make_client(fake, recorder) as client:
        await client.get_conversation(1)
        await client.chat("hello")
    assert recorder.kinds().count("RetryEvent") == 1
    for event in recorder.events:
        with pytest.raises(AttributeError):
            event.attempt = 9  # type: ignore[misc]
        assert TOKEN not in msgspec.json.encode(event).decode()
        assert TOKEN not in repr(event)


async def test_async_hooks_are_awaited_in_order(fake: FakeWemasy) -> None:
    seen: list[str] = []

    async def first(event: Event) -> None:
        seen.append("first " + type(event).__name__)

    def second(event: Event) -> None:
        seen.append("second " + type(event).__name__)

    async with make_client(fake, first, second) as client:
        await client.list_messages(2)
    assert seen == [
        "first RequestEvent",
        "second RequestEvent",
        "first ResponseEvent",
        "second ResponseEvent",
    ]


async def test_a_retry_is_an_event_between_the_attempts(fake: FakeWemasy) -> None:
    recorder = Recorder()
    fake.queue_error(503, path=GET, headers={"Retry-After": "0"})
    async with make_client(fake, recorder) as client:
        await client.get_conversation(2)
    assert recorder.kinds() == [
        "RequestEvent",
        "ResponseEvent",
        "RetryEvent",
        "RequestEvent",
        "ResponseEvent",
    ]
    _first, failed, retry, second, succeeded = recorder.events
    assert isinstance(failed, ResponseEvent)
    assert failed.status == 503
    assert retry == RetryEvent(
        provider="wemasy",
        operation="get_conversation",
        method="POST",
        path="/api" + GET,
        attempt=1,
        error="InternalServerError",
        delay=0.0,
    )
    assert isinstance(second, RequestEvent)
    assert second.attempt == 2
    assert isinstance(succeeded, ResponseEvent)
    assert succeeded.attempt == 2


async def test_a_call_that_is_not_retried_emits_no_retry(fake: FakeWemasy) -> None:
    recorder = Recorder()
    fake.queue_error(503, path=CHAT)  # chat is not idempotent: no hint, no retry
    async with make_client(fake, recorder) as client:
        with pytest.raises(InternalServerError):
            await client.chat("hello")
    assert recorder.kinds() == ["RequestEvent", "ResponseEvent"]


async def test_a_429_with_the_limiter_is_a_pause(fake: FakeWemasy) -> None:
    recorder = Recorder()
    fake.queue_error(429, path=CHAT, headers={"Retry-After": "0.1"})
    async with make_client(fake, recorder, rate_limit=RateLimit(window=1.0)) as client:
        await client.chat("once")
    assert recorder.kinds() == [
        "RequestEvent",
        "ResponseEvent",
        "PauseEvent",
        "RetryEvent",
        "RequestEvent",
        "ResponseEvent",
    ]
    response, pause, retry = recorder.events[1:4]
    assert isinstance(response, ResponseEvent)
    assert response.status == 429
    assert response.rate_limit.retry_after == pytest.approx(0.1)
    assert pause == PauseEvent(
        provider="wemasy",
        operation="chat",
        method="POST",
        path="/api" + CHAT,
        attempt=1,
        seconds=0.1,
    )
    # The limiter holds the key for the pause; the retry itself does not sleep on top.
    assert isinstance(retry, RetryEvent)
    assert retry.delay == 0.0


async def test_the_path_has_no_query_values() -> None:
    recorder = Recorder()
    async with FakeLoop(seed=1, conversations=2, token=TOKEN) as fake:
        conversation_id = fake.conversation_ids[0]
        async with Client(
            "loop", base_url=fake.url, token=TOKEN, rate_limit=False, hooks=[recorder]
        ) as client:
            await client.list_messages(conversation_id, limit=1)
    request = recorder.events[0]
    assert isinstance(request, RequestEvent)
    assert request.path == f"/v1/conversations/{conversation_id}/messages"
    assert "limit" not in request.path
    assert "?" not in request.path


async def test_a_failing_hook_is_logged_once_and_never_breaks_the_call(
    fake: FakeWemasy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wemasy_async.hooks")
    recorder = Recorder()

    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    async def broken_async(event: Event) -> None:
        raise ValueError("async hook bug")

    async with make_client(fake, broken, broken_async, recorder) as client:
        assert (await client.get_conversation(1)).id == "1"
        await client.get_conversation(2)
    # The hooks after a broken one still see every event.
    assert len(recorder.events) == 4
    records = [r for r in caplog.records if r.name == "wemasy_async.hooks"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per broken hook
    assert {r.exc_info[1].__class__ for r in warnings if r.exc_info} == {RuntimeError, ValueError}
    assert "broken" in warnings[0].getMessage()
    assert [r.levelno for r in records].count(logging.DEBUG) == 6  # the later failures
    assert all(TOKEN not in r.getMessage() for r in records)


@pytest.mark.parametrize(
    "hooks",
    ["print", print, [1], [print, None], {"a": print}, 3],
    ids=["str", "bare-callable", "int-item", "none-item", "dict", "int"],
)
def test_hooks_must_be_a_sequence_of_callables(hooks: object) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Client("wemasy", token=TOKEN, hooks=hooks)  # type: ignore[arg-type]
    assert raised.value.argument == "hooks"


async def test_with_options_replaces_the_hooks(fake: FakeWemasy) -> None:
    original, replacement = Recorder(), Recorder()
    async with make_client(fake, original) as client:
        await client.with_options(hooks=[replacement]).get_conversation(1)
        await client.with_options(hooks=None).get_conversation(1)
        await client.with_options(timeout=5).get_conversation(1)  # keeps the hooks
        with pytest.raises(InvalidRequestError):
            client.with_options(hooks=[42])  # type: ignore[list-item]
    assert replacement.kinds() == ["RequestEvent", "ResponseEvent"]
    assert original.kinds() == ["RequestEvent", "ResponseEvent"]


async def test_a_connection_failure_is_a_request_then_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    async with FakeWemasy(conversations=1, token=TOKEN) as fake:
        fake.queue_disconnect(times=1, path=GET)
        async with make_client(fake, recorder) as client:
            await client.get_conversation(1)
    assert recorder.kinds() == ["RequestEvent", "RetryEvent", "RequestEvent", "ResponseEvent"]
    retry = recorder.events[1]
    assert isinstance(retry, RetryEvent)
    assert retry.error == "APIConnectionError"


@pytest.mark.parametrize("kind", [RequestEvent, ResponseEvent, RetryEvent, PauseEvent])
def test_events_are_frozen_untracked_structs(kind: type[msgspec.Struct]) -> None:
    config = kind.__struct_config__
    assert config.frozen
    assert not config.gc  # nothing in them can form a cycle: no GC tracking needed
