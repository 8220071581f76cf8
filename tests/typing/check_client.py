"""Static typing of the public API; checked by ``mypy --strict`` (``nox -s typecheck``).

Not run by pytest. Each ``assert_type`` pins a return type; each ``type: ignore[code]`` marks
a call that must stay a type error: under ``--strict`` an ignore that is no longer needed is
itself an error, so these lines fail the check if the API loosens.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

import aiohttp
from typing_extensions import assert_type

from wemasy_async import (
    BatchFetch,
    ChatReply,
    ChatService,
    Client,
    Conversation,
    ConversationStore,
    Event,
    Fetched,
    FetchFailed,
    FetchResult,
    Message,
    Page,
    RateLimitError,
    RateLimitInfo,
    RawResponse,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    TokenUsage,
    ToolCall,
    WemasyAsyncError,
)
from wemasy_async.providers.base import Operation


async def reads(client: Client) -> None:
    assert_type(await client.get_conversation(27), Conversation[list[Message]])
    assert_type(await client.get_conversation("27"), Conversation[list[Message]])
    assert_type(await client.get_conversation(uuid.uuid4()), Conversation[list[Message]])
    assert_type(await client.list_messages(27), list[Message])
    assert_type(await client.list_messages(27, limit=10), list[Message])
    page = await client.list_conversations(agent_id="chat", search="SEO", per_page=20, page=1)
    assert_type(page, Page[Conversation])
    assert_type(page.items, list[Conversation])
    assert_type(page.has_next, bool)
    assert_type(client.iter_conversations(agent_id="chat"), AsyncIterator[Conversation])
    async for conversation in client.iter_conversations():
        assert_type(conversation.id, str)
        assert_type(conversation.started_at, datetime | None)
        assert_type(conversation.cost_amount, Decimal | None)
        assert_type(conversation.messages, list[Message] | None)
    assert_type(client.capabilities, frozenset[Operation])

    await client.get_conversation(27.0)  # type: ignore[arg-type]
    await client.get_conversation(None)  # type: ignore[arg-type]
    await client.list_conversations(per_page="20")  # type: ignore[arg-type]
    await client.list_conversations("chat")  # type: ignore[call-arg]
    await client.list_messages(27, 10)  # type: ignore[call-arg]


async def batches(client: Client) -> None:
    results = client.fetch_conversations(range(1, 100), concurrency=8)
    assert_type(results, BatchFetch[Conversation[list[Message]]])
    async with results:
        async for result in results:
            assert_type(result, FetchResult[Conversation[list[Message]]])
            assert_type(result.value, Conversation[list[Message]] | None)
            assert_type(result.ok, bool)
            assert_type(result.unwrap(), Conversation[list[Message]])
            # Success and failure are two types of one union: both checks narrow.
            if result.ok:
                assert_type(result.value, Conversation[list[Message]])
                assert_type(result.value.id, str)
            if result.error is None:
                assert_type(result.value, Conversation[list[Message]])
            else:
                assert_type(result.error, WemasyAsyncError)
                assert_type(result.value, None)
            if isinstance(result, Fetched):
                assert_type(result.value, Conversation[list[Message]])
            else:
                assert_type(result, FetchFailed)
    assert_type(client.fetch_messages(["1", "2"]), BatchFetch[list[Message]])
    client.fetch_conversations(range(3), concurrency="8")  # type: ignore[arg-type]


async def chats(client: Client) -> None:
    reply = await client.chat("hi", conversation_id=15, model="gpt-4o", temperature=0.7)
    assert_type(reply, ChatReply)
    assert_type(reply.content, str | None)
    assert_type(reply.usage, TokenUsage | None)
    assert_type(reply.tool_calls, list[ToolCall])
    for call in reply.tool_calls:
        await client.chat(
            conversation_id=reply.conversation_id, tool_call_id=call.id, tool_result="18°C"
        )
    await client.chat("hi", temperature="hot")  # type: ignore[arg-type]
    await client.chat("hi", tools={"type": "function"})  # type: ignore[arg-type]
    await client.chat("hi", 15)  # type: ignore[call-arg]


async def protocols(session: aiohttp.ClientSession) -> None:
    # Client satisfies both protocols structurally, so code typed against them accepts it.
    store: ConversationStore = Client("wemasy", token="t", session=session)
    service: ChatService = Client("wemasy", token="t", session=session)
    assert_type(await store.get_conversation(1), Conversation[list[Message]])
    assert_type(await service.chat("hi"), ChatReply)
    # The checked way to hand a client to code typed against ChatService.
    checked = Client("wemasy", token="t", session=session).chat_service()
    assert_type(checked, ChatService)


def errors(exc: RateLimitError) -> None:
    assert_type(exc.retry_after, float | None)
    assert_type(exc.status, int)
    assert_type(exc.code, str | None)


def construction() -> None:
    Client("wemasy", token=3)  # type: ignore[arg-type]
    Client("wemasy", timeout="5")  # type: ignore[arg-type]
    Client("wemasy", session=object())  # type: ignore[arg-type]


def hooks() -> None:
    def sync_hook(event: Event) -> None:
        if isinstance(event, RetryEvent):
            assert_type(event.delay, float)
        elif isinstance(event, ResponseEvent):
            assert_type(event.rate_limit.remaining, int | None)

    async def async_hook(event: Event) -> None:
        assert_type(event.attempt, int)

    client = Client("wemasy", token="t", hooks=[sync_hook, async_hook])
    assert_type(client.with_options(hooks=(sync_hook,)), Client)
    client.with_options(hooks=None)
    Client("wemasy", hooks=sync_hook)  # type: ignore[arg-type]
    Client("wemasy", hooks=[3])  # type: ignore[list-item]
    RequestEvent(provider="p", operation="o", method="GET", path="/", attempt="1")  # type: ignore[arg-type]


def headers() -> None:
    client = Client("wemasy", token="t", default_headers={"X-Trace": "1"}, user_agent="lib/1")
    assert_type(client.with_options(extra_headers={"X-Call": "2"}), Client)
    Client("wemasy", default_headers={"X-Trace": 1})  # type: ignore[dict-item]
    Client("wemasy", user_agent=b"lib/1")  # type: ignore[arg-type]


async def raw_responses(client: Client) -> None:
    raw = await client.with_raw_response.get_conversation(27)
    assert_type(raw, RawResponse[Conversation[list[Message]]])
    assert_type(raw.value, Conversation[list[Message]])
    assert_type(raw.status, int)
    assert_type(raw.headers.getall("X-RateLimit-Limit"), list[str])
    assert_type(raw.rate_limit, RateLimitInfo)
    assert_type(raw.attempts, int)
    assert_type(raw.elapsed, float)
    messages = client.with_raw_response.list_messages(27, limit=5)
    assert_type(await messages, RawResponse[list[Message]])
    page = await client.with_raw_response.list_conversations(agent_id="chat", per_page=5)
    assert_type(page, RawResponse[Page[Conversation]])
    assert_type(await client.with_raw_response.chat("hi", model="m"), RawResponse[ChatReply])
    copy = client.with_options(timeout=5).with_raw_response
    assert_type(await copy.get_conversation("27"), RawResponse[Conversation[list[Message]]])
    await client.with_raw_response.get_conversation(27.0)  # type: ignore[arg-type]
    await client.with_raw_response.list_messages(27, 10)  # type: ignore[call-arg]
    await client.with_raw_response.chat("hi", temperature="hot")  # type: ignore[arg-type]
    client.with_raw_response.iter_conversations()  # type: ignore[attr-defined]
    client.with_raw_response.fetch_conversations([1])  # type: ignore[attr-defined]


def session_settings() -> None:
    import ssl

    context = ssl.create_default_context()
    Client("wemasy", token="t", connection_limit=50, trust_env=True, proxy="http://p:3128")
    Client("wemasy", token="t", ssl=context)
    Client("wemasy", ssl=False)  # type: ignore[arg-type]
    Client("wemasy", connection_limit="50")  # type: ignore[arg-type]
    Client("wemasy", token="t").with_options(proxy="http://p:3128")  # type: ignore[call-arg]
