"""The SiteAssist adapter without I/O: documented and undocumented error bodies, 2xx bodies and
lenient decoding, through its pure ``parse``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.support.siteassist_adapter import (
    DOCS_ID,
    UPPER_ID,
    conversation_body,
    error_body,
    get_parse,
    messages_parse,
    raised,
    response,
)
from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    UnprocessableEntityError,
)
from wemasy_async.providers.siteassist import SiteAssistProvider

# --- Documented error bodies -----------------------------------------------------------------


DOCUMENTED_ERRORS: list[tuple[int, type[APIStatusError], str, str, dict[str, Any] | None]] = [
    (
        400,
        BadRequestError,
        "INVALID_REQUEST_BODY",
        "Invalid request body. Content is required.",
        {"field": "content"},
    ),
    (401, AuthenticationError, "UNAUTHORIZED", "Authentication required", None),
    (
        402,
        PaymentRequiredError,
        "PAYMENT_REQUIRED",
        "A higher pricing plan is required to access this feature",
        {"currentPlan": "free", "requiredPlan": "pro", "feature": "advanced_ai_models"},
    ),
    (403, PermissionDeniedError, "FORBIDDEN", "Access denied to this conversation", None),
    (
        404,
        NotFoundError,
        "CONVERSATION_NOT_FOUND",
        "Conversation not found!",
        {"conversationId": DOCS_ID},
    ),
    (
        409,
        ConflictError,
        "CONFLICT",
        "Resource already exists",
        {"resource": "conversation", "conflictingField": "id"},
    ),
    (
        422,
        UnprocessableEntityError,
        "VALIDATION_ERROR",
        "Validation failed",
        {"field": "content", "reason": "Content exceeds maximum length of 10000 characters"},
    ),
    (
        429,
        RateLimitError,
        "RATE_LIMIT_EXCEEDED",
        "Rate limit exceeded. Please try again later.",
        {"retryAfter": 60},
    ),
    (500, InternalServerError, "INTERNAL_SERVER_ERROR", "An internal server error occurred", None),
    (
        502,
        InternalServerError,
        "BAD_GATEWAY",
        "Service temporarily unavailable",
        {"service": "ai_model_service"},
    ),
    (
        503,
        InternalServerError,
        "SERVICE_UNAVAILABLE",
        "Service temporarily unavailable",
        {"retryAfter": 30},
    ),
]


@pytest.mark.parametrize(
    ("status", "cls", "code", "message", "details"), DOCUMENTED_ERRORS, ids=lambda v: str(v)
)
@pytest.mark.parametrize("operation", ["get_conversation", "list_messages"])
def test_every_documented_error_code(
    operation: str,
    status: int,
    cls: type[APIStatusError],
    code: str,
    message: str,
    details: dict[str, Any] | None,
) -> None:
    body = error_body(message, code, details)
    parse = getattr(SiteAssistProvider(), operation)(DOCS_ID).parse
    with pytest.raises(APIStatusError) as info:
        parse(response(status, body, {"X-Request-Id": "abc"}))
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.provider == "siteassist"
    assert error.code == code
    assert error.message == message
    assert error.details == (details or {})
    assert error.body == msgspec.json.decode(body)
    assert error.headers["x-request-id"] == "abc"
    assert str(error) == f"{message} (HTTP {status} from siteassist, code {code})"
    assert repr(error) == (
        f"{cls.__name__}(provider='siteassist', status={status}, code={code!r}, "
        f"message={message!r})"
    )


def test_class_follows_the_status_and_the_code_is_kept() -> None:
    # An undocumented pairing: the status picks the class, the code stays for callers.
    error = raised(response(404, error_body("Agent not found", "AGENT_NOT_FOUND")))
    assert type(error) is NotFoundError
    assert error.code == "AGENT_NOT_FOUND"
    error = raised(response(418, error_body("Teapot", "TEAPOT")))
    assert type(error) is APIStatusError
    assert error.code == "TEAPOT"


def test_402_details_are_reachable() -> None:
    body = error_body(
        "A higher pricing plan is required to access this feature",
        "PAYMENT_REQUIRED",
        {"currentPlan": "free", "requiredPlan": "pro", "feature": "advanced_ai_models"},
    )
    error = raised(response(402, body))
    assert isinstance(error, PaymentRequiredError)
    assert error.details["currentPlan"] == "free"
    assert error.details["requiredPlan"] == "pro"
    assert error.details["feature"] == "advanced_ai_models"


@pytest.mark.parametrize(
    ("details", "errors"),
    [
        ({"field": "content", "reason": "Too long"}, {"content": ["Too long"]}),
        ({"field": "content"}, {"content": ["Validation failed"]}),
        ({"field": "content", "reason": ""}, {"content": ["Validation failed"]}),
        ({"field": "content", "reason": 5}, {"content": ["Validation failed"]}),
        ({"reason": "Too long"}, {}),
        ({"field": ""}, {}),
        ({"field": ["content"]}, {}),
        (None, {}),
    ],
    ids=repr,
)
def test_422_errors_come_from_details(
    details: dict[str, Any] | None, errors: dict[str, list[str]]
) -> None:
    error = raised(response(422, error_body("Validation failed", "VALIDATION_ERROR", details)))
    assert isinstance(error, UnprocessableEntityError)
    assert error.errors == errors


@pytest.mark.parametrize(
    ("retry_after", "headers", "expected"),
    [
        (60, {}, 60.0),
        ("30", {}, 30.0),
        (" 30 ", {}, 30.0),
        ("1.5", {}, 1.5),
        (2.5, {}, 2.5),
        (0, {}, 0.0),
        # details win over the header
        (60, {"Retry-After": "5"}, 60.0),
        ("30", {"Retry-After": "5"}, 30.0),
        # unreadable details fall back to the header
        (None, {"Retry-After": "12"}, 12.0),
        ("soon", {"Retry-After": "12"}, 12.0),
        (True, {"retry-after": "12"}, 12.0),
        (-1, {"Retry-After": "12"}, 12.0),
        ("-1", {"Retry-After": "12"}, 12.0),
        (10**9, {"Retry-After": "12"}, 12.0),
        ("nan", {"Retry-After": "12"}, 12.0),
        ("inf", {"Retry-After": "12"}, 12.0),
        ([30], {"Retry-After": "12"}, 12.0),
        (
            None,
            {
                "Retry-After": "Wed, 21 Oct 2015 07:28:45 GMT",
                "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            45.0,
        ),
        # no usable hint at all
        (None, {}, None),
        ("soon", {"Retry-After": "later"}, None),
    ],
    ids=repr,
)
def test_429_retry_after(
    retry_after: object, headers: dict[str, str], expected: float | None
) -> None:
    details = None if retry_after is None else {"retryAfter": retry_after}
    body = error_body(
        "Rate limit exceeded. Please try again later.", "RATE_LIMIT_EXCEEDED", details
    )
    error = raised(response(429, body, headers))
    assert isinstance(error, RateLimitError)
    assert error.retry_after == expected
    assert error.code == "RATE_LIMIT_EXCEEDED"


def test_503_retry_hint_stays_in_details() -> None:
    body = error_body("Service temporarily unavailable", "SERVICE_UNAVAILABLE", {"retryAfter": 30})
    error = raised(response(503, body, {"Retry-After": "30"}))
    assert type(error) is InternalServerError
    assert error.details == {"retryAfter": 30}
    assert error.headers["Retry-After"] == "30"
    assert error.retry_after == 30.0


# --- Error bodies that are not the documented envelope ---------------------------------------


def test_non_json_error_body_uses_the_reason_phrase() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    error = raised(response(502, html.encode(), {"Content-Type": "text/html"}))
    assert type(error) is InternalServerError
    assert error.message == "Bad Gateway"
    assert error.code is None
    assert error.details == {}
    assert error.body == html


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "Not Found"), (503, "Service Unavailable"), (418, "I'm a Teapot"), (499, "HTTP 499")],
)
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"null",
        b'"error"',
        b'{"error": {}}',
        b'{"error": {"message": ""}}',
        b'{"error": {"message": "   "}}',
        b'{"error": {"message": 5}}',
        b'{"error": null}',
        b'{"error": ""}',
        b"oops",
    ],
)
def test_error_message_falls_back_to_the_reason_phrase(
    status: int, message: str, body: bytes
) -> None:
    error = raised(response(status, body))
    assert error.message == message
    assert error.status == status
    assert error.code is None


def test_lenient_error_shapes() -> None:
    error = raised(response(401, b'{"error": "Unauthorized"}'))
    assert (type(error), error.message, error.code) == (AuthenticationError, "Unauthorized", None)
    error = raised(response(404, b'{"message": "Route not found", "code": "NOT_FOUND"}'))
    assert (type(error), error.message, error.code) == (
        NotFoundError,
        "Route not found",
        "NOT_FOUND",
    )
    error = raised(response(400, b'{"error": {"message": "Bad", "code": 7, "details": [1]}}'))
    assert (error.message, error.code, error.details) == ("Bad", None, {})
    error = raised(response(400, b'{"error": {"message": "Bad", "code": "", "details": "x"}}'))
    assert (error.code, error.details) == (None, {})


# --- 2xx bodies that are not what the docs describe ------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>Welcome</body></html>", "JSON is malformed"),
        (b"", "truncated"),
        (b"[]", "Expected `object`, got `array`"),
        (b"null", "Expected `object`, got `null`"),
        (b"{}", "missing required field `id`"),
        (b'{"object": "conversation"}', "missing required field `id`"),
        (b'{"error": {"message": "x", "code": "Y"}}', "missing required field `id`"),
        (b'{"id": "27"}', "Invalid UUID - at `$.id`"),
        (b'{"id": 27}', "`$.id`"),
        (b'{"id": null}', "`$.id`"),
        (b'{"object": "list", "id": "' + DOCS_ID.encode() + b'"}', "object is 'list'"),
        (b'{"object": "Conversation", "id": "' + DOCS_ID.encode() + b'"}', "object is"),
        (conversation_body(object=5), "`$.object`"),
        (conversation_body(status=5), "`$.status`"),
        (conversation_body(createdAt="yesterday"), "`$.createdAt`"),
        (conversation_body(createdAt=1705314600), "`$.createdAt`"),
        (conversation_body(lastInterationAt="soon"), "`$.lastInterationAt`"),
        (conversation_body(isHumanHandled="true"), "`$.isHumanHandled`"),
        (conversation_body(humanAgent=5), "`$.humanAgent`"),
        (conversation_body(humanAgent=["Sanne"]), "`$.humanAgent`"),
        (conversation_body(messages=5), "`$.messages`"),
        (conversation_body(messages="[]"), "`$.messages`"),
        (conversation_body(messages=[5]), "`$.messages[0]`"),
        (conversation_body(messages=[{"content": "hi"}]), "missing required field `role`"),
        (conversation_body(messages=[{"role": "robot"}]), "unknown message role 'robot'"),
        (conversation_body(messages=[{"role": "User"}]), "unknown message role 'User'"),
        (conversation_body(messages=[{"role": None}]), "`$.messages[0].role`"),
        (conversation_body(messages=[{"role": "user", "id": 1.5}]), "`$.messages[0].id`"),
        (
            conversation_body(messages=[{"role": "user", "createdAt": "now"}]),
            "`$.messages[0].createdAt`",
        ),
        (
            conversation_body(messages=[{"role": "user", "metadata": []}]),
            "`$.messages[0].metadata`",
        ),
        (
            conversation_body(messages=[{"role": "assistant", "usage": "lots"}]),
            "`$.messages[0].usage`",
        ),
        (
            conversation_body(messages=[{"role": "assistant", "usage": {"totalTokens": "5"}}]),
            "`$.messages[0].usage.totalTokens`",
        ),
        (
            conversation_body(
                messages=[{"role": "assistant", "toolCalls": [{"function": {"name": "f"}}]}]
            ),
            "a tool call has no id or no function name",
        ),
        (
            conversation_body(messages=[{"role": "assistant", "toolCalls": [{"id": "call_1"}]}]),
            "a tool call has no id or no function name",
        ),
        (
            conversation_body(
                messages=[
                    {"role": "assistant", "toolCalls": [{"id": "c", "function": {"name": ""}}]}
                ]
            ),
            "a tool call has no id or no function name",
        ),
        (
            conversation_body(messages=[{"role": "assistant", "toolCalls": {"id": "c"}}]),
            "`$.messages[0].toolCalls`",
        ),
    ],
    ids=repr,
)
@pytest.mark.parametrize("status", [200, 201])
def test_undocumented_2xx_bodies(status: int, body: bytes, reason: str) -> None:
    for parse in (get_parse, messages_parse):
        with pytest.raises(ResponseDecodeError) as info:
            parse(response(status, body))
        error = info.value
        assert error.status == status
        assert error.provider == "siteassist"
        assert error.expected == "a SiteAssist conversation"
        assert reason in str(error)
        assert str(error).startswith(f"HTTP {status} response from siteassist is not ")
        assert error.excerpt == " ".join(body.decode().split())[:200]
        assert isinstance(error.__cause__, (msgspec.MsgspecError, ValueError))


def test_decode_error_excerpt_is_short() -> None:
    body = conversation_body(status="x" * 5000, createdAt="never")
    with pytest.raises(ResponseDecodeError) as info:
        get_parse(response(200, body))
    assert len(info.value.excerpt) == 200
    assert info.value.excerpt.endswith("…")


# --- Lenient 2xx decoding --------------------------------------------------------------------


def test_minimal_body_and_unknown_fields() -> None:
    conversation = get_parse(response(200, b'{"id": "' + UPPER_ID.encode() + b'", "extra": [1]}'))
    assert conversation.id == DOCS_ID
    assert conversation.provider == "siteassist"
    assert conversation.status is None
    assert conversation.started_at is None
    assert conversation.human_handled is None
    assert conversation.messages == []  # a get's absent messages are none


def test_messages_absent_vs_null_vs_empty() -> None:
    absent = get_parse(response(200, conversation_body()))
    null = get_parse(response(200, conversation_body(messages=None)))
    empty = get_parse(response(200, conversation_body(messages=[])))
    assert absent.messages == []  # get always includes the messages: absent is none
    assert null.messages == []
    assert empty.messages == []
    assert messages_parse(response(200, conversation_body())) == []
    assert messages_parse(response(200, conversation_body(messages=None))) == []


@pytest.mark.parametrize(
    ("human_agent", "expected"),
    [
        (None, None),
        ("", None),
        ("Sanne", "Sanne"),
        ({}, None),
        ({"name": "Sanne", "email": "s@example.com", "id": "u1"}, "Sanne"),
        ({"name": "", "email": "s@example.com", "id": "u1"}, "s@example.com"),
        ({"name": None, "email": None, "id": "u1"}, "u1"),
        ({"email": "", "id": 42}, "42"),
        ({"id": 0}, "0"),
        ({"name": "Sanne", "avatarUrl": "https://example.com/a.png"}, "Sanne"),
    ],
    ids=repr,
)
def test_human_agent(human_agent: object, expected: str | None) -> None:
    conversation = get_parse(response(200, conversation_body(humanAgent=human_agent)))
    assert conversation.human_agent == expected


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("user", "user"),
        ("assistant", "assistant"),
        ("system", "system"),
        ("tool", "tool"),
        ("visitor", "user"),
        ("customer", "user"),
        ("ai", "assistant"),
        ("bot", "assistant"),
        ("agent", "assistant"),
        ("human_agent", "assistant"),
        ("humanAgent", "assistant"),
        ("operator", "assistant"),
    ],
)
def test_role_mapping(role: str, expected: str) -> None:
    (message,) = messages_parse(response(200, conversation_body(messages=[{"role": role}])))
    assert message.role == expected


def test_camel_case_wins_over_snake_case_duplicates() -> None:
    camel_call = {"id": "c1", "type": "function", "function": {"name": "camel"}}
    snake_call = {"id": "c2", "type": "function", "function": {"name": "snake"}}
    body = conversation_body(
        messages=[
            {
                "role": "assistant",
                "toolCalls": [camel_call],
                "tool_calls": [snake_call],
                "toolCallId": "camel",
                "tool_call_id": "snake",
                "usage": {"totalTokens": 1, "total_tokens": 2, "prompt_tokens": 3},
                "tokenUsage": {"totalTokens": 9},
            }
        ]
    )
    (message,) = messages_parse(response(200, body))
    assert [c.name for c in message.tool_calls] == ["camel"]
    # A missing tool call function's arguments are an empty JSON object.
    assert message.tool_calls[0].arguments == "{}"
    assert message.tool_call_id == "camel"
    assert message.usage is not None
    assert (message.usage.total_tokens, message.usage.prompt_tokens) == (1, 3)
    assert message.usage.completion_tokens is None


def test_token_usage_is_used_when_usage_is_absent() -> None:
    body = conversation_body(messages=[{"role": "assistant", "tokenUsage": {"totalTokens": 9}}])
    (message,) = messages_parse(response(200, body))
    assert message.usage is not None
    assert message.usage.total_tokens == 9


def test_message_conversation_id_is_normalised_only_when_it_is_a_uuid() -> None:
    body = conversation_body(
        messages=[
            {"role": "user", "conversationId": UPPER_ID},
            {"role": "user", "conversationId": "Conv-1"},
            {"role": "user", "conversationId": None},
        ]
    )
    messages = messages_parse(response(200, body))
    assert [m.conversation_id for m in messages] == [DOCS_ID, "Conv-1", DOCS_ID]


def test_a_message_naming_its_conversation_canonically_shares_the_conversation_id() -> None:
    other = "AAAAAAAA-e89b-12d3-a456-426614174000"
    body = conversation_body(
        messages=[
            {"role": "user", "conversationId": DOCS_ID},
            {"role": "user", "conversationId": other},
            {"role": "user", "conversationId": ""},
        ]
    )
    conversation = get_parse(response(200, body))
    first, second, third = conversation.messages
    assert first.conversation_id is conversation.id
    assert second.conversation_id == other.lower()
    assert third.conversation_id == ""
