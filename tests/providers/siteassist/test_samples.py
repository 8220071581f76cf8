"""Recorded-style SiteAssist responses decoded through the adapter's pure ``parse`` functions.

Each file in ``tests/samples/siteassist/`` is one recording, in the format of
``tests/samples/wemasy/`` (see ``tests/providers/wemasy/test_samples.py``): the operation it
answers, the HTTP status, the headers and the body (``body`` for JSON, ``body_text`` for
anything else). The
docs' conversation example and every documented error body are included verbatim; the rest
are realistic variants of what the docs leave open (messages, ``humanAgent``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from tests.support.cases import RECORDED
from tests.support.recordings import Samples, assert_utc, utc
from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Conversation,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    TokenUsage,
    ToolCall,
    UnprocessableEntityError,
)
from wemasy_async.providers.siteassist import (
    SiteAssistConversation,
    SiteAssistHumanAgent,
    SiteAssistMessage,
)

RECORDINGS = Samples("siteassist")
SAMPLES = RECORDINGS.folder
PARSERS = RECORDINGS.parsers
load = RECORDINGS.load
parse = RECORDINGS.parse
DOCS_ID = "123e4567-e89b-12d3-a456-426614174000"


# The conversations that decode, and those every parser refuses (tests/contract/
# test_recordings.py reads both).
GET_OK = list(RECORDED["siteassist"].conversations)
UNDECODABLE = RECORDED["siteassist"].refused
# name -> (status, class, code, message, details, retry_after)
ERRORS: dict[
    str, tuple[int, type[APIStatusError], str | None, str, dict[str, Any], float | None]
] = {
    "error_400_invalid_request_body": (
        400,
        BadRequestError,
        "INVALID_REQUEST_BODY",
        "Invalid request body. Content is required.",
        {"field": "content"},
        None,
    ),
    "error_401_unauthorized": (
        401,
        AuthenticationError,
        "UNAUTHORIZED",
        "Authentication required",
        {},
        None,
    ),
    "error_402_payment_required": (
        402,
        PaymentRequiredError,
        "PAYMENT_REQUIRED",
        "A higher pricing plan is required to access this feature",
        {"currentPlan": "free", "requiredPlan": "pro", "feature": "advanced_ai_models"},
        None,
    ),
    "error_403_forbidden": (
        403,
        PermissionDeniedError,
        "FORBIDDEN",
        "Access denied to this conversation",
        {},
        None,
    ),
    "error_404_conversation_not_found": (
        404,
        NotFoundError,
        "CONVERSATION_NOT_FOUND",
        "Conversation not found!",
        {"conversationId": DOCS_ID},
        None,
    ),
    "error_409_conflict": (
        409,
        ConflictError,
        "CONFLICT",
        "Resource already exists",
        {"resource": "conversation", "conflictingField": "id"},
        None,
    ),
    "error_422_validation_error": (
        422,
        UnprocessableEntityError,
        "VALIDATION_ERROR",
        "Validation failed",
        {"field": "content", "reason": "Content exceeds maximum length of 10000 characters"},
        None,
    ),
    "error_429_rate_limit_exceeded": (
        429,
        RateLimitError,
        "RATE_LIMIT_EXCEEDED",
        "Rate limit exceeded. Please try again later.",
        {"retryAfter": 60},
        60.0,
    ),
    "error_429_retry_after_string": (
        429,
        RateLimitError,
        "RATE_LIMIT_EXCEEDED",
        "Rate limit exceeded. Please try again later.",
        {"retryAfter": "30"},
        30.0,
    ),
    "error_429_header_only": (
        429,
        RateLimitError,
        "RATE_LIMIT_EXCEEDED",
        "Rate limit exceeded. Please try again later.",
        {},
        12.0,
    ),
    "error_500_internal_server_error": (
        500,
        InternalServerError,
        "INTERNAL_SERVER_ERROR",
        "An internal server error occurred",
        {},
        None,
    ),
    "error_502_bad_gateway": (
        502,
        InternalServerError,
        "BAD_GATEWAY",
        "Service temporarily unavailable",
        {"service": "ai_model_service"},
        None,
    ),
    "error_503_service_unavailable": (
        503,
        InternalServerError,
        "SERVICE_UNAVAILABLE",
        "Service temporarily unavailable",
        {"retryAfter": 30},
        30.0,
    ),
    "error_502_html": (502, InternalServerError, None, "Bad Gateway", {}, None),
}


# --- The sample set itself -------------------------------------------------------------------


def test_every_sample_file_is_covered_by_a_test() -> None:
    on_disk = {path.stem for path in SAMPLES.glob("*.json")}
    assert on_disk == {*GET_OK, *UNDECODABLE, *ERRORS}


# --- Conversations ---------------------------------------------------------------------------


def test_docs_example() -> None:
    conversation = parse("get_docs_example")
    assert isinstance(conversation, Conversation)
    assert conversation.id == DOCS_ID
    assert conversation.provider == "siteassist"
    assert conversation.status == "open"
    assert_utc(conversation.started_at, utc(2024, 1, 15, 10, 30, 0))
    assert_utc(conversation.updated_at, utc(2024, 1, 15, 10, 30, 0))
    assert_utc(conversation.last_activity_at, utc(2024, 1, 15, 10, 35, 0))
    assert conversation.ended_at is None
    assert conversation.close_reason is None
    assert conversation.human_handled is False
    assert conversation.human_agent is None
    assert conversation.messages == []
    # Fields SiteAssist does not have.
    assert conversation.agent_id is None
    assert conversation.goal is None
    assert conversation.cost_tokens is None
    assert conversation.cost_amount is None
    raw = conversation.raw
    assert isinstance(raw, SiteAssistConversation)
    assert raw.object == "conversation"
    assert raw.id == uuid.UUID(DOCS_ID)
    assert raw.last_interaction_at == utc(2024, 1, 15, 10, 35, 0)
    assert raw.messages == []


def test_messages_with_tool_call_usage_and_metadata() -> None:
    conversation = parse("get_with_messages")
    cid = "6f1c2b9e-4d3a-4e8b-9c7d-2a1b3c4d5e6f"
    assert conversation.id == cid
    assert_utc(conversation.last_activity_at, utc(2024, 3, 2, 9, 15, 42, 120))
    assert_utc(conversation.updated_at, utc(2024, 3, 2, 9, 15, 42, 120))
    messages = conversation.messages
    assert messages is not None
    assert [m.id for m in messages] == ["msg_01", "msg_02", "msg_03", "msg_04"]
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert all(m.conversation_id == cid for m in messages)
    assert messages[0].content == "Is order 1042 on its way?"
    assert messages[0].metadata == {"source": "widget", "page": "/orders"}
    assert messages[0].usage is None
    assert messages[0].tool_calls == []
    assert_utc(messages[0].created_at, utc(2024, 3, 2, 9, 15, 0))
    assert messages[1].content is None
    assert messages[1].tool_calls == [
        ToolCall(id="call_abc123", name="lookup_order", arguments='{"order_id":1042}')
    ]
    assert messages[1].tool_calls[0].parsed_arguments() == {"order_id": 1042}
    assert messages[1].usage == TokenUsage(
        prompt_tokens=312, completion_tokens=18, total_tokens=330
    )
    assert_utc(messages[1].created_at, utc(2024, 3, 2, 9, 15, 3, 250))
    assert messages[2].tool_call_id == "call_abc123"
    assert messages[2].content == "Order 1042 was shipped on 1 March."
    assert messages[3].tool_calls == []
    assert messages[3].usage == TokenUsage(
        prompt_tokens=355, completion_tokens=12, total_tokens=367
    )
    raw = conversation.raw
    assert isinstance(raw.messages, list)
    assert all(isinstance(m, SiteAssistMessage) for m in raw.messages)
    assert raw.messages[2].tool_call_id == "call_abc123"


def test_closed_conversation_with_human_agent_object() -> None:
    conversation = parse("get_closed_human_agent")
    assert conversation.id == "0b7e5d4c-3a21-4f6e-8d9c-7b6a5f4e3d2c"
    assert conversation.status == "closed"
    assert conversation.close_reason == "resolved"
    assert_utc(conversation.ended_at, utc(2024, 2, 10, 14, 45, 10, 500))
    assert_utc(conversation.last_activity_at, utc(2024, 2, 10, 14, 20, 31, 7))
    assert conversation.human_handled is True
    # The name wins over the email and the id.
    assert conversation.human_agent == "Sanne de Vries"
    assert conversation.raw.human_agent == SiteAssistHumanAgent(
        id="a8c1e2f3-0d4b-4c5a-9e6f-1b2c3d4e5f60", name="Sanne de Vries", email="sanne@example.com"
    )
    messages = conversation.messages
    assert messages is not None
    assert [m.id for m in messages] == ["9001", "9002", "9003"]
    # visitor -> user, bot -> assistant, human_agent -> assistant.
    assert [m.role for m in messages] == ["user", "assistant", "assistant"]
    # Messages without a conversationId belong to the conversation they came in.
    assert {m.conversation_id for m in messages} == {conversation.id}
    assert all(m.metadata == {} for m in messages)


def test_upper_case_uuid_string_agent_and_snake_case_fields() -> None:
    conversation = parse("get_upper_case_uuid")
    cid = "9f8e7d6c-5b4a-4392-8170-fedcba987654"
    assert conversation.id == cid
    assert conversation.human_handled is True
    assert conversation.human_agent == "Daan Jansen"
    # An explicit offset is kept (same instant as 10:00 UTC); a naive timestamp is UTC.
    started = conversation.started_at
    assert started == utc(2024, 5, 20, 10, 0, 0)
    assert started is not None
    assert started.utcoffset() == timedelta(hours=2)
    assert_utc(conversation.updated_at, utc(2024, 5, 20, 10, 5, 0))
    assert conversation.raw.updated_at == datetime(2024, 5, 20, 10, 5, 0)  # naive, as sent
    assert_utc(conversation.last_activity_at, utc(2024, 5, 20, 10, 4, 59, 999))
    messages = conversation.messages
    assert messages is not None
    assert [m.role for m in messages] == [
        "system",
        "user",  # customer
        "assistant",  # ai
        "tool",
        "assistant",  # operator
        "assistant",  # humanAgent
        "assistant",  # agent
    ]
    # Upper-case conversation ids in messages are normalised like the conversation's.
    assert {m.conversation_id for m in messages} == {cid}
    (call,) = messages[2].tool_calls
    assert call.id == "call_def456"
    assert call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "Utrecht"}
    assert messages[2].usage == TokenUsage(prompt_tokens=40, completion_tokens=12, total_tokens=52)
    assert messages[3].tool_call_id == "call_def456"
    # raw keeps the decoded UUID, whatever its case on the wire.
    assert conversation.raw.id == uuid.UUID(cid)


def test_human_agent_email_null_messages_and_missing_object() -> None:
    conversation = parse("get_human_agent_email_null_messages")
    assert conversation.id == "4d3c2b1a-0f9e-4d8c-b7a6-958473625140"
    assert conversation.status == "closed"
    assert conversation.close_reason == "inactivity"
    assert_utc(conversation.ended_at, utc(2024, 6, 1, 9, 0, 0))
    # A null name falls back to the email.
    assert conversation.human_agent == "support@example.com"
    # null means "no messages".
    assert conversation.messages == []
    assert conversation.raw.object is None
    assert conversation.raw.messages is None


def test_human_agent_id_only_and_messages_not_included() -> None:
    conversation = parse("get_human_agent_id_only_no_messages")
    assert conversation.human_agent == "42"
    assert conversation.human_handled is None
    assert conversation.updated_at is None
    assert conversation.last_activity_at is None
    # An absent key is no messages (get always includes them); raw shows it absent.
    assert conversation.messages == []
    assert conversation.raw.messages is msgspec.UNSET
    assert parse("get_human_agent_id_only_no_messages", "list_messages") == []


# --- Error bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(PARSERS))
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_samples_map_to_typed_errors(name: str, operation: str) -> None:
    status, cls, code, message, details, retry_after = ERRORS[name]
    recording = load(name)
    with pytest.raises(APIStatusError) as info:
        parse(name, operation)
    error = info.value
    assert type(error) is cls
    assert error.status == status == recording.status
    assert error.provider == "siteassist"
    assert error.code == code
    assert error.message == message
    assert error.details == details
    assert getattr(error, "retry_after", None) == retry_after
    suffix = f", code {code}" if code else ""
    assert str(error) == f"{message} (HTTP {status} from siteassist{suffix})"
    if recording.body_text is None:
        assert error.body == recording.wire()
    else:
        assert error.body == recording.body_text


def test_422_sample_builds_per_field_errors_from_details() -> None:
    with pytest.raises(UnprocessableEntityError) as info:
        parse("error_422_validation_error")
    assert info.value.errors == {"content": ["Content exceeds maximum length of 10000 characters"]}


def test_402_sample_details_name_the_plans() -> None:
    with pytest.raises(PaymentRequiredError) as info:
        parse("error_402_payment_required")
    details = info.value.details
    assert (details["currentPlan"], details["requiredPlan"], details["feature"]) == (
        "free",
        "pro",
        "advanced_ai_models",
    )


def test_503_sample_keeps_its_retry_hint_in_details() -> None:
    with pytest.raises(InternalServerError) as info:
        parse("error_503_service_unavailable")
    assert info.value.details["retryAfter"] == 30
    assert info.value.retry_after == 30.0  # the hint a retry policy honours
