"""The request shape through the real Client, Engine and AiohttpTransport, with aioresponses:
URL, headers and body, the token, connection failures and timeouts.

Only aiohttp's ``ClientSession._request`` is mocked (the ``mock_http`` fixture), so URL
building, headers, bodies, timeouts and error translation are the package's own code paths.
Sessions, constructor arguments, pagination and protocols are in ``test_sessions.py``.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from collections.abc import Callable

import aiohttp
import pytest
from aioresponses import aioresponses

from tests.support.mocked import (
    BASE,
    CHAT_URL,
    CONVERSATION,
    GET_URL,
    LIST_URL,
    SECRET,
    list_page,
    sent,
    sent_bodies,
)
from wemasy_async import (
    DEFAULT_TIMEOUT,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    Client,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    UnprocessableEntityError,
    __version__,
)
from wemasy_async.testing import FakeSiteAssist
from wemasy_async.transport import _URL_CACHE

# --- URL, headers and body -------------------------------------------------------------------


async def test_get_conversation_request_shape(mock_http: aioresponses) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client("wemasy", retry=False, token=SECRET) as client:
        conversation = await client.get_conversation(27)
    assert conversation.id == "27"
    assert conversation.messages is not None
    assert conversation.messages[0].content == "Hallo"

    (request,) = sent(mock_http, GET_URL)
    assert request["data"] == b'{"conversation_id":27}'
    headers = request["headers"]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("wemasy-async/")
    assert headers["User-Agent"] == f"wemasy-async/{__version__}"
    # Redirects are never followed: they could carry the token elsewhere.
    assert request["allow_redirects"] is False
    assert request["timeout"].total == DEFAULT_TIMEOUT == 60.0
    assert len(mock_http.requests) == 1


async def test_list_messages_request_shape(mock_http: aioresponses) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client("wemasy", retry=False, token=SECRET) as client:
        messages = await client.list_messages("27")
    assert [m.content for m in messages] == ["Hallo"]
    assert sent_bodies(mock_http, GET_URL) == [{"conversation_id": 27}]


async def test_list_conversations_request_shape(mock_http: aioresponses) -> None:
    mock_http.post(LIST_URL, payload=list_page([29, 30], page=2, last_page=3, per_page=2, total=5))
    async with Client("wemasy", retry=False, token=SECRET) as client:
        page = await client.list_conversations(
            agent_id="chat", search="SEO strategy", per_page=2, page=2
        )
    assert [c.id for c in page.items] == ["29", "30"]
    assert page.has_next
    assert sent_bodies(mock_http, LIST_URL) == [
        {"agent_id": "chat", "search": "SEO strategy", "per_page": 2, "page": 2}
    ]
    (request,) = sent(mock_http, LIST_URL)
    assert request["headers"]["Content-Type"] == "application/json"


async def test_chat_request_shape(mock_http: aioresponses) -> None:
    mock_http.post(
        CHAT_URL,
        payload={
            "success": True,
            "data": {
                "content": "Hoi!",
                "model": "gpt-4o",
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                "conversation_id": 15,
                "tool_calls": None,
            },
        },
    )
    async with Client("wemasy", retry=False, token=SECRET) as client:
        reply = await client.chat("Hallo", conversation_id=15, model="gpt-4o", temperature=0.7)
    assert reply.content == "Hoi!"
    assert reply.conversation_id == "15"
    assert sent_bodies(mock_http, CHAT_URL) == [
        {"message": "Hallo", "conversation_id": 15, "model": "gpt-4o", "temperature": 0.7}
    ]


@pytest.mark.parametrize(
    ("base_url", "expected_base"),
    [
        ("https://staging.example.test/api/", "https://staging.example.test/api"),
        ("https://staging.example.test/api//", "https://staging.example.test/api"),
        ("https://staging.example.test/api", "https://staging.example.test/api"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080/", "http://localhost:8080"),
    ],
)
async def test_custom_base_url(mock_http: aioresponses, base_url: str, expected_base: str) -> None:
    url = f"{expected_base}/services/ai/v1/conversations/get"
    mock_http.post(url, payload=CONVERSATION)
    async with Client("wemasy", retry=False, token=SECRET, base_url=base_url) as client:
        assert client.base_url == expected_base
        await client.get_conversation(27)
    assert len(sent(mock_http, url)) == 1
    assert sent(mock_http, GET_URL) == []


async def test_default_base_url() -> None:
    client = Client("wemasy", retry=False, token=SECRET)
    assert client.base_url == BASE
    await client.aclose()


@pytest.mark.parametrize(("timeout", "total"), [(5, 5.0), (0.25, 0.25), (None, None)])
async def test_timeout_is_passed_to_aiohttp(
    mock_http: aioresponses, timeout: float | None, total: float | None
) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client("wemasy", retry=False, token=SECRET, timeout=timeout) as client:
        await client.get_conversation(27)
    (request,) = sent(mock_http, GET_URL)
    assert isinstance(request["timeout"], aiohttp.ClientTimeout)
    assert request["timeout"].total == total


async def test_response_headers_are_read_case_insensitively(mock_http: aioresponses) -> None:
    mock_http.post(
        GET_URL,
        status=429,
        payload={"error": True, "message": "Too Many Attempts."},
        headers={"retry-after": "60", "x-ratelimit-limit": "60"},
    )
    # Unpaced: the limiter would (rightly) hold this key for 60 s, for later tests too.
    async with Client("wemasy", retry=False, rate_limit=False, token=SECRET) as client:
        with pytest.raises(RateLimitError) as info:
            await client.get_conversation(27)
    assert info.value.retry_after == 60.0


async def test_redirect_is_not_followed(mock_http: aioresponses) -> None:
    location = "https://evil.example/collect"
    mock_http.post(GET_URL, status=302, headers={"Location": location}, body=b"")
    async with Client("wemasy", retry=False, token=SECRET) as client:
        with pytest.raises(APIStatusError) as info:
            await client.get_conversation(27)
    assert type(info.value) is APIStatusError
    assert info.value.status == 302
    assert location in str(info.value)
    assert len(mock_http.requests) == 1  # nothing was sent to the Location


# --- The token -------------------------------------------------------------------------------


async def test_token_from_environment(
    mock_http: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", "env-token-456")
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client("wemasy") as client:
        await client.get_conversation(27)
    (request,) = sent(mock_http, GET_URL)
    assert request["headers"]["Authorization"] == "Bearer env-token-456"


async def test_explicit_token_wins_over_environment(
    mock_http: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", "env-token-456")
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client("wemasy", retry=False, token=SECRET) as client:
        await client.get_conversation(27)
    (request,) = sent(mock_http, GET_URL)
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"


async def test_missing_token_fails_before_io(
    mock_http: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEMASY_API_TOKEN", raising=False)
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy")
    assert info.value.argument == "token"
    assert "WEMASY_API_TOKEN" in str(info.value)
    assert mock_http.requests == {}


@pytest.mark.parametrize(
    "token",
    ["", "sk SECRET", " sk-SECRET-123", "sk-SECRET-123\n", "sk-SÉCRET", "sk-\x00", 123, b"sk"],
    ids=repr,
)
async def test_invalid_token_is_rejected_without_echoing_it(token: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", token=token)  # type: ignore[arg-type]
    assert info.value.argument == "token"
    if isinstance(token, str) and token.strip():
        assert token.strip() not in str(info.value)


def _respond_401(m: aioresponses) -> None:
    m.post(GET_URL, status=401, payload={"error": True, "message": "Unauthenticated."})


def _respond_404(m: aioresponses) -> None:
    m.post(GET_URL, status=404, payload={"success": False, "message": "Conversation not found."})


def _respond_422(m: aioresponses) -> None:
    m.post(
        GET_URL,
        status=422,
        payload={"message": "Invalid.", "errors": {"conversation_id": ["Invalid."]}},
    )


def _respond_429(m: aioresponses) -> None:
    m.post(GET_URL, status=429, payload={"error": True, "message": "Too Many Attempts."})


def _respond_502(m: aioresponses) -> None:
    m.post(GET_URL, status=502, body="<html>Bad Gateway</html>", content_type="text/html")


def _respond_garbage(m: aioresponses) -> None:
    m.post(GET_URL, status=200, body="<html>maintenance</html>", content_type="text/html")


def _connection_error(m: aioresponses) -> None:
    m.post(GET_URL, exception=aiohttp.ClientConnectionError("Cannot connect to host"))


def _timeout(m: aioresponses) -> None:
    m.post(GET_URL, exception=asyncio.TimeoutError())


@pytest.mark.parametrize(
    ("respond", "expected"),
    [
        (_respond_401, AuthenticationError),
        (_respond_404, NotFoundError),
        (_respond_422, UnprocessableEntityError),
        (_respond_429, RateLimitError),
        (_respond_502, InternalServerError),
        (_respond_garbage, ResponseDecodeError),
        (_connection_error, APIConnectionError),
        (_timeout, APITimeoutError),
    ],
    ids=lambda v: getattr(v, "__name__", "").strip("_"),
)
async def test_token_never_appears_in_errors(
    mock_http: aioresponses,
    caplog: pytest.LogCaptureFixture,
    respond: Callable[[aioresponses], None],
    expected: type[APIError],
) -> None:
    caplog.set_level(logging.DEBUG, logger="wemasy_async")
    respond(mock_http)
    # Unpaced, so that one case's 429 does not pause the shared key for the next.
    client = Client("wemasy", retry=False, rate_limit=False, token=SECRET, timeout=5)
    assert SECRET not in repr(client)
    assert SECRET not in str(client)
    async with client:
        with pytest.raises(APIError) as info:
            await client.get_conversation(27)
    error = info.value
    assert type(error) is expected
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in "".join(traceback.format_exception(error))
    assert SECRET not in repr(vars(error))
    assert SECRET not in caplog.text
    assert SECRET not in repr(client)


async def test_engine_logs_requests_without_the_token(
    mock_http: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wemasy_async")
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client("wemasy", retry=False, token=SECRET) as client:
        await client.get_conversation(27)
        assert SECRET not in repr(client._engine)
    (record,) = [r for r in caplog.records if r.name == "wemasy_async"]
    assert record.getMessage().startswith(f"POST {GET_URL} -> 200 in ")
    assert SECRET not in caplog.text


# --- Connection failures and timeouts --------------------------------------------------------


@pytest.mark.parametrize(
    "exception",
    [
        aiohttp.ClientConnectionError("Cannot connect to host api.wemasy.nl:443"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_connection_errors_are_translated_not_chained(
    mock_http: aioresponses, exception: Exception
) -> None:
    mock_http.post(GET_URL, exception=exception)
    async with Client("wemasy", retry=False, token=SECRET) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_conversation(27)
    error = info.value
    assert type(error) is APIConnectionError
    assert not isinstance(error, TimeoutError)
    # Not chained: aiohttp's exceptions hold the request headers (the token). Its type and
    # message are kept in ours.
    assert error.__cause__ is None
    assert error.__context__ is None
    assert error.provider == "wemasy"
    assert error.message == f"connection to wemasy failed: {type(exception).__name__}: {exception}"
    assert str(error) == f"{error.message} (POST /api/services/ai/v1/conversations/get)"


@pytest.mark.parametrize(
    "exception",
    [
        asyncio.TimeoutError(),
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        aiohttp.ConnectionTimeoutError("Connection timeout to host"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_timeouts_are_translated_not_chained(
    mock_http: aioresponses, exception: Exception
) -> None:
    mock_http.post(GET_URL, exception=exception)
    async with Client("wemasy", retry=False, token=SECRET, timeout=5) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.get_conversation(27)
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, APIConnectionError)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert error.message.startswith("request to wemasy timed out after 5.0 s")


async def test_unmocked_url_is_a_connection_error(mock_http: aioresponses) -> None:
    # aioresponses refuses requests nobody registered; the client must translate that too.
    async with Client("wemasy", retry=False, token=SECRET) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_conversation(27)
    assert "ClientConnectionError" in str(info.value)
    assert info.value.__cause__ is None


async def test_more_urls_than_the_transport_keeps_built_each_go_as_built() -> None:
    """URLs are built once and kept, a bounded number: each of many distinct ones (and the
    first ones again, after the bound) reaches its own path."""
    ids = [str(uuid.UUID(int=i)) for i in range(1, _URL_CACHE + 50)]
    sent_ids = [*ids, *ids[:3]]
    async with FakeSiteAssist(conversations=1, token=SECRET) as server:
        async with Client(
            "siteassist", base_url=server.url, token=SECRET, retry=False, rate_limit=False
        ) as client:
            for conversation_id in sent_ids:
                with pytest.raises(NotFoundError):
                    await client.get_conversation(conversation_id)
            transport = client._engine.transport
            assert len(transport._urls) <= _URL_CACHE  # type: ignore[attr-defined]
        assert [r.endpoint for r in server.requests] == [
            f"/conversations/{conversation_id}" for conversation_id in sent_ids
        ]
