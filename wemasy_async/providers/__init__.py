"""Provider adapters (one module each) and the registry that finds them by name."""

from __future__ import annotations

from wemasy_async.exchange import Request, Response
from wemasy_async.providers.base import Call, ChatParams, ListConversationsParams, Provider
from wemasy_async.providers.registry import get_provider, provider_names

__all__ = [
    "Call",
    "ChatParams",
    "ListConversationsParams",
    "Provider",
    "Request",
    "Response",
    "get_provider",
    "provider_names",
]
