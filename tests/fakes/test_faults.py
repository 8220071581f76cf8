"""The fakes' fault modes, seen at the raw level (plain aiohttp and asyncio streams).

Each kind of `FAULT_KINDS` is checked for what `FakeServer.queue_fault` promises: what
reaches the wire, whether the handler ran, and how the request is recorded and counted.
The SDK's handling of the same faults is tested in tests/contract/test_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest

import wemasy_async.testing as testing
from tests.support.cases import released
from tests.support.served import served
from wemasy_async.testing import FAULT_KINDS, FakeLoop, FakeSiteAssist, FakeWemasy
from wemasy_async.testing import _server as server_module

GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"
AUTH = {"Authorization": "Bearer test-token"}
PROOF = 10.0  # seconds: a bound that only proves "no hang"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=0, conversations=20) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection, so that consecutive requests reuse it (keep-alive).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as client:
        yield client


async def post(
    session: aiohttp.ClientSession, fake: FakeWemasy, endpoint: str, body: Any
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with session.post(fake.url + endpoint, json=body, headers=AUTH) as response:
        return response.status, await response.read(), response.headers


async def reference_body(fake: FakeWemasy, conversation_id: int = 3) -> bytes:
    """The body a healthy ``conversations/get`` returns (fresh session, not logged)."""
    async with aiohttp.ClientSession() as other:
        status, body, _ = await post(other, fake, GET, {"conversation_id": conversation_id})
    assert status == 200
    fake.reset_log()
    return body


async def raw_exchange(fake: FakeWemasy, endpoint: str, body: bytes) -> tuple[bytes, bytes]:
    """POST over a bare socket; return (head, body bytes received before EOF or reset)."""
    host, port = fake.host, fake.port
    # A large read limit: some faults send heads far beyond asyncio's 64 KiB default.
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        writer.write(
            f"POST {fake.url_prefix}{endpoint} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return head, received
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def header(head: bytes, name: str) -> str | None:
    match = re.search(rf"^{name}: (.*)\r$", head.decode("latin-1"), re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else None


def user_messages(fake: FakeWemasy, text: str) -> list[dict[str, Any]]:
    return [
        message
        for conversation in fake.conversations.values()
        for message in conversation["messages"]
        if message["role"] == "user" and message["content"] == text
    ]


# ---------------------------------------------------------------------------- the API


def test_fault_kinds_are_exported_and_exact() -> None:
    assert testing.FAULT_KINDS is server_module.FAULT_KINDS
    assert "FAULT_KINDS" in testing.__all__
    assert FAULT_KINDS == (
        "disconnect",
        "reset_before_body",
        "reset_mid_body",
        "truncated_json",
        "html_502",
        "empty_200",
        "wrong_content_type",
        "html_200",
        "stall",
        "keepalive_close",
        "error_5xx",
        "rate_limited",
        "process_then_drop",
        "huge_body",
        "huge_header",
        "bad_status_line",
        "many_headers",
        "slow_trickle",
        "short_body",
    )
    documented = FakeWemasy.queue_fault.__doc__ or ""
    for kind in FAULT_KINDS:
        assert f'``"{kind}"``' in documented, kind


def test_fault_arguments_are_checked() -> None:
    fake = FakeWemasy(conversations=1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.queue_fault("explode")
    with pytest.raises(ValueError, match="times"):
        fake.queue_fault("stall", times=0)
    with pytest.raises(ValueError, match="rate"):
        fake.inject_faults(1.5)
    with pytest.raises(ValueError, match="rate"):
        fake.inject_faults(-0.1)
    with pytest.raises(ValueError, match="empty"):
        fake.inject_faults(0.1, ())
    with pytest.raises(ValueError, match="unknown fault kinds"):
        fake.inject_faults(0.1, ["stall", "nope"])
    assert fake.pending_faults == 0


# ---------------------------------------------------------------------------- each kind


async def test_disconnect_drops_before_the_handler(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_fault("disconnect", path=CHAT)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, fake, CHAT, {"message": "lost"})
    assert fake.chat_deliveries == []
    assert user_messages(fake, "lost") == []
    assert [r.status for r in fake.requests] == [0]
    assert fake.stats.fault_counts == {"disconnect": 1}
    assert fake.stats.status_counts == {0: 1}


async def test_reset_before_body_sends_only_a_head(fake: FakeWemasy) -> None:
    fake.queue_fault("reset_before_body", path=CHAT)
    head, received = await raw_exchange(fake, CHAT, b'{"message": "never"}')
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert header(head, "Content-Type") == "application/json"
    assert int(header(head, "Content-Length") or 0) > 0
    assert header(head, "X-RateLimit-Limit") == "100000"
    assert received == b""
    assert fake.chat_deliveries == []  # the handler did not run
    assert fake.requests[-1].status == 200

    fake.queue_fault("reset_before_body")
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + GET, json={"conversation_id": 1}, headers=AUTH) as r,
    ):
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_reset_mid_body_sends_half_the_real_body(fake: FakeWemasy) -> None:
    full = await reference_body(fake)
    fake.queue_fault("reset_mid_body")
    head, received = await raw_exchange(fake, GET, b'{"conversation_id": 3}')
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert header(head, "Content-Length") == str(len(full))
    assert received == full[: len(full) // 2]

    fake.queue_fault("reset_mid_body", path=CHAT)
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + CHAT, json={"message": "hello"}, headers=AUTH) as r,
    ):
        assert r.status == 200
        assert r.content_length is not None
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    # The handler ran: the message is stored although the client never saw the reply.
    assert len(user_messages(fake, "hello")) == 1
    assert len(fake.chat_deliveries) == 1
    assert fake.stats.fault_counts == {"reset_mid_body": 2}


async def test_truncated_json_is_valid_http_with_invalid_json(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    full = await reference_body(fake)
    fake.queue_fault("truncated_json")
    async with session.post(fake.url + GET, json={"conversation_id": 3}, headers=AUTH) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        body = await r.read()
        assert r.content_length == len(body)
    assert body == full[: len(full) // 2]
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(body)
    # Valid HTTP: the connection stays usable for the next request.
    status, _, _ = await post(session, fake, GET, {"conversation_id": 3})
    assert status == 200
    assert fake.requests[0].connection == fake.requests[1].connection


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "marker"),
    [
        ("html_502", 502, "text/html", b"502 Bad Gateway"),
        ("html_200", 200, "text/html; charset=utf-8", b"<form"),
        ("empty_200", 200, "application/json", None),
    ],
)
async def test_canned_pages(
    fake: FakeWemasy,
    session: aiohttp.ClientSession,
    kind: str,
    status: int,
    content_type: str,
    marker: bytes | None,
) -> None:
    fake.queue_fault(kind, path=CHAT)
    async with session.post(fake.url + CHAT, json={"message": "hi"}, headers=AUTH) as r:
        assert r.status == status
        assert r.headers["Content-Type"] == content_type
        body = await r.read()
        headers = r.headers
    if marker is None:
        assert body == b""
    else:
        assert marker in body
        assert body.lstrip().lower().startswith((b"<html", b"<!doctype html"))
        # A proxy or portal page knows nothing of the API's rate limit.
        assert "X-RateLimit-Limit" not in headers
    assert fake.chat_deliveries == []
    assert fake.stats.fault_counts == {kind: 1}
    assert fake.requests[-1].status == status


async def test_wrong_content_type_labels_the_real_body_html(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    full = await reference_body(fake)
    fake.queue_fault("wrong_content_type")
    async with session.post(fake.url + GET, json={"conversation_id": 3}, headers=AUTH) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert await r.read() == full


async def test_error_5xx_statuses_bodies_and_seed() -> None:
    statuses: list[list[int]] = []
    for _ in range(2):
        async with (
            FakeSiteAssist(conversations=1, fault_seed=7) as fake,
            aiohttp.ClientSession() as session,
        ):
            fake.queue_fault("error_5xx", times=12)
            url = f"{fake.url}/conversations/{fake.conversation_ids[0]}"
            seen: list[int] = []
            for _ in range(12):
                async with session.get(url, headers=AUTH) as r:
                    seen.append(r.status)
                    assert await r.json() == fake.error_body(r.status)
                    assert "Retry-After" not in r.headers
                    assert "X-RateLimit-Remaining" in r.headers
            statuses.append(seen)
            assert fake.stats.fault_counts == {"error_5xx": 12}
    assert statuses[0] == statuses[1]  # the same fault_seed draws the same statuses
    assert set(statuses[0]) <= {500, 502, 503, 504}
    assert len(set(statuses[0])) > 1


async def test_rate_limited(fake: FakeWemasy, session: aiohttp.ClientSession) -> None:
    fake.queue_fault("rate_limited")
    status, body, headers = await post(session, fake, GET, {"conversation_id": 1})
    assert status == 429
    assert json.loads(body) == fake.rate_limited_body(1)
    assert headers["Retry-After"] == "1"
    assert headers["X-RateLimit-Remaining"] == "0"
    # A queued fault, not the server's limiter.
    assert fake.stats.rate_limited == 0
    assert fake.stats.fault_counts == {"rate_limited": 1}


async def test_process_then_drop_stores_the_message(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_fault("process_then_drop", path=CHAT)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, fake, CHAT, {"message": "hello"})
    assert len(user_messages(fake, "hello")) == 1
    assert [d["message"] for d in fake.chat_deliveries] == ["hello"]
    assert [r.status for r in fake.requests] == [0]
    assert fake.stats.status_counts == {0: 1}


async def test_keepalive_close_drops_exactly_the_next_request_on_that_connection(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_fault("keepalive_close", path=CHAT)
    status, body, _ = await post(session, fake, CHAT, {"message": "first"})
    assert status == 200
    assert msgspec.json.decode(body)["success"] is True
    # The pool (limit=1) reuses the connection, and the server "closed" it meanwhile.
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, fake, CHAT, {"message": "second"})
    status, _, _ = await post(session, fake, CHAT, {"message": "third"})
    assert status == 200
    first, second, third = fake.requests
    assert [r.status for r in (first, second, third)] == [200, 0, 200]
    assert second.connection == first.connection
    assert third.connection != first.connection
    # The dropped request was not handled, not authenticated and not counted as accepted.
    assert [d["message"] for d in fake.chat_deliveries] == ["first", "third"]
    assert fake.stats.accepted == 2
    assert fake.stats.fault_counts == {"keepalive_close": 1}


async def test_keepalive_close_affects_only_its_own_connection(fake: FakeWemasy) -> None:
    fake.queue_fault("keepalive_close")
    async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        assert (await post(one, fake, GET, {"conversation_id": 1}))[0] == 200
        for _ in range(3):
            assert (await post(two, fake, GET, {"conversation_id": 1}))[0] == 200
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(one, fake, GET, {"conversation_id": 1})
    assert [r.status for r in fake.requests] == [200, 200, 200, 200, 0]


async def test_stall_sends_part_then_holds_until_the_client_leaves(fake: FakeWemasy) -> None:
    full = await reference_body(fake)
    fake.queue_fault("stall")
    reader, writer = await asyncio.open_connection(fake.host, fake.port)
    body = b'{"conversation_id": 3}'
    writer.write(
        f"POST /api{GET} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert header(head, "Content-Length") == str(len(full))
    assert await reader.readexactly(len(full) // 2) == full[: len(full) // 2]
    with pytest.raises(asyncio.TimeoutError):  # not yet the builtin TimeoutError on 3.10
        await asyncio.wait_for(reader.read(1), timeout=0.3)
    assert fake.requests[-1].status == 200
    writer.close()
    await writer.wait_closed()
    # The server notices the client left and releases the handler (no task left behind).
    assert await released(fake)


async def test_stall_ends_when_the_server_closes() -> None:
    async with FakeLoop(conversations=3) as fake, aiohttp.ClientSession() as session:
        fake.queue_fault("stall")
        url = f"{fake.url}/v1/conversations/{fake.conversation_ids[1]}/messages"
        async with session.get(url, headers=AUTH) as r:
            assert r.status == 200
            assert await r.content.readany()
            assert fake.held_connections == 1
            with anyio.fail_after(PROOF):
                await fake.close()
            assert fake.held_connections == 0
            # The held connection is reset, so the client's read ends instead of hanging.
            with anyio.fail_after(PROOF), pytest.raises(aiohttp.ClientPayloadError):
                await r.read()


async def test_huge_body_streams_until_the_client_leaves(fake: FakeWemasy) -> None:
    fake.queue_fault("huge_body", path=CHAT)
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.url + CHAT, json={"message": "hi"}, headers=AUTH) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert r.content_length is None
            assert r.headers["Transfer-Encoding"] == "chunked"
            received = b""
            while len(received) < 3 * 1024 * 1024:
                received += await r.content.readany()
            assert received.startswith(b'{"data":"xxxx')
            r.close()  # give up, as a client with a body cap does
        # The server notices and stops; the fake serves the next request as usual.
        assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 200
    assert fake.chat_deliveries == []
    assert await released(fake)


async def test_huge_body_ends_as_valid_json_at_its_cap(
    fake: FakeWemasy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HUGE_BODY_CAP", 3 * 1024 * 1024)
    fake.queue_fault("huge_body")
    async with aiohttp.ClientSession() as session:
        _, body, _ = await post(session, fake, GET, {"conversation_id": 1})
    assert len(body) == 3 * 1024 * 1024 + len(b'{"data":""}')
    assert msgspec.json.decode(body) == {"data": "x" * (3 * 1024 * 1024)}


async def test_huge_header_sends_one_100_kb_header_line(fake: FakeWemasy) -> None:
    fake.queue_fault("huge_header", path=CHAT)
    head, received = await raw_exchange(fake, CHAT, b'{"message": "never"}')
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    padding = header(head, "X-Padding")
    assert padding is not None
    assert len(padding) == server_module.HUGE_HEADER_BYTES
    assert received == b"{}"  # then the connection is closed
    assert fake.chat_deliveries == []  # the handler did not run
    assert fake.requests[-1].status == 200


async def test_bad_status_line_echoes_the_authorization_header(fake: FakeWemasy) -> None:
    fake.queue_fault("bad_status_line")
    head, _ = await raw_exchange(fake, GET, b'{"conversation_id": 1}')
    assert head.startswith(b"HTTP/1.1 2x0 Bearer t\r\n")
    assert fake.requests[-1].status == 0  # no status a client can read


async def test_many_headers_sends_5000_header_lines(fake: FakeWemasy) -> None:
    fake.queue_fault("many_headers")
    head, received = await raw_exchange(fake, GET, b'{"conversation_id": 1}')
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert sum(1 for line in lines if line.startswith(b"X-Header-")) == 5000
    assert server_module.MANY_HEADERS == 5000
    assert received == b"{}"


async def test_short_body_promises_100_bytes_more_than_it_sends(fake: FakeWemasy) -> None:
    full = await reference_body(fake)
    fake.queue_fault("short_body")
    head, received = await raw_exchange(fake, GET, b'{"conversation_id": 3}')
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert header(head, "Content-Length") == str(len(full) + 100)
    assert received == full  # the whole real body, then a FIN (not a reset)
    fake.queue_fault("short_body", path=CHAT)
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + CHAT, json={"message": "short"}, headers=AUTH) as r,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    assert [d["message"] for d in fake.chat_deliveries] == ["short"]  # the handler ran


async def test_slow_trickle_sends_the_whole_response_one_byte_at_a_time(
    fake: FakeWemasy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "TRICKLE_INTERVAL", 0.0)  # fast, to see all of it
    full = await reference_body(fake)
    fake.queue_fault("slow_trickle")
    head, received = await raw_exchange(fake, GET, b'{"conversation_id": 3}')
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert header(head, "Content-Length") == str(len(full))
    assert received == full
    assert await released(fake)


async def test_slow_trickle_never_stalls_long_and_ends_when_the_client_leaves(
    fake: FakeWemasy,
) -> None:
    fake.queue_fault("slow_trickle")
    reader, writer = await asyncio.open_connection(fake.host, fake.port)
    body = b'{"conversation_id": 3}'
    writer.write(
        f"POST /api{GET} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    for _ in range(20):  # every byte comes well within a read timeout of 0.5 s
        received += await asyncio.wait_for(reader.read(1), timeout=0.5)
    assert received == b"HTTP/1.1 200 OK\r\nCon"
    assert fake.held_connections == 1
    writer.close()
    await writer.wait_closed()
    assert await released(fake)


# ---------------------------------------------------------------------------- bookkeeping


async def test_queue_fault_path_times_and_order(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_fault("empty_200", times=2, path=LIST)
    fake.queue_fault("rate_limited")
    assert fake.pending_faults == 3
    assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 429
    for _ in range(2):
        status, body, _ = await post(session, fake, LIST, {})
        assert (status, body) == (200, b"")
    assert (await post(session, fake, LIST, {}))[0] == 200
    assert fake.pending_faults == 0
    assert fake.stats.fault_counts == {"empty_200": 2, "rate_limited": 1}
    assert fake.stats.faults_served == 3
    assert fake.stats.as_dict()["fault_counts"] == {"empty_200": 2, "rate_limited": 1}


async def test_queue_disconnect_is_the_disconnect_fault(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_disconnect(times=2)
    fake.queue_error(503)
    fake.queue_delay(0.01)
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, fake, GET, {"conversation_id": 1})
    assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 503
    assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 200
    assert fake.stats.fault_counts == {"disconnect": 2, "error": 1, "delay": 1}


async def test_faults_apply_after_auth(fake: FakeWemasy) -> None:
    fake.queue_fault("process_then_drop")
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + CHAT, json={"message": "x"}) as r,
    ):
        assert r.status == 401
    assert fake.pending_faults == 1
    assert fake.stats.fault_counts == {}


async def test_inject_faults_rate_seed_precedence_and_off(fake: FakeWemasy) -> None:
    kinds = ("empty_200", "html_502", "error_5xx")
    fake.queue_fault("rate_limited")
    fake.inject_faults(0.25, kinds, seed=11)

    async def run(session: aiohttp.ClientSession, count: int) -> list[int]:
        """Statuses, with 0 for an empty 200."""
        outcomes = []
        for _ in range(count):
            status, body, _ = await post(session, fake, GET, {"conversation_id": 2})
            outcomes.append(status if body else 0)
        return outcomes

    async with aiohttp.ClientSession() as session:
        first = await run(session, 400)
        assert first[0] == 429  # the queued fault came first
        injected = sum(fake.stats.fault_counts.get(k, 0) for k in kinds)
        # Binomial(399, 0.25): mean 99.75, sd 8.6; a seeded run is deterministic anyway.
        assert 70 <= injected <= 130
        assert injected == sum(1 for status in first[1:] if status != 200)
        assert fake.stats.faults_served == injected + 1
        for kind in kinds:  # uniform over the kinds: each gets a fair share
            assert fake.stats.fault_counts[kind] > injected / 6
        assert set(first[1:]) <= {0, 200, 500, 502, 503, 504}

        fake.inject_faults(0.25, kinds, seed=11)
        assert await run(session, 399) == first[1:]  # same seed, same faults

        fake.inject_faults(0)
        assert set(await run(session, 50)) == {200}


async def test_inject_faults_path_filter(fake: FakeWemasy) -> None:
    fake.inject_faults(1.0, ["html_502"], path=LIST)
    async with aiohttp.ClientSession() as session:
        assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 200
        assert (await post(session, fake, LIST, {}))[0] == 502
        fake.clear_faults()
        assert (await post(session, fake, LIST, {}))[0] == 200


async def test_stats_endpoint_reports_fault_counts(fake: FakeWemasy) -> None:
    fake.queue_fault("html_200")
    async with aiohttp.ClientSession() as session:
        await post(session, fake, GET, {"conversation_id": 1})
        origin = fake.url.removesuffix("/api")
        async with session.get(origin + "/__fake__/stats") as response:
            stats = await response.json()
    assert stats["fault_counts"] == {"html_200": 1}
    assert stats["faults_served"] == 1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
async def test_every_kind_at_random_under_64_connections_leaks_nothing() -> None:
    """A small soak at the raw level: many concurrent faults, then nothing left over."""
    gc.collect()
    fds = open_fds()
    tasks = len(asyncio.all_tasks())
    requests = 1500
    outcomes: dict[str, int] = {}
    async with FakeWemasy(conversations=30, fault_seed=3) as fake:
        fake.inject_faults(0.2, seed=5)
        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            ids = iter(range(requests))

            async def worker() -> None:
                for i in ids:
                    try:
                        async with session.post(
                            fake.url + (CHAT if i % 5 == 0 else GET),
                            json={"message": f"m{i}"} if i % 5 == 0 else {"conversation_id": 1},
                            headers=AUTH,
                        ) as r:
                            # Read at most 2 MiB, like a client with a body cap.
                            size = 0
                            while (chunk := await r.content.readany()) and size < 2**21:
                                size += len(chunk)
                            outcome = str(r.status)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        outcome = type(exc).__name__
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

            with anyio.fail_after(60):
                await asyncio.gather(*(worker() for _ in range(64)))
        stats = fake.stats
        assert sum(outcomes.values()) == requests
        # Every kind was drawn, and every fault shows up in the counters.
        assert set(stats.fault_counts) == set(FAULT_KINDS)
        assert sum(stats.fault_counts.values()) == stats.faults_served
        assert 0.15 * requests < stats.faults_served < 0.25 * requests
        assert stats.requests_total == requests  # POSTs: aiohttp never resends them
        # Each dropped request (disconnect, process_then_drop, the request after a
        # keepalive_close) is exactly one ServerDisconnectedError for the client; the other
        # status 0 is a bad status line.
        bad_status = stats.fault_counts["bad_status_line"]
        assert outcomes.get("ServerDisconnectedError", 0) == stats.status_counts[0] - bad_status
        with anyio.fail_after(PROOF):
            await fake.close()
        assert fake.held_connections == 0
    await asyncio.sleep(0)
    gc.collect()
    assert len(asyncio.all_tasks()) == tasks
    assert open_fds() == fds


async def test_serve_subprocess_with_fault_rate() -> None:
    async with served(
        "--provider",
        "loop",
        "--conversations",
        "2",
        "--fault-rate",
        "1",
        "--fault-seed",
        "4",
        "--fault-kinds",
        "empty_200,html_200",
    ) as url:
        async with aiohttp.ClientSession() as session:
            for _ in range(6):
                async with session.get(url + "/v1/conversations/x/messages", headers=AUTH) as r:
                    assert r.status == 200
                    assert r.content_type in ("application/json", "text/html")
            async with session.get(url + "/__fake__/stats") as r:
                stats = await r.json()
        assert sum(stats["fault_counts"].values()) == 6
        assert set(stats["fault_counts"]) <= {"empty_200", "html_200"}
