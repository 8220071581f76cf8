"""The Loop client end to end against the bundled fake, over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest

from wemasy_async import (
    AuthenticationError,
    Client,
    Conversation,
    InternalServerError,
    InvalidRequestError,
    Message,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    TokenUsage,
    UnsupportedOperationError,
)
from wemasy_async.providers.loop import LoopHistory
from wemasy_async.testing import FakeLoop
from wemasy_async.testing.loop import MESSAGES_PATH

TOKEN = "e2e-token"


@pytest.fixture
async def fake() -> AsyncIterator[FakeLoop]:
    async with FakeLoop(seed=11, conversations=12, long_conversations=2, token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(fake: FakeLoop) -> AsyncIterator[Client]:
    async with Client("loop", base_url=fake.url, token=TOKEN, retry=False) as c:
        yield c


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_message(message: Message, wire: dict[str, Any]) -> None:
    assert message.id == wire["id"]
    assert message.conversation_id == wire["conversation_id"]
    assert message.role == wire["role"]
    assert message.content == wire["content"]
    assert message.metadata == wire["metadata"]
    assert message.created_at == _when(wire["created_at"])
    assert message.created_at is not None
    assert message.created_at.tzinfo is not None
    usage = wire["token_usage"]
    assert message.usage == (None if usage is None else TokenUsage(**usage))
    wire_calls = wire["tool_calls"] or []
    assert [(c.id, c.name, c.arguments, c.type) for c in message.tool_calls] == [
        (c["id"], c["function"]["name"], c["function"]["arguments"], c["type"]) for c in wire_calls
    ]


async def test_list_messages_equals_server_state(client: Client, fake: FakeLoop) -> None:
    short = [cid for cid in fake.conversation_ids if cid not in fake.long_conversation_ids]
    for conversation_id in short:
        messages = await client.list_messages(conversation_id)
        wire = fake.conversations[conversation_id]
        assert len(messages) == len(wire)
        for message, wire_message in zip(messages, wire, strict=True):
            _assert_message(message, wire_message)
    # Complete in one answer: one request each, with no limit sent.
    assert [r.limit for r in fake.history_requests] == [None] * len(short)


async def test_tool_calls_survive_the_round_trip(client: Client, fake: FakeLoop) -> None:
    calling = [
        (cid, index)
        for cid, wire in fake.conversations.items()
        for index, message in enumerate(wire)
        if message["tool_calls"]
    ]
    assert calling, "the seeded data should contain tool calls"
    conversation_id, index = calling[0]
    messages = await client.list_messages(conversation_id)
    (call,) = messages[index].tool_calls
    assert call.parsed_arguments() == json.loads(
        fake.conversations[conversation_id][index]["tool_calls"][0]["function"]["arguments"]
    )
    assert messages[index].role == "assistant"
    assert messages[index + 1].role == "tool"


async def test_limit_is_sent_and_respected(client: Client, fake: FakeLoop) -> None:
    long_id = fake.long_conversation_ids[0]
    messages = await client.list_messages(long_id, limit=7)
    assert [m.id for m in messages] == [m["id"] for m in fake.conversations[long_id][:7]]
    messages = await client.list_messages(long_id, limit=1)
    assert len(messages) == 1
    assert [r.limit for r in fake.history_requests] == ["7", "1"]


async def test_truncated_conversation_is_fetched_fully_in_two_requests(
    client: Client, fake: FakeLoop
) -> None:
    long_id = fake.long_conversation_ids[1]
    messages = await client.list_messages(long_id)
    assert type(messages) is list
    assert len(messages) == 120 > fake.default_limit
    assert [m.id for m in messages] == [m["id"] for m in fake.conversations[long_id]]
    assert [(r.conversation_id, r.limit, r.status) for r in fake.history_requests] == [
        (long_id, None, 200),
        (long_id, "120", 200),
    ]
    assert len(fake.requests) == 2


async def test_server_maximum_below_total_stops_after_one_follow_up() -> None:
    async with (
        FakeLoop(conversations=1, default_limit=10, max_limit=30) as server,
        Client("loop", base_url=server.url, token="t") as c,
    ):
        (only,) = server.conversation_ids
        messages = await c.list_messages(only)
        assert len(messages) == 30
        conversation = await c.get_conversation(only)
        assert conversation.messages is not None
        assert len(conversation.messages) == 30
        assert conversation.raw.total == 120  # the caller can tell
        assert [r.limit for r in server.history_requests] == [None, "120", None, "120"]


async def test_get_conversation_derived_fields(client: Client, fake: FakeLoop) -> None:
    for conversation_id in (fake.conversation_ids[3], fake.long_conversation_ids[0]):
        fake.reset_log()
        conversation = await client.get_conversation(conversation_id)
        wire = fake.conversations[conversation_id]
        assert isinstance(conversation, Conversation)
        assert conversation.id == conversation_id
        assert conversation.provider == "loop"
        assert conversation.messages is not None
        assert [m.id for m in conversation.messages] == [m["id"] for m in wire]
        assert conversation.started_at == _when(wire[0]["created_at"])
        assert conversation.last_activity_at == _when(wire[-1]["created_at"])
        assert conversation.cost_tokens == sum(
            m["token_usage"]["total_tokens"] for m in wire if m["token_usage"] is not None
        )
        assert conversation.status is None
        assert conversation.ended_at is None
        assert conversation.cost_amount is None
        assert isinstance(conversation.raw, LoopHistory)
        assert conversation.raw.total == len(wire)
        assert await client.list_messages(conversation_id) == conversation.messages
    # The long one: truncated, then asked again, for each of the two operations.
    assert [r.limit for r in fake.history_requests] == [None, "120", None, "120"]


async def test_uuid_object_id(client: Client, fake: FakeLoop) -> None:
    conversation_id = fake.conversation_ids[2]
    conversation = await client.get_conversation(uuid.UUID(conversation_id.upper()))
    assert conversation.id == conversation_id
    assert fake.history_requests[-1].conversation_id == conversation_id


async def test_unknown_id_is_not_found(client: Client) -> None:
    for call in (client.list_messages, client.get_conversation):
        with pytest.raises(NotFoundError) as info:
            await call(str(uuid.UUID(int=1)))
        assert info.value.message == "Conversation not found"
        assert info.value.code == "not_found"
        assert info.value.body == {"error": "not_found", "message": "Conversation not found"}


async def test_wrong_token_is_authentication_error(fake: FakeLoop) -> None:
    async with Client("loop", base_url=fake.url, token="wrong") as c:
        with pytest.raises(AuthenticationError) as info:
            await c.list_messages(fake.conversation_ids[0])
    assert info.value.code == "unauthorized"
    assert "wrong" not in str(info.value) + repr(info.value)
    assert fake.history_requests == []


async def test_queued_500_and_429(fake: FakeLoop) -> None:
    # Unpaced: with the limiter on, the 429 would (rightly) hold the key for 7 s.
    client = Client("loop", base_url=fake.url, token=TOKEN, retry=False, rate_limit=False)
    await _queued_500_and_429(client, fake)
    await client.aclose()


async def _queued_500_and_429(client: Client, fake: FakeLoop) -> None:
    conversation_id = fake.conversation_ids[0]
    fake.queue_error(500, path=MESSAGES_PATH)
    with pytest.raises(InternalServerError) as info:
        await client.get_conversation(conversation_id)
    assert info.value.code == "internal_server_error"
    fake.queue_error(429, path=MESSAGES_PATH, headers={"Retry-After": "7"})
    with pytest.raises(RateLimitError) as rate_info:
        await client.list_messages(conversation_id)
    assert rate_info.value.retry_after == 7.0
    assert rate_info.value.code == "rate_limited"
    assert len(await client.list_messages(conversation_id)) == len(
        fake.conversations[conversation_id]
    )


async def test_failure_of_the_follow_up_is_raised(client: Client, fake: FakeLoop) -> None:
    long_id = fake.long_conversation_ids[0]
    # The first answer is served; the follow-up gets the fault.
    fake.queue_error(200, body=b'{"total": 120, "messages": []}', path=MESSAGES_PATH)
    fake.queue_error(503, path=MESSAGES_PATH)
    with pytest.raises(InternalServerError) as info:
        await client.list_messages(long_id)
    assert info.value.status == 503
    assert len(fake.requests) == 2


async def test_garbage_success_body_is_decode_error(client: Client, fake: FakeLoop) -> None:
    fake.queue_error(200, body=b'{"total": 1, "messages": [{"role": "robot"}]}', path=MESSAGES_PATH)
    with pytest.raises(ResponseDecodeError) as info:
        await client.list_messages(fake.conversation_ids[0])
    assert "unknown message role 'robot'" in str(info.value)


HOSTILE_IDS = [
    "a/b",
    "a?b=1",
    "a#b",
    "%2e%2e",
    "..%2f",
    "%2F..%2F",
    "@evil.com",
    "user@evil.com:80",
    "ａｂ",
    "．．",
    "\u2215etc\u2215passwd",
    "a\\..\\b",
    "...",
    "a;b=c&d",
    "é",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_hostile_ids_reach_the_server_as_one_segment(
    client: Client, fake: FakeLoop, hostile: str
) -> None:
    with pytest.raises(NotFoundError):
        await client.list_messages(hostile, limit=3)
    with pytest.raises(NotFoundError):
        await client.get_conversation(hostile)
    assert [(r.conversation_id, r.limit) for r in fake.history_requests] == [
        (hostile, "3"),
        (hostile, None),
    ]
    for request in fake.requests:
        assert request.headers["Host"] == f"127.0.0.1:{fake.port}"
        assert request.path == f"/v1/conversations/{hostile}/messages"
        assert request.query == ({"limit": "3"} if request is fake.requests[0] else {})
    for recorded in fake.history_requests:
        raw = recorded.raw_path
        assert raw.startswith("/v1/conversations/")
        assert raw.endswith("/messages")
        assert raw.count("/") == 4  # the id added no segment
        assert "?" not in raw
        assert "#" not in raw


async def test_a_real_id_stored_under_a_hostile_name_is_served(
    client: Client, fake: FakeLoop
) -> None:
    hostile = "../a/b?c=d#e"
    fake.conversations[hostile] = [dict(fake.conversations[fake.conversation_ids[0]][0])]
    fake.invalidate(hostile)
    (message,) = await client.list_messages(hostile)
    assert message.content == fake.conversations[hostile][0]["content"]


@pytest.mark.parametrize("bad", ["", ".", "..", "a b", "a\nb", "\u200b", 7, None, b"id"])
async def test_invalid_ids_are_rejected_before_io(
    client: Client, fake: FakeLoop, bad: object
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await client.list_messages(bad)  # type: ignore[arg-type]
    assert info.value.argument == "conversation_id"
    with pytest.raises(InvalidRequestError):
        await client.get_conversation(bad)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_unsupported_operations_never_reach_the_server(
    client: Client, fake: FakeLoop
) -> None:
    with pytest.raises(UnsupportedOperationError):
        await client.list_conversations()
    with pytest.raises(UnsupportedOperationError):
        client.iter_conversations()
    with pytest.raises(UnsupportedOperationError):
        await client.chat("hi")
    assert fake.requests == []


async def test_timestamps_are_utc(client: Client, fake: FakeLoop) -> None:
    conversation = await client.get_conversation(fake.conversation_ids[0])
    assert conversation.started_at is not None
    assert conversation.started_at.utcoffset() == timezone.utc.utcoffset(None)
