"""The Wemasy client end to end against the bundled fake, over real sockets on 127.0.0.1."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import pytest

from wemasy_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ChatService,
    Client,
    Conversation,
    ConversationStore,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    UnprocessableEntityError,
)
from wemasy_async.testing import FakeWemasy

TOKEN = "e2e-token"
GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=7, conversations=30, token=TOKEN, forbidden_ids={13}) as server:
        yield server


@pytest.fixture
async def client(fake: FakeWemasy) -> AsyncIterator[Client]:
    # Single-shot: these tests check how each answer is translated; retries are tested apart.
    async with Client("wemasy", base_url=fake.url, token=TOKEN, retry=False) as c:
        yield c


def _assert_matches_server(conv: Conversation, wire: dict[str, Any]) -> None:
    assert conv.id == str(wire["id"])
    assert conv.provider == "wemasy"
    assert conv.status == wire["status"]
    assert conv.agent_id == wire["agent_id"]
    assert conv.goal == wire["goal"]
    assert conv.cost_tokens == wire["cost_tokens"]
    assert conv.cost_amount == Decimal(wire["cost_amount"])
    assert conv.started_at is not None
    assert conv.started_at.tzinfo is not None
    assert (conv.ended_at is None) == (wire["ended_at"] is None)


async def test_protocols_hold(client: Client) -> None:
    assert isinstance(client, ConversationStore)
    assert isinstance(client, ChatService)


async def test_get_conversation_matches_server_state(client: Client, fake: FakeWemasy) -> None:
    conv = await client.get_conversation(5)
    wire = fake.conversations[5]
    _assert_matches_server(conv, wire)
    assert conv.messages is not None
    assert [m.content for m in conv.messages] == [m["content"] for m in wire["messages"]]
    assert [m.role for m in conv.messages] == [m["role"] for m in wire["messages"]]
    assert all(m.conversation_id == "5" for m in conv.messages)
    assert conv.raw.id == 5


async def test_string_id_is_accepted(client: Client) -> None:
    assert (await client.get_conversation("12")).id == "12"


async def test_tool_calls_in_stored_messages_decode(client: Client, fake: FakeWemasy) -> None:
    with_calls = [
        (cid, m)
        for cid, conv in fake.conversations.items()
        if cid != 13
        for m in conv["messages"]
        if m["tool_calls"]
    ]
    assert with_calls, "the seeded data should contain tool calls"
    cid, wire_message = with_calls[0]
    messages = await client.list_messages(cid)
    decoded = next(m for m in messages if m.id == str(wire_message["id"]))
    wire_call = wire_message["tool_calls"][0]
    assert decoded.tool_calls[0].id == wire_call["id"]
    assert decoded.tool_calls[0].name == wire_call["function"]["name"]
    assert decoded.tool_calls[0].arguments == wire_call["function"]["arguments"]
    answer = next(m for m in messages if m.tool_call_id == wire_call["id"])
    assert answer.role == "tool"


async def test_list_messages_equals_conversation_messages(client: Client) -> None:
    conv = await client.get_conversation(3)
    assert await client.list_messages(3) == conv.messages


async def test_pagination_math(client: Client) -> None:
    first = await client.list_conversations(per_page=7)
    assert (first.page, first.last_page, first.per_page, first.total) == (1, 5, 7, 30)
    assert [c.id for c in first.items] == [str(i) for i in range(1, 8)]
    assert first.has_next
    assert all(c.messages is None for c in first.items)  # list items leave messages out
    last = await client.list_conversations(per_page=7, page=5)
    assert [c.id for c in last.items] == ["29", "30"]
    assert not last.has_next
    beyond = await client.list_conversations(per_page=7, page=6)
    assert beyond.items == []


async def test_iter_conversations_yields_each_once_in_order(client: Client) -> None:
    ids = [c.id async for c in client.iter_conversations(per_page=4)]
    assert ids == [str(i) for i in range(1, 31)]


async def test_iter_conversations_with_filters_matches_server(
    client: Client, fake: FakeWemasy
) -> None:
    expected = [
        str(cid)
        for cid, c in sorted(fake.conversations.items())
        if c["agent_id"] == "chat" and "seo strategy" in c["goal"].lower()
    ]
    got = [
        c.id
        async for c in client.iter_conversations(agent_id="chat", search="SEO strategy", per_page=2)
    ]
    assert got == expected
    assert len(fake.requests_to(LIST)) == max(1, math.ceil(len(expected) / 2))


async def test_wrong_token_is_authentication_error(fake: FakeWemasy) -> None:
    async with Client("wemasy", base_url=fake.url, token="wrong") as c:
        with pytest.raises(AuthenticationError) as info:
            await c.get_conversation(1)
    assert info.value.status == 401
    assert info.value.message == "Unauthenticated."
    assert "X-RateLimit-Limit" in info.value.headers
    assert "wrong" not in str(info.value) + repr(info.value)


async def test_unknown_id_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.get_conversation(999)
    assert info.value.message == "Conversation not found."
    assert info.value.body == {"success": False, "message": "Conversation not found."}


async def test_forbidden_id_is_permission_denied(client: Client) -> None:
    with pytest.raises(PermissionDeniedError):
        await client.get_conversation(13)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
    ],
)
@pytest.mark.parametrize("endpoint", [GET, LIST, CHAT])
async def test_every_documented_status_maps(
    client: Client, fake: FakeWemasy, status: int, error: type[Exception], endpoint: str
) -> None:
    calls = {
        GET: lambda: client.get_conversation(1),
        LIST: lambda: client.list_conversations(),
        CHAT: lambda: client.chat("hello", conversation_id=1),
    }
    fake.queue_error(status, path=endpoint)
    with pytest.raises(error) as info:
        await calls[endpoint]()
    exc = info.value
    assert getattr(exc, "status", None) == status
    if status == 429:
        assert isinstance(exc, RateLimitError)
        assert exc.retry_after == 1.0
    if status == 422:
        assert isinstance(exc, UnprocessableEntityError)
        assert exc.errors  # per-field messages survive
    if endpoint == CHAT:
        assert fake.chat_deliveries == []  # a rejected chat was not delivered


async def test_server_rate_limit_gives_retry_after(fake: FakeWemasy) -> None:
    async with (
        FakeWemasy(conversations=3, rate_limit=2, window=60) as limited,
        # Without the client's own limiter and retries, to see the server's 429 as it is.
        Client("wemasy", base_url=limited.url, token="t", rate_limit=False, retry=False) as c,
    ):
        await c.get_conversation(1)
        await c.get_conversation(2)
        with pytest.raises(RateLimitError) as info:
            await c.get_conversation(3)
    assert info.value.retry_after is not None
    assert 1 <= info.value.retry_after <= 60
    assert info.value.headers["X-RateLimit-Remaining"] == "0"


async def test_chat_tool_round_trip_delivers_each_message_once(
    client: Client, fake: FakeWemasy
) -> None:
    reply = await client.chat(
        "Weather in Amsterdam?", model="gpt-4o", use_tools=True, tools=[WEATHER], max_tokens=50
    )
    assert reply.content is None
    assert reply.model == "gpt-4o"
    assert reply.conversation_id == "31"  # a new conversation after the 30 seeded ones
    (call,) = reply.tool_calls
    assert call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "Amsterdam"}

    final = await client.chat(
        conversation_id=reply.conversation_id, tool_call_id=call.id, tool_result="18°C"
    )
    assert final.content == "Based on the tool result: 18°C"
    assert final.tool_calls == []
    assert final.usage is not None
    assert final.usage.total_tokens == (final.usage.prompt_tokens or 0) + (
        final.usage.completion_tokens or 0
    )
    assert len(fake.chat_deliveries) == 2

    history = await client.list_messages(reply.conversation_id)
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[2].tool_call_id == call.id
    assert history[2].content == "18°C"


async def test_chat_continues_existing_conversation(client: Client, fake: FakeWemasy) -> None:
    before = len(fake.conversations[2]["messages"])
    reply = await client.chat("And the next step?", conversation_id=2, temperature=0.2)
    assert reply.conversation_id == "2"
    assert reply.content == "Here is what I found about: And the next step?"
    assert len(await client.list_messages(2)) == before + 2


async def test_chat_unknown_conversation_is_not_found(client: Client, fake: FakeWemasy) -> None:
    with pytest.raises(NotFoundError):
        await client.chat("hi", conversation_id=404)
    assert fake.chat_deliveries == []


async def test_invalid_arguments_never_reach_the_server(client: Client, fake: FakeWemasy) -> None:
    calls = [
        client.get_conversation(-1),
        client.get_conversation("1/../2"),
        client.list_conversations(per_page=101),
        client.chat(),
        client.chat("hi", temperature=3),
        client.chat(tool_call_id="call_x", tool_result="r"),
    ]
    for call in calls:
        with pytest.raises(InvalidRequestError):
            await call
    with pytest.raises(InvalidRequestError):
        client.iter_conversations(per_page=0)
    assert fake.requests == []


async def test_dropped_connection_is_connection_error(client: Client, fake: FakeWemasy) -> None:
    fake.queue_disconnect(path=GET)
    with pytest.raises(APIConnectionError) as info:
        await client.get_conversation(1)
    assert "ServerDisconnectedError" in str(info.value)
    assert info.value.__cause__ is None  # aiohttp's exception holds the request headers
    assert (await client.get_conversation(1)).id == "1"  # the pool recovers


async def test_slow_response_times_out(fake: FakeWemasy) -> None:
    fake.queue_delay(5.0, path=GET)
    async with Client("wemasy", base_url=fake.url, token=TOKEN, timeout=0.3, retry=False) as c:
        with pytest.raises(APITimeoutError) as info:
            await c.get_conversation(1)
    assert isinstance(info.value, TimeoutError)


async def test_html_gateway_page_is_internal_server_error(client: Client, fake: FakeWemasy) -> None:
    fake.queue_error(502, body="<html><body><h1>502 Bad Gateway</h1></body></html>", path=GET)
    with pytest.raises(InternalServerError) as info:
        await client.get_conversation(1)
    assert info.value.status == 502
    assert info.value.message == "Bad Gateway"
    assert "502 Bad Gateway" in str(info.value.body)


async def test_garbage_success_body_is_decode_error(client: Client, fake: FakeWemasy) -> None:
    fake.queue_error(200, body=b'{"success": true, "data": {"id": "not-a-number"}}', path=GET)
    with pytest.raises(ResponseDecodeError) as info:
        await client.get_conversation(1)
    assert info.value.status == 200
    assert "not-a-number" in info.value.excerpt


async def test_callers_session_is_used_and_left_open(fake: FakeWemasy) -> None:
    async with aiohttp.ClientSession() as session:
        async with Client("wemasy", base_url=fake.url, token=TOKEN, session=session) as c:
            await c.get_conversation(1)
        assert not session.closed
        assert fake.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_many_concurrent_requests(client: Client) -> None:
    results: dict[int, Conversation] = {}

    async def fetch(i: int) -> None:
        results[i] = await client.get_conversation(i)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            for i in range(1, 31):
                if i != 13:
                    tg.start_soon(fetch, i)
    assert sorted(results) == [i for i in range(1, 31) if i != 13]
    assert all(conv.id == str(i) for i, conv in results.items())
