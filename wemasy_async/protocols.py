"""The provider-neutral interface: what code written against wemasy-async depends on.

:class:`~wemasy_async.Client` implements both protocols for every provider; type your own
code (and your test fakes) against these instead of against ``Client``. Both are
``runtime_checkable``, so ``isinstance(obj, ConversationStore)`` checks that the methods exist
(not their signatures: that is what the type checker is for).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from wemasy_async.models import ChatReply, Conversation, Message, Page

__all__ = ["ChatService", "ConversationId", "ConversationStore", "ToolSpec"]

ConversationId = int | str | UUID
"""A conversation id: an ``int`` or digit string for Wemasy, a UUID (object or string) for
SiteAssist, a string for Loop. Each provider checks its own form before any I/O."""

ToolSpec = Mapping[str, Any]
"""An OpenAI-style tool definition: ``{"type": "function", "function": {"name": ..., ...}}``."""


@runtime_checkable
class ConversationStore(Protocol):
    """Read access to conversations and their messages."""

    async def get_conversation(
        self, conversation_id: ConversationId
    ) -> Conversation[list[Message]]:
        """Fetch one conversation, with its messages (a list, empty when it has none)."""
        ...

    async def list_messages(
        self, conversation_id: ConversationId, *, limit: int | None = None
    ) -> list[Message]:
        """Fetch the messages of one conversation in the provider's order (oldest first for
        the built-in providers): all of them, or the first ``limit``."""
        ...

    async def list_conversations(
        self,
        *,
        agent_id: str | None = None,
        search: str | None = None,
        per_page: int = 20,
        page: int = 1,
    ) -> Page[Conversation]:
        """Fetch one page of conversations, optionally filtered."""
        ...

    def iter_conversations(
        self,
        *,
        agent_id: str | None = None,
        search: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[Conversation]:
        """Iterate over every conversation, following pages as needed."""
        ...


@runtime_checkable
class ChatService(Protocol):
    """Sending messages (and tool results) to an assistant."""

    async def chat(
        self,
        message: str | None = None,
        *,
        conversation_id: ConversationId | None = None,
        connection_id: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        use_tools: bool | None = None,
        tools: Sequence[ToolSpec] | None = None,
        tool_call_id: str | None = None,
        tool_result: str | None = None,
    ) -> ChatReply:
        """Send a message, or a tool result, and return the assistant's reply."""
        ...
