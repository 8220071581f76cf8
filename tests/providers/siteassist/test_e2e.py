"""The SiteAssist client end to end against the bundled fake, over real sockets on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from wemasy_async import (
    AuthenticationError,
    Client,
    Conversation,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    UnsupportedOperationError,
)
from wemasy_async.providers.siteassist import SiteAssistConversation
from wemasy_async.testing import FakeSiteAssist
from wemasy_async.testing.siteassist import CONVERSATION_PATH

TOKEN = "e2e-token"
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSiteAssist]:
    async with FakeSiteAssist(seed=11, conversations=20, token=TOKEN) as server:
        server.forbidden_ids.add(server.conversation_ids[13])
        yield server


@pytest.fixture
async def client(fake: FakeSiteAssist) -> AsyncIterator[Client]:
    async with Client("siteassist", base_url=fake.url, token=TOKEN, retry=False) as c:
        yield c


def wire_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_matches_server(conversation: Conversation, wire: dict[str, Any]) -> None:
    assert conversation.id == wire["id"]
    assert conversation.provider == "siteassist"
    assert conversation.status == wire["status"]
    assert conversation.started_at == wire_time(wire["createdAt"])
    assert conversation.updated_at == wire_time(wire["updatedAt"])
    assert conversation.ended_at == wire_time(wire["closedAt"])
    assert conversation.last_activity_at == wire_time(wire["lastInterationAt"])
    assert conversation.close_reason == wire["closeReason"]
    assert conversation.human_handled is wire["isHumanHandled"]
    agent = wire["humanAgent"]
    assert conversation.human_agent == (None if agent is None else agent["name"])
    assert conversation.agent_id is None
    assert conversation.goal is None
    assert conversation.cost_tokens is None
    assert conversation.cost_amount is None
    messages = conversation.messages
    assert messages is not None
    assert [m.id for m in messages] == [m["id"] for m in wire["messages"]]
    assert [m.role for m in messages] == [m["role"] for m in wire["messages"]]
    assert [m.content for m in messages] == [m["content"] for m in wire["messages"]]
    assert [m.created_at for m in messages] == [wire_time(m["createdAt"]) for m in wire["messages"]]
    assert all(m.conversation_id == wire["id"] for m in messages)
    assert all(m.metadata == {} and m.tool_calls == [] and m.usage is None for m in messages)
    assert isinstance(conversation.raw, SiteAssistConversation)


async def test_every_conversation_matches_server_state(
    client: Client, fake: FakeSiteAssist
) -> None:
    checked = 0
    for conversation_id, wire in fake.conversations.items():
        if conversation_id in fake.forbidden_ids:
            continue
        assert_matches_server(await client.get_conversation(conversation_id), wire)
        checked += 1
    assert checked == 19
    # The seeded data exercises both statuses and both kinds of humanAgent.
    wires = list(fake.conversations.values())
    assert {w["status"] for w in wires} == {"open", "closed"}
    assert {w["humanAgent"] is None for w in wires} == {True, False}


async def test_requests_are_bodiless_gets_to_the_lower_case_path(
    client: Client, fake: FakeSiteAssist
) -> None:
    conversation_id = fake.conversation_ids[0]
    by_object = await client.get_conversation(uuid.UUID(conversation_id))
    by_upper = await client.get_conversation(conversation_id.upper())
    assert by_object == by_upper
    assert by_object.id == conversation_id
    for record in fake.requests:
        assert record.method == "GET"
        assert record.endpoint == f"/conversations/{conversation_id}"
        assert record.body == b""
        assert "Content-Type" not in record.headers
        assert record.headers["Authorization"] == f"Bearer {TOKEN}"
        assert record.status == 200


async def test_list_messages_and_limit(client: Client, fake: FakeSiteAssist) -> None:
    conversation_id = fake.conversation_ids[3]
    conversation = await client.get_conversation(conversation_id)
    assert conversation.messages is not None
    count = len(conversation.messages)
    assert count >= 2
    assert await client.list_messages(conversation_id) == conversation.messages
    assert await client.list_messages(conversation_id, limit=1) == conversation.messages[:1]
    assert await client.list_messages(conversation_id, limit=2) == conversation.messages[:2]
    assert await client.list_messages(conversation_id, limit=100) == conversation.messages
    assert len(fake.requests_to(f"/conversations/{conversation_id}")) == 5


async def test_unknown_conversation(client: Client) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.get_conversation(UNKNOWN_ID)
    error = info.value
    assert error.code == "CONVERSATION_NOT_FOUND"
    assert error.message == "Conversation not found!"
    assert error.details == {"conversationId": UNKNOWN_ID}
    with pytest.raises(NotFoundError):
        await client.list_messages(UNKNOWN_ID)


async def test_wrong_token(fake: FakeSiteAssist) -> None:
    async with Client("siteassist", base_url=fake.url, token="wrong") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_conversation(fake.conversation_ids[0])
    assert info.value.code == "UNAUTHORIZED"
    assert info.value.message == "Authentication required"
    assert fake.stats.unauthorized == 1


async def test_forbidden_conversation(client: Client, fake: FakeSiteAssist) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        await client.get_conversation(fake.conversation_ids[13])
    assert info.value.code == "FORBIDDEN"
    assert info.value.message == "Access denied to this conversation"


async def test_queued_403(client: Client, fake: FakeSiteAssist) -> None:
    fake.queue_error(403, path=CONVERSATION_PATH)
    with pytest.raises(PermissionDeniedError) as info:
        await client.list_messages(fake.conversation_ids[0])
    assert info.value.code == "FORBIDDEN"


async def test_queued_429_retry_after_from_details(client: Client, fake: FakeSiteAssist) -> None:
    fake.queue_error(429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimitError) as info:
        await client.get_conversation(fake.conversation_ids[0])
    error = info.value
    assert error.code == "RATE_LIMIT_EXCEEDED"
    assert error.details == {"retryAfter": 7}
    assert error.retry_after == 7.0
    assert error.headers["Retry-After"] == "7"


async def test_queued_429_details_win_over_the_header(client: Client, fake: FakeSiteAssist) -> None:
    body = {
        "error": {
            "message": "Rate limit exceeded. Please try again later.",
            "code": "RATE_LIMIT_EXCEEDED",
            "details": {"retryAfter": "30"},
        }
    }
    fake.queue_error(429, body=body, headers={"Retry-After": "2"})
    with pytest.raises(RateLimitError) as info:
        await client.get_conversation(fake.conversation_ids[0])
    assert info.value.retry_after == 30.0


async def test_rate_limiter_of_the_fake() -> None:
    async with (
        FakeSiteAssist(seed=1, conversations=2, rate_limit=1) as limited,
        Client(
            "siteassist", base_url=limited.url, token=TOKEN, rate_limit=False, retry=False
        ) as client,
    ):
        await client.get_conversation(limited.conversation_ids[0])
        with pytest.raises(RateLimitError) as info:
            await client.get_conversation(limited.conversation_ids[0])
    error = info.value
    assert error.retry_after is not None
    assert error.retry_after >= 1
    assert error.details == {"retryAfter": int(error.headers["Retry-After"])}
    assert error.retry_after == float(error.headers["Retry-After"])


async def test_queued_503(client: Client, fake: FakeSiteAssist) -> None:
    fake.queue_error(503)
    with pytest.raises(InternalServerError) as info:
        await client.get_conversation(fake.conversation_ids[0])
    error = info.value
    assert error.status == 503
    assert error.code == "SERVICE_UNAVAILABLE"
    assert error.details == {"retryAfter": 30}
    # The fault was served once; the next request succeeds.
    assert (await client.get_conversation(fake.conversation_ids[0])).id == fake.conversation_ids[0]


async def test_queued_402_keeps_plan_details(client: Client, fake: FakeSiteAssist) -> None:
    fake.queue_error(402)
    with pytest.raises(PaymentRequiredError) as info:
        await client.get_conversation(fake.conversation_ids[0])
    assert info.value.code == "PAYMENT_REQUIRED"
    assert info.value.details["requiredPlan"] == "pro"


async def test_undocumented_2xx_body(client: Client, fake: FakeSiteAssist) -> None:
    fake.queue_error(200, body={"object": "list", "id": UNKNOWN_ID})
    with pytest.raises(ResponseDecodeError) as info:
        await client.get_conversation(fake.conversation_ids[0])
    assert info.value.status == 200
    assert "object is 'list'" in str(info.value)


async def test_invalid_arguments_and_unsupported_operations_send_nothing(
    client: Client, fake: FakeSiteAssist
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await client.get_conversation("../conversations")
    assert info.value.argument == "conversation_id"
    with pytest.raises(InvalidRequestError) as info:
        await client.list_messages(fake.conversation_ids[0], limit=0)
    assert info.value.argument == "limit"
    with pytest.raises(UnsupportedOperationError):
        await client.list_conversations()
    with pytest.raises(UnsupportedOperationError):
        await client.chat("hi")
    assert fake.requests == []
    assert fake.stats.requests_total == 0
