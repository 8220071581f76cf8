"""The Loop adapter without I/O: request descriptions, id encoding, follow-ups, parsing."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import msgspec
import pytest
from aioresponses import aioresponses
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InternalServerError,
    InvalidRequestError,
    Message,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    TokenUsage,
    UnprocessableEntityError,
    UnsupportedOperationError,
)
from wemasy_async.providers import get_provider
from wemasy_async.providers.base import (
    Call,
    ChatParams,
    ListConversationsParams,
    Request,
    Response,
)
from wemasy_async.providers.loop import (
    MAX_ID_LENGTH,
    LoopHistory,
    LoopProvider,
    check_conversation_id,
    messages_path,
)

BASE = "https://ai.platform.loop.health"
CID = "7d0f4a52-1b9e-4c3a-8f21-6a5e9b3c2d10"
PATH = f"/v1/conversations/{CID}/messages"
SEGMENT = re.compile(r"[A-Za-z0-9._~%-]+")


@pytest.fixture
def loop() -> LoopProvider:
    return LoopProvider()


def response(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
    # The engine hands parse() aiohttp's case-insensitive headers.
    return Response(status, CIMultiDict(headers or {}), body)


def wire_message(index: int, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{index:012d}",
        "conversation_id": CID,
        "role": "user" if index % 2 else "assistant",
        "content": f"message {index}",
        "tool_calls": None,
        "token_usage": None,
        "metadata": {},
        "created_at": f"2024-03-05T09:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
    }
    message.update(fields)
    return message


def history(count: int, total: int | None = None) -> Response:
    body = {
        "total": count if total is None else total,
        "messages": [wire_message(i) for i in range(1, count + 1)],
    }
    return response(200, msgspec.json.encode(body))


def messages_parse(resp: Response) -> Any:
    return LoopProvider().list_messages(CID).parse(resp)


def get_parse(resp: Response) -> Any:
    return LoopProvider().get_conversation(CID).parse(resp)


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


# --- Error statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIStatusError),
        (409, ConflictError),
        (418, APIStatusError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
    ],
)
def test_error_status_mapping(status: int, cls: type[APIStatusError]) -> None:
    body = {"error": f"code_{status}", "message": f"provider says {status}"}
    for parse in (messages_parse, get_parse):
        with pytest.raises(APIStatusError) as info:
            parse(response(status, msgspec.json.encode(body), {"X-Request-Id": "abc"}))
        error = info.value
        assert type(error) is cls
        assert error.status == status
        assert error.provider == "loop"
        assert error.code == f"code_{status}"
        assert error.message == f"provider says {status}"
        assert error.body == body
        assert error.details == {}
        assert error.headers["x-request-id"] == "abc"
        assert str(error) == f"provider says {status} (HTTP {status} from loop, code code_{status})"
        assert repr(error) == (
            f"{cls.__name__}(provider='loop', status={status}, code='code_{status}', "
            f"message='provider says {status}')"
        )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            b'{"error": "not_found", "message": "Conversation not found"}',
            "not_found",
            "Conversation not found",
        ),
        (b'{"error": "not_found"}', "not_found", "Not Found"),
        (b'{"error": "not_found", "message": ""}', "not_found", "Not Found"),
        (b'{"error": "", "message": "Gone"}', None, "Gone"),
        (b'{"error": true, "message": "Unauthenticated."}', None, "Unauthenticated."),
        (
            b'{"error": {"code": "NOT_FOUND", "message": "No such conversation"}}',
            "NOT_FOUND",
            "No such conversation",
        ),
        (b'{"error": {"code": 5}, "message": "Top level wins"}', None, "Top level wins"),
        (b'{"message": 5}', None, "Not Found"),
        (b"[]", None, "Not Found"),
        (b"", None, "Not Found"),
        (b"not found", None, "Not Found"),
    ],
    ids=repr,
)
def test_error_body_variants(body: bytes, code: str | None, message: str) -> None:
    with pytest.raises(NotFoundError) as info:
        messages_parse(response(404, body))
    assert info.value.code == code
    assert info.value.message == message


def test_non_json_error_body_is_kept_as_text() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(InternalServerError) as info:
        get_parse(response(502, html.encode(), {"Content-Type": "text/html"}))
    assert info.value.body == html
    assert info.value.message == "Bad Gateway"
    assert info.value.code is None


def test_unknown_status_without_message() -> None:
    with pytest.raises(APIStatusError) as info:
        get_parse(response(499))
    assert type(info.value) is APIStatusError
    assert info.value.message == "HTTP 499"


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": "1.5"}, 1.5),
        (
            {
                "Retry-After": "Wed, 21 Oct 2015 07:28:45 GMT",
                "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            45.0,
        ),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_429_retry_after(headers: dict[str, str], retry_after: float | None) -> None:
    body = b'{"error": "rate_limited", "message": "Too many requests"}'
    with pytest.raises(RateLimitError) as info:
        messages_parse(response(429, body, headers))
    assert info.value.retry_after == retry_after
    assert info.value.code == "rate_limited"


def test_retry_hint_on_503_is_kept() -> None:
    with pytest.raises(InternalServerError) as info:
        get_parse(response(503, b"", {"Retry-After": "30"}))
    assert info.value.retry_after == 30.0


def test_no_retry_hint_means_none() -> None:
    with pytest.raises(InternalServerError) as info:
        get_parse(response(500, b"", {}))
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_an_error_naming_the_location(status: int) -> None:
    location = "https://login.loop.health/"
    with pytest.raises(APIStatusError) as info:
        messages_parse(response(status, b"", {"Location": location}))
    assert type(info.value) is APIStatusError
    assert info.value.message == f"unexpected redirect to {location}"


# --- 2xx bodies that are not what the docs describe ------------------------------------------


def _body(**overrides: Any) -> bytes:
    return msgspec.json.encode({"total": 1, "messages": [wire_message(1, **overrides)]})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>Welcome</body></html>", "JSON is malformed"),
        (b"", "truncated"),
        (b"[]", "Expected `object`, got `array`"),
        (b'{"messages": []}', "missing required field `total`"),
        (b'{"total": 0}', "missing required field `messages`"),
        (b'{"total": -1, "messages": []}', "Expected `int` >= 0 - at `$.total`"),
        (b'{"total": 1.5, "messages": []}', "`$.total`"),
        (b'{"total": "many", "messages": []}', "`$.total`"),
        (b'{"total": 0, "messages": null}', "`$.messages`"),
        (b'{"total": 1, "messages": [{"content": "hi"}]}', "missing required field `role`"),
        (_body(role="moderator"), "unknown message role 'moderator'"),
        (_body(role="function"), "unknown message role 'function'"),
        (_body(role=None), "`$.messages[0].role`"),
        (_body(content=5), "`$.messages[0].content`"),
        (_body(conversation_id=5), "`$.messages[0].conversation_id`"),
        (_body(metadata=[]), "`$.messages[0].metadata`"),
        (_body(created_at="yesterday"), "`$.messages[0].created_at`"),
        (_body(tool_calls=5), "`$.messages[0].tool_calls`"),
        (_body(tool_calls=[5]), "`$.messages[0].tool_calls[0]`"),
        (_body(tool_calls=[{"id": "c1", "function": {"arguments": "{}"}}]), "no function name"),
        (_body(tool_calls=[{"id": "", "name": "f"}]), "no id"),
        (_body(tool_calls=[{"function": {"name": "f"}}]), "no id"),
        (_body(token_usage="lots"), "`$.messages[0].token_usage`"),
        (_body(token_usage={"total_tokens": 1.5}), "`$.messages[0].token_usage.total_tokens`"),
        (_body(token_usage={"total_tokens": -3}), "`$.messages[0].token_usage.total_tokens`"),
        (_body(token_usage={"total_tokens": True}), "`$.messages[0].token_usage.total_tokens`"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("status", [200, 203])
def test_undocumented_2xx_bodies(status: int, body: bytes, reason: str) -> None:
    for parse in (messages_parse, get_parse):
        with pytest.raises(ResponseDecodeError) as info:
            parse(response(status, body))
        error = info.value
        assert error.status == status
        assert error.provider == "loop"
        assert error.expected == "a Loop message history"
        assert reason in str(error)
        assert isinstance(error.__cause__, (msgspec.MsgspecError, ValueError))


def test_lenient_message_fields() -> None:
    body = msgspec.json.encode(
        {
            "total": 2,
            "messages": [
                {"role": "tool", "tool_call_id": "call_1", "id": 7},
                {
                    "role": "assistant",
                    "content": "ok",
                    "created_at": 1709629200,
                    "token_usage": {
                        "prompt_tokens": "3",
                        "completion_tokens": 4.0,
                        "total_tokens": 7,
                    },
                    "tool_calls": [{"id": 9, "type": None, "function": {"name": "f"}}],
                    "extra": {"ignored": True},
                },
            ],
        }
    )
    first, second = messages_parse(response(200, body))
    assert first.id == "7"
    assert first.conversation_id == CID
    assert first.content is None
    assert first.tool_call_id == "call_1"
    assert first.created_at is None
    assert second.usage == TokenUsage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    assert second.created_at is not None
    assert second.created_at.isoformat() == "2024-03-05T09:00:00+00:00"
    (call,) = second.tool_calls
    assert (call.id, call.name, call.arguments, call.type) == ("9", "f", "{}", "function")


def test_conversation_uses_earliest_and_latest_timestamps_in_any_order() -> None:
    body = msgspec.json.encode(
        {
            "total": 3,
            "messages": [
                wire_message(2, created_at="2024-03-05T10:00:00Z"),
                wire_message(1, created_at="2024-03-05T09:00:00Z"),
                wire_message(3, created_at="2024-03-05T11:00:00+02:00"),
            ],
        }
    )
    conversation = get_parse(response(200, body))
    assert conversation.started_at.isoformat() == "2024-03-05T09:00:00+00:00"
    assert conversation.last_activity_at.isoformat() == "2024-03-05T10:00:00+00:00"


def test_neutral_messages_share_the_wire_strings_and_aggregate_out_of_order() -> None:
    body = msgspec.json.encode(
        {
            "total": 3,
            "messages": [
                wire_message(2, token_usage={"total_tokens": 0}, metadata={"a": 1}),
                wire_message(1, created_at=None),
                wire_message(3, created_at="2024-03-05T08:00:00", token_usage={"total_tokens": 5}),
            ],
        }
    )
    conversation = get_parse(response(200, body))
    first = conversation.messages[0]
    wire = conversation.raw.messages[0]
    assert first.id is wire.id
    assert first.content is wire.content
    assert first.metadata is wire.metadata
    assert first.created_at is wire.created_at  # already aware
    assert [m.metadata for m in conversation.messages] == [{"a": 1}, {}, {}]
    # Out of order, one missing, one naive (UTC): the range is still the earliest and latest.
    assert conversation.started_at == datetime(2024, 3, 5, 8, 0, tzinfo=timezone.utc)
    assert conversation.last_activity_at == datetime(2024, 3, 5, 9, 0, 2, tzinfo=timezone.utc)
    assert conversation.cost_tokens == 5  # a zero count counts as a count
