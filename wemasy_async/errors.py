"""The one error tree of wemasy-async.

Every exception the SDK raises on purpose derives from :class:`WemasyAsyncError`, so
``except WemasyAsyncError`` is enough to catch everything we raise; builtin bases are added
where an error resembles one (``TimeoutError``, ``ValueError``)::

    WemasyAsyncError
    ├── InvalidRequestError (ValueError)      bad arguments; raised before any I/O
    ├── UnsupportedOperationError             the provider has no such operation
    ├── ClientClosedError (RuntimeError)      the client (or its session) is closed
    ├── AsyncioRequiredError (RuntimeError)   called from another event loop (e.g. trio)
    └── APIError                              something went wrong talking to a provider
        ├── APIConnectionError                could not connect, or the connection broke
        │   └── APITimeoutError (TimeoutError) the request took longer than its timeout
        ├── ResponseDecodeError               a body that is not what the provider documents
        │   └── PaginationError                   pages that do not advance (a loop)
        ├── ResponseTooLargeError             a body larger than ``max_response_bytes``
        └── APIStatusError                    the provider answered with an error status
            ├── BadRequestError               400
            ├── AuthenticationError           401
            ├── PaymentRequiredError          402
            ├── PermissionDeniedError         403
            ├── NotFoundError                 404
            ├── ConflictError                 409
            ├── UnprocessableEntityError      422 (per-field ``errors``)
            ├── RateLimitError                429 (``retry_after``)
            └── InternalServerError           >= 500

Exceptions from msgspec are translated in the provider adapters and chained with
``raise ... from exc``. Exceptions from aiohttp are translated at the transport boundary into
an error that keeps their type name and (cleaned) message but not the exception itself: aiohttp's
exceptions hold the request's headers, token included, so none is reachable from an error we
raise (neither as ``__cause__`` nor as ``__context__``). Messages, attributes, reprs and pickles
never contain the API token: what a server echoes back is blanked to ``[REDACTED]``.

Every :class:`APIError` raised for a request names it: ``method`` and ``path`` (the URL path,
never its query or host), also shown in ``str(error)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncioRequiredError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PaginationError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "UnprocessableEntityError",
    "UnsupportedOperationError",
    "WemasyAsyncError",
    "status_error",
]

_EXCERPT_CHARS = 200


def excerpt(body: bytes, limit: int = _EXCERPT_CHARS) -> str:
    """Return a short, printable excerpt of a response body for error messages."""
    text = body[: limit * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _restore(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class WemasyAsyncError(Exception):
    """Root of every exception wemasy-async raises on purpose.

    Every subclass pickles with its attributes, so errors cross process pools intact.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduction calls __init__ with self.args only, which fails for our
        # keyword-only constructors; restoring the state directly works for every subclass.
        return (_restore, (type(self), self.args, self.__dict__))


class InvalidRequestError(WemasyAsyncError, ValueError):
    """An argument is invalid; raised before any I/O.

    Attributes:
        argument: The name of the offending argument, when there is one.
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class UnsupportedOperationError(WemasyAsyncError):
    """The provider does not offer this operation; raised before any I/O.

    Attributes:
        provider: The provider name, e.g. ``"loop"``.
        operation: The operation name, e.g. ``"chat"``.
    """

    def __init__(self, provider: str, operation: str) -> None:
        super().__init__(f"provider {provider!r} does not support {operation!r}")
        self.provider = provider
        self.operation = operation


class ClientClosedError(WemasyAsyncError, RuntimeError):
    """The client, or the ``aiohttp.ClientSession`` it was given, is already closed."""


class AsyncioRequiredError(WemasyAsyncError, RuntimeError):
    """The client was used outside an asyncio event loop (e.g. under trio).

    aiohttp runs only on asyncio; under anyio, run the program with the asyncio backend.
    """

    def __init__(self, library: str = "no asyncio event loop") -> None:
        self.library = library
        super().__init__(
            f"wemasy-async requires asyncio (aiohttp runs only on asyncio), but it was called"
            f" from {library}; run it under asyncio, e.g. anyio.run(main, backend='asyncio')"
        )


class APIError(WemasyAsyncError):
    """Something went wrong while talking to a provider.

    Attributes:
        provider: The provider name the request was for.
        message: What went wrong, without the request's location.
        method: The HTTP method of the failed request (``"POST"``), when there was one.
        path: Its URL path (``"/api/services/ai/v1/chat"``): never the host, the query or
            the token. ``str(error)`` shows both.
    """

    def __init__(
        self, message: str, *, provider: str, method: str | None = None, path: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.method = method
        self.path = path

    @property
    def request_line(self) -> str | None:
        """``"POST /api/services/ai/v1/chat"``, or ``None`` when no request is known."""
        if self.method is None or self.path is None:
            return None
        return f"{self.method} {self.path}"

    def locate(self, method: str, path: str) -> None:
        """Record the request this error is about, unless one is recorded already.

        The engine calls it for every error of a request, so that adapters (which never see
        URLs) need not.
        """
        if self.method is None:
            self.method = method
            self.path = path

    def __str__(self) -> str:
        where = self.request_line
        return self.message if where is None else f"{self.message} ({where})"

    def _request_repr(self) -> str:
        where = self.request_line
        return "" if where is None else f", request={where!r}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, message={self.message!r}"
            f"{self._request_repr()})"
        )


class APIConnectionError(APIError):
    """The request could not be sent, or the connection broke before a full response.

    Attributes:
        request_sent: ``False`` only when the request certainly never reached the server
            (the connection was refused or could not be established, or the request was
            still waiting for a connection from the pool); then even a non-idempotent
            request is safe to send again.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        request_sent: bool = True,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, method=method, path=path)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request did not complete within its timeout."""


class ResponseDecodeError(APIError):
    """A response body is not what the provider documents.

    Attributes:
        status: The HTTP status of the response.
        expected: What the SDK expected, in words.
        excerpt: The first characters of the body, for diagnosis.
    """

    def __init__(
        self, *, provider: str, status: int, expected: str, body: bytes, reason: str
    ) -> None:
        self.status = status
        self.expected = expected
        self.excerpt = excerpt(body)
        super().__init__(
            f"HTTP {status} response from {provider} is not {expected}: {reason}; "
            f"body starts: {self.excerpt!r}",
            provider=provider,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, status={self.status}, "
            f"expected={self.expected!r}{self._request_repr()})"
        )


class PaginationError(ResponseDecodeError):
    """Listing pages does not advance: the server answered another page than the one asked
    for (it ignores ``page``), or the same page again. Raised instead of looping forever.

    Attributes:
        page: The page that was asked for.
        received: The page number the server said it returned.
    """

    def __init__(self, *, provider: str, page: int, received: int, reason: str) -> None:
        self.page = page
        self.received = received
        self.status = 200
        self.expected = f"page {page} of the conversation list"
        self.excerpt = ""  # the pages themselves were fine; their order is not
        APIError.__init__(
            self,
            f"HTTP 200 response from {provider} is not {self.expected}: {reason}",
            provider=provider,
        )


class ResponseTooLargeError(APIError):
    """A response body is larger than the client's ``max_response_bytes``.

    The body is not read past the limit and the connection is discarded, so a hostile or
    broken server cannot exhaust memory. Not retried: the same request gets the same body.

    Attributes:
        status: The HTTP status of the response.
        limit: The limit in bytes that was exceeded.
    """

    def __init__(self, *, provider: str, status: int, limit: int) -> None:
        self.status = status
        self.limit = limit
        super().__init__(
            f"HTTP {status} response from {provider} is larger than max_response_bytes"
            f" ({limit:,} bytes); raise it with Client(..., max_response_bytes=...)",
            provider=provider,
        )


class APIStatusError(APIError):
    """The provider answered with an error status.

    Attributes:
        status: The HTTP status code.
        message: The provider's own message (or the reason phrase when it sent none).
        headers: The response headers.
        body: The decoded JSON body, or the body text when it was not JSON.
        code: The provider's machine-readable error code, when it sends one.
        details: The provider's structured error details, when it sends any.
        retry_after: Seconds the provider asked us to wait before retrying, when it said
            (``Retry-After``, or a provider's own hint such as SiteAssist's
            ``details.retryAfter``); set on 429s and on 503s that carry a hint.
        hint: What the SDK makes of the response beyond the provider's message, e.g. that
            a 404 without the provider's documented body suggests a wrong ``base_url``;
            shown in ``str(error)``.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: object = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after
        self.hint = hint
        self.status = status
        # Case-insensitive like the response's own headers (and, unlike aiohttp's proxy,
        # picklable): err.headers["retry-after"] must find "Retry-After".
        self.headers: Mapping[str, str] = CIMultiDict(headers or {})
        self.body = body
        self.code = code
        self.details: Mapping[str, Any] = dict(details or {})

    def __str__(self) -> str:
        code = f", code {self.code}" if self.code else ""
        where = self.request_line
        at = f", {where}" if where is not None else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.message} (HTTP {self.status} from {self.provider}{code}{at}){hint}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, status={self.status}, "
            f"code={self.code!r}, message={self.message!r}{self._request_repr()})"
        )


class BadRequestError(APIStatusError):
    """HTTP 400: the provider rejected the request as malformed."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the token is missing or invalid."""


class PaymentRequiredError(APIStatusError):
    """HTTP 402: the account's plan does not include this feature."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the token may not access this resource."""


class NotFoundError(APIStatusError):
    """HTTP 404: the resource does not exist."""


class ConflictError(APIStatusError):
    """HTTP 409: the resource conflicts with an existing one."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: validation failed.

    Attributes:
        errors: Per-field messages, ``{"field": ["message", ...]}`` (a bare string is listed
            as ``["message"]``); a value of any other shape is kept as the server sent it.
    """

    def __init__(
        self, message: str, *, errors: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors: Mapping[str, Any] = dict(errors or {})


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests; ``retry_after`` says how long to wait, when known."""


class InternalServerError(APIStatusError):
    """HTTP 5xx: the provider failed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(
    status: int,
    message: str,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    body: object = None,
    code: str | None = None,
    details: Mapping[str, Any] | None = None,
    errors: Mapping[str, Any] | None = None,
    retry_after: float | None = None,
    documented: bool = True,
) -> APIStatusError:
    """Build the most specific :class:`APIStatusError` subclass for ``status``.

    ``errors`` is kept only on :class:`UnprocessableEntityError`. A redirect's message
    names its ``Location``. A 404 whose body is not the provider's documented error body
    (``documented=False``) most likely came from something that is not the provider's API
    (a wrong ``base_url``, a proxy): its message says so.
    """
    common: dict[str, Any] = {
        "provider": provider,
        "status": status,
        "headers": headers,
        "body": body,
        "code": code,
        "details": details,
        "retry_after": retry_after,
    }
    if 300 <= status < 400 and headers is not None:
        location = headers.get("Location")
        if location and location not in message:
            # Whatever the body says, the user needs to know where it pointed and that the
            # SDK did not follow it (that would carry the token to wherever it points).
            message = f"{message} (redirect to {location}, not followed)"
    if status == 404 and not documented:
        common["hint"] = (
            f"the body is not {provider}'s documented error body, so this URL may not be"
            " the provider's API: check base_url"
        )
    cls = _BY_STATUS.get(status)
    if cls is UnprocessableEntityError:
        return UnprocessableEntityError(message, errors=errors, **common)
    if cls is not None:
        return cls(message, **common)
    if status >= 500:
        return InternalServerError(message, **common)
    return APIStatusError(message, **common)
