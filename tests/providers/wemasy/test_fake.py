"""Tests of the Wemasy fake server itself, driven with a plain aiohttp client: its lifecycle,
authentication, ``conversations/get`` and ``conversations/list``.

The chat endpoint is in ``test_fake_chat.py``; rate limits, faults, the log, the base class
and the subprocess in ``test_fake_limits.py``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.wemasy_fake import AUTH, CHAT, GET, LIST, TIMESTAMP, call
from wemasy_async.testing import FakeWemasy


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=0, conversations=50) as server:
        yield server


# ---------------------------------------------------------------------------- lifecycle


async def test_lifecycle_url_and_idempotent_close(session: aiohttp.ClientSession) -> None:
    server = FakeWemasy(conversations=3)
    assert not server.started
    with pytest.raises(RuntimeError):
        _ = server.url
    await server.start()
    try:
        assert server.started
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api", server.url)
        assert server.port == int(server.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(RuntimeError):
            await server.start()
        status, _, _ = await call(session, server, GET, {"conversation_id": 1})
        assert status == 200
    finally:
        await server.close()
    await server.close()
    assert not server.started
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, server, GET, {"conversation_id": 1})


async def test_unknown_path_and_wrong_method(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    status, body, headers = await call(session, fake, "/services/ai/v1/nope", {})
    assert status == 404
    assert body == {"success": False, "message": "Not Found"}
    assert headers["Content-Type"] == "application/json"
    async with session.get(fake.url + GET, headers=AUTH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert await response.json() == {"success": False, "message": "Method Not Allowed"}


# ---------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer wrong"},
    ],
)
async def test_auth_rejects_missing_or_wrong_token(
    session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with FakeWemasy(conversations=3, token="secret", rate_limit=10) as server:
        status, body, response_headers = await call(
            session, server, GET, {"conversation_id": 1}, headers=headers
        )
        assert status == 401
        assert body == {"error": True, "message": "Unauthenticated."}
        # 401s carry the headers but are not counted against the window.
        assert response_headers["X-RateLimit-Limit"] == "10"
        assert response_headers["X-RateLimit-Remaining"] == "10"
        assert server.stats.unauthorized == 1
        assert server.stats.accepted == 0
        status, _, _ = await call(
            session, server, GET, {"conversation_id": 1}, headers={"Authorization": "bearer secret"}
        )
        assert status == 200


async def test_any_token_accepted_when_token_is_none(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    for token in ("a", "another-one"):
        headers = {"Authorization": f"Bearer {token}"}
        status, _, _ = await call(session, fake, GET, {"conversation_id": 1}, headers=headers)
        assert status == 200


# ---------------------------------------------------------------------------- conversations/get


async def test_get_returns_documented_envelope_and_shapes(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    status, body, headers = await call(session, fake, GET, {"conversation_id": 27})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body["success"] is True
    data = body["data"]
    assert data == fake.conversations[27]
    assert set(data) == {
        "id",
        "agent_id",
        "status",
        "goal",
        "cost_tokens",
        "cost_amount",
        "started_at",
        "ended_at",
        "messages",
    }
    assert data["id"] == 27


async def test_seeded_data_invariants() -> None:
    server = FakeWemasy(seed=3, conversations=200)
    message_ids: list[int] = []
    roles: set[str] = set()
    tool_conversations = 0
    for conversation_id, conversation in server.conversations.items():
        assert conversation["id"] == conversation_id
        assert conversation["agent_id"] in {"chat", "support", "sales"}
        assert TIMESTAMP.match(conversation["started_at"])
        if conversation["status"] == "active":
            assert conversation["ended_at"] is None
        else:
            assert conversation["status"] == "completed"
            assert TIMESTAMP.match(conversation["ended_at"])
        messages = conversation["messages"]
        assert 2 <= len(messages) <= 8
        spent = sum(m["usage"]["total_tokens"] for m in messages if m["usage"] is not None)
        assert conversation["cost_tokens"] == spent
        assert conversation["cost_amount"] == f"{spent * 0.00002:.4f}"
        pending_calls: set[str] = set()
        for message in messages:
            message_ids.append(message["id"])
            roles.add(message["role"])
            assert message["conversation_id"] == conversation_id
            assert TIMESTAMP.match(message["created_at"])
            assert message["metadata"] == {}
            assert (message["usage"] is not None) == (message["role"] == "assistant")
            if message["usage"] is not None:
                usage = message["usage"]
                assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
            if message["tool_calls"]:
                call = message["tool_calls"][0]
                assert re.fullmatch(r"call_[0-9a-f]{12}", call["id"])
                assert call["type"] == "function"
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
                assert message["content"] is None
                pending_calls.add(call["id"])
            if message["role"] == "tool":
                assert message["tool_call_id"] in pending_calls
                tool_conversations += 1
            else:
                assert message["tool_call_id"] is None
    assert len(message_ids) == len(set(message_ids))
    assert roles == {"user", "assistant", "tool", "system"}
    assert 20 < tool_conversations < 150


@pytest.mark.parametrize("value", [27, "27", " 27 ", 27.0])
async def test_get_accepts_laravel_integers(
    fake: FakeWemasy, session: aiohttp.ClientSession, value: Any
) -> None:
    status, body, _ = await call(session, fake, GET, {"conversation_id": value})
    assert status == 200
    assert body["data"]["id"] == 27


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "The conversation id field is required."),
        ({"conversation_id": None}, "The conversation id field is required."),
        ({"conversation_id": ""}, "The conversation id field is required."),
        ({"conversation_id": True}, "The conversation id field must be an integer."),
        ({"conversation_id": 27.5}, "The conversation id field must be an integer."),
        ({"conversation_id": "abc"}, "The conversation id field must be an integer."),
        ({"conversation_id": [27]}, "The conversation id field must be an integer."),
    ],
)
async def test_get_validation_errors(
    fake: FakeWemasy, session: aiohttp.ClientSession, body: Any, message: str
) -> None:
    status, response, headers = await call(session, fake, GET, body)
    assert status == 422
    assert response == {"message": message, "errors": {"conversation_id": [message]}}
    assert "X-RateLimit-Remaining" in headers


@pytest.mark.parametrize("endpoint", [GET, LIST, CHAT])
@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"', b"null"])
async def test_non_object_body_is_422(
    fake: FakeWemasy, session: aiohttp.ClientSession, endpoint: str, data: bytes
) -> None:
    status, body, _ = await call(session, fake, endpoint, data=data)
    assert status == 422
    assert body == {
        "message": "The given data was invalid.",
        "errors": {"body": ["The request body must be a JSON object."]},
    }


async def test_get_unknown_and_forbidden(session: aiohttp.ClientSession) -> None:
    async with FakeWemasy(conversations=10, forbidden_ids={4, 99}) as server:
        status, body, headers = await call(session, server, GET, {"conversation_id": 11})
        assert (status, body) == (404, {"success": False, "message": "Conversation not found."})
        assert "X-RateLimit-Limit" in headers
        status, body, _ = await call(session, server, GET, {"conversation_id": 4})
        assert (status, body) == (403, {"error": True, "message": "This action is unauthorized."})
        # Existence is checked before authorisation, as findOrFail + authorize would.
        status, _, _ = await call(session, server, GET, {"conversation_id": 99})
        assert status == 404


async def test_direct_mutation_visible_after_invalidate(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    _, before, _ = await call(session, fake, GET, {"conversation_id": 5})
    fake.conversations[5]["goal"] = "Changed by the test"
    fake.invalidate(5)
    _, after, _ = await call(session, fake, GET, {"conversation_id": 5})
    assert before["data"]["goal"] != "Changed by the test"
    assert after["data"]["goal"] == "Changed by the test"
    _, listed, _ = await call(session, fake, LIST, {"search": "changed by"})
    assert [c["id"] for c in listed["data"]] == [5]


# ---------------------------------------------------------------------------- conversations/list


async def test_list_pagination_math(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    status, body, _ = await call(session, fake, LIST, data=b"")
    assert status == 200
    assert body["pagination"] == {"current_page": 1, "last_page": 3, "per_page": 20, "total": 50}
    assert [c["id"] for c in body["data"]] == list(range(1, 21))
    assert all("messages" not in c for c in body["data"])
    expected = {k: v for k, v in fake.conversations[1].items() if k != "messages"}
    assert body["data"][0] == expected

    seen: list[int] = []
    for page in (1, 2, 3):
        _, body, _ = await call(session, fake, LIST, {"per_page": 20, "page": page})
        assert body["pagination"]["current_page"] == page
        seen += [c["id"] for c in body["data"]]
    assert seen == list(range(1, 51))
    assert len(body["data"]) == 10

    _, body, _ = await call(session, fake, LIST, {"per_page": 20, "page": 4})
    assert body["data"] == []
    assert body["pagination"] == {"current_page": 4, "last_page": 3, "per_page": 20, "total": 50}

    _, body, _ = await call(session, fake, LIST, {"per_page": 7})
    assert body["pagination"]["last_page"] == math.ceil(50 / 7)


async def test_list_page_sources(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    _, body, _ = await call(session, fake, LIST, {"per_page": 10}, params={"page": "2"})
    assert body["pagination"]["current_page"] == 2
    assert body["data"][0]["id"] == 11
    # The JSON body wins over the query string, as in Laravel's input().
    _, body, _ = await call(session, fake, LIST, {"per_page": 10, "page": 3}, params={"page": "2"})
    assert body["data"][0]["id"] == 21
    # Laravel's paginator falls back to page 1 for anything that is not an integer >= 1.
    for bad in (0, -2, "x", 1.5):
        status, body, _ = await call(session, fake, LIST, {"per_page": 10, "page": bad})
        assert status == 200
        assert body["pagination"]["current_page"] == 1


async def test_list_empty_result_has_last_page_one(session: aiohttp.ClientSession) -> None:
    async with FakeWemasy(conversations=0) as server:
        _, body, _ = await call(session, server, LIST, {})
        assert body == {
            "success": True,
            "data": [],
            "pagination": {"current_page": 1, "last_page": 1, "per_page": 20, "total": 0},
        }


async def test_list_filters(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    everything = fake.conversations.values()
    seo = [c["id"] for c in everything if "seo strategy" in c["goal"].lower()]
    sales = [c["id"] for c in everything if c["agent_id"] == "sales"]
    assert seo
    assert sales

    _, body, _ = await call(session, fake, LIST, {"search": "SEO strategy", "per_page": 100})
    assert [c["id"] for c in body["data"]] == seo
    assert body["pagination"]["total"] == len(seo)
    assert all("seo strategy" in c["goal"].lower() for c in body["data"])

    _, body, _ = await call(session, fake, LIST, {"search": "seo STRATEGY", "per_page": 100})
    assert [c["id"] for c in body["data"]] == seo

    _, body, _ = await call(session, fake, LIST, {"agent_id": "sales", "per_page": 100})
    assert [c["id"] for c in body["data"]] == sales

    _, body, _ = await call(
        session, fake, LIST, {"agent_id": "sales", "search": "SEO strategy", "per_page": 100}
    )
    assert [c["id"] for c in body["data"]] == sorted(set(seo) & set(sales))

    _, body, _ = await call(session, fake, LIST, {"agent_id": None, "search": None})
    assert body["pagination"]["total"] == 50

    _, body, _ = await call(session, fake, LIST, {"agent_id": "nobody"})
    assert body["data"] == []
    assert body["pagination"]["total"] == 0


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"per_page": 0}, {"per_page": ["The per page field must be between 1 and 100."]}),
        ({"per_page": 101}, {"per_page": ["The per page field must be between 1 and 100."]}),
        ({"per_page": "many"}, {"per_page": ["The per page field must be an integer."]}),
        ({"agent_id": 5}, {"agent_id": ["The agent id field must be a string."]}),
        ({"search": ["seo"]}, {"search": ["The search field must be a string."]}),
    ],
)
async def test_list_validation(
    fake: FakeWemasy,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    status, response, _ = await call(session, fake, LIST, body)
    assert status == 422
    assert response == {"message": next(iter(errors.values()))[0], "errors": errors}


async def test_list_validation_summary_counts_other_errors(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(session, fake, LIST, {"agent_id": 1, "search": 2, "per_page": 0})
    assert status == 422
    assert set(body["errors"]) == {"agent_id", "search", "per_page"}
    assert body["message"] == "The agent id field must be a string. (and 2 more errors)"


async def test_list_per_page_accepts_numeric_string(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(session, fake, LIST, {"per_page": "5"})
    assert status == 200
    assert body["pagination"]["per_page"] == 5
    assert len(body["data"]) == 5
