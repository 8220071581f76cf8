"""Tests of the SiteAssist fake server itself, driven with a plain aiohttp client."""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.clock import ManualClock
from tests.support.served import served
from wemasy_async.testing import FakeSiteAssist
from wemasy_async.testing import siteassist as fake_module
from wemasy_async.testing.siteassist import CONVERSATION_PATH, DOCS_ERROR_BODIES

AUTH = {"Authorization": "Bearer test-token"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LOWER_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DOCS_ID = "123e4567-e89b-12d3-a456-426614174000"

Result = tuple[int, Any, Mapping[str, str]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSiteAssist]:
    async with FakeSiteAssist(seed=0, conversations=30) as server:
        yield server


async def get(
    session: aiohttp.ClientSession,
    fake: FakeSiteAssist,
    conversation_id: str,
    *,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Result:
    """Request ``/conversations/<conversation_id>``; return (status, decoded body, headers)."""
    url = f"{fake.url}/conversations/{conversation_id}"
    async with session.request(method, url, headers=AUTH if headers is None else headers) as r:
        raw = await r.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw.decode()
        return r.status, decoded, r.headers


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------- the module


def test_fake_imports_nothing_else_from_the_sdk() -> None:
    source = Path(fake_module.__file__).read_text()
    modules = {
        alias.name if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    ours = {m for m in modules if m.startswith("wemasy_async")}
    assert ours == {"wemasy_async.testing._server"}


def test_documented_error_bodies_cover_every_documented_status() -> None:
    assert sorted(DOCS_ERROR_BODIES) == [400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503]
    codes = [body["error"]["code"] for body in DOCS_ERROR_BODIES.values()]
    assert codes == [
        "INVALID_REQUEST_BODY",
        "UNAUTHORIZED",
        "PAYMENT_REQUIRED",
        "FORBIDDEN",
        "CONVERSATION_NOT_FOUND",
        "CONFLICT",
        "VALIDATION_ERROR",
        "RATE_LIMIT_EXCEEDED",
        "INTERNAL_SERVER_ERROR",
        "BAD_GATEWAY",
        "SERVICE_UNAVAILABLE",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"conversations": -1}, {"messages_per_conversation": (3, 2)}, {"rate_limit": 0}],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        FakeSiteAssist(**kwargs)


# ---------------------------------------------------------------------------- lifecycle


async def test_lifecycle_url_and_idempotent_close(session: aiohttp.ClientSession) -> None:
    server = FakeSiteAssist(conversations=3)
    with pytest.raises(RuntimeError):
        _ = server.url
    await server.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2", server.url)
        status, _, _ = await get(session, server, server.conversation_ids[0])
        assert status == 200
    finally:
        await server.close()
    await server.close()
    assert not server.started
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(session, server, DOCS_ID)


# ---------------------------------------------------------------------------- GET


async def test_get_returns_the_documented_shape(
    fake: FakeSiteAssist, session: aiohttp.ClientSession
) -> None:
    conversation_id = fake.conversation_ids[4]
    status, body, headers = await get(session, fake, conversation_id)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["X-RateLimit-Limit"] == "100000"
    assert headers["X-RateLimit-Remaining"] == "99999"
    assert body == fake.conversations[conversation_id]
    assert list(body) == [
        "object",
        "id",
        "createdAt",
        "updatedAt",
        "status",
        "closedAt",
        "closeReason",
        "lastInterationAt",
        "isHumanHandled",
        "humanAgent",
        "messages",
    ]
    assert body["object"] == "conversation"
    assert body["id"] == conversation_id


async def test_ids_are_looked_up_case_insensitively(
    fake: FakeSiteAssist, session: aiohttp.ClientSession
) -> None:
    conversation_id = fake.conversation_ids[0]
    status, body, _ = await get(session, fake, conversation_id.upper())
    assert status == 200
    assert body["id"] == conversation_id


@pytest.mark.parametrize(
    "bad_id",
    [
        "nope",
        "27",
        DOCS_ID.replace("-", ""),
        DOCS_ID[:-1],
        DOCS_ID + "0",
        f"urn:uuid:{DOCS_ID}",
        "g23e4567-e89b-12d3-a456-426614174000",
        "%20" + DOCS_ID,
    ],
)
async def test_malformed_id_is_400(
    fake: FakeSiteAssist, session: aiohttp.ClientSession, bad_id: str
) -> None:
    status, body, headers = await get(session, fake, bad_id)
    assert status == 400
    assert body == {
        "error": {
            "message": "Invalid request. conversationId must be a valid UUID.",
            "code": "INVALID_REQUEST_BODY",
            "details": {"field": "conversationId"},
        }
    }
    assert "X-RateLimit-Remaining" in headers


async def test_unknown_conversation_is_404_echoing_the_id(
    fake: FakeSiteAssist, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await get(session, fake, DOCS_ID.upper())
    assert status == 404
    assert body == {
        "error": {
            "message": "Conversation not found!",
            "code": "CONVERSATION_NOT_FOUND",
            "details": {"conversationId": DOCS_ID.upper()},
        }
    }


async def test_forbidden_ids(session: aiohttp.ClientSession) -> None:
    ids = FakeSiteAssist(seed=3, conversations=5).conversation_ids
    forbidden: list[str | uuid.UUID] = [uuid.UUID(ids[1]), ids[2].upper(), DOCS_ID]
    async with FakeSiteAssist(seed=3, conversations=5, forbidden_ids=forbidden) as server:
        for conversation_id in (ids[1], ids[2]):
            status, body, _ = await get(session, server, conversation_id)
            assert (status, body) == (403, DOCS_ERROR_BODIES[403])
        # Existence is checked before access.
        status, _, _ = await get(session, server, DOCS_ID)
        assert status == 404
        status, _, _ = await get(session, server, ids[0])
        assert status == 200


async def test_unknown_path_and_wrong_method(
    fake: FakeSiteAssist, session: aiohttp.ClientSession
) -> None:
    async with session.get(fake.url + "/conversations", headers=AUTH) as response:
        assert response.status == 404
        assert await response.json() == DOCS_ERROR_BODIES[404]
    status, body, headers = await get(session, fake, fake.conversation_ids[0], method="POST")
    assert status == 405
    assert headers["Allow"] == "GET"
    assert body == {"error": {"message": "Method Not Allowed", "code": "METHOD_NOT_ALLOWED"}}


async def test_direct_mutation_visible_after_invalidate(
    fake: FakeSiteAssist, session: aiohttp.ClientSession
) -> None:
    conversation_id = fake.conversation_ids[2]
    _, before, _ = await get(session, fake, conversation_id)
    fake.conversations[conversation_id]["status"] = "archived"
    _, cached, _ = await get(session, fake, conversation_id)
    fake.invalidate(uuid.UUID(conversation_id))
    _, after, _ = await get(session, fake, conversation_id)
    assert before["status"] != "archived"
    assert cached == before
    assert after["status"] == "archived"
    fake.conversations[conversation_id]["status"] = "open"
    fake.invalidate()
    assert (await get(session, fake, conversation_id))[1]["status"] == "open"


# ---------------------------------------------------------------------------- auth, rate limit


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
    async with FakeSiteAssist(conversations=2, token="secret", rate_limit=10) as server:
        conversation_id = server.conversation_ids[0]
        status, body, response_headers = await get(
            session, server, conversation_id, headers=headers
        )
        assert status == 401
        assert body == {"error": {"message": "Authentication required", "code": "UNAUTHORIZED"}}
        assert response_headers["X-RateLimit-Remaining"] == "10"
        assert server.stats.unauthorized == 1
        status, _, _ = await get(
            session, server, conversation_id, headers={"Authorization": "Bearer secret"}
        )
        assert status == 200


async def test_rate_limit_sends_retry_after_in_body_and_header(
    session: aiohttp.ClientSession,
) -> None:
    clock = ManualClock()
    async with FakeSiteAssist(conversations=2, rate_limit=2, window=60, clock=clock) as server:
        conversation_id = server.conversation_ids[0]
        for remaining in ("1", "0"):
            status, _, headers = await get(session, server, conversation_id)
            assert (status, headers["X-RateLimit-Remaining"]) == (200, remaining)
        clock.now += 15
        status, body, headers = await get(session, server, conversation_id)
        assert status == 429
        assert headers["Retry-After"] == "45"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert body == {
            "error": {
                "message": "Rate limit exceeded. Please try again later.",
                "code": "RATE_LIMIT_EXCEEDED",
                "details": {"retryAfter": 45},
            }
        }
        assert server.stats.rate_limited == 1
        clock.now += 45
        status, _, _ = await get(session, server, conversation_id)
        assert status == 200


# ---------------------------------------------------------------------------- faults


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422, 500, 502, 503])
async def test_queued_errors_send_the_documented_bodies(
    fake: FakeSiteAssist, session: aiohttp.ClientSession, status: int
) -> None:
    fake.queue_error(status, path=CONVERSATION_PATH)
    conversation_id = fake.conversation_ids[0]
    response_status, body, headers = await get(session, fake, conversation_id)
    assert response_status == status
    assert body == DOCS_ERROR_BODIES[status]
    assert headers["Content-Type"] == "application/json"
    # The fault is consumed: the next request is served normally.
    assert (await get(session, fake, conversation_id))[0] == 200


@pytest.mark.parametrize(("headers", "retry_after"), [(None, 1), ({"Retry-After": "7"}, 7)])
async def test_queued_429_matches_its_retry_after_header(
    fake: FakeSiteAssist,
    session: aiohttp.ClientSession,
    headers: dict[str, str] | None,
    retry_after: int,
) -> None:
    fake.queue_error(429, headers=headers)
    status, body, response_headers = await get(session, fake, fake.conversation_ids[0])
    assert status == 429
    assert response_headers["Retry-After"] == str(retry_after)
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["error"]["details"] == {"retryAfter": retry_after}


def test_error_body_for_undocumented_statuses_and_copies() -> None:
    server = FakeSiteAssist(conversations=0)
    assert server.error_body(418) == {"error": {"message": "I'm a Teapot", "code": "I_M_A_TEAPOT"}}
    assert server.error_body(599) == {"error": {"message": "Error", "code": "ERROR"}}
    assert server.error_body(429) == DOCS_ERROR_BODIES[429]
    body = server.error_body(402)
    body["error"]["details"]["currentPlan"] = "changed"
    assert server.error_body(402)["error"]["details"]["currentPlan"] == "free"
    assert DOCS_ERROR_BODIES[402]["error"]["details"]["currentPlan"] == "free"


# ---------------------------------------------------------------------------- seeded data


def test_seeded_data_invariants() -> None:
    server = FakeSiteAssist(seed=3, conversations=200)
    assert len(server.conversation_ids) == 200
    assert server.conversation_ids == list(server.conversations)
    assert len(set(server.conversation_ids)) == 200
    statuses: set[str] = set()
    reasons: set[str] = set()
    human = 0
    message_ids: list[str] = []
    for conversation_id, conversation in server.conversations.items():
        assert LOWER_UUID4.match(conversation_id)
        assert conversation["id"] == conversation_id
        assert conversation["object"] == "conversation"
        created = parse_time(conversation["createdAt"])
        for key in ("createdAt", "updatedAt", "lastInterationAt"):
            assert TIMESTAMP.match(conversation[key])
        statuses.add(conversation["status"])
        if conversation["status"] == "closed":
            assert TIMESTAMP.match(conversation["closedAt"])
            reasons.add(conversation["closeReason"])
            assert conversation["updatedAt"] == conversation["closedAt"]
            assert parse_time(conversation["closedAt"]) > parse_time(
                conversation["lastInterationAt"]
            )
        else:
            assert conversation["status"] == "open"
            assert conversation["closedAt"] is None
            assert conversation["closeReason"] is None
            assert conversation["updatedAt"] == conversation["lastInterationAt"]
        if conversation["isHumanHandled"]:
            human += 1
            agent = conversation["humanAgent"]
            assert set(agent) == {"id", "name"}
            assert LOWER_UUID4.match(agent["id"])
            assert agent["name"]
        else:
            assert conversation["isHumanHandled"] is False
            assert conversation["humanAgent"] is None
        messages = conversation["messages"]
        assert 2 <= len(messages) <= 8
        assert conversation["lastInterationAt"] == messages[-1]["createdAt"]
        previous = created
        for index, message in enumerate(messages):
            assert set(message) == {
                "id",
                "conversationId",
                "role",
                "content",
                "createdAt",
                "metadata",
            }
            message_ids.append(message["id"])
            assert LOWER_UUID4.match(message["id"])
            assert message["conversationId"] == conversation_id
            assert message["role"] == ("user" if index % 2 == 0 else "assistant")
            assert isinstance(message["content"], str)
            assert message["content"]
            assert message["metadata"] == {}
            moment = parse_time(message["createdAt"])
            assert moment > previous
            previous = moment
    assert len(message_ids) == len(set(message_ids))
    assert statuses == {"open", "closed"}
    assert reasons == {"resolved", "inactivity"}
    assert 10 < human < 90


def test_determinism_for_a_seed() -> None:
    assert FakeSiteAssist(seed=7).conversations == FakeSiteAssist(seed=7).conversations
    assert FakeSiteAssist(seed=7).conversation_ids != FakeSiteAssist(seed=8).conversation_ids
    assert (
        FakeSiteAssist(seed=7, conversations=12).conversation_ids
        == (FakeSiteAssist(seed=7, conversations=40).conversation_ids[:12])
    )
    assert FakeSiteAssist(conversations=0).conversations == {}
    empty = FakeSiteAssist(seed=7, conversations=10, messages_per_conversation=(0, 0))
    for conversation in empty.conversations.values():
        assert conversation["messages"] == []
        assert conversation["lastInterationAt"] == conversation["createdAt"]


async def test_request_log(fake: FakeSiteAssist, session: aiohttp.ClientSession) -> None:
    conversation_id = fake.conversation_ids[1]
    await get(session, fake, conversation_id.upper())
    (record,) = fake.requests
    assert record.method == "GET"
    assert record.path == f"/v2/conversations/{conversation_id.upper()}"
    assert record.endpoint == f"/conversations/{conversation_id.upper()}"
    assert record.body == b""
    assert record.json is None
    assert record.headers["Authorization"] == "Bearer test-token"
    assert record.status == 200


# ---------------------------------------------------------------------------- subprocess


async def test_serve_subprocess(session: aiohttp.ClientSession) -> None:
    expected = FakeSiteAssist(seed=4, conversations=7)
    async with served(
        "--provider",
        "siteassist",
        "--port",
        "0",
        "--seed",
        "4",
        "--conversations",
        "7",
        "--token",
        "sub-token",
        "--rate-limit",
        "50",
        prefix="/v2",
    ) as url:
        conversation_id = expected.conversation_ids[6]
        headers = {"Authorization": "Bearer sub-token"}
        async with session.get(f"{url}/conversations/{conversation_id}", headers=headers) as r:
            assert r.status == 200
            assert r.headers["X-RateLimit-Limit"] == "50"
            assert await r.json() == expected.conversations[conversation_id]
        bad = {"Authorization": "Bearer no"}
        async with session.get(f"{url}/conversations/{conversation_id}", headers=bad) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "UNAUTHORIZED"
