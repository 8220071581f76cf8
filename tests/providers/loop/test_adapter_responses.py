"""The Loop adapter without I/O: error statuses and 2xx bodies, through its pure ``parse``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest

from tests.support.loop_adapter import CID, get_parse, messages_parse, response, wire_message
from tests.support.statuses import STATUS_CLASSES
from wemasy_async import (
    APIStatusError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    TokenUsage,
)

# --- Error statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
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
