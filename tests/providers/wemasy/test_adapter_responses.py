"""The Wemasy adapter without I/O: error statuses and 2xx bodies, through its pure ``parse``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.support.statuses import STATUS_CLASSES
from tests.support.wemasy_adapter import chat_parse, get_parse, response
from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    InternalServerError,
    RateLimitError,
    RateLimitInfo,
    ResponseDecodeError,
    TokenUsage,
    UnprocessableEntityError,
)
from wemasy_async.providers.base import ListConversationsParams
from wemasy_async.providers.wemasy import WemasyProvider

# --- Error statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
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
    assert absent.messages == []  # get always includes the messages: absent is none
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
