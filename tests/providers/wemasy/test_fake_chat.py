"""The Wemasy fake's chat endpoint, driven with a plain aiohttp client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.wemasy_fake import CHAT, GET, LIST, WEATHER_TOOL, call
from wemasy_async.testing import FakeWemasy


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=0, conversations=50) as server:
        yield server


# ---------------------------------------------------------------------------- chat


async def test_chat_new_conversation_then_get(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    status, body, headers = await call(
        session, fake, CHAT, {"message": "  What are the best SEO strategies?  ", "model": "gpt-4o"}
    )
    assert status == 200
    assert "X-RateLimit-Remaining" in headers
    data = body["data"]
    assert body["success"] is True
    assert data == {
        "content": "Here is what I found about: What are the best SEO strategies?",
        "model": "gpt-4o",
        "usage": {"prompt_tokens": 16, "completion_tokens": 12, "total_tokens": 28},
        "conversation_id": 51,
        "tool_calls": None,
    }
    # The client's original body is what gets recorded as delivered.
    assert fake.chat_deliveries == [
        {"message": "  What are the best SEO strategies?  ", "model": "gpt-4o"}
    ]

    status, body, _ = await call(session, fake, GET, {"conversation_id": 51})
    assert status == 200
    conversation = body["data"]
    assert conversation["agent_id"] == "chat"
    assert conversation["status"] == "active"
    assert conversation["ended_at"] is None
    assert conversation["goal"] == "What are the best SEO strategies?"
    assert conversation["cost_tokens"] == 28
    assert [(m["role"], m["content"]) for m in conversation["messages"]] == [
        ("user", "What are the best SEO strategies?"),
        ("assistant", "Here is what I found about: What are the best SEO strategies?"),
    ]
    assert conversation["messages"][1]["usage"]["total_tokens"] == 28

    status, body, _ = await call(session, fake, CHAT, {"message": "More?", "conversation_id": 51})
    assert status == 200
    assert body["data"]["conversation_id"] == 51
    assert body["data"]["model"] == "gpt-4o-mini"
    _, body, _ = await call(session, fake, GET, {"conversation_id": 51})
    assert len(body["data"]["messages"]) == 4
    _, body, _ = await call(session, fake, LIST, {"search": "best SEO strategies"})
    assert [c["id"] for c in body["data"]] == [51]


async def test_chat_reopens_completed_conversation(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    completed = next(c for c in fake.conversations.values() if c["status"] == "completed")
    before = len(completed["messages"])
    status, _, _ = await call(
        session, fake, CHAT, {"message": "One more thing", "conversation_id": completed["id"]}
    )
    assert status == 200
    _, body, _ = await call(session, fake, GET, {"conversation_id": completed["id"]})
    assert body["data"]["status"] == "active"
    assert body["data"]["ended_at"] is None
    assert len(body["data"]["messages"]) == before + 2


async def test_chat_unknown_and_forbidden_conversation(session: aiohttp.ClientSession) -> None:
    async with FakeWemasy(conversations=5, forbidden_ids={2}) as server:
        status, body, _ = await call(session, server, CHAT, {"message": "x", "conversation_id": 9})
        assert (status, body) == (404, {"success": False, "message": "Conversation not found."})
        status, _, _ = await call(session, server, CHAT, {"message": "x", "conversation_id": 2})
        assert status == 403
        assert server.chat_deliveries == []
        assert len(server.conversations) == 5


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"message": ["The message field is required when tool result is not present."]}),
        (
            {"message": "   "},
            {"message": ["The message field is required when tool result is not present."]},
        ),
        ({"message": 5}, {"message": ["The message field must be a string."]}),
        (
            {"message": "x", "conversation_id": "abc"},
            {"conversation_id": ["The conversation id field must be an integer."]},
        ),
        (
            {"message": "x", "connection_id": 1.5},
            {"connection_id": ["The connection id field must be an integer."]},
        ),
        ({"message": "x", "model": 4}, {"model": ["The model field must be a string."]}),
        (
            {"message": "x", "temperature": 2.5},
            {"temperature": ["The temperature field must be between 0 and 2."]},
        ),
        (
            {"message": "x", "temperature": "hot"},
            {"temperature": ["The temperature field must be a number."]},
        ),
        (
            {"message": "x", "max_tokens": 0},
            {"max_tokens": ["The max tokens field must be at least 1."]},
        ),
        (
            {"message": "x", "use_tools": "yes"},
            {"use_tools": ["The use tools field must be true or false."]},
        ),
        (
            {"message": "x", "tools": "get_weather"},
            {"tools": ["The tools field must be an array."]},
        ),
        (
            {"message": "x", "tools": [{"type": "webhook", "function": {"name": "f"}}]},
            {"tools.0.type": ["The selected tools.0.type is invalid."]},
        ),
        (
            {"message": "x", "tools": [{"type": "function", "function": {}}]},
            {"tools.0.function.name": ["The tools.0.function.name field is required."]},
        ),
        (
            {"message": "x", "tools": [{"type": "function"}]},
            {"tools.0.function": ["The tools.0.function field is required."]},
        ),
        (
            {"tool_result": "18 degrees", "conversation_id": 1},
            {"tool_call_id": ["The tool call id field is required when tool result is present."]},
        ),
        (
            {"message": "x", "tool_call_id": "call_1", "conversation_id": 1},
            {"tool_result": ["The tool result field is required when tool call id is present."]},
        ),
        (
            {"tool_call_id": "call_1", "tool_result": "18 degrees"},
            {
                "conversation_id": [
                    "The conversation id field is required when tool result is present."
                ]
            },
        ),
    ],
)
async def test_chat_validation(
    fake: FakeWemasy,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    status, response, _ = await call(session, fake, CHAT, body)
    assert status == 422
    assert response["errors"] == errors
    assert response["message"] == next(iter(errors.values()))[0]
    assert fake.chat_deliveries == []


async def test_chat_accepts_documented_example(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        session,
        fake,
        CHAT,
        {
            "message": "What are the best SEO strategies for our website?",
            "conversation_id": 15,
            "connection_id": 3,
            "model": "gpt-4o",
            "temperature": 0.7,
            "max_tokens": 2048,
            "use_tools": False,
            "tools": [WEATHER_TOOL],
            "tool_call_id": None,
            "tool_result": None,
        },
    )
    assert status == 200
    assert body["data"]["conversation_id"] == 15
    assert body["data"]["tool_calls"] is None


async def test_chat_tool_round_trip(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        session,
        fake,
        CHAT,
        {"message": "Weather in Amsterdam?", "use_tools": True, "tools": [WEATHER_TOOL]},
    )
    assert status == 200
    data = body["data"]
    assert data["content"] is None
    assert data["model"] == "gpt-4o-mini"
    conversation_id = data["conversation_id"]
    [tool_call] = data["tool_calls"]
    assert re.fullmatch(r"call_[0-9a-f]{12}", tool_call["id"])
    assert tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {
        "city": "Amsterdam",
        "days": 1,
        "metric": True,
    }
    assert fake.pending_tool_calls == {conversation_id: {tool_call["id"]}}

    status, body, _ = await call(
        session,
        fake,
        CHAT,
        {"conversation_id": conversation_id, "tool_call_id": "call_bogus", "tool_result": "x"},
    )
    assert status == 422
    assert body == {
        "message": "The selected tool call id is invalid.",
        "errors": {"tool_call_id": ["The selected tool call id is invalid."]},
    }

    result = {
        "conversation_id": conversation_id,
        "tool_call_id": tool_call["id"],
        "tool_result": "The current temperature in Amsterdam is 18°C",
    }
    status, body, _ = await call(session, fake, CHAT, result)
    assert status == 200
    assert body["data"]["content"] == (
        "Based on the tool result: The current temperature in Amsterdam is 18°C"
    )
    assert body["data"]["tool_calls"] is None
    assert body["data"]["conversation_id"] == conversation_id
    assert fake.pending_tool_calls == {}

    _, body, _ = await call(session, fake, GET, {"conversation_id": conversation_id})
    messages = body["data"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"] == [tool_call]
    assert messages[1]["content"] is None
    assert messages[2]["tool_call_id"] == tool_call["id"]
    assert messages[2]["content"] == "The current temperature in Amsterdam is 18°C"
    assert messages[3]["content"].startswith("Based on the tool result:")
    assert len({m["id"] for m in messages}) == 4
    assert body["data"]["cost_tokens"] == sum(m["usage"]["total_tokens"] for m in messages[1::2])

    # A tool call can be answered only once.
    status, _, _ = await call(session, fake, CHAT, result)
    assert status == 422
    assert len(fake.chat_deliveries) == 2


async def test_chat_tools_without_use_tools_or_parameters(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    bare_tool = {"type": "function", "function": {"name": "ping"}}
    _, body, _ = await call(session, fake, CHAT, {"message": "hi", "tools": [bare_tool]})
    assert body["data"]["tool_calls"] is None
    _, body, _ = await call(
        session, fake, CHAT, {"message": "hi", "use_tools": 1, "tools": [bare_tool, WEATHER_TOOL]}
    )
    [tool_call] = body["data"]["tool_calls"]
    assert tool_call["function"] == {"name": "ping", "arguments": "{}"}
