"""The Wemasy adapter without I/O: request descriptions, argument checks, response parsing."""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from multidict import CIMultiDict

from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RateLimitInfo,
    ResponseDecodeError,
    TokenUsage,
    UnprocessableEntityError,
)
from wemasy_async.providers import get_provider, provider_names
from wemasy_async.providers.base import (
    OPERATIONS,
    Call,
    ChatParams,
    ListConversationsParams,
    Request,
    Response,
)
from wemasy_async.providers.wemasy import WemasyProvider

GET_PATH = "/services/ai/v1/conversations/get"
LIST_PATH = "/services/ai/v1/conversations/list"
CHAT_PATH = "/services/ai/v1/chat"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def wemasy() -> WemasyProvider:
    return WemasyProvider()


def body_of(request: Request) -> Any:
    assert request.body is not None
    return msgspec.json.decode(request.body)


def chat_request(**kwargs: Any) -> Request:
    return WemasyProvider().chat(ChatParams(**kwargs)).request


def response(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
    # The engine hands parse() aiohttp's case-insensitive headers.
    return Response(status, CIMultiDict(headers or {}), body)


def get_parse(resp: Response) -> Any:
    return WemasyProvider().get_conversation(1).parse(resp)


def chat_parse(resp: Response) -> Any:
    return WemasyProvider().chat(ChatParams(message="hi")).parse(resp)


# --- The adapter's identity ------------------------------------------------------------------


def test_provider_metadata(wemasy: WemasyProvider) -> None:
    assert wemasy.name == "wemasy"
    assert wemasy.default_base_url == "https://api.wemasy.nl/api"
    assert wemasy.token_env == "WEMASY_API_TOKEN"
    assert wemasy.capabilities == frozenset(OPERATIONS)
    assert repr(wemasy) == "<WemasyProvider 'wemasy'>"


def test_registry_finds_wemasy() -> None:
    assert "wemasy" in provider_names()
    provider = get_provider("wemasy")
    assert isinstance(provider, WemasyProvider)
    assert get_provider("wemasy") is not provider  # a new adapter per call


@pytest.mark.parametrize("name", ["Wemasy", "site-assist", ""])
def test_registry_rejects_unknown_names(name: object) -> None:
    with pytest.raises(InvalidRequestError, match=r"known providers: .*'wemasy'") as info:
        get_provider(name)
    assert info.value.argument == "provider"


@pytest.mark.parametrize("name", [None, 1])
def test_registry_rejects_non_string_names(name: object) -> None:
    with pytest.raises(InvalidRequestError, match="must be a name or a Provider") as info:
        get_provider(name)
    assert info.value.argument == "provider"


# --- Request descriptions --------------------------------------------------------------------


@pytest.mark.parametrize("conversation_id", [27, "27"])
def test_get_conversation_request(wemasy: WemasyProvider, conversation_id: object) -> None:
    call = wemasy.get_conversation(conversation_id)  # type: ignore[arg-type]
    assert isinstance(call, Call)
    request = call.request
    assert request.method == "POST"
    assert request.path == GET_PATH
    assert request.query == ()
    assert request.idempotent is True
    # The docs' request sample: {"conversation_id": 27}, an integer even when given a string.
    assert request.body == b'{"conversation_id":27}'
    assert body_of(request) == {"conversation_id": 27}


def test_list_messages_reads_the_conversation_endpoint(wemasy: WemasyProvider) -> None:
    assert wemasy.list_messages("27").request == wemasy.get_conversation(27).request


def test_list_conversations_request_with_filters_and_page(wemasy: WemasyProvider) -> None:
    params = ListConversationsParams(agent_id="chat", search="SEO strategy", per_page=50, page=2)
    request = wemasy.list_conversations(params).request
    assert request.method == "POST"
    assert request.path == LIST_PATH
    assert request.query == ()
    assert request.idempotent is True
    # page is not in the documented body, but Laravel's paginator reads it from the input.
    assert body_of(request) == {
        "agent_id": "chat",
        "search": "SEO strategy",
        "per_page": 50,
        "page": 2,
    }


def test_list_conversations_request_omits_absent_filters(wemasy: WemasyProvider) -> None:
    body = body_of(wemasy.list_conversations(ListConversationsParams(per_page=5, page=3)).request)
    assert body == {"per_page": 5, "page": 3}
    assert "agent_id" not in body
    assert "search" not in body


def test_list_conversations_request_matches_the_docs_sample(wemasy: WemasyProvider) -> None:
    params = ListConversationsParams(agent_id="chat", search="SEO strategy", per_page=20)
    body = body_of(wemasy.list_conversations(params).request)
    assert body == {"agent_id": "chat", "search": "SEO strategy", "per_page": 20, "page": 1}


def test_chat_request_with_every_field_matches_the_docs_sample() -> None:
    request = chat_request(
        message="What are the best SEO strategies for our website?",
        conversation_id=15,
        connection_id=3,
        model="gpt-4o",
        temperature=0.7,
        max_tokens=2048,
        use_tools=True,
        tools=[WEATHER_TOOL],
        tool_call_id="call_abc123",
        tool_result="The current temperature in Amsterdam is 18°C",
    )
    assert request.method == "POST"
    assert request.path == CHAT_PATH
    assert request.query == ()
    assert request.idempotent is False
    assert body_of(request) == {
        "message": "What are the best SEO strategies for our website?",
        "conversation_id": 15,
        "connection_id": 3,
        "model": "gpt-4o",
        "temperature": 0.7,
        "max_tokens": 2048,
        "use_tools": True,
        "tools": [WEATHER_TOOL],
        "tool_call_id": "call_abc123",
        "tool_result": "The current temperature in Amsterdam is 18\u00b0C",
    }


def test_chat_request_with_only_a_message_sends_only_the_message() -> None:
    request = chat_request(message="Hallo")
    assert request.body == b'{"message":"Hallo"}'
    assert request.idempotent is False


def test_chat_request_for_a_tool_result_has_no_message() -> None:
    request = chat_request(conversation_id="15", tool_call_id="call_abc123", tool_result="18°C")
    assert body_of(request) == {
        "conversation_id": 15,
        "tool_call_id": "call_abc123",
        "tool_result": "18°C",
    }
    assert request.idempotent is False


def test_chat_request_normalises_numbers() -> None:
    body = body_of(
        chat_request(message="x", conversation_id="15", connection_id="3", temperature=1)
    )
    assert body["conversation_id"] == 15
    assert body["connection_id"] == 3
    assert body["temperature"] == 1.0
    assert isinstance(body["temperature"], float)


@pytest.mark.parametrize("temperature", [0, 0.0, 2, 2.0])
def test_chat_temperature_bounds_are_inclusive(temperature: float) -> None:
    assert body_of(chat_request(message="x", temperature=temperature))["temperature"] == float(
        temperature
    )


def test_chat_tools_are_sent_as_given_including_tuples_and_mappings() -> None:
    tool = types.MappingProxyType(
        {"type": "function", "function": types.MappingProxyType({"name": "ping"})}
    )
    body = body_of(chat_request(message="x", tools=(tool, WEATHER_TOOL)))
    assert body["tools"] == [{"type": "function", "function": {"name": "ping"}}, WEATHER_TOOL]


def test_requests_are_immutable_descriptions(wemasy: WemasyProvider) -> None:
    request = wemasy.get_conversation(27).request
    with pytest.raises(AttributeError):
        request.path = "/elsewhere"  # type: ignore[misc]
    assert hash(request) == hash(wemasy.get_conversation("27").request)


# --- Id validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (27, 27),
        ("27", 27),
        (1, 1),
        ("0027", 27),
        (2**63 - 1, 2**63 - 1),
        (str(2**63 - 1), 2**63 - 1),
    ],
)
def test_conversation_id_accepted(wemasy: WemasyProvider, value: object, expected: int) -> None:
    request = wemasy.get_conversation(value)  # type: ignore[arg-type]
    assert body_of(request.request) == {"conversation_id": expected}


BAD_IDS: list[object] = [
    True,
    False,
    27.0,
    -1,
    0,
    "",
    " 27",
    "27 ",
    "27a",
    "-27",
    "+27",
    "../1",
    "1/2",
    "27?x=1",
    "٣",  # ARABIC-INDIC DIGIT THREE: str.isdigit() is True, but it is no ASCII id
    "²",  # SUPERSCRIPT TWO: also isdigit()
    2**63,
    str(2**63),
    "1" * 20,
    None,
    [],
    [27],
    b"27",
]


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
@pytest.mark.parametrize("operation", ["get_conversation", "list_messages"])
def test_conversation_id_rejected(wemasy: WemasyProvider, operation: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        getattr(wemasy, operation)(value)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.argument == "conversation_id"
    assert str(error).startswith("conversation_id must be")


# None is not a bad chat conversation_id: it starts a new conversation.
@pytest.mark.parametrize("value", [v for v in BAD_IDS if v is not None], ids=repr)
def test_chat_conversation_id_rejected(wemasy: WemasyProvider, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        wemasy.chat(ChatParams(message="x", conversation_id=value))  # type: ignore[arg-type]
    assert info.value.argument == "conversation_id"


def test_rejected_id_message_shows_a_short_repr() -> None:
    with pytest.raises(InvalidRequestError) as info:
        WemasyProvider().get_conversation("9" * 500)
    assert len(str(info.value)) < 200
    assert "..." in str(info.value)


# --- List validation -------------------------------------------------------------------------


@pytest.mark.parametrize("per_page", [0, -1, 101, True, "20", 20.0, None])
def test_per_page_rejected(wemasy: WemasyProvider, per_page: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        wemasy.list_conversations(ListConversationsParams(per_page=per_page))  # type: ignore[arg-type]
    assert info.value.argument == "per_page"


@pytest.mark.parametrize("per_page", [1, 100])
def test_per_page_bounds_are_inclusive(wemasy: WemasyProvider, per_page: int) -> None:
    params = ListConversationsParams(per_page=per_page, page=2)
    assert body_of(wemasy.list_conversations(params).request)["per_page"] == per_page


@pytest.mark.parametrize("page", [0, -1, True, "2", 2.0])
def test_page_rejected(wemasy: WemasyProvider, page: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        wemasy.list_conversations(ListConversationsParams(page=page))  # type: ignore[arg-type]
    assert info.value.argument == "page"


@pytest.mark.parametrize("argument", ["agent_id", "search"])
@pytest.mark.parametrize("value", ["", "   ", 5, b"chat"])
def test_list_filters_rejected(wemasy: WemasyProvider, argument: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        wemasy.list_conversations(ListConversationsParams(**{argument: value}))  # type: ignore[arg-type]
    assert info.value.argument == argument


# --- Chat validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({}, "message"),
        ({"conversation_id": 15}, "message"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": 5}, "message"),
        ({"message": "x", "tool_call_id": "call_1", "conversation_id": 15}, "tool_result"),
        ({"conversation_id": 15, "tool_call_id": "call_1"}, "tool_result"),
        ({"conversation_id": 15, "tool_result": "18°C"}, "tool_call_id"),
        ({"tool_call_id": "call_1", "tool_result": "18°C"}, "conversation_id"),
        ({"message": "x", "temperature": -0.1}, "temperature"),
        ({"message": "x", "temperature": 2.1}, "temperature"),
        ({"message": "x", "temperature": math.nan}, "temperature"),
        ({"message": "x", "temperature": math.inf}, "temperature"),
        ({"message": "x", "temperature": True}, "temperature"),
        ({"message": "x", "temperature": "0.7"}, "temperature"),
        ({"message": "x", "max_tokens": 0}, "max_tokens"),
        ({"message": "x", "max_tokens": -5}, "max_tokens"),
        ({"message": "x", "max_tokens": True}, "max_tokens"),
        ({"message": "x", "max_tokens": 1.5}, "max_tokens"),
        ({"message": "x", "connection_id": 0}, "connection_id"),
        ({"message": "x", "connection_id": "3a"}, "connection_id"),
        ({"message": "x", "model": ""}, "model"),
        ({"message": "x", "use_tools": 1}, "use_tools"),
        ({"message": "x", "use_tools": "yes"}, "use_tools"),
    ],
    ids=repr,
)
def test_chat_arguments_rejected(
    wemasy: WemasyProvider, kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        wemasy.chat(ChatParams(**kwargs))
    assert isinstance(info.value, ValueError)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("tools", "argument"),
    [
        ("get_weather", "tools"),
        (b"[]", "tools"),
        (WEATHER_TOOL, "tools"),  # one tool, not a list of them
        (5, "tools"),
        ([None], "tools[0]"),
        (["get_weather"], "tools[0]"),
        ([{"type": "function"}], "tools[0]['function']"),
        ([{"type": "function", "function": "get_weather"}], "tools[0]['function']"),
        ([{"type": "function", "function": {}}], "tools[0]['function']['name']"),
        ([{"type": "function", "function": {"name": ""}}], "tools[0]['function']['name']"),
        ([{"function": {"name": "f"}}], "tools[0]['type']"),
        ([{"type": "retrieval", "function": {"name": "f"}}], "tools[0]['type']"),
        (
            [WEATHER_TOOL, {"type": "function", "function": {"name": "f", "parameters": []}}],
            "tools[1]['function']['parameters']",
        ),
    ],
    ids=repr,
)
def test_chat_malformed_tools_rejected(
    wemasy: WemasyProvider, tools: object, argument: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        wemasy.chat(ChatParams(message="x", tools=tools))  # type: ignore[arg-type]
    assert info.value.argument == argument


@pytest.mark.parametrize(
    "value",
    [object(), complex(1, 2), types.SimpleNamespace(a=1)],
    ids=lambda value: type(value).__name__,  # no address: xdist workers collect the same ids
)
def test_chat_tools_with_values_json_cannot_hold_rejected(
    wemasy: WemasyProvider, value: object
) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "default": value}},
    }
    with pytest.raises(InvalidRequestError, match="tools must contain only JSON values") as info:
        wemasy.chat(ChatParams(message="x", tools=[tool]))
    assert info.value.argument == "tools"
    assert isinstance(info.value.__cause__, TypeError)


def test_chat_tool_parameters_may_be_any_mapping(wemasy: WemasyProvider) -> None:
    parameters = types.MappingProxyType({"type": "object", "properties": {}})
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    body = body_of(wemasy.chat(ChatParams(message="x", tools=[tool])).request)
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_chat_tools_are_not_mutated(wemasy: WemasyProvider) -> None:
    tool = {"type": "function", "function": {"name": "f"}, "extra": 1}
    snapshot = msgspec.json.encode(tool)
    body = body_of(wemasy.chat(ChatParams(message="x", tools=[tool])).request)
    assert body["tools"] == [tool]
    assert msgspec.json.encode(tool) == snapshot


# --- Error statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
        (405, APIStatusError),
    ],
)
def test_error_status_mapping(status: int, cls: type[APIStatusError]) -> None:
    body = {"success": False, "message": f"provider says {status}"}
    for parse in (get_parse, chat_parse):
        with pytest.raises(APIStatusError) as info:
            parse(response(status, msgspec.json.encode(body), {"X-Request-Id": "abc"}))
        error = info.value
        assert type(error) is cls
        assert error.status == status
        assert error.provider == "wemasy"
        assert error.message == f"provider says {status}"
        assert error.body == body
        assert error.headers["X-Request-Id"] == "abc"
        assert str(error) == f"provider says {status} (HTTP {status} from wemasy)"
        assert repr(error) == (
            f"{cls.__name__}(provider='wemasy', status={status}, code=None, "
            f"message='provider says {status}')"
        )


def test_401_body_shape_from_the_docs() -> None:
    with pytest.raises(AuthenticationError) as info:
        get_parse(response(401, b'{"error": true, "message": "Unauthenticated."}'))
    assert info.value.message == "Unauthenticated."
    assert info.value.body == {"error": True, "message": "Unauthenticated."}


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "Not Found"), (500, "Internal Server Error"), (418, "I'm a Teapot"), (499, "HTTP 499")],
)
@pytest.mark.parametrize("body", [b"", b"[]", b'{"message": ""}', b'{"message": 5}', b"oops"])
def test_error_message_falls_back_to_the_reason_phrase(
    status: int, message: str, body: bytes
) -> None:
    with pytest.raises(APIStatusError) as info:
        get_parse(response(status, body))
    assert info.value.message == message
    assert info.value.status == status


def test_non_json_error_body_is_kept_as_text() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(InternalServerError) as info:
        get_parse(response(502, html.encode(), {"Content-Type": "text/html"}))
    assert info.value.body == html
    assert info.value.message == "Bad Gateway"


def test_422_keeps_per_field_errors() -> None:
    body = {
        "message": "The conversation id field is required. (and 1 more error)",
        "errors": {
            "conversation_id": ["The conversation id field is required."],
            "per_page": "The per page field must not be greater than 100.",
        },
    }
    with pytest.raises(UnprocessableEntityError) as info:
        get_parse(response(422, msgspec.json.encode(body)))
    error = info.value
    assert error.message == "The conversation id field is required. (and 1 more error)"
    # A bare string is one message.
    assert error.errors == {
        "conversation_id": ["The conversation id field is required."],
        "per_page": ["The per page field must not be greater than 100."],
    }


def test_422_without_errors_has_empty_errors() -> None:
    with pytest.raises(UnprocessableEntityError) as info:
        get_parse(response(422, b'{"message": "Invalid."}'))
    assert info.value.errors == {}


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "60"}, 60.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
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
    body = b'{"error": true, "message": "Too Many Attempts."}'
    with pytest.raises(RateLimitError) as info:
        get_parse(response(429, body, {"X-RateLimit-Limit": "60", **headers}))
    assert info.value.retry_after == retry_after
    assert info.value.message == "Too Many Attempts."


def test_retry_hint_on_503_is_kept() -> None:
    with pytest.raises(InternalServerError) as info:
        get_parse(response(503, b"", {"Retry-After": "30"}))
    assert info.value.retry_after == 30.0


def test_no_retry_hint_means_none() -> None:
    with pytest.raises(InternalServerError) as info:
        get_parse(response(500, b"", {}))
    assert info.value.retry_after is None


def test_error_headers_stay_case_insensitive() -> None:
    headers = {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "retry-after": "60"}
    with pytest.raises(RateLimitError) as info:
        get_parse(response(429, b'{"error": true, "message": "Too Many Attempts."}', headers))
    assert info.value.headers["Retry-After"] == "60"
    assert RateLimitInfo.from_headers(info.value.headers) == RateLimitInfo(
        limit=60, remaining=0, retry_after=60.0
    )


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_an_error_naming_the_location(status: int) -> None:
    location = "https://login.example.com/sso?next=/api"
    with pytest.raises(APIStatusError) as info:
        get_parse(response(status, b"", {"Location": location}))
    error = info.value
    assert type(error) is APIStatusError
    assert error.status == status
    assert error.message == f"unexpected redirect to {location}"
    assert location in str(error)


def test_redirect_without_location_uses_the_reason_phrase() -> None:
    with pytest.raises(APIStatusError) as info:
        get_parse(response(304))
    assert info.value.message == "Not Modified"


# --- 2xx bodies that are not what the docs describe ------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>Welcome</body></html>", "JSON is malformed"),
        (b"", "truncated"),
        (b"[]", "Expected `object`, got `array`"),
        (b'[{"success": true}]', "Expected `object`, got `array`"),
        (b'{"success": true}', "missing required field `data`"),
        (b'{"success": true, "data": null}', "`$.data`"),
        (b'{"success": true, "data": []}', "`$.data`"),
        (b'{"success": true, "data": {"agent_id": "chat"}}', "missing required field `id`"),
        (b'{"success": false, "message": "Conversation not found."}', "`data`"),
        (
            b'{"success": false, "message": "Conversation not found.", "data": {"id": 1}}',
            "success is false: Conversation not found.",
        ),
        (b'{"success": false, "data": {"id": 1}}', "success is false: no message"),
        (b'{"success": "yes", "data": {"id": 1}}', "`$.success`"),
        (
            b'{"success": true, "data": {"id": 1, "messages": [{"role": "robot"}]}}',
            "unknown message role 'robot'",
        ),
        (
            b'{"success": true, "data": {"id": 1, "messages": [{"content": "hi"}]}}',
            "missing required field `role`",
        ),
        (
            b'{"success": true, "data": {"id": 1, "messages": "not json"}}',
            "messages is a string that is not the expected JSON",
        ),
        (b'{"success": true, "data": {"id": 1, "messages": 5}}', "`$.data.messages`"),
        (b'{"success": true, "data": {"id": 1, "cost_amount": "a lot"}}', "`$.data.cost_amount`"),
        (b'{"success": true, "data": {"id": 1, "started_at": "yesterday"}}', "`$.data.started_at`"),
        (b'{"success": true, "data": {"id": 1.5}}', "`$.data.id`"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("status", [200, 201])
def test_undocumented_2xx_conversation_bodies(status: int, body: bytes, reason: str) -> None:
    with pytest.raises(ResponseDecodeError) as info:
        get_parse(response(status, body))
    error = info.value
    assert error.status == status
    assert error.provider == "wemasy"
    assert error.expected == "a Wemasy conversation envelope"
    assert reason in str(error)
    assert str(error).startswith(f"HTTP {status} response from wemasy is not ")
    assert error.excerpt == " ".join(body.decode().split())
    assert repr(error) == (
        f"ResponseDecodeError(provider='wemasy', status={status}, "
        "expected='a Wemasy conversation envelope')"
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            {"tool_calls": [{"id": "call_1", "type": "function", "function": {"arguments": "{}"}}]},
            "no function name",
        ),
        ({"tool_calls": [{"id": "call_1", "function": {"name": ""}}]}, "no function name"),
        ({"tool_calls": [{"type": "function", "function": {"name": "f"}}]}, "no id"),
        ({"tool_calls": [{"id": "call_1"}]}, "no function name"),
        ({"tool_calls": "{not json"}, "tool_calls is a string that is not the expected JSON"),
        ({"tool_calls": 5}, "`$.data.tool_calls`"),
        ({"tool_calls": [5]}, "`$.data.tool_calls[0]`"),
        ({"usage": "lots"}, "usage is a string that is not the expected JSON"),
        ({"usage": [1, 2]}, "`$.data.usage`"),
        ({"conversation_id": [15]}, "`$.data.conversation_id`"),
    ],
    ids=repr,
)
def test_undocumented_2xx_chat_bodies(data: dict[str, Any], reason: str) -> None:
    body = msgspec.json.encode({"success": True, "data": data})
    with pytest.raises(ResponseDecodeError) as info:
        chat_parse(response(200, body))
    assert info.value.status == 200
    assert info.value.expected == "a Wemasy chat reply envelope"
    assert reason in str(info.value)


def test_undocumented_2xx_list_body() -> None:
    parse = WemasyProvider().list_conversations(ListConversationsParams()).parse
    with pytest.raises(ResponseDecodeError) as info:
        parse(response(200, b'{"success": true, "data": {"id": 1}}'))
    assert info.value.expected == "a Wemasy list envelope"
    assert "`$.data`" in str(info.value)


def test_decode_error_excerpt_is_short() -> None:
    body = b'{"success": true, "data": "' + b"x" * 5000 + b'"}'
    with pytest.raises(ResponseDecodeError) as info:
        get_parse(response(200, body))
    assert len(info.value.excerpt) == 200
    assert info.value.excerpt.endswith("…")
    assert len(str(info.value)) < 600


def test_list_without_pagination_is_a_single_page() -> None:
    params = ListConversationsParams(per_page=10, page=4)
    parse = WemasyProvider().list_conversations(params).parse
    page = parse(response(200, b'{"success": true, "data": [{"id": 1}, {"id": "2"}]}'))
    assert [c.id for c in page.items] == ["1", "2"]
    assert (page.page, page.last_page, page.per_page, page.total) == (4, 4, 10, 2)
    assert page.has_next is False


def test_messages_absent_vs_null_vs_empty() -> None:
    absent = get_parse(response(200, b'{"success": true, "data": {"id": 1}}'))
    null = get_parse(response(200, b'{"success": true, "data": {"id": 1, "messages": null}}'))
    empty = get_parse(response(200, b'{"success": true, "data": {"id": 1, "messages": ""}}'))
    assert absent.messages is None
    assert null.messages == []
    assert empty.messages == []
    list_messages = WemasyProvider().list_messages(1).parse
    assert list_messages(response(200, b'{"success": true, "data": {"id": 1}}')) == []


def test_non_empty_php_list_metadata_is_kept() -> None:
    body = b'{"success": true, "data": {"id": 1, "messages": [{"role": "user", "metadata": [1]}]}}'
    (message,) = get_parse(response(200, body)).messages
    assert message.metadata == {"items": [1]}


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ('"conversation_id": 1', "1"),  # the conversation's own id: its text, shared
        ('"conversation_id": "1"', "1"),
        ('"conversation_id": 7', "7"),  # another conversation's: kept, as text
        ('"conversation_id": "07"', "07"),
        ('"conversation_id": ""', "1"),  # blank: the conversation it came in
        ('"conversation_id": null', "1"),
    ],
)
def test_a_message_conversation_id_in_every_form(wire: str, expected: str) -> None:
    body = b'{"data": {"id": 1, "messages": [{"role": "user", %s}]}}' % wire.encode()
    conversation = get_parse(response(200, body))
    (message,) = conversation.messages
    assert message.conversation_id == expected
    if wire in ('"conversation_id": 1', '"conversation_id": null'):
        assert message.conversation_id is conversation.id  # one string for all messages


def test_neutral_messages_share_what_the_wire_already_has_in_neutral_form() -> None:
    body = (
        b'{"data": {"id": 1, "messages": [{"id": 5, "role": "assistant", "content": "hi",'
        b' "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},'
        b' "created_at": "2024-01-15T10:30:00Z", "metadata": {}}]}}'
    )
    conversation = get_parse(response(200, body))
    (message,) = conversation.messages
    (wire,) = conversation.raw.messages
    assert message.usage == TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    assert message.usage is wire.usage  # immutable, so one object serves both
    assert message.created_at is wire.created_at  # already aware
    assert message.metadata == {}
    assert message.id == "5"
    assert wire.id == 5


@pytest.mark.parametrize("usage", ['"7"', "7", '" 7 "', '"{\\"total_tokens\\": 7}"'])
def test_usage_other_than_an_object_is_converted(usage: str) -> None:
    body = b'{"data": {"id": 1, "messages": [{"role": "user", "usage": %s}]}}' % usage.encode()
    (message,) = get_parse(response(200, body)).messages
    assert message.usage == TokenUsage(total_tokens=7)
