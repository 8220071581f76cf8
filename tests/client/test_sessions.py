"""Sessions given, owned and closed; constructor arguments, pagination, protocols and
capabilities: through the real Client, Engine and AiohttpTransport, with aioresponses (only
aiohttp's ``ClientSession._request`` is mocked, the ``mock_http`` fixture).
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from tests.support.mocked import (
    CONVERSATION,
    GET_URL,
    LIST_URL,
    SECRET,
    list_page,
    sent,
    sent_bodies,
)
from wemasy_async import (
    ChatService,
    Client,
    ClientClosedError,
    ConversationStore,
    InternalServerError,
    InvalidRequestError,
    UnsupportedOperationError,
)
from wemasy_async.providers.wemasy import WemasyProvider

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


async def test_caller_session_closed_after_use_raises_client_closed(
    mock_http: aioresponses,
) -> None:
    """The transport remembers a session it has checked; closing it later is still seen."""
    mock_http.post(GET_URL, payload=CONVERSATION)
    session = aiohttp.ClientSession()
    async with Client("wemasy", retry=False, token=SECRET, session=session) as client:
        await client.get_conversation(27)
        await session.close()
        with pytest.raises(ClientClosedError, match="ClientSession is closed"):
            await client.get_conversation(27)
    assert len(mock_http.requests) == 1


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


# The other bad timeouts (0, -1, nan, inf, True, "5"): tests/contract/test_arguments_options.py.
@pytest.mark.parametrize("timeout", [0.0, -0.5, False, [5]], ids=repr)
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
