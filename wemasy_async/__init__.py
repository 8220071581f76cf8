"""wemasy-async: an async-first SDK for AI-assistant conversation APIs.

One provider-neutral interface (:class:`ConversationStore`, :class:`ChatService`) in front of
provider adapters, implemented by :class:`Client`::

    from wemasy_async import Client

    async with Client("wemasy", token="...") as client:
        conversation = await client.get_conversation(27)

Errors live in :mod:`wemasy_async.errors` (also exported here); test fakes of the providers'
APIs in :mod:`wemasy_async.testing`. Importing the package does no I/O and starts nothing.
"""

from __future__ import annotations

from wemasy_async._version import __version__
from wemasy_async.batch import BatchFetch, Fetched, FetchFailed, FetchProgress, FetchResult
from wemasy_async.client import DEFAULT_TIMEOUT, Client, RawResponses
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
)
from wemasy_async.headers import RateLimitInfo
from wemasy_async.hooks import (
    ALL_EVENTS,
    CORE_EVENTS,
    AnyEvent,
    BatchProgressEvent,
    Event,
    Hook,
    LimiterWaitEvent,
    NoResponseEvent,
    OperationEndEvent,
    OperationStartEvent,
    PauseEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from wemasy_async.models import ChatReply, Conversation, Message, Page, Role, TokenUsage, ToolCall
from wemasy_async.protocols import ChatService, ConversationId, ConversationStore, ToolSpec
from wemasy_async.providers.base import Provider
from wemasy_async.ratelimit import LimiterStore, RateLimit
from wemasy_async.raw import RawResponse
from wemasy_async.retry import RetryPolicy, no_backoff

__all__ = [
    "ALL_EVENTS",
    "CORE_EVENTS",
    "DEFAULT_TIMEOUT",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AnyEvent",
    "AsyncioRequiredError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFetch",
    "BatchProgressEvent",
    "ChatReply",
    "ChatService",
    "Client",
    "ClientClosedError",
    "ConflictError",
    "Conversation",
    "ConversationId",
    "ConversationStore",
    "Event",
    "FetchFailed",
    "FetchProgress",
    "FetchResult",
    "Fetched",
    "Hook",
    "InternalServerError",
    "InvalidRequestError",
    "LimiterStore",
    "LimiterWaitEvent",
    "Message",
    "NoResponseEvent",
    "NotFoundError",
    "OperationEndEvent",
    "OperationStartEvent",
    "Page",
    "PaginationError",
    "PauseEvent",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "Provider",
    "RateLimit",
    "RateLimitError",
    "RateLimitInfo",
    "RawResponse",
    "RawResponses",
    "RequestEvent",
    "ResponseDecodeError",
    "ResponseEvent",
    "ResponseTooLargeError",
    "RetryEvent",
    "RetryPolicy",
    "Role",
    "TokenUsage",
    "ToolCall",
    "ToolSpec",
    "UnprocessableEntityError",
    "UnsupportedOperationError",
    "WemasyAsyncError",
    "__version__",
    "no_backoff",
]
