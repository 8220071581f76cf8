"""The error tree: shape, builtin bases, ``status_error`` and the messages errors carry."""

from __future__ import annotations

import inspect
import pickle

import pytest

import wemasy_async.errors as errors_module
from wemasy_async.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncioRequiredError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    UnprocessableEntityError,
    UnsupportedOperationError,
    WemasyAsyncError,
    excerpt,
    status_error,
)

ERROR_CLASSES = [
    obj
    for name in errors_module.__all__
    if inspect.isclass(obj := getattr(errors_module, name)) and issubclass(obj, BaseException)
]

PARENTS: dict[type[Exception], type[Exception]] = {
    InvalidRequestError: WemasyAsyncError,
    UnsupportedOperationError: WemasyAsyncError,
    ClientClosedError: WemasyAsyncError,
    AsyncioRequiredError: WemasyAsyncError,
    APIError: WemasyAsyncError,
    APIConnectionError: APIError,
    APITimeoutError: APIConnectionError,
    ResponseDecodeError: APIError,
    PaginationError: ResponseDecodeError,
    ResponseTooLargeError: APIError,
    APIStatusError: APIError,
    BadRequestError: APIStatusError,
    AuthenticationError: APIStatusError,
    PaymentRequiredError: APIStatusError,
    PermissionDeniedError: APIStatusError,
    NotFoundError: APIStatusError,
    ConflictError: APIStatusError,
    UnprocessableEntityError: APIStatusError,
    RateLimitError: APIStatusError,
    InternalServerError: APIStatusError,
}


# --- Shape -----------------------------------------------------------------------------------


def test_every_exported_exception_is_in_the_documented_tree() -> None:
    assert set(ERROR_CLASSES) == {WemasyAsyncError, *PARENTS}


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_derives_from_the_root(cls: type[Exception]) -> None:
    assert issubclass(cls, WemasyAsyncError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize(("cls", "parent"), PARENTS.items(), ids=lambda c: c.__name__)
def test_parents(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)
    # The direct SDK parent: no skipped level in the tree.
    sdk_bases = [b for b in cls.__bases__ if issubclass(b, WemasyAsyncError)]
    assert sdk_bases == [parent]


def test_builtin_bases() -> None:
    assert issubclass(APITimeoutError, TimeoutError)
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(InvalidRequestError, ValueError)
    assert issubclass(ClientClosedError, RuntimeError)
    # Nothing else pretends to be a builtin error.
    assert not issubclass(APIConnectionError, (TimeoutError, OSError))
    assert not issubclass(APIStatusError, (ValueError, RuntimeError))
    assert not issubclass(ResponseDecodeError, ValueError)


def test_timeout_is_caught_by_connection_and_timeout_handlers() -> None:
    error = APITimeoutError("request to wemasy timed out after 5.0 s", provider="wemasy")
    for handler in (TimeoutError, APIConnectionError, APIError, WemasyAsyncError):
        with pytest.raises(handler):
            raise error


# --- Attributes and messages -----------------------------------------------------------------


def test_invalid_request_error_names_the_argument() -> None:
    error = InvalidRequestError("per_page must be between 1 and 100", argument="per_page")
    assert error.argument == "per_page"
    assert str(error) == "per_page must be between 1 and 100"
    assert InvalidRequestError("no token").argument is None


def test_unsupported_operation_error() -> None:
    error = UnsupportedOperationError("loop", "chat")
    assert (error.provider, error.operation) == ("loop", "chat")
    assert str(error) == "provider 'loop' does not support 'chat'"


def test_api_error_str_and_repr() -> None:
    error = APIConnectionError("connection to wemasy failed: boom", provider="wemasy")
    assert error.message == "connection to wemasy failed: boom"
    assert error.provider == "wemasy"
    assert str(error) == "connection to wemasy failed: boom"
    assert repr(error) == (
        "APIConnectionError(provider='wemasy', message='connection to wemasy failed: boom')"
    )


def test_api_status_error_fields() -> None:
    headers = {"X-Request-Id": "r-1"}
    details = {"field": "content"}
    error = APIStatusError(
        "Invalid request body.",
        provider="siteassist",
        status=400,
        headers=headers,
        body={"error": {"message": "Invalid request body."}},
        code="INVALID_REQUEST_BODY",
        details=details,
    )
    assert error.status == 400
    assert error.code == "INVALID_REQUEST_BODY"
    assert error.body == {"error": {"message": "Invalid request body."}}
    assert error.headers == headers
    assert error.details == details
    # Copies: mutating what was passed in does not change the error.
    headers["X-Request-Id"] = "changed"
    details["field"] = "changed"
    assert error.headers == {"X-Request-Id": "r-1"}
    assert error.details == {"field": "content"}
    assert (
        str(error) == "Invalid request body. (HTTP 400 from siteassist, code INVALID_REQUEST_BODY)"
    )
    assert repr(error) == (
        "APIStatusError(provider='siteassist', status=400, code='INVALID_REQUEST_BODY', "
        "message='Invalid request body.')"
    )


def test_api_status_error_defaults() -> None:
    error = APIStatusError("Not Found", provider="wemasy", status=404)
    assert error.headers == {}
    assert error.details == {}
    assert error.body is None
    assert error.code is None
    assert str(error) == "Not Found (HTTP 404 from wemasy)"


def test_response_decode_error_fields() -> None:
    error = ResponseDecodeError(
        provider="wemasy",
        status=200,
        expected="a Wemasy conversation envelope",
        body=b"<html>\n  <body>maintenance</body>\n</html>",
        reason="JSON is malformed",
    )
    assert error.status == 200
    assert error.expected == "a Wemasy conversation envelope"
    assert error.excerpt == "<html> <body>maintenance</body> </html>"
    assert str(error) == (
        "HTTP 200 response from wemasy is not a Wemasy conversation envelope: JSON is "
        "malformed; body starts: '<html> <body>maintenance</body> </html>'"
    )
    assert repr(error) == (
        "ResponseDecodeError(provider='wemasy', status=200, "
        "expected='a Wemasy conversation envelope')"
    )


def test_excerpt() -> None:
    assert excerpt(b"") == ""
    assert excerpt(b"  a\n\tb  ") == "a b"
    assert excerpt(b"\xff\xfeok") == "\ufffd\ufffdok"
    long = excerpt(b"y" * 1000)
    assert len(long) == 200
    assert long == "y" * 199 + "…"
    assert excerpt(b"abcdef", limit=4) == "abc…"
    assert excerpt(b"abcd", limit=4) == "abcd"
    # Multi-byte text is cut by characters, not bytes.
    assert excerpt("é".encode() * 300) == "é" * 199 + "…"


# --- status_error ----------------------------------------------------------------------------


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
        (501, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (504, InternalServerError),
        (599, InternalServerError),
        (302, APIStatusError),
        (405, APIStatusError),
        (410, APIStatusError),
        (418, APIStatusError),
        (451, APIStatusError),
    ],
)
def test_status_error_picks_the_class(status: int, cls: type[APIStatusError]) -> None:
    error = status_error(status, "msg", provider="wemasy", body={"k": "v"}, code="C")
    assert type(error) is cls
    assert error.status == status
    assert error.provider == "wemasy"
    assert error.message == "msg"
    assert error.body == {"k": "v"}
    assert error.code == "C"


def test_status_error_keeps_errors_only_on_422() -> None:
    fields = {"per_page": ["The per page field must not be greater than 100."]}
    error = status_error(422, "Invalid", provider="wemasy", errors=fields)
    assert isinstance(error, UnprocessableEntityError)
    assert error.errors == fields
    assert not hasattr(status_error(400, "Bad", provider="wemasy", errors=fields), "errors")
    assert status_error(422, "Invalid", provider="wemasy").errors == {}  # type: ignore[attr-defined]


def test_status_error_keeps_the_retry_hint_on_any_status() -> None:
    error = status_error(429, "Slow down", provider="wemasy", retry_after=12.5)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 12.5
    busy = status_error(503, "Busy", provider="wemasy", retry_after=5.0)
    assert isinstance(busy, InternalServerError)
    assert busy.retry_after == 5.0
    assert status_error(429, "Slow down", provider="wemasy").retry_after is None


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError("bad per_page", argument="per_page"),
        UnsupportedOperationError("loop", "chat"),
        APIConnectionError("refused", provider="wemasy"),
        APITimeoutError("slow", provider="wemasy"),
        ResponseDecodeError(
            provider="wemasy", status=200, expected="an envelope", body=b"<html>", reason="r"
        ),
        status_error(
            429, "slow down", provider="wemasy", headers={"retry-after": "7"}, retry_after=7.0
        ),
        status_error(422, "invalid", provider="wemasy", errors={"per_page": ["too big"]}),
        status_error(404, "gone", provider="wemasy", body={"success": False}, code="NOT_FOUND"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_pickle_with_their_attributes(error: WemasyAsyncError) -> None:
    # Batch users fan out over process pools; an error must come back whole.
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert str(restored) == str(error)
    assert repr(restored) == repr(error)
    assert vars(restored) == vars(error)
    if isinstance(restored, RateLimitError):
        assert restored.retry_after == 7.0
        assert restored.headers["Retry-After"] == "7"
