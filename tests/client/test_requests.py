"""The request shape through the real Client, Engine and AiohttpTransport, with aioresponses.

Only aiohttp's ``ClientSession._request`` is mocked (the ``mock_http`` fixture), so URL
building, headers, bodies, timeouts, error translation and session ownership are the
package's own code paths.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aioresponses import aioresponses
from yarl import URL

from wemasy_async import (
    DEFAULT_TIMEOUT,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ChatService,
    Client,
    ClientClosedError,
    ConversationStore,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    UnprocessableEntityError,
    UnsupportedOperationError,
    __version__,
)
from wemasy_async.providers.wemasy import WemasyProvider

BASE = "https://api.wemasy.nl/api"
GET_URL = f"{BASE}/services/ai/v1/conversations/get"
LIST_URL = f"{BASE}/services/ai/v1/conversations/list"
CHAT_URL = f"{BASE}/services/ai/v1/chat"
SECRET = "sk-SECRET-123"

CONVERSATION = {
    "success": True,
    "data": {
        "id": 27,
        "agent_id": "chat",
        "status": "completed",
        "cost_tokens": 10,
        "cost_amount": "0.0010",
        "started_at": "2024-01-15T10:30:00.000000Z",
        "ended_at": None,
        "messages": [{"id": 1, "role": "user", "content": "Hallo"}],
    },
}


def sent(mock_http: aioresponses, url: str, method: str = "POST") -> list[dict[str, Any]]:
    """The keyword arguments of every request sent to ``url``."""
    return [call.kwargs for call in mock_http.requests.get((method, URL(url)), [])]


def sent_bodies(mock_http: aioresponses, url: str) -> list[Any]:
    return [msgspec.json.decode(kwargs["data"]) for kwargs in sent(mock_http, url)]


def list_page(ids: list[int], page: int, last_page: int, per_page: int, total: int) -> Any:
    return {
        "success": True,
        "data": [{"id": i, "agent_id": "chat", "status": "completed"} for i in ids],
        "pagination": {
            "current_page": page,
            "last_page": last_page,
            "per_page": per_page,
            "total": total,
        },
    }


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


# --- Sessions: given, owned, closed ----------------------------------------------------------


async def test_caller_session_is_used_and_left_open(mock_http: aioresponses) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION, repeat=True)
    async with aiohttp.ClientSession() as session:
        async with Client("wemasy", retry=False, token=SECRET, session=session) as client:
            await client.get_conversation(27)
            assert client._transport is not None
            assert client._transport._owned is None  # no session of its own was made
        assert not session.closed
        # The caller can keep using the session after the client is gone.
        async with session.post(GET_URL, data=b"{}") as response:
            assert response.status == 200
        with pytest.raises(ClientClosedError):
            await client.get_conversation(27)
        assert not session.closed
    assert session.closed


async def test_owned_session_is_closed_by_aclose(mock_http: aioresponses) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    client = Client("wemasy", retry=False, token=SECRET)
    assert client._transport is not None
    assert client._transport._owned is None  # created lazily, inside the loop
    await client.get_conversation(27)
    session = client._transport._owned
    assert isinstance(session, aiohttp.ClientSession)
    assert not session.closed
    await client.aclose()
    assert session.closed
    assert not client._transport.owns_open_session
    assert repr(client).endswith(" closed>")


async def test_aclose_is_idempotent_and_the_client_stays_closed(mock_http: aioresponses) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION, repeat=True)
    client = Client("wemasy", retry=False, token=SECRET)
    await client.get_conversation(27)
    await client.aclose()
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.get_conversation(27)
    with pytest.raises(ClientClosedError):
        await client.chat("Hallo")
    with pytest.raises(ClientClosedError):
        await client.list_conversations()
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    with pytest.raises(ClientClosedError):
        async for _ in client.iter_conversations():
            pass
    assert len(sent(mock_http, GET_URL)) == 1
    assert isinstance(ClientClosedError(), RuntimeError)


async def test_aclose_without_any_request() -> None:
    client = Client("wemasy", retry=False, token=SECRET)
    await client.aclose()
    await client.aclose()
    assert client._transport is not None
    assert client._transport._owned is None


async def test_closed_caller_session_raises_client_closed(mock_http: aioresponses) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    async with Client("wemasy", retry=False, token=SECRET, session=session) as client:
        with pytest.raises(ClientClosedError, match="ClientSession is closed"):
            await client.get_conversation(27)
    assert mock_http.requests == {}


def _drop_and_collect(holder: list[Client]) -> None:
    holder.clear()  # the last reference: __del__ runs now (collect() in case of a cycle)
    gc.collect()


async def test_unclosed_owned_client_warns_on_garbage_collection(
    mock_http: aioresponses,
) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    holder = [Client("wemasy", retry=False, token=SECRET)]
    await holder[0].get_conversation(27)
    transport = holder[0]._transport
    assert transport is not None
    # Keep the aiohttp session alive ourselves: its own __del__ would warn too, about a
    # different object, and would leak a connector.
    session = transport._owned
    assert session is not None
    try:
        with pytest.warns(ResourceWarning, match=r"unclosed <Client provider='wemasy'") as record:
            _drop_and_collect(holder)
        assert all(SECRET not in str(w.message) for w in record)
    finally:
        await session.close()


@pytest.mark.parametrize("use", ["never_used", "caller_session"])
async def test_no_resource_warning_when_nothing_is_owned(mock_http: aioresponses, use: str) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with aiohttp.ClientSession() as session:
        if use == "never_used":
            client = Client("wemasy", retry=False, token=SECRET)
        else:
            client = Client("wemasy", retry=False, token=SECRET, session=session)
            await client.get_conversation(27)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            del client
            gc.collect()
        assert [w for w in record if issubclass(w.category, ResourceWarning)] == []


# --- Constructor arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://api.wemasy.nl/api",
        "file:///etc/passwd",
        "api.wemasy.nl/api",
        "https://",
        "https:///api",
        "",
        "https://user:hunter2@api.wemasy.nl/api",
        "https://hunter2@api.wemasy.nl/api",
        "https://api.wemasy.nl/api?token=hunter2",
        "https://api.wemasy.nl/api#hunter2",
        "https://api.wemasy.nl:99999/api",
        "https://api.wemasy.nl:port/api",
        123,
        b"https://api.wemasy.nl/api",
    ],
    ids=repr,
)
def test_invalid_base_url(base_url: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", retry=False, token=SECRET, base_url=base_url)  # type: ignore[arg-type]
    assert info.value.argument == "base_url"
    # Whatever secret a URL held, the message does not repeat it.
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "timeout", [0, 0.0, -1, -0.5, math.nan, math.inf, True, False, "5", [5]], ids=repr
)
def test_invalid_timeout(timeout: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", retry=False, token=SECRET, timeout=timeout)  # type: ignore[arg-type]
    assert info.value.argument == "timeout"


@pytest.mark.parametrize("session", ["session", object(), 1])
def test_invalid_session(session: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", retry=False, token=SECRET, session=session)  # type: ignore[arg-type]
    assert info.value.argument == "session"


@pytest.mark.parametrize("provider", ["openai", "WEMASY", ""])
def test_unknown_provider(provider: object) -> None:
    with pytest.raises(InvalidRequestError, match="'wemasy'") as info:
        Client(provider, token=SECRET)  # type: ignore[arg-type]
    assert info.value.argument == "provider"


async def test_provider_instance_is_accepted(mock_http: aioresponses) -> None:
    mock_http.post(GET_URL, payload=CONVERSATION)
    async with Client(WemasyProvider(), token=SECRET) as client:
        assert client.provider == "wemasy"
        assert (await client.get_conversation(27)).id == "27"


async def test_invalid_arguments_fail_before_io(mock_http: aioresponses) -> None:
    async with Client("wemasy", retry=False, token=SECRET) as client:
        with pytest.raises(InvalidRequestError):
            await client.get_conversation("../27")
        with pytest.raises(InvalidRequestError):
            await client.list_conversations(per_page=101)
        with pytest.raises(InvalidRequestError):
            await client.chat()
    assert mock_http.requests == {}


# --- Pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"per_page": 0}, {"per_page": 101}, {"per_page": True}, {"agent_id": ""}, {"search": 5}],
    ids=repr,
)
async def test_iter_conversations_validates_at_call_time(
    mock_http: aioresponses, kwargs: dict[str, Any]
) -> None:
    async with Client("wemasy", retry=False, token=SECRET) as client:
        with pytest.raises(InvalidRequestError):
            client.iter_conversations(**kwargs)  # no await, no iteration
    assert mock_http.requests == {}


async def test_iter_conversations_follows_pages_then_stops(mock_http: aioresponses) -> None:
    mock_http.post(LIST_URL, payload=list_page([1, 2], page=1, last_page=3, per_page=2, total=5))
    mock_http.post(LIST_URL, payload=list_page([3, 4], page=2, last_page=3, per_page=2, total=5))
    mock_http.post(LIST_URL, payload=list_page([5], page=3, last_page=3, per_page=2, total=5))
    async with Client("wemasy", retry=False, token=SECRET) as client:
        iterator = client.iter_conversations(agent_id="chat", per_page=2)
        assert mock_http.requests == {}  # lazy: nothing is fetched before iterating
        ids = [conversation.id async for conversation in iterator]
    assert ids == ["1", "2", "3", "4", "5"]
    bodies = sent_bodies(mock_http, LIST_URL)
    assert len(bodies) == 3
    assert [body["page"] for body in bodies] == [1, 2, 3]
    assert all(body["per_page"] == 2 for body in bodies)
    assert all(body["agent_id"] == "chat" for body in bodies)
    assert all("search" not in body for body in bodies)


async def test_iter_conversations_stops_on_an_empty_page(mock_http: aioresponses) -> None:
    # A server that claims more pages but sends none must not be polled forever.
    mock_http.post(LIST_URL, payload=list_page([], page=1, last_page=5, per_page=100, total=0))
    async with Client("wemasy", retry=False, token=SECRET) as client:
        ids = [c.id async for c in client.iter_conversations()]
    assert ids == []
    assert sent_bodies(mock_http, LIST_URL) == [{"per_page": 100, "page": 1}]


async def test_iter_conversations_docs_example_page_ends_iteration(
    mock_http: aioresponses,
) -> None:
    mock_http.post(LIST_URL, payload=list_page([], page=0, last_page=0, per_page=0, total=0))
    async with Client("wemasy", retry=False, token=SECRET) as client:
        assert [c async for c in client.iter_conversations()] == []
    assert len(sent(mock_http, LIST_URL)) == 1


async def test_iter_conversations_propagates_errors(mock_http: aioresponses) -> None:
    mock_http.post(LIST_URL, payload=list_page([1], page=1, last_page=2, per_page=1, total=2))
    mock_http.post(LIST_URL, status=500, payload={"success": False, "message": "Server Error"})
    seen: list[str] = []

    async def consume(client: Client) -> None:
        async for conversation in client.iter_conversations(per_page=1):
            seen.append(conversation.id)

    async with Client("wemasy", retry=False, token=SECRET) as client:
        with pytest.raises(InternalServerError):
            await consume(client)
    assert seen == ["1"]


# --- Protocols and capabilities --------------------------------------------------------------


async def test_client_implements_the_protocols() -> None:
    async with Client("wemasy", retry=False, token=SECRET) as client:
        assert isinstance(client, ConversationStore)
        assert isinstance(client, ChatService)
        assert client.provider == "wemasy"
        assert client.capabilities == frozenset(
            {
                "get_conversation",
                "list_messages",
                "list_conversations",
                "iter_conversations",
                "chat",
            }
        )


def test_chat_service_is_checked_when_wired_not_at_the_first_message() -> None:
    chatty = Client("wemasy", token="t")
    assert chatty.chat_service() is chatty
    for provider in ("loop", "siteassist"):
        client = Client(provider, token="t")
        with pytest.raises(UnsupportedOperationError) as caught:
            client.chat_service()
        assert (caught.value.provider, caught.value.operation) == (provider, "chat")
