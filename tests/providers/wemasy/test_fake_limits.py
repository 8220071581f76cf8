"""The Wemasy fake's rate limit, faults, determinism and request log, the ``FakeServer`` base
class under a minimal provider, and ``serve`` in a subprocess; driven with plain aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.clock import ManualClock
from tests.support.served import served
from tests.support.wemasy_fake import AUTH, CHAT, GET, LIST, WEATHER_TOOL, call
from wemasy_async.testing import FakeServer, FakeWemasy, Route


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=0, conversations=50) as server:
        yield server


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
