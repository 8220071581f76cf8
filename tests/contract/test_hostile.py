"""Hostile servers (issue 12), through the public API on 127.0.0.1: no secret in any rendering.

The hostile replies come from the fakes' fault kinds (``huge_header``, ``bad_status_line``,
``many_headers``, ``slow_trickle``, ``short_body``, ...) and, where a fake's pipeline cannot
produce them, from small raw-socket asyncio servers. Each error is rendered every way a
program, a logger or an error tracker would (:mod:`tests.contract.hostile`).

Pool waits and leaks are in ``test_hostile_limits.py``, careless callers and faithful errors
in ``test_hostile_callers.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from tests.support.cases import CASES, ProviderCase
from tests.support.renderings import (
    CHAT,
    TOKEN,
    assert_clean,
    error_chain,
    failure,
    renderings,
    url_prefix_of,
)
from wemasy_async import APIConnectionError, APIError, APIStatusError, APITimeoutError, Client
from wemasy_async.testing import FakeWemasy

# ---------------------------------------------------------------------------- raw servers


@asynccontextmanager
async def raw_server(reply: Callable[[bytes], bytes], *, hold: float = 0.0) -> AsyncIterator[int]:
    """A raw-socket server on 127.0.0.1 answering every request head with ``reply(head)``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(reply(head))
            await writer.drain()
            if hold:
                await asyncio.sleep(hold)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _authorization(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip()
    return b""


RAW_REPLIES: dict[str, Callable[[bytes], bytes]] = {
    # The token as a header line without a colon: aiohttp quotes the line it refused.
    "token_as_a_header_line": lambda head: (
        b"HTTP/1.1 200 OK\r\n" + _authorization(head) + b"\r\nContent-Length: 2\r\n\r\n{}"
    ),
    # A 100 kB status line ending in the token.
    "huge_status_line": lambda head: (
        b"HTTP/1.1 200 " + b"x" * 100_000 + _authorization(head) + b"\r\n\r\n"
    ),
    # The token in a well-formed header of a body that is not JSON.
    "token_in_a_header": lambda head: (
        b"HTTP/1.1 200 OK\r\nX-Echo: "
        + _authorization(head)
        + b"\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad:"
    ),
    # A 502 whose body quotes the request head, token included.
    "token_in_an_error_body": lambda head: (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
        % (len(head), head)
    ),
    # Content-Length longer than the body, then the connection is closed.
    "short_body": lambda head: (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
    ),
}


# ---------------------------------------------------------------------------- secrets


HOSTILE_FAULTS = (
    "huge_header",
    "bad_status_line",
    "many_headers",
    "short_body",
    "slow_trickle",
    "stall",
)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("kind", HOSTILE_FAULTS)
async def test_a_hostile_reply_never_shows_the_token(case: ProviderCase, kind: str) -> None:
    async with case.start(token=TOKEN) as fake:
        fake.queue_fault(kind, path=case.get_path)
        conversation = case.ids(fake)[0]
        async with Client(
            case.name, token=TOKEN, base_url=fake.url, retry=False, timeout=0.5
        ) as client:
            error = await failure(lambda: client.get_conversation(conversation))
    expected = APITimeoutError if kind in ("slow_trickle", "stall") else APIConnectionError
    assert isinstance(error, expected), repr(error)
    assert_clean(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    # What aiohttp said is kept, cleaned: its type and message.
    if kind == "bad_status_line":
        assert "ClientResponseError" in str(error)
        assert "Bearer [REDACTED]" in str(error)
    if kind in ("huge_header", "many_headers"):
        assert "ClientResponseError" in str(error)
    if kind == "short_body":
        assert "ClientPayloadError" in str(error)
    # The request really carried the token: hidden, not missing.
    assert fake.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reply", RAW_REPLIES.values(), ids=RAW_REPLIES)
async def test_a_raw_hostile_server_never_gets_the_token_into_an_error(
    case: ProviderCase, reply: Callable[[bytes], bytes]
) -> None:
    async with raw_server(reply) as port:
        base_url = f"http://127.0.0.1:{port}{url_prefix_of(case)}"
        async with Client(
            case.name, token=TOKEN, base_url=base_url, retry=False, timeout=2.0
        ) as client:
            error = await failure(lambda: client.get_conversation(case.ids(case.start())[0]))
    assert isinstance(error, APIError), repr(error)
    assert_clean(error)


async def test_a_hostile_chat_reply_never_shows_the_token() -> None:
    # chat sends a body (other headers, a POST payload) and is not retried once sent.
    async with FakeWemasy(token=TOKEN, conversations=3) as fake:
        async with Client("wemasy", token=TOKEN, base_url=fake.url, timeout=0.5) as client:
            for kind in HOSTILE_FAULTS:
                fake.queue_fault(kind, path=CHAT)
                error = await failure(lambda: client.chat("hello"))
                assert isinstance(error, APIConnectionError), (kind, repr(error))
                assert error.request_sent
                assert_clean(error)
        assert len(fake.requests_to(CHAT)) == len(HOSTILE_FAULTS)  # none resent


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_retried_hostile_replies_never_show_the_token(case: ProviderCase) -> None:
    # With the default retry policy the error passes the engine's retry loop too.
    async with case.start(token=TOKEN) as fake:
        for kind in ("huge_header", "bad_status_line", "short_body", "many_headers"):
            fake.queue_fault(kind, path=case.get_path)
        conversation = case.ids(fake)[0]
        async with Client(case.name, token=TOKEN, base_url=fake.url, timeout=0.5) as client:
            error = await failure(lambda: client.get_conversation(conversation))
    assert isinstance(error, APIConnectionError)
    assert_clean(error)
    assert len(fake.requests) == 4


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_timeout_never_shows_the_token_in_any_frame(case: ProviderCase) -> None:
    async with case.start(token=TOKEN) as fake:
        fake.queue_delay(2.0, path=case.get_path)
        conversation = case.ids(fake)[0]
        async with Client(
            case.name, token=TOKEN, base_url=fake.url, retry=False, timeout=0.2
        ) as client:
            error = await failure(lambda: client.get_conversation(conversation))
    assert isinstance(error, APITimeoutError)
    locals_shown = renderings(error)["locals"]
    assert "headers = SecretHeaders(" in locals_shown  # the transport's frame, rendered
    assert "'Authorization': '[REDACTED]'" in locals_shown
    assert_clean(error)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("how", ["asyncio.timeout", "wait_for", "cancel"])
async def test_a_cancelled_call_never_shows_the_token(case: ProviderCase, how: str) -> None:
    if how == "asyncio.timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is new in Python 3.11")
    # The caller's own deadline: the exception is asyncio's, but it passed through aiohttp's
    # frames (whose locals hold the request headers) on its way out.
    async with case.start(token=TOKEN) as fake:
        fake.queue_delay(2.0, path=case.get_path)
        conversation = case.ids(fake)[0]
        async with Client(case.name, token=TOKEN, base_url=fake.url, retry=False) as client:
            caught: BaseException | None = None
            if how == "asyncio.timeout":
                try:
                    async with asyncio.timeout(0.2):
                        await client.get_conversation(conversation)
                except TimeoutError as exc:
                    caught = exc
            elif how == "wait_for":
                try:
                    await asyncio.wait_for(client.get_conversation(conversation), 0.2)
                except asyncio.TimeoutError as exc:  # not yet the builtin TimeoutError on 3.10
                    caught = exc
            else:
                task = asyncio.create_task(client.get_conversation(conversation))
                await asyncio.sleep(0.2)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError as exc:
                    caught = exc
            assert caught is not None
            assert_clean(caught)
            assert any(isinstance(e, asyncio.CancelledError) for e in error_chain(caught))
            # The client is still usable afterwards.
            assert (await client.get_conversation(conversation)).id == str(conversation)


async def test_a_too_large_body_with_an_echoed_token_never_shows_it() -> None:
    # ResponseTooLargeError is raised while aiohttp's response (its headers echo the token)
    # is a local of the reading frame: those frames must not be in the traceback.
    def reply(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nX-Echo: " + _authorization(head) + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n"
        )

    async with raw_server(reply) as port:
        base_url = f"http://127.0.0.1:{port}/api"
        async with Client(
            "wemasy", token=TOKEN, base_url=base_url, retry=False, max_response_bytes=100
        ) as client:
            error = await failure(lambda: client.get_conversation(1))
    assert type(error).__name__ == "ResponseTooLargeError"
    assert_clean(error)


@pytest.mark.parametrize("offset", [60, 80, 85, 90, 95, 99])
async def test_a_token_cut_short_in_an_over_long_line_is_blanked_too(offset: int) -> None:
    # aiohttp quotes the first 100 bytes of a line that is too long: the token may straddle
    # that cut, so only its start is shown.
    def reply(head: bytes) -> bytes:
        line = b"X-Echo: " + b"a" * (offset - 8) + _authorization(head)
        return b"HTTP/1.1 200 OK\r\n" + line + b"z" * 10_000 + b"\r\n\r\n"

    async with raw_server(reply) as port:
        base_url = f"http://127.0.0.1:{port}/api"
        async with Client("wemasy", token=TOKEN, base_url=base_url, retry=False) as client:
            error = await failure(lambda: client.get_conversation(1))
    assert isinstance(error, APIConnectionError)
    for shown in renderings(error).values():
        assert not any(TOKEN[:n] in shown for n in range(8, len(TOKEN) + 1)), shown[:400]


async def test_an_echoed_token_is_blanked_in_status_errors() -> None:
    # The fake echoes nothing itself; a queued 500 quoting the token in body and header.
    async with FakeWemasy(token=TOKEN, conversations=2) as fake:
        fake.queue_error(
            500, body={"success": False, "message": f"bad {TOKEN}"}, headers={"X-Echo": TOKEN}
        )
        async with Client("wemasy", token=TOKEN, base_url=fake.url, retry=False) as client:
            error = await failure(lambda: client.get_conversation(1))
    assert isinstance(error, APIStatusError)
    assert error.message == "bad [REDACTED]"
    assert error.headers["X-Echo"] == "[REDACTED]"
    assert_clean(error)
