"""The Loop adapter without I/O: request descriptions, id encoding, follow-ups.

Response parsing is in ``test_adapter_responses.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import pytest
from aioresponses import aioresponses
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from tests.support.loop_adapter import BASE, CID, PATH, SEGMENT, history
from wemasy_async import Client, InvalidRequestError, Message, UnsupportedOperationError
from wemasy_async.providers import get_provider
from wemasy_async.providers.base import Call, ChatParams, ListConversationsParams, Request
from wemasy_async.providers.loop import (
    MAX_ID_LENGTH,
    LoopHistory,
    LoopProvider,
    check_conversation_id,
    messages_path,
)


@pytest.fixture
def loop() -> LoopProvider:
    return LoopProvider()


# --- The adapter's identity ------------------------------------------------------------------


def test_provider_metadata(loop: LoopProvider) -> None:
    assert loop.name == "loop"
    assert loop.default_base_url == BASE
    assert loop.token_env == "LOOP_API_TOKEN"
    assert loop.capabilities == frozenset({"get_conversation", "list_messages"})
    assert repr(loop) == "<LoopProvider 'loop'>"


def test_registry_finds_loop() -> None:
    provider = get_provider("loop")
    assert isinstance(provider, LoopProvider)
    assert get_provider("loop") is not provider


# --- Request descriptions --------------------------------------------------------------------


def test_list_messages_request_without_limit_sends_none(loop: LoopProvider) -> None:
    call = loop.list_messages(CID)
    assert isinstance(call, Call)
    assert call.request == Request(method="GET", path=PATH, query=(), body=None, idempotent=True)
    assert call.then is not None  # it may have to ask again


@pytest.mark.parametrize("limit", [1, 5, 50, 1000, 10**6])
def test_list_messages_request_with_limit(loop: LoopProvider, limit: int) -> None:
    call = loop.list_messages(CID, limit)
    assert call.request == Request(
        method="GET", path=PATH, query=(("limit", str(limit)),), body=None, idempotent=True
    )
    assert call.then is None


def test_get_conversation_reads_the_messages_endpoint(loop: LoopProvider) -> None:
    call = loop.get_conversation(CID)
    assert call.request == loop.list_messages(CID).request
    assert call.then is not None


def test_uuid_objects_are_sent_in_canonical_form(loop: LoopProvider) -> None:
    value = uuid.UUID(CID.upper())
    assert loop.list_messages(value).request.path == PATH
    conversation = loop.get_conversation(value).parse(history(1))
    assert conversation.id == CID


def test_string_ids_are_sent_as_given(loop: LoopProvider) -> None:
    # Not lowercased: a string id is the provider's, whatever its case.
    assert (
        loop.list_messages(CID.upper()).request.path == f"/v1/conversations/{CID.upper()}/messages"
    )
    assert loop.list_messages("conv_42").request.path == "/v1/conversations/conv_42/messages"


@pytest.mark.parametrize("limit", [0, -1, True, False, 1.5, 5.0, "5", [5]], ids=repr)
def test_limit_rejected(loop: LoopProvider, limit: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        loop.list_messages(CID, limit)  # type: ignore[arg-type]
    assert info.value.argument == "limit"
    assert str(info.value).startswith("limit must be")


def test_id_is_checked_before_limit(loop: LoopProvider) -> None:
    with pytest.raises(InvalidRequestError) as info:
        loop.list_messages("", 0)
    assert info.value.argument == "conversation_id"


# --- Follow-ups: "all" means all -------------------------------------------------------------


def test_truncated_list_asks_once_more_for_total(loop: LoopProvider) -> None:
    call = loop.list_messages(CID)
    first = call.parse(history(50, total=120))
    assert len(first) == 50
    assert isinstance(first, list)
    assert all(isinstance(m, Message) for m in first)
    follow_up = call.follow_up(first)
    assert follow_up is not None
    assert follow_up.request == Request(method="GET", path=PATH, query=(("limit", "120"),))
    assert follow_up.then is None
    full = follow_up.parse(history(120))
    assert type(full) is list
    assert [m.content for m in full] == [f"message {i}" for i in range(1, 121)]
    assert follow_up.follow_up(full) is None


def test_a_server_that_keeps_truncating_is_asked_only_once(loop: LoopProvider) -> None:
    call = loop.list_messages(CID)
    follow_up = call.follow_up(call.parse(history(50, total=2000)))
    assert follow_up is not None
    capped = follow_up.parse(history(1000, total=2000))
    assert len(capped) == 1000
    assert follow_up.follow_up(capped) is None


@pytest.mark.parametrize(("count", "total"), [(0, 0), (3, 3), (50, 50), (5, 2)])
def test_complete_list_needs_no_follow_up(loop: LoopProvider, count: int, total: int) -> None:
    call = loop.list_messages(CID)
    result = call.parse(history(count, total=total))
    assert type(result) is list
    assert len(result) == count
    assert call.follow_up(result) is None


def test_truncated_conversation_asks_once_more_for_total(loop: LoopProvider) -> None:
    call = loop.get_conversation(CID)
    first = call.parse(history(3, total=7))
    assert isinstance(first.raw, LoopHistory)
    assert first.raw.total == 7
    follow_up = call.follow_up(first)
    assert follow_up is not None
    assert follow_up.request == Request(method="GET", path=PATH, query=(("limit", "7"),))
    assert follow_up.then is None
    full = follow_up.parse(history(7))
    assert full.messages is not None
    assert len(full.messages) == 7
    assert call.follow_up(call.parse(history(7))) is None


def test_explicit_limit_is_never_followed_up_and_never_exceeded(loop: LoopProvider) -> None:
    call = loop.list_messages(CID, 3)
    # A server that ignores the limit still yields at most three.
    result = call.parse(history(10, total=10))
    assert [m.content for m in result] == ["message 1", "message 2", "message 3"]
    assert type(result) is list
    assert call.follow_up(call.parse(history(3, total=10))) is None


# --- Conversation ids: checked, then encoded into exactly one path segment --------------------

HOSTILE_IDS: dict[str, str] = {
    "a/b": "a%2Fb",
    "a?b=1": "a%3Fb%3D1",
    "a#b": "a%23b",
    "%2e%2e": "%252e%252e",
    "..%2f": "..%252f",
    "%2F": "%252F",
    "@evil.com": "%40evil.com",
    "ａｂ": "%EF%BD%81%EF%BD%82",
    "．．": "%EF%BC%8E%EF%BC%8E",
    "\u2215etc": "%E2%88%95etc",
    "a\\..\\b": "a%5C..%5Cb",
    "..a": "..a",
    "a..": "a..",
    "...": "...",
    "a;b": "a%3Bb",
    "a&b+c": "a%26b%2Bc",
    "%": "%25",
    "é": "%C3%A9",
    "~user": "~user",
}


@pytest.mark.parametrize(("value", "segment"), HOSTILE_IDS.items(), ids=repr)
def test_hostile_ids_are_encoded_into_one_segment(
    loop: LoopProvider, value: str, segment: str
) -> None:
    for call in (
        loop.list_messages(value),
        loop.get_conversation(value),
        loop.list_messages(value, 2),
    ):
        assert call.request.path == f"/v1/conversations/{segment}/messages"
    url = URL(BASE + messages_path(value))
    assert url.host == "ai.platform.loop.health"
    assert url.query_string == ""
    assert url.fragment == ""
    assert url.parts == ("/", "v1", "conversations", value, "messages")


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        "a b",
        " a",
        "a ",
        "\t",
        "a\nb",
        "a\r\nHost: evil",
        "a\x00b",
        "a\x7fb",
        "\u200b",  # ZERO WIDTH SPACE (Cf)
        "a\u202eb",  # RIGHT-TO-LEFT OVERRIDE (Cf)
        "\ufeffa",  # BYTE ORDER MARK (Cf)
        "a\xa0b",  # NO-BREAK SPACE (Zs)
        "a\u3000b",  # IDEOGRAPHIC SPACE (Zs)
        "a\u2028b",  # LINE SEPARATOR (Zl)
        "\ud800",  # lone surrogate: not even encodable as UTF-8
        "\ue000",  # private use (Co)
        "x" * (MAX_ID_LENGTH + 1),
        None,
        0,
        27,
        True,
        1.5,
        b"abc",
        bytearray(b"abc"),
        ["a"],
        object(),
    ],
    # No address in a test id: xdist workers must collect the same ids.
    ids=lambda value: "object()" if type(value) is object else repr(value),
)
@pytest.mark.parametrize("operation", ["get_conversation", "list_messages"])
def test_conversation_id_rejected(loop: LoopProvider, operation: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        getattr(loop, operation)(value)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.argument == "conversation_id"
    assert str(error).startswith("conversation_id must be")
    assert len(str(error)) < 200


def test_longest_id_is_accepted() -> None:
    value = "x" * MAX_ID_LENGTH
    assert check_conversation_id(value) == value


@given(st.text(min_size=1, max_size=MAX_ID_LENGTH))
def test_every_accepted_id_stays_one_segment(value: str) -> None:
    try:
        checked = check_conversation_id(value)
    except InvalidRequestError:
        return
    assert checked == value
    segment = messages_path(value).split("/")[3]
    assert SEGMENT.fullmatch(segment)
    assert segment not in (".", "..")
    assert unquote(segment, errors="strict") == value
    # The transport sends the path as encoded; even a parser that re-quotes it (yarl without
    # encoded=True) must not re-split it.
    url = URL(BASE + messages_path(value) + "?limit=5")
    assert url.host == "ai.platform.loop.health"
    assert url.parts == ("/", "v1", "conversations", value, "messages")
    assert url.query == {"limit": "5"}


# --- Unsupported operations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("list_conversations", lambda p: p.list_conversations(ListConversationsParams())),
        ("chat", lambda p: p.chat(ChatParams(message="hi"))),
    ],
)
def test_unsupported_operations_on_the_adapter(operation: str, call: Any) -> None:
    with pytest.raises(UnsupportedOperationError) as info:
        call(LoopProvider())
    assert info.value.provider == "loop"
    assert info.value.operation == operation
    assert str(info.value) == f"provider 'loop' does not support {operation!r}"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client("loop", token="t") as c:
        yield c


async def test_unsupported_operations_raise_before_any_io(
    client: Client, mock_http: aioresponses
) -> None:
    assert client.capabilities == frozenset({"get_conversation", "list_messages"})
    with pytest.raises(UnsupportedOperationError) as info:
        await client.list_conversations(per_page=5)
    assert (info.value.provider, info.value.operation) == ("loop", "list_conversations")
    with pytest.raises(UnsupportedOperationError) as info:
        client.iter_conversations()  # raised at call time, not at the first iteration
    assert (info.value.provider, info.value.operation) == ("loop", "iter_conversations")
    with pytest.raises(UnsupportedOperationError) as info:
        await client.chat("hi", conversation_id=CID)
    assert (info.value.provider, info.value.operation) == ("loop", "chat")
    assert mock_http.requests == {}


async def test_invalid_ids_raise_before_any_io(client: Client, mock_http: aioresponses) -> None:
    for value in ("..", "a b", 27, None):
        with pytest.raises(InvalidRequestError):
            await client.list_messages(value)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError):
            await client.get_conversation(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        await client.list_messages(CID, limit=0)
    assert mock_http.requests == {}


async def test_requests_on_the_wire_with_the_default_base_url(
    client: Client, mock_http: aioresponses
) -> None:
    url = BASE + PATH
    mock_http.get(url, body=history(3, total=5).body, content_type="application/json")
    mock_http.get(url + "?limit=5", body=history(5).body, content_type="application/json")
    messages = await client.list_messages(CID)
    assert [m.content for m in messages] == [f"message {i}" for i in range(1, 6)]
    sent = list(mock_http.requests)
    assert sent == [("GET", URL(url)), ("GET", URL(url + "?limit=5"))]
    for (_, _), calls in mock_http.requests.items():
        (request,) = calls
        assert request.kwargs["headers"]["Authorization"] == "Bearer t"
        assert request.kwargs["data"] is None
