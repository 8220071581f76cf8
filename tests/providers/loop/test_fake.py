"""Tests of the Loop fake server itself, driven with a plain aiohttp client."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import aiohttp
import msgspec
import pytest
from yarl import URL

from tests.support.clock import ManualClock
from tests.support.loop_adapter import SchemaHistory, SchemaMessage
from tests.support.served import served
from wemasy_async.testing import FakeLoop
from wemasy_async.testing.loop import MESSAGES_PATH, HistoryRequest

AUTH = {"Authorization": "Bearer test-token"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

Result = tuple[int, Any, Mapping[str, str]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLoop]:
    async with FakeLoop(seed=0, conversations=20, long_conversations=2) as server:
        yield server


def history_url(fake: FakeLoop, segment: str) -> URL:
    return URL(f"{fake.url}/v1/conversations/{segment}/messages", encoded=True)


async def get(
    session: aiohttp.ClientSession,
    url: URL | str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Result:
    async with session.get(url, params=params, headers=AUTH if headers is None else headers) as r:
        raw = await r.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw.decode()
        return r.status, decoded, r.headers


async def history(
    session: aiohttp.ClientSession, fake: FakeLoop, conversation_id: str, **params: str
) -> Result:
    return await get(session, history_url(fake, conversation_id), params=params or None)


# ---------------------------------------------------------------------------- lifecycle


async def test_lifecycle_and_url_without_prefix(session: aiohttp.ClientSession) -> None:
    server = FakeLoop(conversations=2)
    with pytest.raises(RuntimeError):
        _ = server.url
    async with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.url == f"http://127.0.0.1:{server.port}"
        status, _, _ = await history(session, server, server.conversation_ids[0])
        assert status == 200
    assert not server.started


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conversations": -1},
        {"long_conversations": -1},
        {"long_conversation_messages": -1},
        {"messages_per_conversation": (3, 2)},
        {"messages_per_conversation": (-1, 2)},
        {"default_limit": 0},
        {"default_limit": 20, "max_limit": 10},
        {"rate_limit": 0},
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        FakeLoop(**kwargs)


# ---------------------------------------------------------------------------- seeded data


def test_seeded_data_is_deterministic() -> None:
    first, again, other = FakeLoop(seed=5), FakeLoop(seed=5), FakeLoop(seed=6)
    assert first.conversations == again.conversations
    assert first.conversation_ids == again.conversation_ids
    assert first.conversation_ids != other.conversation_ids


def test_seeded_data_invariants() -> None:
    server = FakeLoop(seed=3, conversations=150, long_conversations=3)
    assert len(server.conversation_ids) == len(set(server.conversation_ids)) == 150
    assert list(server.conversations) == server.conversation_ids
    assert server.long_conversation_ids == server.conversation_ids[:3]
    message_ids: list[str] = []
    roles: set[str] = set()
    with_tools = 0
    for conversation_id, messages in server.conversations.items():
        assert UUID4.match(conversation_id)
        expected = (120, 120) if conversation_id in server.long_conversation_ids else (2, 8)
        assert expected[0] <= len(messages) <= expected[1]
        times = [datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")) for m in messages]
        assert times == sorted(times)
        pending: set[str] = set()
        for message in messages:
            msgspec.convert(message, SchemaMessage)  # every documented field, nothing else
            assert UUID4.match(message["id"])
            assert message["conversation_id"] == conversation_id
            assert TIMESTAMP.match(message["created_at"])
            assert message["metadata"] == {}
            message_ids.append(message["id"])
            roles.add(message["role"])
            usage = message["token_usage"]
            assert (usage is not None) == (message["role"] == "assistant")
            if usage is not None:
                assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
            if message["tool_calls"] is not None:
                (call,) = message["tool_calls"]
                assert re.fullmatch(r"call_[0-9a-f]{12}", call["id"])
                assert call["type"] == "function"
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
                assert message["content"] == ""
                pending.add(call["id"])
            if message["role"] == "tool":
                assert pending, "a tool message answers an earlier tool call"
                with_tools += 1
    assert len(message_ids) == len(set(message_ids))
    assert roles == {"user", "assistant", "tool", "system"}
    assert 20 < with_tools < 100


def test_long_conversations_are_clamped_and_sized() -> None:
    server = FakeLoop(conversations=2, long_conversations=5, long_conversation_messages=70)
    assert server.long_conversation_ids == server.conversation_ids
    assert all(len(m) == 70 for m in server.conversations.values())
    assert FakeLoop(conversations=0).conversations == {}


# ---------------------------------------------------------------------------- the endpoint


async def test_history_is_the_documented_shape(
    fake: FakeLoop, session: aiohttp.ClientSession
) -> None:
    conversation_id = fake.conversation_ids[5]
    status, body, headers = await history(session, fake, conversation_id)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "total": len(fake.conversations[conversation_id]),
        "messages": fake.conversations[conversation_id],
    }
    msgspec.convert(body, SchemaHistory)


async def test_default_limit_truncates_and_total_counts_all(
    fake: FakeLoop, session: aiohttp.ClientSession
) -> None:
    long_id = fake.long_conversation_ids[0]
    messages = fake.conversations[long_id]
    _, body, _ = await history(session, fake, long_id)
    assert body == {"total": 120, "messages": messages[:50]}
    _, body, _ = await history(session, fake, long_id, limit="120")
    assert body == {"total": 120, "messages": messages}
    _, body, _ = await history(session, fake, long_id, limit="7")
    assert body == {"total": 120, "messages": messages[:7]}
    _, body, _ = await history(session, fake, long_id, limit="5000")
    assert body == {"total": 120, "messages": messages}


async def test_max_limit_caps(session: aiohttp.ClientSession) -> None:
    async with FakeLoop(conversations=1, default_limit=5, max_limit=10) as server:
        (only,) = server.conversation_ids
        _, body, _ = await history(session, server, only)
        assert (body["total"], len(body["messages"])) == (120, 5)
        _, body, _ = await history(session, server, only, limit="120")
        assert body == {"total": 120, "messages": server.conversations[only][:10]}


@pytest.mark.parametrize("limit", ["0", "-1", "1.5", "abc", "", " 5", "+5", "５"])
async def test_invalid_limit_is_400(
    fake: FakeLoop, session: aiohttp.ClientSession, limit: str
) -> None:
    status, body, _ = await history(session, fake, fake.conversation_ids[0], limit=limit)
    assert status == 400
    assert body == {"error": "invalid_request", "message": "limit must be a positive integer"}
    # The limit is checked before the id is looked up.
    status, _, _ = await history(session, fake, "no-such-id", limit=limit)
    assert status == 400


async def test_unknown_conversation_is_404(fake: FakeLoop, session: aiohttp.ClientSession) -> None:
    status, body, headers = await history(session, fake, str(uuid.UUID(int=0)))
    assert status == 404
    assert body == {"error": "not_found", "message": "Conversation not found"}
    assert "X-RateLimit-Limit" in headers


async def test_unknown_path_and_wrong_method(
    fake: FakeLoop, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await get(session, fake.url + "/v1/conversations")
    assert (status, body) == (404, {"error": "not_found", "message": "Not Found"})
    url = history_url(fake, fake.conversation_ids[0])
    async with session.post(url, json={}, headers=AUTH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
        assert await response.json() == {
            "error": "method_not_allowed",
            "message": "Method Not Allowed",
        }


async def test_direct_mutation_visible_after_invalidate(
    fake: FakeLoop, session: aiohttp.ClientSession
) -> None:
    conversation_id = fake.conversation_ids[1]
    _, before, _ = await history(session, fake, conversation_id)
    fake.conversations[conversation_id][0]["content"] = "Changed by the test"
    _, cached, _ = await history(session, fake, conversation_id)
    assert cached == before
    fake.invalidate(conversation_id)
    _, after, _ = await history(session, fake, conversation_id)
    assert after["messages"][0]["content"] == "Changed by the test"
    fake.conversations[conversation_id].append(dict(fake.conversations[conversation_id][0]))
    fake.invalidate()
    _, grown, _ = await history(session, fake, conversation_id)
    assert grown["total"] == before["total"] + 1


# ---------------------------------------------------------------------------- raw paths


@pytest.mark.parametrize(
    ("segment", "decoded"),
    [
        ("a%2Fb", "a/b"),
        ("a%3Fb%3D1", "a?b=1"),
        ("a%23b", "a#b"),
        ("%252e%252e", "%2e%2e"),
        ("..%252f", "..%2f"),
        ("%40evil.com", "@evil.com"),
        ("%EF%BD%81%EF%BD%82", "ａｂ"),
        ("%E2%88%95", "\u2215"),
    ],
)
async def test_raw_path_and_decoded_id_are_recorded(
    fake: FakeLoop, session: aiohttp.ClientSession, segment: str, decoded: str
) -> None:
    status, _, _ = await history(session, fake, segment, limit="3")
    assert status == 404
    assert fake.history_requests == [
        HistoryRequest(
            raw_path=f"/v1/conversations/{segment}/messages",
            conversation_id=decoded,
            limit="3",
            status=404,
        )
    ]


async def test_history_requests_record_served_conversations(
    fake: FakeLoop, session: aiohttp.ClientSession
) -> None:
    conversation_id = fake.conversation_ids[0]
    await history(session, fake, conversation_id)
    await history(session, fake, conversation_id, limit="x")
    assert [(r.conversation_id, r.limit, r.status) for r in fake.history_requests] == [
        (conversation_id, None, 200),
        (conversation_id, "x", 400),
    ]
    assert [r.endpoint for r in fake.requests] == [
        f"/v1/conversations/{conversation_id}/messages"
    ] * 2


async def test_request_log_can_be_turned_off(session: aiohttp.ClientSession) -> None:
    async with FakeLoop(conversations=1, record_requests=False) as server:
        await history(session, server, server.conversation_ids[0])
        assert server.history_requests == []
        assert server.requests == []
        assert server.stats.status_counts == {200: 1}


async def test_reset_log_forgets_history_requests(
    fake: FakeLoop, session: aiohttp.ClientSession
) -> None:
    await history(session, fake, fake.conversation_ids[0])
    assert len(fake.history_requests) == len(fake.requests) == 1
    fake.reset_log()
    assert fake.history_requests == []
    assert fake.requests == []


# ---------------------------------------------------------------------------- auth, limits, faults


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dTpw"},
        {"Authorization": "Bearer no"},
    ],
)
async def test_auth(session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    async with FakeLoop(conversations=1, token="secret") as server:
        url = history_url(server, server.conversation_ids[0])
        status, body, _ = await get(session, url, headers=headers)
        assert status == 401
        assert body == {"error": "unauthorized", "message": "Missing or invalid bearer token"}
        assert server.history_requests == []
        status, _, _ = await get(session, url, headers={"Authorization": "Bearer secret"})
        assert status == 200


async def test_rate_limit(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeLoop(conversations=1, rate_limit=2, window=60, clock=clock) as server:
        url = history_url(server, server.conversation_ids[0])
        for remaining in ("1", "0"):
            status, _, headers = await get(session, url)
            assert status == 200
            assert headers["X-RateLimit-Remaining"] == remaining
        clock.now += 15
        status, body, headers = await get(session, url)
        assert status == 429
        assert body == {
            "error": "rate_limited",
            "message": "Too many requests; retry in 45 seconds",
        }
        assert headers["Retry-After"] == "45"
        clock.now += 45
        status, _, _ = await get(session, url)
        assert status == 200


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": "bad_request", "message": "Bad Request"}),
        (401, {"error": "unauthorized", "message": "Missing or invalid bearer token"}),
        (403, {"error": "forbidden", "message": "Forbidden"}),
        (404, {"error": "not_found", "message": "Not Found"}),
        (418, {"error": "i_m_a_teapot", "message": "I'm a Teapot"}),
        (429, {"error": "rate_limited", "message": "Too many requests; retry in 1 seconds"}),
        (500, {"error": "internal_server_error", "message": "Internal Server Error"}),
        (503, {"error": "service_unavailable", "message": "Service Unavailable"}),
    ],
)
async def test_queued_errors_use_the_documented_shape(
    fake: FakeLoop, session: aiohttp.ClientSession, status: int, body: dict[str, str]
) -> None:
    assert fake.error_body(status) == body
    fake.queue_error(status, path=MESSAGES_PATH)
    got, received, headers = await history(session, fake, fake.conversation_ids[0])
    assert (got, received) == (status, body)
    if status == 429:
        assert headers["Retry-After"] == "1"
    got, _, _ = await history(session, fake, fake.conversation_ids[0])
    assert got == 200


# ---------------------------------------------------------------------------- subprocess


async def test_serve_subprocess(session: aiohttp.ClientSession) -> None:
    async with served(
        "--provider",
        "loop",
        "--conversations",
        "4",
        "--seed",
        "9",
        "--token",
        "sub-token",
        "--rate-limit",
        "50",
    ) as url:
        expected = FakeLoop(seed=9, conversations=4)
        conversation_id = expected.conversation_ids[1]
        headers = {"Authorization": "Bearer sub-token"}
        status, body, response_headers = await get(
            session, f"{url}/v1/conversations/{conversation_id}/messages", headers=headers
        )
        assert status == 200
        assert response_headers["X-RateLimit-Limit"] == "50"
        assert body == {
            "total": len(expected.conversations[conversation_id]),
            "messages": expected.conversations[conversation_id],
        }
        long_id = expected.long_conversation_ids[0]
        status, body, _ = await get(
            session, f"{url}/v1/conversations/{long_id}/messages", headers=headers
        )
        assert (status, body["total"], len(body["messages"])) == (200, 120, 50)
        status, _, _ = await get(
            session,
            f"{url}/v1/conversations/{conversation_id}/messages",
            headers={"Authorization": "Bearer no"},
        )
        assert status == 401
