"""The fakes' fault modes, seen at the raw level (plain aiohttp and asyncio streams): each kind.

Each kind of `FAULT_KINDS` is checked for what `FakeServer.queue_fault` promises: what
reaches the wire, whether the handler ran, and how the request is recorded and counted.
The SDK's handling of the same faults is tested in tests/contract/test_faults.py; the API of
``queue_fault`` and the bookkeeping are in ``test_bookkeeping.py``.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import anyio
import msgspec
import pytest

from tests.support.cases import released
from tests.support.raw_http import (
    AUTH,
    CHAT,
    GET,
    PROOF,
    header,
    post,
    raw_exchange,
    reference_body,
    user_messages,
)
from wemasy_async.testing import FakeLoop, FakeSiteAssist, FakeWemasy
from wemasy_async.testing import _server as server_module

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
