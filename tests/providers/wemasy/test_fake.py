"""Tests of the Wemasy fake server itself, driven with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.clock import ManualClock
from tests.support.served import served
from wemasy_async.testing import FakeServer, FakeWemasy, Route

GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"
AUTH = {"Authorization": "Bearer test-token"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z$")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
            },
        },
    },
}


Result = tuple[int, Any, Mapping[str, str]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=0, conversations=50) as server:
        yield server


async def call(
    session: aiohttp.ClientSession,
    fake: FakeServer,
    endpoint: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    params: dict[str, str] | None = None,
) -> Result:
    """POST ``body`` as JSON (or raw ``data``) and return (status, decoded body, headers)."""
    async with session.post(
        fake.url + endpoint,
        json=body if data is None else None,
        data=data,
        headers=AUTH if headers is None else headers,
        params=params,
    ) as response:
        raw = await response.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw.decode()
        return response.status, decoded, response.headers


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


# ---------------------------------------------------------------------------- rate limiting


async def test_rate_limit_headers_and_429(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeWemasy(conversations=5, rate_limit=3, window=60.0, clock=clock) as server:
        remaining = []
        for _ in range(3):
            status, _, headers = await call(session, server, GET, {"conversation_id": 1})
            assert status == 200
            assert headers["X-RateLimit-Limit"] == "3"
            remaining.append(headers["X-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]

        clock.now += 15.2
        status, body, headers = await call(session, server, GET, {"conversation_id": 1})
        assert status == 429
        assert body == {"error": True, "message": "Too Many Attempts."}
        assert headers["Retry-After"] == "45"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert headers["X-RateLimit-Limit"] == "3"
        assert "X-RateLimit-Reset" in headers

        # Unauthenticated requests are answered 401 even when the window is exhausted.
        status, _, headers = await call(session, server, GET, {}, headers={})
        assert status == 401
        assert headers["X-RateLimit-Remaining"] == "0"

        clock.now += 44.8
        status, _, headers = await call(session, server, LIST, {})
        assert status == 200
        assert headers["X-RateLimit-Remaining"] == "2"
        # Every kind of response carries the headers.
        status, _, headers = await call(session, server, GET, {"conversation_id": 999})
        assert status == 404
        assert headers["X-RateLimit-Remaining"] == "1"
        status, _, headers = await call(session, server, GET, {})
        assert status == 422
        assert headers["X-RateLimit-Remaining"] == "0"

        stats = server.stats
        assert stats.rate_limited == 1
        assert stats.accepted == 6
        assert stats.max_in_window == 3
        assert stats.window_counts == {0: 3, 1: 3}
        assert stats.unauthorized == 1
        assert stats.requests_total == 8
        assert stats.status_counts == {200: 4, 429: 1, 401: 1, 404: 1, 422: 1}


async def test_retry_after_is_at_least_one(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeWemasy(conversations=1, rate_limit=1, window=10.0, clock=clock) as server:
        await call(session, server, GET, {"conversation_id": 1})
        clock.now += 9.99
        status, _, headers = await call(session, server, GET, {"conversation_id": 1})
        assert status == 429
        assert headers["Retry-After"] == "1"


async def test_window_offset_shifts_boundaries(session: aiohttp.ClientSession) -> None:
    clock = ManualClock(1000.0)
    async with FakeWemasy(
        conversations=1, rate_limit=1, window=10.0, window_offset=4.0, clock=clock
    ) as server:
        assert server.seconds_until_reset() == pytest.approx(4.0)
        assert (await call(session, server, GET, {"conversation_id": 1}))[0] == 200
        status, _, headers = await call(session, server, GET, {"conversation_id": 1})
        assert (status, headers["Retry-After"]) == (429, "4")
        clock.now += 4.0
        assert (await call(session, server, GET, {"conversation_id": 1}))[0] == 200
        assert server.stats.window_counts == {-1: 1, 0: 1}


async def test_rate_limit_resets_in_real_time(session: aiohttp.ClientSession) -> None:
    async with FakeWemasy(conversations=1, rate_limit=2, window=0.5) as server:
        statuses = []
        for _ in range(6):
            status, _, headers = await call(session, server, GET, {"conversation_id": 1})
            statuses.append(status)
            if status == 429:
                assert headers["Retry-After"] == "1"
                break
        assert statuses[-1] == 429
        await asyncio.sleep(server.seconds_until_reset() + 0.02)
        status, _, headers = await call(session, server, GET, {"conversation_id": 1})
        assert status == 200
        assert headers["X-RateLimit-Remaining"] == "1"
        assert server.stats.max_in_window == 2


async def test_rate_limit_disabled_omits_headers(session: aiohttp.ClientSession) -> None:
    async with FakeWemasy(conversations=1, rate_limit=None) as server:
        for _ in range(5):
            status, _, headers = await call(session, server, GET, {"conversation_id": 1})
            assert status == 200
            assert "X-RateLimit-Limit" not in headers
            assert "X-RateLimit-Remaining" not in headers
        assert server.stats.max_in_window == 0


async def test_concurrent_requests_never_exceed_limit(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeWemasy(conversations=5, rate_limit=25, clock=clock) as server:
        results = await asyncio.gather(
            *(call(session, server, GET, {"conversation_id": 1 + i % 5}) for i in range(60))
        )
        statuses = [status for status, _, _ in results]
        assert statuses.count(200) == 25
        assert statuses.count(429) == 35
        assert server.stats.max_in_window == 25


# ---------------------------------------------------------------------------- faults


async def test_queued_errors_use_documented_bodies(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    expected = {
        500: {"success": False, "message": "Server Error"},
        404: {"success": False, "message": "Not Found"},
        403: {"error": True, "message": "This action is unauthorized."},
        401: {"error": True, "message": "Unauthenticated."},
        429: {"error": True, "message": "Too Many Attempts."},
        503: {"success": False, "message": "Service Unavailable"},
    }
    for status in expected:
        fake.queue_error(status)
    assert fake.pending_faults == len(expected)
    for status, body in expected.items():
        got_status, got_body, headers = await call(session, fake, GET, {"conversation_id": 1})
        assert (got_status, got_body) == (status, body)
        assert "X-RateLimit-Limit" in headers
        if status == 429:
            assert headers["Retry-After"] == "1"
            assert headers["X-RateLimit-Remaining"] == "0"
    assert fake.pending_faults == 0
    status, _, _ = await call(session, fake, GET, {"conversation_id": 1})
    assert status == 200
    assert fake.stats.faults_served == len(expected)

    fake.queue_error(422)
    status, body, _ = await call(session, fake, GET, {"conversation_id": 1})
    assert status == 422
    assert set(body) == {"message", "errors"}


async def test_queued_error_times_path_and_auth(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_error(500, times=2, path=CHAT)
    status, _, _ = await call(session, fake, GET, {"conversation_id": 1})
    assert status == 200
    # Faults apply after auth, so an unauthenticated request does not consume one.
    status, _, _ = await call(session, fake, CHAT, {"message": "hi"}, headers={})
    assert status == 401
    for _ in range(2):
        status, _, _ = await call(session, fake, CHAT, {"message": "hi"})
        assert status == 500
    assert fake.chat_deliveries == []
    status, _, _ = await call(session, fake, CHAT, {"message": "hi"})
    assert status == 200
    assert len(fake.chat_deliveries) == 1


async def test_queued_error_custom_bodies_and_headers(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_error(502, body="<html><body>Bad gateway</body></html>")
    fake.queue_error(200, body=b'{"success": true, "data": ')
    fake.queue_error(429, headers={"Retry-After": "7"}, body={"custom": 1})
    fake.queue_error(503, body="maintenance")
    async with session.post(fake.url + GET, json={"conversation_id": 1}, headers=AUTH) as r:
        assert r.status == 502
        assert r.content_type == "text/html"
        assert await r.text() == "<html><body>Bad gateway</body></html>"
    async with session.post(fake.url + GET, json={"conversation_id": 1}, headers=AUTH) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.read() == b'{"success": true, "data": '
    status, body, headers = await call(session, fake, GET, {"conversation_id": 1})
    assert (status, body, headers["Retry-After"]) == (429, {"custom": 1}, "7")
    async with session.post(fake.url + GET, json={"conversation_id": 1}, headers=AUTH) as r:
        assert r.status == 503
        assert r.content_type == "text/plain"


async def test_queued_delay_and_disconnect(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_delay(0.3, path=GET)
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            fake.url + GET,
            json={"conversation_id": 1},
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.05),
        ):
            pass
    fake.queue_disconnect(path=CHAT)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, fake, CHAT, {"message": "lost"})
    assert fake.chat_deliveries == []
    assert fake.requests[-1].status == 0
    status, _, _ = await call(session, fake, CHAT, {"message": "delivered"})
    assert status == 200
    fake.queue_error(500)
    fake.clear_faults()
    assert fake.pending_faults == 0


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


# ---------------------------------------------------------------------------- determinism, log


async def test_determinism_for_a_seed(session: aiohttp.ClientSession) -> None:
    assert FakeWemasy(seed=7).conversations == FakeWemasy(seed=7).conversations
    assert FakeWemasy(seed=7).conversations != FakeWemasy(seed=8).conversations
    assert len(FakeWemasy(seed=7, conversations=12).conversations) == 12
    short = FakeWemasy(seed=7, conversations=30, messages_per_conversation=(2, 2))
    assert all(len(c["messages"]) == 2 for c in short.conversations.values())

    call_ids = []
    for _ in range(2):
        async with FakeWemasy(seed=7, conversations=3) as server:
            _, body, _ = await call(
                session,
                server,
                CHAT,
                {"message": "weather", "use_tools": True, "tools": [WEATHER_TOOL]},
            )
            call_ids.append(body["data"]["tool_calls"][0]["id"])
    assert call_ids[0] == call_ids[1]


async def test_request_log(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    await call(session, fake, LIST, {"per_page": 5}, params={"page": "2"})
    await call(session, fake, GET, data=b"oops")
    first, second = fake.requests
    assert first.method == "POST"
    assert first.path == "/api" + LIST
    assert first.endpoint == LIST
    assert first.query == {"page": "2"}
    assert first.headers["authorization"] == "Bearer test-token"
    assert first.json == {"per_page": 5}
    assert first.status == 200
    assert (second.json, second.json_error, second.body, second.status) == (
        None,
        True,
        b"oops",
        422,
    )
    assert fake.requests_to(GET) == [second]
    fake.reset_log()
    assert fake.requests == []


async def test_stats_endpoint(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    await call(session, fake, GET, {"conversation_id": 1})
    origin = fake.url.removesuffix("/api")
    async with session.get(origin + "/__fake__/stats") as response:
        stats = await response.json()
    assert stats["accepted"] == 1
    assert stats["requests_total"] == 1
    assert stats["status_counts"] == {"200": 1}
    assert stats["max_in_window"] == 1
    # The admin endpoint itself is neither counted nor logged.
    assert fake.stats.requests_total == 1
    assert len(fake.requests) == 1


class EchoServer(FakeServer):
    """A minimal REST GET provider, as later provider fakes will be built."""

    url_prefix = "/v2"

    def routes(self) -> list[Route]:
        return [Route("GET", "/conversations/{id}", self._get)]

    def unauthorized_body(self) -> Any:
        return {"error": {"message": "Authentication required", "code": "UNAUTHORIZED"}}

    async def _get(self, request: web.Request) -> web.StreamResponse:
        record = self.record_of(request)
        return self.json_response({"id": request.match_info["id"], "query": record.query})


async def test_base_class_serves_subclass_routes(session: aiohttp.ClientSession) -> None:
    async with EchoServer(token="t", rate_limit=5) as server:
        assert server.url.endswith("/v2")
        url = server.url + "/conversations/abc"
        async with session.get(url, params={"limit": "3"}, headers=AUTH) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "UNAUTHORIZED"
        headers = {"Authorization": "Bearer t"}
        async with session.get(url, params={"limit": "3"}, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-RateLimit-Remaining"] == "4"
            assert await response.json() == {"id": "abc", "query": {"limit": "3"}}
        server.queue_error(503, path="/conversations/{id}")
        async with session.get(url, headers=headers) as response:
            assert response.status == 503
            assert await response.json() == {"message": "Service Unavailable"}
        assert [r.endpoint for r in server.requests] == ["/conversations/abc"] * 3


# ---------------------------------------------------------------------------- subprocess


async def test_serve_subprocess(session: aiohttp.ClientSession) -> None:
    async with served(
        "--port",
        "0",
        "--conversations",
        "7",
        "--token",
        "sub-token",
        "--rate-limit",
        "50",
        prefix="/api",
    ) as url:
        headers = {"Authorization": "Bearer sub-token"}
        async with session.post(url + LIST, json={}, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-RateLimit-Limit"] == "50"
            body = await response.json()
        assert body["pagination"]["total"] == 7
        async with session.post(url + LIST, json={}, headers={"Authorization": "Bearer no"}) as r:
            assert r.status == 401
