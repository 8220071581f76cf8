"""Hostile servers and careless callers (issue 12), through the public API on 127.0.0.1.

The hostile replies come from the fakes' fault kinds (``huge_header``, ``bad_status_line``,
``many_headers``, ``slow_trickle``, ``short_body``, ...) and, where a fake's pipeline cannot
produce them, from small raw-socket asyncio servers. Each error is rendered every way a
program, a logger or an error tracker would: ``str``, ``repr``, the formatted exception with
its whole chain, the traceback with every frame's locals, and a pickle.
"""

from __future__ import annotations

import asyncio
import gc
import math
import pickle
import sys
import threading
import traceback
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from tests.support.cases import CASES, ProviderCase
from wemasy_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    Client,
    ClientClosedError,
    InvalidRequestError,
    NotFoundError,
    PaginationError,
    UnprocessableEntityError,
    WemasyAsyncError,
)
from wemasy_async.testing import FakeWemasy
from wemasy_async.transport import TRACE_CONFIG

TOKEN = "sk-SECRET-token-1234567890"
SECRET_PARTS = (TOKEN, "SECRET-token", "token-1234567890", "1234567890")
GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"


# ---------------------------------------------------------------------------- renderings


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable through ``__cause__`` and ``__context__``."""
    found: list[BaseException] = []
    stack = [error]
    while stack:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found


def renderings(error: BaseException) -> dict[str, str]:
    """Everything that shows ``error``: each rendering by name."""
    shown = {
        "str": str(error),
        "repr": repr(error),
        "format_exception": "".join(traceback.format_exception(error)),
        "locals": "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        ),
    }
    shown["pickle"] = pickle.dumps(error).decode("latin-1")
    for index, link in enumerate(_chain(error)):
        shown[f"chain[{index}]"] = " ".join(
            [str(link), repr(link), repr(link.args), repr(getattr(link, "__dict__", None))]
        )
    return shown


def assert_clean(error: BaseException) -> None:
    """No rendering of ``error``, nor of anything in its chain, holds the token."""
    leaks = {
        name: text
        for name, text in renderings(error).items()
        if any(part in text for part in SECRET_PARTS)
    }
    assert not leaks, {name: _around(text) for name, text in leaks.items()}
    # No aiohttp exception (whose request_info holds the Authorization header) is reachable.
    for link in _chain(error):
        assert not isinstance(link, aiohttp.ClientError), repr(link)
        assert not any(isinstance(v, aiohttp.RequestInfo) for v in vars(link).values())


def _around(text: str) -> str:
    index = min(i for i in (text.find(part) for part in SECRET_PARTS) if i >= 0)
    return text[max(0, index - 200) : index + 60]


async def failure(call: Callable[[], Awaitable[object]]) -> WemasyAsyncError:
    """The SDK error ``call()`` raises (anything else fails the test).

    The token is only a module global here, never a local: the frames of this function and
    below are what the traceback renderings show.
    """
    try:
        await asyncio.wait_for(call(), 30)
    except WemasyAsyncError as error:
        return error
    raise AssertionError("the call succeeded")


def _prefix(case: ProviderCase) -> str:
    return type(case.start()).url_prefix


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
        base_url = f"http://127.0.0.1:{port}{_prefix(case)}"
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
            assert any(isinstance(e, asyncio.CancelledError) for e in _chain(caught))
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


# ---------------------------------------------------------------------------- pool waits


async def _chat_storm(
    fake: FakeWemasy, session: aiohttp.ClientSession | None
) -> tuple[dict[str, WemasyAsyncError], set[str]]:
    """400 concurrent chats, 0.5 s timeout, 0.3 s server latency; errors by message."""
    fake.queue_delay(0.3, times=400, path=CHAT)
    errors: dict[str, WemasyAsyncError] = {}
    async with Client(
        "wemasy",
        token=TOKEN,
        base_url=fake.url,
        session=session,
        timeout=0.5,
        retry=False,
        rate_limit=False,
    ) as client:

        async def one(text: str) -> None:
            try:
                await client.chat(text)
            except WemasyAsyncError as error:
                errors[text] = error

        await asyncio.gather(*(one(f"storm {i}") for i in range(400)))
    received = {str(r.json["message"]) for r in fake.requests_to(CHAT) if r.json}
    return errors, received


async def test_waiting_for_a_pooled_connection_is_not_sent() -> None:
    # A small pool: most of the 400 calls time out while waiting for one of 10 connections.
    connector = aiohttp.TCPConnector(limit=10)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        aiohttp.ClientSession(connector=connector, trace_configs=[TRACE_CONFIG]) as session,
    ):
        errors, received = await _chat_storm(fake, session)
    unsent = {text for text, e in errors.items() if isinstance(e, APIConnectionError)}
    unsent = {text for text in unsent if not errors[text].request_sent}  # type: ignore[attr-defined]
    assert all(isinstance(e, APITimeoutError) for e in errors.values())
    assert len(unsent) > 300  # the scenario happened: most calls only waited for the pool
    # Exact accounting: "not sent" never reached the server, "sent" always did.
    assert not unsent & received
    assert set(errors) - unsent <= received
    assert all("not sent" in str(errors[text]) for text in unsent)


async def test_pool_waits_of_the_clients_own_session_are_not_sent() -> None:
    # The session the client creates tells pool waits from sends in its connector.
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        errors, received = await _chat_storm(fake, None)
    for text, error in errors.items():
        assert isinstance(error, APITimeoutError)
        assert error.request_sent == (text in received), text


async def test_without_tracing_a_callers_session_counts_pool_waits_as_sent() -> None:
    # Nothing observes the pool of a plain session: the safe side, chat is not resent.
    connector = aiohttp.TCPConnector(limit=10)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        errors, received = await _chat_storm(fake, session)
    assert len(errors) > 300
    assert all(isinstance(e, APITimeoutError) and e.request_sent for e in errors.values())
    assert len(received) < 100  # most of them never reached the server


async def test_a_chat_that_only_waited_for_the_pool_is_retried_once_delivered() -> None:
    # With retries on, a chat that never got a connection is sent again; none twice.
    connector = aiohttp.TCPConnector(limit=20)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        aiohttp.ClientSession(connector=connector, trace_configs=[TRACE_CONFIG]) as session,
        Client(
            "wemasy",
            token=TOKEN,
            base_url=fake.url,
            session=session,
            timeout=0.5,
            rate_limit=False,
        ) as client,
    ):
        fake.queue_delay(0.3, times=100, path=CHAT)
        results = await asyncio.gather(
            *(client.chat(f"retry {i}") for i in range(100)), return_exceptions=True
        )
        delivered = [str(r.json["message"]) for r in fake.requests_to(CHAT) if r.json]
    assert len(delivered) == len(set(delivered))  # nothing delivered twice
    failed = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, APITimeoutError) and r.request_sent for r in failed)
    assert len(results) - len(failed) > 30  # pool waiters got their turn on a retry (20 before)


@pytest.mark.parametrize("how", ["cancel", "asyncio.timeout", "taskgroup"])
async def test_a_call_cancelled_while_it_waits_for_the_pool_leaves_nothing_behind(
    how: str,
) -> None:
    if how != "cancel" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout and TaskGroup are new in Python 3.11")
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        FakeWemasy(token=TOKEN, conversations=2) as fake,
        aiohttp.ClientSession(connector=connector, trace_configs=[TRACE_CONFIG]) as session,
        Client("wemasy", token=TOKEN, base_url=fake.url, session=session) as client,
    ):
        fake.queue_delay(0.3, path=GET)
        holder = asyncio.create_task(client.get_conversation(1))  # holds the one connection
        await asyncio.sleep(0.05)
        if how == "cancel":
            waiter = asyncio.create_task(client.get_conversation(2))
            await asyncio.sleep(0.05)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        elif how == "asyncio.timeout":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.get_conversation(2)
        else:

            async def fail_soon() -> None:
                await asyncio.sleep(0.05)
                raise ValueError("a sibling failed")

            async def group() -> None:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(client.get_conversation(2))
                    tasks.create_task(fail_soon())

            with pytest.raises(Exception) as info:  # noqa: PT011 - an ExceptionGroup
                await group()
            assert type(info.value).__name__ == "ExceptionGroup"
        assert (await holder).id == "1"
        assert (await client.get_conversation(2)).id == "2"  # the pool is whole again
        assert [r.json["conversation_id"] for r in fake.requests] == [1, 2]
    assert connector.closed


# ---------------------------------------------------------------------------- leaks


async def test_distinct_timeouts_do_not_accumulate() -> None:
    async with (
        FakeWemasy(token=TOKEN, conversations=2) as fake,
        Client("wemasy", token=TOKEN, base_url=fake.url, rate_limit=False) as client,
    ):
        await client.get_conversation(1)  # warm up: session, pool, first allocations
        fake.reset_log()
        fake.record_requests = False
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for i in range(3000):
                await client.with_options(timeout=5 + i * 1e-6).get_conversation(1)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # A cache of every distinct timeout kept ~460 KiB; loosely bounded, not a benchmark.
    assert grown < 200 * 1024, grown


def _paging_app(pages: Callable[[int], dict[str, Any]]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(pages(int(body.get("page", 1))))

    app = web.Application()
    app.router.add_post("/api" + LIST, handle)
    return app


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    finally:
        await runner.cleanup()


def _conversation(number: int) -> dict[str, Any]:
    return {"id": number, "agent_id": "a", "status": "closed", "started_at": None}


def _page(items: list[int], current: int, last: int) -> dict[str, Any]:
    return {
        "success": True,
        "data": [_conversation(i) for i in items],
        "pagination": {"current_page": current, "last_page": last, "per_page": 2, "total": 8},
    }


PAGINGS: dict[str, tuple[Callable[[int], dict[str, Any]], int, int]] = {
    # (server, the page that fails, the page the server said it sent)
    "ignores_page": (lambda page: _page([1, 2], 1, 4), 2, 1),
    "repeats_a_page": (lambda page: _page([2 * page - 1, 2 * page], min(page, 2), 4), 3, 2),
    "same_items_again": (lambda page: _page([1, 2], page, 4), 2, 2),
}


@pytest.mark.parametrize("paging", PAGINGS.values(), ids=PAGINGS)
async def test_pages_that_do_not_advance_end_in_an_error(
    paging: tuple[Callable[[int], dict[str, Any]], int, int],
) -> None:
    pages, failing, received = paging
    seen: list[str] = []

    async def iterate() -> None:
        with anyio.fail_after(10):
            async for conversation in client.iter_conversations(per_page=2):
                seen.append(conversation.id)

    async with (
        serving(_paging_app(pages)) as url,
        Client("wemasy", token=TOKEN, base_url=url, retry=False) as client,
    ):
        error = await failure(iterate)
    assert isinstance(error, PaginationError), repr(error)
    assert error.page == failing
    assert error.received == received
    assert f"page {failing}" in str(error)
    assert len(seen) == len(set(seen))  # no duplicates were yielded
    assert_clean(error)


async def test_pages_that_advance_are_all_read() -> None:
    # The control: a well-behaved server pages to the end without an error.
    app = _paging_app(lambda page: _page([2 * page - 1, 2 * page], page, 4))
    async with (
        serving(app) as url,
        Client("wemasy", token=TOKEN, base_url=url, retry=False) as client,
    ):
        ids = [c.id async for c in client.iter_conversations(per_page=2)]
    assert ids == [str(i) for i in range(1, 9)]


async def test_a_10_mb_chat_message_is_sent_once_without_a_warning() -> None:
    message = "x" * (10 * 1024 * 1024)
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            ticks = 0
            done = False

            async def ticker() -> None:
                # The loop keeps turning while the body goes out.
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            with warnings.catch_warnings():
                warnings.simplefilter("error")  # as in this suite, and many users' suites
                tick = asyncio.create_task(ticker())
                reply = await client.chat(message)
                done = True
                await tick
        assert reply.content
        (request,) = fake.requests_to(CHAT)
        assert request.json["message"] == message  # one message, the full size
        assert len(fake.chat_deliveries) == 1
        assert request.headers["Content-Type"] == "application/json"
        assert ticks > 10


@pytest.mark.parametrize("after", [0, 1, 3, 10, 30])
async def test_a_large_chat_cancelled_while_it_goes_out_leaves_the_client_usable(
    after: int,
) -> None:
    # Cancelled after `after` turns of the loop: connecting, writing the body in chunks,
    # waiting for the reply.
    message = "y" * (4 * 1024 * 1024)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        Client("wemasy", token=TOKEN, base_url=fake.url) as client,
    ):
        task = asyncio.create_task(client.chat(message))
        for _ in range(after):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert_clean(info.value)
        reply = await client.chat("after the cancel")
        assert reply.content
        await asyncio.sleep(0.05)  # let a cut-off upload reach the fake's handler, if at all
        delivered = [d["message"] for d in fake.chat_deliveries]
    assert delivered.count(message) <= 1
    assert "after the cancel" in delivered


# ---------------------------------------------------------------------------- careless callers


def test_a_session_from_an_earlier_asyncio_run_is_a_clear_error() -> None:
    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    old = asyncio.run(make_session())  # its loop is closed when asyncio.run returns

    async def use() -> BaseException:
        async with FakeWemasy(token=TOKEN, conversations=1) as fake:
            client = Client("wemasy", token=TOKEN, base_url=fake.url, session=old)
            async with client:
                try:
                    await client.get_conversation(1)
                except BaseException as exc:
                    return exc
            assert fake.requests == []
        raise AssertionError("the call succeeded")

    try:
        error = asyncio.run(use())
    finally:
        old.detach()  # nothing to close: it never opened a connection
    assert isinstance(error, ClientClosedError), repr(error)
    assert "another event loop" in str(error)


def test_a_session_used_in_a_live_other_loop_is_a_clear_error() -> None:
    # The session's loop still runs (in another thread); this loop must not touch it.
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    holder: dict[str, Any] = {}

    async def own() -> None:
        nonlocal stop
        holder["session"] = aiohttp.ClientSession()
        stop = asyncio.get_running_loop().create_future()
        holder["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop
        await holder["session"].close()

    thread = threading.Thread(target=lambda: asyncio.run(own()))
    thread.start()
    try:
        ready.wait(10)

        async def use() -> BaseException:
            async with FakeWemasy(token=TOKEN, conversations=1) as fake:
                session = holder["session"]
                async with Client("wemasy", token=TOKEN, base_url=fake.url, session=session) as c:
                    try:
                        await c.get_conversation(1)
                    except BaseException as exc:
                        return exc
            raise AssertionError("the call succeeded")

        error = asyncio.run(use())
    finally:
        loop = holder["loop"]
        loop.call_soon_threadsafe(lambda: stop is not None and stop.set_result(None))
        thread.join(10)
    assert isinstance(error, ClientClosedError), repr(error)


async def test_a_session_with_basic_auth_is_refused_before_any_io() -> None:
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp 3.14 deprecates it
            session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", "pass"))
        async with session:
            with pytest.raises(InvalidRequestError) as info:
                Client("wemasy", token=TOKEN, base_url=fake.url, session=session)
        assert fake.requests == []
    assert info.value.argument == "session"
    assert "auth=" in str(info.value)
    assert "pass" not in str(info.value)


NON_FINITE = [math.nan, math.inf, -math.inf]


def _tools_with(value: float, where: str) -> list[dict[str, Any]]:
    parameters: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "number"}}}
    tool: dict[str, Any] = {"type": "function", "function": {"name": "f"}}
    if where == "default":
        parameters["properties"]["n"]["default"] = value
    elif where == "enum":
        parameters["properties"]["n"]["enum"] = [1.0, value]
    elif where == "tool":
        tool["weight"] = value
    else:
        parameters["properties"]["n"]["examples"] = ({"deep": [[value]]},)
    tool["function"]["parameters"] = parameters
    return [{"type": "function", "function": {"name": "ok"}}, tool]


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize("where", ["default", "enum", "tool", "nested_tuple"])
async def test_non_finite_numbers_in_tools_are_refused_before_any_io(
    value: float, where: str
) -> None:
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            with pytest.raises(InvalidRequestError) as info:
                await client.chat("hi", tools=_tools_with(value, where))
        assert fake.requests == []
    assert info.value.argument is not None
    assert info.value.argument.startswith("tools[1]")
    assert "finite" in str(info.value)


# ---------------------------------------------------------------------------- faithful errors


@pytest.mark.parametrize(
    "errors",
    [
        {"flag": True},
        {"count": 3, "ratio": 0.5},
        {"nested": {"a": ["x"]}},
        {"mixed": ["ok", 1]},
        {"none": None},
    ],
    ids=repr,
)
async def test_a_422_with_unusual_errors_keeps_its_message_and_errors(
    errors: dict[str, Any],
) -> None:
    body = {"message": "The given data was invalid.", "errors": {"field": "plain", **errors}}
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        fake.queue_error(422, body=body, path=CHAT)
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            error = await failure(lambda: client.chat("hi"))
    assert isinstance(error, UnprocessableEntityError)
    assert error.message == "The given data was invalid."
    assert error.errors == {"field": ["plain"], **errors}  # strings listed, the rest as sent
    assert error.body == body


async def test_a_422_whose_errors_is_not_an_object_keeps_its_message() -> None:
    body = {"message": "The given data was invalid.", "errors": ["message is required"]}
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        fake.queue_error(422, body=body, path=CHAT)
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            error = await failure(lambda: client.chat("hi"))
    assert isinstance(error, UnprocessableEntityError)
    assert error.message == "The given data was invalid."
    assert error.errors == {}
    assert error.body == body


def _assert_located(error: APIError, method: str, path: str) -> None:
    assert error.method == method
    assert error.path == path
    assert f"{method} {path}" in str(error)
    assert "?" not in str(error.path)
    assert_clean(error)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_every_error_names_its_request(case: ProviderCase, free_port: int) -> None:
    async with case.start(token=TOKEN) as fake:
        conversation = case.ids(fake)[0]
        async with Client(
            case.name, token=TOKEN, base_url=fake.url, retry=False, timeout=0.3
        ) as client:
            await client.get_conversation(conversation)
            (request,) = fake.requests
            method, path = request.method, request.raw_path
            fake.queue_error(404, path=case.get_path)
            status = await failure(lambda: client.get_conversation(conversation))
            assert isinstance(status, NotFoundError)
            _assert_located(status, method, path)
            fake.queue_error(500, path=case.get_path)
            _assert_located(
                await failure(lambda: client.get_conversation(conversation)), method, path
            )
            fake.queue_fault("reset_mid_body", path=case.get_path)
            broken = await failure(lambda: client.get_conversation(conversation))
            assert isinstance(broken, APIConnectionError)
            _assert_located(broken, method, path)
            fake.queue_delay(1.0, path=case.get_path)
            slow = await failure(lambda: client.get_conversation(conversation))
            assert isinstance(slow, APITimeoutError)
            _assert_located(slow, method, path)
            # Loop sends limit= in the query: never in the error.
            fake.queue_error(503, path=case.get_path)
            limited = await failure(lambda: client.list_messages(conversation, limit=1))
            assert "limit=" not in str(limited)
            assert "limit=" not in repr(limited)
    refused_url = f"http://127.0.0.1:{free_port}{_prefix(case)}"
    async with Client(case.name, token=TOKEN, base_url=refused_url, retry=False) as client:
        refused = await failure(lambda: client.get_conversation(conversation))
        refused_limited = await failure(lambda: client.list_messages(conversation, limit=1))
    assert "limit=" not in str(refused_limited)
    assert isinstance(refused, APIConnectionError)
    assert not refused.request_sent
    _assert_located(refused, method, path)


async def test_a_base_url_typo_shows_the_path_in_every_error_of_a_batch() -> None:
    async with (
        FakeWemasy(token=TOKEN, conversations=3) as fake,
        Client("wemasy", token=TOKEN, base_url=fake.url + "i", retry=False) as client,
        client.fetch_conversations([1, 2, 3]) as batch,
    ):
        results = [result async for result in batch]
    assert len(results) == 3
    for result in results:
        assert isinstance(result.error, NotFoundError)
        assert result.error.path == "/apii" + GET
        assert "POST /apii/services/ai/v1/conversations/get" in str(result.error)


UNDOCUMENTED_404 = {
    "laravel_json": (b'{"message": "Not Found"}', "application/json"),
    "nginx_html": (b"<html><body><h1>404 Not Found</h1></body></html>", "text/html"),
    "empty": (b"", "text/plain"),
}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reply", UNDOCUMENTED_404.values(), ids=UNDOCUMENTED_404)
async def test_a_404_that_is_not_the_providers_suggests_checking_base_url(
    case: ProviderCase, reply: tuple[bytes, str]
) -> None:
    body, content_type = reply

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    async with serving(app) as url:
        base_url = url.removesuffix("/api") + _prefix(case)
        async with Client(case.name, token=TOKEN, base_url=base_url, retry=False) as client:
            error = await failure(lambda: client.get_conversation(case.ids(case.start())[0]))
    assert isinstance(error, NotFoundError)
    assert "check base_url" in str(error)
    assert "documented error body" in str(error)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_providers_own_404_does_not_blame_base_url(case: ProviderCase) -> None:
    async with case.start(token=TOKEN) as fake:
        fake.queue_error(404, path=case.get_path)
        conversation = case.ids(fake)[0]
        async with Client(case.name, token=TOKEN, base_url=fake.url, retry=False) as client:
            error = await failure(lambda: client.get_conversation(conversation))
    assert isinstance(error, NotFoundError)
    assert "base_url" not in str(error)


def test_renderings_see_the_token_when_it_is_there() -> None:
    # The checker itself: an error that does hold the token is caught by every rendering.
    try:
        raise APIConnectionError(f"leaky {TOKEN}", provider="x")
    except APIConnectionError as error:
        shown = renderings(error)
    for name in ("str", "repr", "format_exception", "locals", "pickle", "chain[0]"):
        assert TOKEN in shown[name], name
