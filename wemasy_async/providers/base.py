"""The contract between the engine and the provider adapters.

A provider adapter is sans-I/O: for each operation it returns a :class:`Call`, which holds a
:class:`Request` description (method, path, query, JSON body) and a pure ``parse`` function
that turns a :class:`Response` ``(status, headers, body)`` into a neutral model or raises a
typed error. The engine sends the request and hands the response to ``parse``; it knows
nothing about any provider, and the adapters know nothing about sockets.

:class:`Request` and :class:`Response` live in :mod:`wemasy_async.exchange` (below both the
adapters and the transport); they are re-exported here, where adapters have always found them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, Literal, TypeVar

import msgspec

from wemasy_async.errors import UnsupportedOperationError
from wemasy_async.exchange import Request, Response
from wemasy_async.models import ChatReply, Conversation, Message, Page
from wemasy_async.protocols import ConversationId, ToolSpec

__all__ = [
    "OPERATIONS",
    "Call",
    "ChatParams",
    "ListConversationsParams",
    "Operation",
    "Provider",
    "Request",
    "Response",
]

T = TypeVar("T")

Operation = Literal[
    "get_conversation", "list_messages", "list_conversations", "iter_conversations", "chat"
]
OPERATIONS: tuple[Operation, ...] = (
    "get_conversation",
    "list_messages",
    "list_conversations",
    "iter_conversations",
    "chat",
)


class Call(msgspec.Struct, Generic[T], frozen=True):
    """One operation: the request to send and how to read its response.

    Attributes:
        request: What to send.
        parse: Turns the response into the result, or raises a typed
            :class:`~wemasy_async.errors.APIError`; pure, no I/O.
        then: Given the parsed result, returns a follow-up call whose result replaces it,
            or ``None``; see :meth:`follow_up`.
    """

    request: Request
    parse: Callable[[Response], T]
    then: Callable[[T], Call[T] | None] | None = None

    def follow_up(self, result: T) -> Call[T] | None:
        """The call to send next with ``result`` in hand, or ``None`` when ``result`` is final.

        Lets an adapter express a short, fixed conversation with the server (e.g. "the
        server truncated the list; ask again for all of it") without doing I/O itself.
        """
        return None if self.then is None else self.then(result)


class ListConversationsParams(msgspec.Struct, frozen=True, kw_only=True):
    """Arguments of ``list_conversations``, as the caller gave them (not yet validated)."""

    agent_id: str | None = None
    search: str | None = None
    per_page: int = 20
    page: int = 1


class ChatParams(msgspec.Struct, frozen=True, kw_only=True):
    """Arguments of ``chat``, as the caller gave them (not yet validated)."""

    message: str | None = None
    conversation_id: ConversationId | None = None
    connection_id: int | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    use_tools: bool | None = None
    tools: Sequence[ToolSpec] | None = None
    tool_call_id: str | None = None
    tool_result: str | None = None


class Provider:
    """Base class of provider adapters; every operation is unsupported until overridden.

    Subclasses set the class attributes and override the operations they support. Each
    operation validates its arguments (raising
    :class:`~wemasy_async.errors.InvalidRequestError`) and returns a :class:`Call`; it never
    performs I/O.

    Attributes:
        name: The registry name, e.g. ``"wemasy"``.
        default_base_url: The documented base URL.
        token_env: The environment variable the token falls back to.
        capabilities: The operations this provider supports: derived from the operations a
            subclass overrides (``iter_conversations`` comes with ``list_conversations``),
            unless the subclass sets it.
    """

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    token_env: ClassVar[str]
    capabilities: ClassVar[frozenset[Operation]] = frozenset()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "capabilities" in cls.__dict__:
            return  # set by hand (a provider that overrides more than it offers)
        # Derived, so that a hand-kept set cannot drift from the methods it describes.
        offered = {
            operation
            for operation in _OVERRIDABLE
            if getattr(cls, operation) is not getattr(Provider, operation)
        }
        if "list_conversations" in offered:
            offered.add("iter_conversations")  # the client pages through list_conversations
        cls.capabilities = frozenset(offered)

    def get_conversation(
        self, conversation_id: ConversationId
    ) -> Call[Conversation[list[Message]]]:
        """Describe fetching one conversation with its messages."""
        raise UnsupportedOperationError(self.name, "get_conversation")

    def list_messages(
        self, conversation_id: ConversationId, limit: int | None = None
    ) -> Call[list[Message]]:
        """Describe fetching the messages of one conversation: all, or the first ``limit``."""
        raise UnsupportedOperationError(self.name, "list_messages")

    def list_conversations(self, params: ListConversationsParams) -> Call[Page[Conversation]]:
        """Describe fetching one page of conversations."""
        raise UnsupportedOperationError(self.name, "list_conversations")

    def chat(self, params: ChatParams) -> Call[ChatReply]:
        """Describe sending a chat message or a tool result."""
        raise UnsupportedOperationError(self.name, "chat")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# The operations a Provider subclass may override (iter_conversations is the client's own).
_OVERRIDABLE: tuple[Operation, ...] = (
    "get_conversation",
    "list_messages",
    "list_conversations",
    "chat",
)
