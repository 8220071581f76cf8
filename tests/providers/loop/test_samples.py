"""Recorded-style Loop responses decoded through the adapter's pure ``parse`` functions.

Each file in ``tests/samples/loop/`` is one recording in the format of
``tests/samples/wemasy/``: the operation it answers, the HTTP status, the headers and the
body as a server sends it (``body`` holds a JSON body, ``body_text`` a non-JSON one).
``history_docs_schema`` conforms to the docs' JSON schema exactly; the rest are realistic
variants of what the docs leave vague, and the error bodies.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from tests.support.cases import RECORDED
from tests.support.loop_adapter import SchemaHistory
from tests.support.recordings import Samples, assert_utc, utc
from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    Conversation,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    TokenUsage,
    ToolCall,
)
from wemasy_async.providers.loop import (
    LoopHistory,
    LoopMessage,
    LoopProvider,
    LoopTokenUsage,
)
from wemasy_async.providers.wire import OpenAIFunction, OpenAIToolCall

RECORDINGS = Samples("loop")
SAMPLES = RECORDINGS.folder
PARSERS = RECORDINGS.parsers
load = RECORDINGS.load
parse = RECORDINGS.parse
CID = "7d0f4a52-1b9e-4c3a-8f21-6a5e9b3c2d10"


# The histories that decode, and those every parser refuses (tests/contract/test_recordings.py
# reads both).
HISTORIES = list(RECORDED["loop"].conversations)
UNDECODABLE = RECORDED["loop"].refused
ERRORS: dict[str, tuple[type[APIStatusError], str, str | None]] = {
    "error_401_unauthorized": (
        AuthenticationError,
        "Invalid or expired access token",
        "unauthorized",
    ),
    "error_404_not_found": (NotFoundError, "Conversation not found", "not_found"),
    "error_429_rate_limited": (RateLimitError, "Too many requests", "rate_limited"),
    "error_500_server_error": (
        InternalServerError,
        "Failed to load conversation history",
        "internal_error",
    ),
    "error_502_html": (InternalServerError, "Bad Gateway", None),
}


# --- The sample set itself -------------------------------------------------------------------


def test_every_sample_file_is_covered_by_a_test() -> None:
    on_disk = {path.stem for path in SAMPLES.glob("*.json")}
    assert on_disk == {*HISTORIES, *UNDECODABLE, *ERRORS}


def test_docs_schema_sample_conforms_to_the_schema() -> None:
    history = msgspec.json.decode(load("history_docs_schema").body, type=SchemaHistory)
    assert history.total == len(history.messages) == 4
    assert {m.role for m in history.messages} <= {"user", "assistant", "system", "tool"}


# --- Histories -------------------------------------------------------------------------------


def test_docs_schema_history_as_conversation() -> None:
    conversation = parse("history_docs_schema")
    assert isinstance(conversation, Conversation)
    assert conversation.id == CID
    assert conversation.provider == "loop"
    assert_utc(conversation.started_at, datetime(2024, 3, 5, 9, 0, 0, tzinfo=timezone.utc))
    assert_utc(conversation.last_activity_at, utc(2024, 3, 5, 9, 1, 0))
    assert conversation.cost_tokens == 833
    # Loop has none of these; the derivation leaves them out rather than inventing them.
    assert conversation.status is None
    assert conversation.agent_id is None
    assert conversation.goal is None
    assert conversation.ended_at is None
    assert conversation.updated_at is None
    assert conversation.close_reason is None
    assert conversation.human_handled is None
    assert conversation.human_agent is None
    assert conversation.cost_amount is None

    messages = conversation.messages
    assert messages is not None
    assert [m.id for m in messages] == [
        f"0b6f8f2e-3c1a-4d5e-9f70-1a2b3c4d5e0{i}" for i in (1, 2, 3, 4)
    ]
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert all(m.conversation_id == CID for m in messages)
    assert [m.content for m in messages] == [
        "You are Loop, a careful health coach.",
        "How can I sleep better?",
        "Keep a fixed wake-up time, also at weekends.",
        "Thanks!",
    ]
    assert_utc(messages[1].created_at, datetime(2024, 3, 5, 9, 0, 5, 120000, tzinfo=timezone.utc))
    assert messages[1].metadata == {"channel": "app", "locale": "nl-NL"}
    assert messages[0].metadata == {}
    assert messages[2].usage == TokenUsage(
        prompt_tokens=812, completion_tokens=21, total_tokens=833
    )
    assert [m.usage for m in messages].count(None) == 3
    assert all(m.tool_calls == [] and m.tool_call_id is None for m in messages)

    raw = conversation.raw
    assert isinstance(raw, LoopHistory)
    assert raw.total == 4
    assert all(isinstance(m, LoopMessage) for m in raw.messages)
    assert raw.messages[2].token_usage == LoopTokenUsage(
        prompt_tokens=812, completion_tokens=21, total_tokens=833
    )


def test_truncated_history_asks_for_all_of_it_once() -> None:
    recording = load("history_truncated")
    provider = LoopProvider()
    for call in (provider.list_messages(CID), provider.get_conversation(CID)):
        result = call.parse(recording.response())
        follow_up = call.follow_up(result)
        assert follow_up is not None
        assert follow_up.request.method == "GET"
        assert follow_up.request.path == f"/v1/conversations/{CID}/messages"
        assert follow_up.request.query == (("limit", "7"),)
        assert follow_up.then is None  # at most one follow-up
        # The follow-up's answer is final even if the server truncates again.
        again = follow_up.parse(recording.response())
        assert follow_up.follow_up(again) is None

    messages = parse("history_truncated")
    assert [m.content for m in messages] == [
        "I want to run a half marathon.",
        "Great goal. How often do you run now?",
        "Twice a week, 5 km.",
    ]
    assert_utc(messages[2].created_at, utc(2024, 4, 2, 18, 31, 10))
    assert messages[1].usage == TokenUsage(
        prompt_tokens=120, completion_tokens=12, total_tokens=132
    )


@pytest.mark.parametrize("name", [n for n in HISTORIES if n != "history_truncated"])
def test_complete_histories_need_no_follow_up(name: str) -> None:
    provider = LoopProvider()
    for call in (provider.list_messages(CID), provider.get_conversation(CID)):
        assert call.follow_up(call.parse(load(name).response())) is None


def test_tool_calls_in_both_shapes() -> None:
    conversation = parse("history_tool_calls")
    messages = conversation.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    calling = messages[1]
    assert calling.content == ""
    assert calling.tool_calls == [
        ToolCall(
            id="call_4f9a2c1e7b30",
            name="get_lab_results",
            arguments='{"panel":"vitamin_d"}',
            type="function",
        ),
        ToolCall(
            id="call_8e1d5b6a0c22",
            name="get_sleep_summary",
            arguments='{"days":7,"detail":true}',
            type="function",
        ),
    ]
    assert calling.tool_calls[1].parsed_arguments() == {"days": 7, "detail": True}
    assert messages[2].tool_call_id == "call_4f9a2c1e7b30"
    assert messages[2].content == '{"vitamin_d_nmol_l": 48}'
    assert messages[3].tool_call_id is None
    assert conversation.cost_tokens == 678 + 721
    assert_utc(conversation.started_at, utc(2024, 5, 10, 8, 15, 0))
    assert_utc(conversation.last_activity_at, utc(2024, 5, 10, 8, 15, 6))

    wire_calls = conversation.raw.messages[1].tool_calls
    assert wire_calls == [
        OpenAIToolCall(
            id="call_4f9a2c1e7b30",
            type="function",
            function=OpenAIFunction(name="get_lab_results", arguments='{"panel":"vitamin_d"}'),
        ),
        OpenAIToolCall(
            id="call_8e1d5b6a0c22",
            name="get_sleep_summary",
            arguments={"days": 7, "detail": True},
        ),
    ]


def test_integral_float_and_string_token_counts_become_ints() -> None:
    conversation = parse("history_token_usage_floats")
    first, second = conversation.messages
    assert first.usage == TokenUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    assert second.usage == TokenUsage(prompt_tokens=1200, completion_tokens=34, total_tokens=1234)
    counts = [second.usage.prompt_tokens, second.usage.completion_tokens, second.usage.total_tokens]
    assert all(type(count) is int for count in counts)
    assert conversation.cost_tokens == 1234
    assert load("history_token_usage_floats").wire()["messages"][1]["token_usage"] == {
        "prompt_tokens": 1200.0,
        "completion_tokens": 34.0,
        "total_tokens": "1234",
    }


def test_nulls_and_omissions() -> None:
    conversation = parse("history_nulls_and_omissions")
    first, second, third = conversation.messages
    assert first.tool_calls == []
    assert first.usage is None
    assert first.metadata == {}
    # A naive timestamp is UTC.
    assert_utc(first.created_at, utc(2024, 7, 1, 12, 0, 0))
    assert first.conversation_id == CID
    # Absent conversation_id: the conversation asked for. Absent tool_calls, metadata: none.
    assert second.conversation_id == CID
    assert second.content is None
    assert second.tool_calls == []
    assert second.metadata == {}
    assert second.usage == TokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=None)
    # An explicit offset is kept; the instant is 12:00:09 UTC.
    assert second.created_at == utc(2024, 7, 1, 12, 0, 9)
    assert second.created_at is not None
    assert second.created_at.utcoffset() == timedelta(hours=2)
    assert third.created_at is None
    assert third.content == "Still there?"
    # Timestamps that exist decide the range; no total_tokens anywhere means no cost.
    assert conversation.started_at == utc(2024, 7, 1, 12, 0, 0)
    assert conversation.last_activity_at == utc(2024, 7, 1, 12, 0, 9)
    assert conversation.cost_tokens is None
    assert conversation.raw.messages[2].metadata is None


def test_empty_history() -> None:
    conversation = parse("history_empty")
    assert conversation == Conversation(
        id=CID, provider="loop", messages=[], raw=LoopHistory(total=0, messages=[])
    )
    assert parse("history_empty", "list_messages") == []


# --- Error bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(PARSERS))
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_samples_map_to_typed_errors(name: str, operation: str) -> None:
    cls, message, code = ERRORS[name]
    recording = load(name)
    with pytest.raises(APIStatusError) as info:
        parse(name, operation)
    error = info.value
    assert type(error) is cls
    assert error.status == recording.status
    assert error.provider == "loop"
    assert error.message == message
    assert error.code == code
    suffix = f", code {code}" if code else ""
    assert str(error) == f"{message} (HTTP {recording.status} from loop{suffix})"
    if recording.body_text is None:
        assert error.body == recording.wire()
    else:
        assert error.body == recording.body_text
    assert error.headers["content-type"] == recording.headers["Content-Type"]


def test_429_sample_carries_retry_after() -> None:
    with pytest.raises(RateLimitError) as info:
        parse("error_429_rate_limited")
    assert info.value.retry_after == 30.0
