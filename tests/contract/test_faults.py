"""Every fault of the fakes, on every provider and operation: a result or a typed error.

The matrix is fault kind x provider x operation, once without retries (each fault gives its
specific error) and once with the default retry policy (reads recover from one retryable
fault; ``chat`` is never sent twice once it may have been processed). Every call runs under
``anyio.fail_after`` to prove it cannot hang, and anything but a `WemasyAsyncError` fails
the test.

Two things the client cannot change, and that the tables below therefore expect: aiohttp
itself resends an idempotent request (GET: SiteAssist, Loop) once when the server drops the
connection before answering (RFC 9112 section 9.3.1.1), so ``disconnect`` and
``process_then_drop`` never reach a GET caller; and a body that is valid JSON is read
whatever its ``Content-Type`` says.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest

from tests.support.cases import released
from wemasy_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    Client,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    RetryPolicy,
    WemasyAsyncError,
)
from wemasy_async.testing import FAULT_KINDS, FakeLoop, FakeServer, FakeSiteAssist, FakeWemasy

TIMEOUT = 0.5  # per attempt; only the stall fault ever waits it out
CAP = 1024 * 1024  # max_response_bytes in the matrix: far above any body the fakes send
ATTEMPTS = RetryPolicy().max_attempts
BOUND = TIMEOUT * ATTEMPTS + 10.0  # proves "no hang"; never a speed assertion
CHAT = "/services/ai/v1/chat"
HELLO_REPLY = "Here is what I found about: hello"
SOME_UUID = "123e4567-e89b-12d3-a456-426614174000"

Outcome = Any  # a result, or the WemasyAsyncError raised


# ---------------------------------------------------------------------------- the setting


@dataclass
class Setting:
    """A running fake, a client on it, and the calls each operation makes."""

    provider: str
    fake: FakeServer
    client: Client
    conversation: Any

    def call(self, operation: str, client: Client | None = None) -> Awaitable[Any]:
        client = client or self.client
        if operation == "get_conversation":
            return client.get_conversation(self.conversation)
        if operation == "list_messages":
            return client.list_messages(self.conversation)
        if operation == "list_conversations":
            return client.list_conversations(per_page=5)
        assert operation == "chat"
        return client.chat("hello")


OPERATIONS = {
    "wemasy": ("get_conversation", "list_messages", "list_conversations", "chat"),
    "siteassist": ("get_conversation", "list_messages"),
    "loop": ("get_conversation", "list_messages"),
}
CASES = [(p, op) for p, ops in OPERATIONS.items() for op in ops]


def make_fake(provider: str) -> tuple[FakeServer, Any]:
    """A small fake and the id of an ordinary conversation on it."""
    if provider == "wemasy":
        return FakeWemasy(conversations=12), 3
    if provider == "siteassist":
        siteassist = FakeSiteAssist(conversations=4)
        return siteassist, siteassist.conversation_ids[1]
    # Not the long conversation: one request per operation, no follow-up.
    loop = FakeLoop(conversations=4)
    return loop, loop.conversation_ids[1]


def make_client(provider: str, fake: FakeServer, **options: Any) -> Client:
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("rate_limit", False)
    options.setdefault("max_response_bytes", CAP)
    return Client(provider, token="t", base_url=fake.url, **options)


@pytest.fixture
async def setting(request: pytest.FixtureRequest) -> AsyncIterator[Setting]:
    provider, retry = request.param
    fake, conversation = make_fake(provider)
    async with fake, make_client(provider, fake, retry=retry) as client:
        yield Setting(provider, fake, client, conversation)


async def outcome(call: Awaitable[Any], bound: float = BOUND) -> Outcome:
    """Await ``call`` within ``bound`` seconds; return its result or our error."""
    with anyio.fail_after(bound):
        try:
            return await call
        except WemasyAsyncError as exc:
            return exc
        # Anything else (a raw aiohttp, msgspec or asyncio error) escapes and fails the test.


def chat_requests(fake: FakeServer) -> int:
    return len(fake.requests_to(CHAT))


def hello_messages(fake: FakeServer) -> int:
    assert isinstance(fake, FakeWemasy)
    return sum(
        1
        for conversation in fake.conversations.values()
        for message in conversation["messages"]
        if message["role"] == "user" and message["content"] == "hello"
    )


# ---------------------------------------------------------------------------- expectations

# What one fault gives without retries, for a POST (Wemasy) and a GET (SiteAssist, Loop).
# None means the call returns its normal result.
Expected = type[WemasyAsyncError] | None
NO_RETRY: dict[str, tuple[Expected, Expected]] = {
    "disconnect": (APIConnectionError, None),
    "reset_before_body": (APIConnectionError, APIConnectionError),
    "reset_mid_body": (APIConnectionError, APIConnectionError),
    "truncated_json": (ResponseDecodeError, ResponseDecodeError),
    "html_502": (InternalServerError, InternalServerError),
    "empty_200": (ResponseDecodeError, ResponseDecodeError),
    "wrong_content_type": (None, None),
    "html_200": (ResponseDecodeError, ResponseDecodeError),
    "stall": (APITimeoutError, APITimeoutError),
    "keepalive_close": (None, None),  # this call is answered; the next one is hit
    "error_5xx": (InternalServerError, InternalServerError),
    "rate_limited": (RateLimitError, RateLimitError),
    "process_then_drop": (APIConnectionError, None),
    "huge_body": (ResponseTooLargeError, ResponseTooLargeError),
    "huge_header": (APIConnectionError, APIConnectionError),
    "bad_status_line": (APIConnectionError, APIConnectionError),
    "many_headers": (APIConnectionError, APIConnectionError),
    "slow_trickle": (APITimeoutError, APITimeoutError),
    "short_body": (APIConnectionError, APIConnectionError),
}
# Faults the default policy does not retry, because the same request would get the same
# body: what the server sent cannot be read as the documented response.
NOT_RETRIED = {"truncated_json", "empty_200", "html_200", "huge_body"}
# The faults after which the fake's handler has run (a chat message is stored).
HANDLER_RUNS = {
    "reset_mid_body",
    "truncated_json",
    "wrong_content_type",
    "stall",
    "keepalive_close",
    "process_then_drop",
    "slow_trickle",
    "short_body",
}


def expected_without_retry(kind: str, provider: str) -> Expected:
    post, get = NO_RETRY[kind]
    return post if provider == "wemasy" else get


def check_error(err: Outcome, expected: type[WemasyAsyncError], kind: str) -> None:
    assert isinstance(err, expected), f"{kind}: expected {expected.__name__}, got {err!r}"
    if kind == "html_502":
        assert err.status == 502
    if kind == "error_5xx":
        assert err.status in (500, 502, 503, 504)
    if kind == "rate_limited":
        assert err.retry_after == 1
    if kind == "huge_body":
        assert err.limit == CAP
    if isinstance(err, APIConnectionError):
        # The request reached the server (or might have): nothing proves it was not sent.
        assert err.request_sent


def check_result(setting: Setting, operation: str, result: Outcome, reference: Outcome) -> None:
    assert not isinstance(result, BaseException), repr(result)
    if operation == "chat":
        assert result.content == HELLO_REPLY
    else:
        assert result == reference


# ---------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize(
    ("setting", "operation"),
    [((p, False), op) for p, op in CASES],
    indirect=["setting"],
    ids=[f"{p}-{op}" for p, op in CASES],
)
async def test_one_fault_without_retries(setting: Setting, operation: str, kind: str) -> None:
    fake = setting.fake
    reference = None if operation == "chat" else await outcome(setting.call(operation))
    fake.reset_log()
    fake.queue_fault(kind)

    result = await outcome(setting.call(operation))

    expected = expected_without_retry(kind, setting.provider)
    if expected is None:
        check_result(setting, operation, result, reference)
    else:
        check_error(result, expected, kind)
    # One request, except that aiohttp resends a GET once after a dropped connection.
    resent = setting.provider != "wemasy" and kind in ("disconnect", "process_then_drop")
    assert len(fake.requests) == (2 if resent else 1)
    assert fake.pending_faults == 0

    # The client is still healthy: the next call works (keepalive_close: see below).
    if kind != "keepalive_close":
        check_result(setting, operation, await outcome(setting.call(operation)), reference)


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize(
    ("setting", "operation"),
    [((p, True), op) for p, op in CASES if op != "chat"],
    indirect=["setting"],
    ids=[f"{p}-{op}" for p, op in CASES if op != "chat"],
)
async def test_reads_recover_from_one_retryable_fault(
    setting: Setting, operation: str, kind: str
) -> None:
    fake = setting.fake
    reference = await outcome(setting.call(operation))
    fake.reset_log()
    fake.queue_fault(kind)

    result = await outcome(setting.call(operation))

    if kind in NOT_RETRIED:
        expected = expected_without_retry(kind, setting.provider)
        assert expected is not None
        check_error(result, expected, kind)
        assert len(fake.requests) == 1
    else:
        check_result(setting, operation, result, reference)
        if kind == "keepalive_close":
            # The next call meets the closed connection and recovers transparently.
            result = await outcome(setting.call(operation))
            check_result(setting, operation, result, reference)
            assert [r.status for r in fake.requests] == [200, 0, 200]
        elif kind == "wrong_content_type":
            assert len(fake.requests) == 1  # read as it is
        else:
            assert len(fake.requests) == 2  # the fault, then one successful retry


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("setting", [("wemasy", True)], indirect=True)
async def test_chat_is_never_sent_twice_after_it_may_have_been_processed(
    setting: Setting, kind: str
) -> None:
    fake = setting.fake
    assert isinstance(fake, FakeWemasy)
    fake.queue_fault(kind, path=CHAT)

    result = await outcome(setting.call("chat"))

    if kind == "rate_limited":
        # A 429 proves the message was not processed: chat retries it, once.
        check_result(setting, "chat", result, None)
        assert chat_requests(fake) == 2
    else:
        expected = expected_without_retry(kind, "wemasy")
        if expected is None:
            check_result(setting, "chat", result, None)
        else:
            check_error(result, expected, kind)
        assert chat_requests(fake) == 1
    # The message is stored at most once: exactly once when the handler ran.
    stored = 1 if kind in HANDLER_RUNS or kind == "rate_limited" else 0
    assert hello_messages(fake) == stored
    assert len(fake.chat_deliveries) == stored


@pytest.mark.parametrize("kind", ["process_then_drop", "reset_mid_body", "stall", "truncated_json"])
async def test_chat_delivered_once(kind: str) -> None:
    async with FakeWemasy(conversations=2) as fake, make_client("wemasy", fake) as client:
        fake.queue_fault(kind, path=CHAT)
        err = await outcome(client.chat("hello"))
        expected = ResponseDecodeError if kind == "truncated_json" else APIConnectionError
        assert isinstance(err, expected), repr(err)
        if kind == "stall":
            assert isinstance(err, APITimeoutError)
        assert hello_messages(fake) == 1
        assert [d["message"] for d in fake.chat_deliveries] == ["hello"]
        assert chat_requests(fake) == 1


# ---------------------------------------------------------------------------- keep-alive


@pytest.mark.parametrize(
    ("setting", "operation"),
    [((p, True), op) for p, op in CASES],
    indirect=["setting"],
    ids=[f"{p}-{op}" for p, op in CASES],
)
async def test_keepalive_close_reads_recover_and_chat_fails_once(
    setting: Setting, operation: str
) -> None:
    fake = setting.fake
    fake.queue_fault("keepalive_close")
    first = await outcome(setting.call(operation))
    assert not isinstance(first, BaseException), repr(first)
    second = await outcome(setting.call(operation))
    dropped, answered = fake.requests[1], fake.requests[-1]
    assert dropped.status == 0
    assert dropped.connection == fake.requests[0].connection
    if operation == "chat":
        # The client cannot know the server never read it: no second delivery.
        assert isinstance(second, APIConnectionError), repr(second)
        assert [d["message"] for d in fake.chat_deliveries] == ["hello"]
        assert chat_requests(fake) == 2
    else:
        assert second == first
        assert answered.status == 200
        assert answered.connection != dropped.connection


# ---------------------------------------------------------------------------- bursts, storms


@pytest.mark.parametrize("setting", [(p, True) for p in OPERATIONS], indirect=True)
async def test_5xx_burst_of_3_recovers_on_the_4th_attempt(setting: Setting) -> None:
    fake = setting.fake
    reference = await outcome(setting.call("get_conversation"))
    fake.reset_log()
    fake.queue_fault("error_5xx", times=3)
    result = await outcome(setting.call("get_conversation"))
    assert result == reference
    assert len(fake.requests) == 4 == ATTEMPTS
    assert [r.status for r in fake.requests][-1] == 200


@pytest.mark.parametrize("setting", [(p, True) for p in OPERATIONS], indirect=True)
async def test_5xx_burst_of_10_gives_up_after_max_attempts(setting: Setting) -> None:
    fake = setting.fake
    fake.queue_fault("error_5xx", times=10)
    err = await outcome(setting.call("get_conversation"))
    assert isinstance(err, InternalServerError), repr(err)
    assert len(fake.requests) == ATTEMPTS
    assert fake.pending_faults == 10 - ATTEMPTS


@pytest.mark.parametrize("limiter", [True, False], ids=["limiter", "no-limiter"])
async def test_429_storm_is_not_amplified(limiter: bool) -> None:
    """Many concurrent readers run into 1.5 s in which the server answers only 429s.

    With the limiter (the default), the first 429 pauses the whole key for its
    ``Retry-After`` (1 s), so requests are not sent into the storm: only the probe and the
    few requests released when a pause ends can meet it, about one per pause. The bound
    asserted, at most ``tasks // 4`` 429s and so at most ``tasks + tasks // 4`` requests,
    leaves room for a slow machine while a client that retried into the storm would need
    ``tasks * ATTEMPTS``: the control case without the limiter shows exactly that (this
    suite runs without backoff, as users' suites do with ``no_backoff``). Either way every
    call ends in its result or a RateLimitError.
    """
    tasks, storm = 40, 1.5
    # 6,000 per minute: a 10 ms pacing interval, so the limiter never bursts past a 429.
    async with FakeWemasy(conversations=12, rate_limit=6000) as fake:
        fake.inject_faults(1.0, ["rate_limited"])
        calm = asyncio.get_running_loop().call_later(storm, fake.clear_faults)
        try:
            async with make_client("wemasy", fake, rate_limit=limiter, retry=True) as client:
                with anyio.fail_after(30):
                    results = await asyncio.gather(
                        *(outcome(client.get_conversation(1 + i % 12), 30) for i in range(tasks))
                    )
        finally:
            calm.cancel()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, RateLimitError) for e in errors), errors
    stats = fake.stats
    throttled = stats.status_counts.get(429, 0)
    assert throttled == stats.fault_counts["rate_limited"]
    assert stats.rate_limited == 0  # the server's own limit never tripped
    if limiter:
        assert 1 <= throttled <= tasks // 4
        assert not errors
        assert stats.requests_total == tasks + throttled
    else:
        assert len(errors) == tasks
        assert stats.requests_total == tasks * ATTEMPTS


# ---------------------------------------------------------------------------- body cap


async def test_body_cap_content_length_path_then_next_call_works() -> None:
    async with FakeWemasy(conversations=3) as fake:
        big = b'{"success":true,"data":"' + b"a" * (2 * CAP) + b'"}'
        fake.queue_error(200, body=big)
        async with make_client("wemasy", fake, retry=True) as client:
            err = await outcome(client.get_conversation(1))
            assert isinstance(err, ResponseTooLargeError), repr(err)
            assert (err.status, err.limit) == (200, CAP)
            conversation = await outcome(client.get_conversation(1))
            assert conversation.id == "1"
        first, second = fake.requests
        assert first.connection != second.connection  # the capped connection was closed


@pytest.mark.parametrize("provider", list(OPERATIONS))
async def test_body_cap_chunked_huge_body_then_next_call_works(provider: str) -> None:
    fake, conversation = make_fake(provider)
    async with fake, make_client(provider, fake, retry=True) as client:
        fake.queue_fault("huge_body")
        err = await outcome(client.get_conversation(conversation))
        assert isinstance(err, ResponseTooLargeError), repr(err)
        assert err.limit == CAP
        assert len(fake.requests) == 1  # not retried: the same request gets the same body
        result = await outcome(client.get_conversation(conversation))
        assert not isinstance(result, BaseException), repr(result)
        assert fake.requests[0].connection != fake.requests[1].connection
        assert await released(fake)  # the fake noticed the client leave


async def test_body_cap_counts_gzip_inflated_bytes() -> None:
    inflated = b'{"success":true,"data":"' + b"a" * (4 * CAP) + b'"}'
    bomb = gzip.compress(inflated)
    assert len(bomb) < CAP // 10
    async with FakeWemasy(conversations=3) as fake, make_client("wemasy", fake) as client:
        fake.queue_error(200, body=bomb, headers={"Content-Encoding": "gzip"})
        err = await outcome(client.get_conversation(1))
        assert isinstance(err, ResponseTooLargeError), repr(err)
        # A compressed body within the cap once inflated is read normally.
        small = await outcome(client.get_conversation(2))
        plain = msgspec.json.encode({"success": True, "data": fake.conversations[2]})
        fake.queue_error(200, body=gzip.compress(plain), headers={"Content-Encoding": "gzip"})
        assert await outcome(client.get_conversation(2)) == small


async def test_corrupt_gzip_is_a_connection_error_not_zlib() -> None:
    async with FakeWemasy(conversations=3) as fake, make_client("wemasy", fake) as client:
        fake.queue_error(200, body=b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
        err = await outcome(client.get_conversation(1))
        assert isinstance(err, (APIConnectionError, ResponseDecodeError)), repr(err)


# ---------------------------------------------------------------------------- caller's session


@pytest.mark.parametrize("kind", ["html_502", "error_5xx", "rate_limited", "huge_body"])
async def test_a_session_that_raises_for_status_still_gets_typed_errors(kind: str) -> None:
    # Regression: the transport let a caller's raise_for_status=True session raise
    # ClientResponseError, so a 404 became an APIConnectionError and was retried 4 times.
    async with (
        FakeWemasy(conversations=3) as fake,
        aiohttp.ClientSession(raise_for_status=True) as session,
        make_client("wemasy", fake, session=session, retry=False) as client,
    ):
        missing = await outcome(client.get_conversation(99))
        assert isinstance(missing, NotFoundError), repr(missing)
        fake.queue_fault(kind)
        err = await outcome(client.get_conversation(1))
        check_error(err, NO_RETRY[kind][0] or WemasyAsyncError, kind)
        assert len(fake.requests) == 2


# ---------------------------------------------------------------------------- hostile wire


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[bytes], Awaitable[str]]]:
    """Start a TCP server that answers every request with the given raw bytes, then closes."""
    servers: list[asyncio.Server] = []

    async def start(reply: bytes) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(reply)
                await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


# Replies no fake sends: broken HTTP framing, encodings and statuses, from a bare socket.
HOSTILE: dict[str, tuple[bytes, type[WemasyAsyncError]]] = {
    "not_http": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", APIConnectionError),
    "http09_body": (b'{"success": true}', APIConnectionError),
    "bad_status": (b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n", APIConnectionError),
    "huge_header": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        APIConnectionError,
    ),
    "bad_content_length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}",
        APIConnectionError,
    ),
    "double_content_length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        APIConnectionError,
    ),
    "length_and_chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        APIConnectionError,
    ),
    "bad_chunks": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        APIConnectionError,
    ),
    "short_chunks": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{}",
        APIConnectionError,
    ),
    "head_then_eof": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", APIConnectionError),
    "corrupt_deflate": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: 4\r\n\r\nabcd",
        APIConnectionError,
    ),
    "corrupt_gzip_chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nabcd\r\n0\r\n\r\n",
        APIConnectionError,
    ),
    "unknown_encoding": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: foo\r\nContent-Length: 2\r\n\r\n{}",
        ResponseDecodeError,
    ),
    "nul_in_json": (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{\x00}", ResponseDecodeError),
    "continue_then_200": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        ResponseDecodeError,
    ),
    "status_999": (b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\n{}", InternalServerError),
    "switching_protocols": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        APIStatusError,
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("provider", list(OPERATIONS))
async def test_hostile_wire_gives_a_typed_error(
    raw_server: Callable[[bytes], Awaitable[str]], provider: str, name: str
) -> None:
    reply, expected = HOSTILE[name]
    url = await raw_server(reply)
    async with Client(provider, token="t", base_url=url, timeout=TIMEOUT, rate_limit=False) as c:
        err = await outcome(c.get_conversation(1 if provider == "wemasy" else SOME_UUID))
    assert isinstance(err, expected), repr(err)
