"""The hook events beyond the first four kinds: who receives them, when, and what they hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from wemasy_async import (
    ALL_EVENTS,
    CORE_EVENTS,
    AnyEvent,
    BatchProgressEvent,
    Client,
    InvalidRequestError,
    LimiterWaitEvent,
    NoResponseEvent,
    NotFoundError,
    OperationEndEvent,
    OperationStartEvent,
    PauseEvent,
    RateLimit,
    RequestEvent,
    ResponseEvent,
)
from wemasy_async.ratelimit import LocalStore
from wemasy_async.testing import FakeWemasy

TOKEN = "events-token-0123456789abcdef"
GET = "/services/ai/v1/conversations/get"
CHAT = "/services/ai/v1/chat"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=3, conversations=6, token=TOKEN) as server:
        yield server


class Everything:
    """A hook receiving every kind of event."""

    event_kinds = ALL_EVENTS

    def __init__(self) -> None:
        self.seen: list[AnyEvent] = []
        self.sent = asyncio.Event()  # set by the first request

    def __call__(self, event: AnyEvent) -> None:
        self.seen.append(event)
        if isinstance(event, RequestEvent):
            self.sent.set()

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.seen]

    def of(self, kind: type[AnyEvent]) -> list[AnyEvent]:
        return [event for event in self.seen if isinstance(event, kind)]


def make_client(fake: FakeWemasy, *hooks: object, **options: object) -> Client:
    options.setdefault("rate_limit", False)
    return Client(
        "wemasy",
        base_url=fake.url,
        token=TOKEN,
        hooks=list(hooks),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


async def test_an_operation_starts_and_ends_around_its_requests(fake: FakeWemasy) -> None:
    hook = Everything()
    async with make_client(fake, hook) as client:
        await client.get_conversation(2)
    assert hook.kinds() == [
        "OperationStartEvent",
        "RequestEvent",
        "ResponseEvent",
        "OperationEndEvent",
    ]
    start, end = hook.seen[0], hook.seen[-1]
    host, port = fake.url.removeprefix("http://").split("/")[0].split(":")
    assert start == OperationStartEvent(
        provider="wemasy",
        operation="get_conversation",
        origin=f"http://{host}:{port}",
        host=host,
        port=int(port),
    )
    assert isinstance(end, OperationEndEvent)
    assert (end.operation, end.error, end.usage) == ("get_conversation", None, None)
    response = hook.seen[2]
    assert isinstance(response, ResponseEvent)
    assert response.elapsed <= end.elapsed < 5


async def test_a_hook_without_event_kinds_sees_only_the_core_kinds(fake: FakeWemasy) -> None:
    core: list[object] = []
    everything = Everything()
    async with make_client(fake, core.append, everything) as client:
        await client.chat("hi")
        async with client.fetch_conversations([1, 2]) as batch:
            _ = [result async for result in batch]
    assert {type(event) for event in core} <= set(CORE_EVENTS)
    assert len(core) == 6  # request and response of each call
    assert len(everything.seen) > len(core)


async def test_chat_ends_with_the_token_usage(fake: FakeWemasy) -> None:
    hook = Everything()
    async with make_client(fake, hook) as client:
        reply = await client.chat("hello there")
    (end,) = hook.of(OperationEndEvent)
    assert isinstance(end, OperationEndEvent)
    assert end.usage is not None
    assert end.usage == reply.usage


async def test_a_failed_operation_ends_with_its_error(fake: FakeWemasy) -> None:
    hook = Everything()
    async with make_client(fake, hook) as client:
        with pytest.raises(NotFoundError):
            await client.get_conversation(999_999)
    end = hook.seen[-1]
    assert isinstance(end, OperationEndEvent)
    assert end.error == "NotFoundError"


async def test_a_dropped_connection_is_a_request_without_response(fake: FakeWemasy) -> None:
    hook = Everything()
    fake.queue_disconnect(times=1, path=GET)
    async with make_client(fake, hook) as client:
        await client.get_conversation(1)
    assert hook.kinds() == [
        "OperationStartEvent",
        "RequestEvent",
        "NoResponseEvent",
        "RetryEvent",
        "RequestEvent",
        "ResponseEvent",
        "OperationEndEvent",
    ]
    failed = hook.seen[2]
    assert isinstance(failed, NoResponseEvent)
    assert (failed.error, failed.attempt, failed.path) == ("APIConnectionError", 1, "/api" + GET)
    assert 0 <= failed.elapsed < 5


async def test_a_timeout_is_a_request_without_response(fake: FakeWemasy) -> None:
    hook = Everything()
    fake.queue_delay(1.0, path=GET)
    async with make_client(fake, hook, timeout=0.05, retry=False) as client:
        with pytest.raises(TimeoutError):
            await client.get_conversation(1)
    assert hook.kinds()[-2:] == ["NoResponseEvent", "OperationEndEvent"]
    failed, end = hook.seen[-2:]
    assert isinstance(failed, NoResponseEvent)
    assert failed.error == "APITimeoutError"
    assert failed.elapsed >= 0.04
    assert isinstance(end, OperationEndEvent)
    assert end.error == "APITimeoutError"


async def test_cancellation_still_ends_the_request_and_the_operation(fake: FakeWemasy) -> None:
    hook = Everything()
    fake.queue_delay(1.0, path=GET)
    async with make_client(fake, hook) as client:
        task = asyncio.ensure_future(client.get_conversation(1))
        await hook.sent.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert hook.kinds() == [
        "OperationStartEvent",
        "RequestEvent",
        "NoResponseEvent",
        "OperationEndEvent",
    ]
    failed, end = hook.seen[2:]
    assert isinstance(failed, NoResponseEvent)
    assert failed.error == "CancelledError"
    assert isinstance(end, OperationEndEvent)
    assert end.error == "CancelledError"


async def test_a_wait_for_the_limiter_is_an_event(fake: FakeWemasy) -> None:
    # Until the first answer tells the limit, one request probes and the others wait.
    hook = Everything()
    fake.queue_delay(0.05, path=GET)
    async with make_client(fake, hook, rate_limit=RateLimit()) as client:
        await asyncio.gather(client.get_conversation(1), client.get_conversation(2))
    (wait,) = hook.of(LimiterWaitEvent)
    assert isinstance(wait, LimiterWaitEvent)
    assert 0.03 < wait.seconds < 5
    assert (wait.operation, wait.method, wait.path, wait.attempt) == (
        "get_conversation",
        "POST",
        "/api" + GET,
        1,
    )
    # Told before its request, after the other request's response.
    position = hook.seen.index(wait)
    assert isinstance(hook.seen[position + 1], RequestEvent)
    assert hook.kinds()[:position].count("ResponseEvent") == 1


async def test_a_request_that_did_not_wait_has_no_wait_event(fake: FakeWemasy) -> None:
    hook = Everything()
    async with make_client(fake, hook, rate_limit=RateLimit()) as client:
        await client.get_conversation(1)
        await client.get_conversation(2)
    assert not hook.of(LimiterWaitEvent)


async def test_a_batch_reports_its_progress_after_every_result(fake: FakeWemasy) -> None:
    hook = Everything()
    async with make_client(fake, hook) as client:
        ids = [1, 2, 999_999, 3]
        async with client.fetch_conversations(iter(ids), concurrency=1) as batch:
            results = [result async for result in batch]
    progress = [event for event in hook.seen if isinstance(event, BatchProgressEvent)]
    assert [(p.done, p.succeeded, p.failed) for p in progress] == [
        (1, 1, 0),
        (2, 2, 0),
        (3, 2, 1),
        (4, 3, 1),
    ]
    assert [p.total for p in progress] == [1, 2, 3, 4]
    assert all(p.operation == "get_conversation" and p.provider == "wemasy" for p in progress)
    assert sum(not result.ok for result in results) == 1
    # One worker: the last id is read before the iterator says it has no more.
    assert not any(p.exhausted for p in progress)
    assert progress[-1].elapsed >= progress[0].elapsed >= 0


async def test_a_batch_of_messages_reports_too_and_counts_ids_in_flight(fake: FakeWemasy) -> None:
    hook = Everything()
    client = make_client(fake, hook)
    async with client, client.fetch_messages(range(1, 6), concurrency=5) as batch:
        _ = [result async for result in batch]
    progress = [event for event in hook.seen if isinstance(event, BatchProgressEvent)]
    assert [p.done for p in progress] == [1, 2, 3, 4, 5]
    assert {p.operation for p in progress} == {"list_messages"}
    assert all(p.total >= p.done for p in progress)
    assert progress[-1].total == 5
    assert progress[-1].exhausted  # five workers: one of them met the end of the ids


async def test_events_of_new_kinds_are_frozen_and_never_hold_the_token(fake: FakeWemasy) -> None:
    hook = Everything()
    fake.queue_disconnect(times=1, path=GET)
    async with make_client(fake, hook, rate_limit=RateLimit()) as client:
        await asyncio.gather(client.get_conversation(1), client.get_conversation(2))
        await client.chat("hello")
        async with client.fetch_conversations([3, 4]) as batch:
            _ = [result async for result in batch]
    # No 429 here (tests/unit/test_hooks.py has a pause).
    assert {type(event) for event in hook.seen} == set(ALL_EVENTS) - {PauseEvent}
    for event in hook.seen:
        assert not type(event).__struct_config__.gc
        with pytest.raises(AttributeError):
            event.provider = "x"  # type: ignore[misc]
        assert TOKEN not in msgspec.json.encode(event).decode()
        assert TOKEN not in repr(event)


@pytest.mark.parametrize(
    "kinds",
    ["RequestEvent", [RequestEvent, int], 3, [object]],
    ids=["str", "not-an-event", "int", "object"],
)
def test_event_kinds_must_be_event_classes(kinds: object) -> None:
    class Hook:
        event_kinds = kinds

        def __call__(self, event: object) -> None:
            pass

    with pytest.raises(InvalidRequestError) as raised:
        Client("wemasy", token=TOKEN, hooks=[lambda event: None, Hook()])
    assert raised.value.argument == "hooks"
    assert "hooks[1].event_kinds" in str(raised.value)


async def test_a_hook_may_name_only_the_kinds_it_wants(fake: FakeWemasy) -> None:
    seen: list[object] = []

    class Ends:
        event_kinds = (OperationEndEvent,)

        def __call__(self, event: object) -> None:
            seen.append(event)

    async with make_client(fake, Ends()) as client:
        await client.get_conversation(1)
        await client.list_messages(1)
    assert [type(event) for event in seen] == [OperationEndEvent, OperationEndEvent]


class StuckOnWait:
    """A hook that never returns from a limiter wait event (the caller is then cancelled)."""

    event_kinds = (LimiterWaitEvent,)

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def __call__(self, event: AnyEvent) -> None:
        self.waiting.set()
        await asyncio.Event().wait()


async def test_a_request_cancelled_in_its_wait_event_gives_its_send_back(
    fake: FakeWemasy,
) -> None:
    # The reservation is held once the wait ends; a hook cancelled while it is told must
    # not take the send with it (the next request would count it in flight for a window).
    hook = StuckOnWait()
    fake.queue_delay(0.05, path=GET)
    async with make_client(fake, hook, rate_limit=RateLimit()) as client:
        limiter = client.limiter
        assert limiter is not None
        probe = asyncio.create_task(client.get_conversation(1))
        waiter = asyncio.create_task(client.get_conversation(2))
        await asyncio.wait_for(hook.waiting.wait(), 5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await probe
        store = limiter.store
        assert isinstance(store, LocalStore)
        assert store.in_flight(limiter.key) == 0
        assert limiter.waiting == 0
        await client.get_conversation(3)  # and the next call works
