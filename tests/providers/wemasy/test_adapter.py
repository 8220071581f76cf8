"""The Wemasy adapter without I/O: its identity, request descriptions, argument checks.

Response parsing is in ``test_adapter_responses.py``.
"""

from __future__ import annotations

import math
import types
from typing import Any

import msgspec
import pytest

from tests.support.wemasy_adapter import (
    CHAT_PATH,
    GET_PATH,
    LIST_PATH,
    WEATHER_TOOL,
    body_of,
    chat_request,
)
from wemasy_async import InvalidRequestError
from wemasy_async.providers import get_provider, provider_names
from wemasy_async.providers.base import OPERATIONS, Call, ChatParams, ListConversationsParams
from wemasy_async.providers.wemasy import WemasyProvider


@pytest.fixture
def wemasy() -> WemasyProvider:
    return WemasyProvider()


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
