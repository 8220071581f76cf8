"""Recorded-style Wemasy responses decoded through the adapter's pure ``parse`` functions.

Each file in ``tests/samples/wemasy/`` is one recording: the operation it answers, the HTTP
status, the headers and the body exactly as a server sends it (``body`` holds a JSON body
byte for byte, ``body_text`` a non-JSON one). The docs' own examples are included verbatim;
the rest are realistic variants of the shapes the docs leave vague.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from tests.support.cases import RECORDED
from tests.support.recordings import Samples, assert_utc, utc
from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    ChatReply,
    Conversation,
    InternalServerError,
    NotFoundError,
    Page,
    PermissionDeniedError,
    RateLimitError,
    RateLimitInfo,
    ResponseDecodeError,
    TokenUsage,
    ToolCall,
    UnprocessableEntityError,
)
from wemasy_async.providers.wemasy import (
    WemasyConversation,
    WemasyMessage,
    WemasyUsage,
)
from wemasy_async.providers.wire import OpenAIFunction, OpenAIToolCall

RECORDINGS = Samples("wemasy")
SAMPLES = RECORDINGS.folder
PARSERS = RECORDINGS.parsers
load = RECORDINGS.load
parse = RECORDINGS.parse


# The conversations that decode (tests/contract/test_recordings.py reads them).
GET_OK = list(RECORDED["wemasy"].conversations)
LIST_OK = ["list_docs_example", "list_page_2_of_3"]
CHAT_OK = [
    "chat_text_reply",
    "chat_tool_call_nested",
    "chat_tool_call_flat",
    "chat_tool_call_single_object",
    "chat_tool_calls_json_string",
    "chat_tool_result_reply",
]
UNDECODABLE = ["get_docs_example", "chat_docs_example"]
ERRORS: dict[str, tuple[int, type[APIStatusError], str]] = {
    "error_401_unauthenticated": (401, AuthenticationError, "Unauthenticated."),
    "error_403_forbidden": (403, PermissionDeniedError, "This action is unauthorized."),
    "error_404_not_found": (404, NotFoundError, "Conversation not found."),
    "error_422_validation": (
        422,
        UnprocessableEntityError,
        "The temperature field must not be greater than 2. (and 1 more error)",
    ),
    "error_429_rate_limited": (429, RateLimitError, "Too Many Attempts."),
    "error_500_server_error": (
        500,
        InternalServerError,
        "Failed to get a response from the AI provider.",
    ),
    "error_502_html": (502, InternalServerError, "Bad Gateway"),
}


# --- The sample set itself -------------------------------------------------------------------


def test_every_sample_file_is_covered_by_a_test() -> None:
    on_disk = {path.stem for path in SAMPLES.glob("*.json")}
    covered = {*GET_OK, *LIST_OK, *CHAT_OK, *UNDECODABLE, *ERRORS}
    assert on_disk == covered


# --- The docs' own examples ------------------------------------------------------------------


def test_get_docs_example_is_not_decodable_because_id_is_not_numeric() -> None:
    # The docs type every field as "string" and show "string" as each value; an id that is
    # not a number cannot be a Wemasy conversation id, so the decoder refuses it loudly.
    for operation in ("get_conversation", "list_messages"):
        with pytest.raises(ResponseDecodeError) as info:
            parse("get_docs_example", operation)
        error = info.value
        assert error.status == 200
        assert error.provider == "wemasy"
        assert "`$.data.id`" in str(error)
        assert error.excerpt.startswith('{ "success": true, "data": { "id": "string"')
        assert isinstance(error.__cause__, msgspec.ValidationError)


def test_chat_docs_example_is_not_decodable_because_usage_is_not_usage() -> None:
    # "usage": "string" is neither an object, a number, nor JSON text of either: rather than
    # guess, the lenient decoder reports it (tool_calls "string" would fail the same way).
    with pytest.raises(ResponseDecodeError) as info:
        parse("chat_docs_example")
    error = info.value
    assert error.status == 200
    assert "usage is a string that is not the expected JSON" in str(error)
    assert error.expected == "a Wemasy chat reply envelope"
    assert '"usage": "string"' in error.excerpt


def test_list_docs_example_is_an_empty_last_page() -> None:
    page = parse("list_docs_example")
    assert isinstance(page, Page)
    assert page.items == []
    assert (page.page, page.last_page, page.per_page, page.total) == (0, 0, 0, 0)
    assert page.has_next is False


# --- conversations/get -----------------------------------------------------------------------


def test_get_with_integer_ids_and_message_list() -> None:
    conversation = parse("get_int_ids")
    assert isinstance(conversation, Conversation)
    assert conversation.id == "27"
    assert conversation.provider == "wemasy"
    assert conversation.agent_id == "chat"
    assert conversation.status == "completed"
    assert conversation.goal == "SEO strategy for the new website"
    assert conversation.cost_tokens == 1834
    assert conversation.cost_amount == Decimal("0.0247")
    assert str(conversation.cost_amount) == "0.0247"
    assert_utc(conversation.started_at, utc(2024, 1, 15, 10, 30, 0))
    assert_utc(conversation.ended_at, utc(2024, 1, 15, 10, 42, 17))

    messages = conversation.messages
    assert messages is not None
    assert [m.id for m in messages] == ["101", "102", "103", "104", "105"]
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert all(m.conversation_id == "27" for m in messages)
    assert_utc(messages[0].created_at, utc(2024, 1, 15, 10, 30, 0))
    assert_utc(messages[4].created_at, utc(2024, 1, 15, 10, 30, 12))
    assert messages[0].metadata == {}
    assert messages[1].metadata == {"source": "widget"}
    assert messages[1].content == "What are the best SEO strategies for our website?"
    assert messages[2].content is None
    assert messages[2].tool_calls == [
        ToolCall(
            id="call_abc123", name="get_weather", arguments='{"city":"Amsterdam"}', type="function"
        )
    ]
    assert messages[2].tool_calls[0].parsed_arguments() == {"city": "Amsterdam"}
    assert messages[2].usage == TokenUsage(
        prompt_tokens=812, completion_tokens=21, total_tokens=833
    )
    assert messages[3].tool_call_id == "call_abc123"
    assert messages[3].content == "The current temperature in Amsterdam is 18°C"
    assert messages[0].usage is None
    assert messages[3].tool_calls == []

    raw = conversation.raw
    assert isinstance(raw, WemasyConversation)
    assert raw.id == 27
    assert raw.cost_amount == Decimal("0.0247")
    assert isinstance(raw.messages, list)
    assert all(isinstance(m, WemasyMessage) for m in raw.messages)
    assert raw.messages[2].tool_calls == [
        OpenAIToolCall(
            id="call_abc123",
            type="function",
            function=OpenAIFunction(name="get_weather", arguments='{"city":"Amsterdam"}'),
        )
    ]


def test_get_with_lenient_wire_types() -> None:
    conversation = parse("get_lenient_types")
    assert conversation.id == "27"
    assert isinstance(conversation.id, str)
    assert conversation.cost_tokens == 1834
    # A JSON number is kept exactly as written, not rounded through a binary float.
    assert conversation.cost_amount == Decimal("0.0247")
    assert conversation.cost_amount != Decimal.from_float(0.0247)
    # Naive "Y-m-d H:i:s" is UTC; Unix seconds are UTC.
    assert_utc(conversation.started_at, utc(2024, 1, 15, 10, 30, 0))
    assert_utc(conversation.ended_at, utc(2024, 1, 15, 10, 42, 17))
    assert conversation.goal is None

    messages = conversation.messages
    assert messages is not None
    assert [m.id for m in messages] == ["201", "202", "203"]
    # developer -> system, function -> tool.
    assert [m.role for m in messages] == ["system", "user", "tool"]
    # Messages without a conversation_id belong to the conversation they came in.
    assert [m.conversation_id for m in messages] == ["27", "27", "27"]
    # PHP's empty array [] is an empty object.
    assert messages[0].metadata == {}
    assert messages[1].metadata == {}
    assert_utc(messages[0].created_at, utc(2024, 1, 15, 10, 30, 0))
    assert_utc(messages[1].created_at, utc(2024, 1, 15, 10, 30, 5))
    assert_utc(messages[2].created_at, utc(2024, 1, 15, 10, 30, 6))
    assert messages[2].tool_call_id == "call_def456"
    assert messages[2].content == '{"temperature":17}'

    raw = conversation.raw
    assert isinstance(raw, WemasyConversation)
    # raw is the wire object: messages stay the JSON text the server sent.
    assert raw.messages == load("get_lenient_types").wire()["data"]["messages"]
    assert isinstance(raw.messages, str)
    assert raw.started_at == datetime(2024, 1, 15, 10, 30, 0)  # naive, as sent


def test_get_with_null_messages_and_offset_timestamp() -> None:
    conversation = parse("get_null_messages_offset_time")
    assert conversation.id == "28"
    # null means "no messages" (an empty list); only an absent key means "not included".
    assert conversation.messages == []
    assert conversation.cost_tokens == 0
    assert conversation.cost_amount == Decimal("0.0000")
    assert conversation.agent_id is None
    assert conversation.ended_at is None
    # An explicit offset is kept; the instant is the same as 10:30 UTC.
    started = conversation.started_at
    assert started == utc(2024, 1, 15, 10, 30, 0)
    assert started is not None
    assert started.utcoffset() == timedelta(hours=2)
    assert conversation.raw.messages is None


# --- conversations/list ----------------------------------------------------------------------


def test_list_page_2_of_3() -> None:
    page = parse("list_page_2_of_3")
    assert isinstance(page, Page)
    assert (page.page, page.last_page, page.per_page, page.total) == (2, 3, 2, 5)
    assert page.has_next is True
    first, second = page.items
    assert isinstance(first, Conversation)
    assert (first.id, second.id) == ("29", "30")
    assert first.goal == "Keyword research"
    assert first.cost_tokens == 912
    assert first.cost_amount == Decimal("0.0115")
    assert_utc(first.started_at, utc(2024, 1, 16, 8, 0, 0))
    assert_utc(first.ended_at, utc(2024, 1, 16, 8, 5, 0))
    assert second.status == "active"
    assert second.ended_at is None
    # List items leave messages out: "not included" is None, not an empty list.
    assert first.messages is None
    assert second.messages is None
    assert first.raw.messages is msgspec.UNSET
    assert isinstance(second.raw, WemasyConversation)


# --- chat ------------------------------------------------------------------------------------


def test_chat_text_reply() -> None:
    reply = parse("chat_text_reply")
    assert isinstance(reply, ChatReply)
    assert reply.content == (
        "Focus on technical SEO first: page speed, mobile layout and structured data."
    )
    assert reply.model == "gpt-4o"
    assert reply.usage == TokenUsage(prompt_tokens=25, completion_tokens=180, total_tokens=205)
    assert reply.conversation_id == "15"
    assert reply.tool_calls == []
    assert reply.raw.conversation_id == 15
    assert reply.raw.usage == WemasyUsage(prompt_tokens=25, completion_tokens=180, total_tokens=205)


def test_chat_nested_openai_tool_call() -> None:
    reply = parse("chat_tool_call_nested")
    assert reply.content is None
    assert reply.conversation_id == "16"
    assert reply.usage == TokenUsage(prompt_tokens=64, completion_tokens=18, total_tokens=82)
    (call,) = reply.tool_calls
    assert call == ToolCall(
        id="call_abc123", name="get_weather", arguments='{"city":"Amsterdam"}', type="function"
    )
    assert call.parsed_arguments() == {"city": "Amsterdam"}
    assert isinstance(reply.raw.tool_calls, list)
    assert reply.raw.tool_calls[0].function.name == "get_weather"


def test_chat_flat_tool_call_with_object_arguments_and_usage_as_json_text() -> None:
    reply = parse("chat_tool_call_flat")
    assert reply.model == "gpt-4o-mini"
    assert reply.usage == TokenUsage(prompt_tokens=40, completion_tokens=12, total_tokens=52)
    (call,) = reply.tool_calls
    assert call.id == "call_def456"
    assert call.name == "get_weather"
    assert call.type == "function"
    # Arguments sent as an object become JSON text, like the model would have produced.
    assert isinstance(call.arguments, str)
    assert call.parsed_arguments() == {"city": "Utrecht", "unit": "celsius"}
    assert reply.raw.usage == load("chat_tool_call_flat").wire()["data"]["usage"]


def test_chat_single_object_tool_calls_and_bare_number_usage() -> None:
    reply = parse("chat_tool_call_single_object")
    assert reply.content == "Let me look that up."
    assert reply.conversation_id == "15"
    # A bare number is the total.
    assert reply.usage == TokenUsage(total_tokens=52)
    assert reply.tool_calls == [
        ToolCall(id="call_ghi789", name="search_docs", arguments='{"query":"SEO"}')
    ]
    assert isinstance(reply.raw.tool_calls, OpenAIToolCall)
    assert reply.raw.usage == 52


def test_chat_tool_calls_as_json_string_and_usage_as_numeric_string() -> None:
    reply = parse("chat_tool_calls_json_string")
    assert reply.usage == TokenUsage(total_tokens=205)
    assert reply.tool_calls == [
        ToolCall(id="call_jkl012", name="get_weather", arguments='{"city":"Rotterdam"}')
    ]
    wire = load("chat_tool_calls_json_string").wire()["data"]
    assert reply.raw.tool_calls == wire["tool_calls"]
    assert reply.raw.usage == "205"


def test_chat_reply_after_tool_result_with_empty_string_tool_calls() -> None:
    reply = parse("chat_tool_result_reply")
    assert reply.content == "It is 18°C in Amsterdam right now."
    assert reply.tool_calls == []
    assert reply.usage == TokenUsage(prompt_tokens=120, completion_tokens=11, total_tokens=131)
    assert reply.raw.tool_calls == ""


# --- Error bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(PARSERS))
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_samples_map_to_typed_errors(name: str, operation: str) -> None:
    status, cls, message = ERRORS[name]
    recording = load(name)
    with pytest.raises(APIStatusError) as info:
        parse(name, operation)
    error = info.value
    assert type(error) is cls
    assert error.status == status == recording.status
    assert error.provider == "wemasy"
    assert error.message == message
    assert str(error) == f"{message} (HTTP {status} from wemasy)"
    if recording.body_text is None:
        assert error.body == recording.wire()
    else:
        assert error.body == recording.body_text


def test_422_sample_keeps_per_field_errors() -> None:
    with pytest.raises(UnprocessableEntityError) as info:
        parse("error_422_validation")
    assert info.value.errors == {
        "temperature": ["The temperature field must not be greater than 2."],
        "max_tokens": ["The max tokens field must be at least 1."],
    }


def test_429_sample_carries_retry_after_and_rate_limit_headers() -> None:
    recording = load("error_429_rate_limited")
    with pytest.raises(RateLimitError) as info:
        parse("error_429_rate_limited")
    assert info.value.retry_after == 60.0
    assert RateLimitInfo.from_headers(recording.response().headers) == RateLimitInfo(
        limit=60, remaining=0, retry_after=60.0
    )
