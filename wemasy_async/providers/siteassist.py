"""SiteAssist: REST with camelCase JSON, uuid ids and an ``{error: {...}}`` envelope (sans-I/O).

The one endpoint (base ``https://api.siteassist.io/v2``), bearer-authenticated:

- ``GET /conversations/{conversationId}`` -> ``{object: "conversation", id, createdAt,
  updatedAt, status, closedAt, closeReason, lastInterationAt, isHumanHandled, humanAgent,
  messages}`` (``lastInterationAt`` is spelled as the API spells it).

SiteAssist has no messages endpoint and no listing: ``list_messages`` is derived from the
conversation, and ``list_conversations``, ``iter_conversations`` and ``chat`` are unsupported
(:class:`~wemasy_async.errors.UnsupportedOperationError` before any I/O).

Ids: a ``uuid.UUID`` or its canonical text (8-4-4-4-12 hex digits, any case), sent
lower-case; anything else is refused before any I/O.

Error bodies are ``{"error": {"message", "code", "details"}}``. The exception class follows
the HTTP status (so ``CONVERSATION_NOT_FOUND`` is a ``NotFoundError``); the provider's
``code`` and ``details`` are kept on the error. A 422's ``details.field`` and
``details.reason`` become ``errors``; ``retry_after`` is ``details.retryAfter`` (a number
or a numeric string), else the ``Retry-After`` header, on a 429 and on any other status
that carries a hint (a 503's ``details.retryAfter``). A body that is not the envelope (an HTML
page from a proxy) gives the status's error with the reason phrase as the message; also
accepted: ``{"error": "message"}`` and a top-level ``{"message", "code", "details"}``.

What the decoder accepts where the docs are silent or show only an example:

- The conversation's fields have the documented JSON types; every field but ``id`` may be
  missing or ``null``; unknown fields are ignored. ``id`` is a UUID in any case (neutral:
  lower-case canonical). ``object`` may be missing, but any value other than
  ``"conversation"`` is refused: that body answers some other request.
- Timestamps are RFC 3339 (the docs show ``2024-01-15T10:30:00.000Z``); one without an
  offset is taken as UTC.
- ``humanAgent`` (the docs only show ``null``): a string, or an object with ``name``,
  ``email`` and ``id``; the neutral ``human_agent`` is the name, else the email, else the
  id as text.
- ``messages`` (the docs only show ``[]``): a list of camelCase message objects
  ``{id, conversationId, role, content, createdAt, toolCalls, toolCallId, usage, metadata}``,
  where ``id`` is a string or an integer; ``conversationId`` defaults to the
  conversation's; ``toolCalls`` (also ``tool_calls``) is a list of OpenAI-style calls
  ``{id, type, function: {name, arguments}}`` with ``arguments`` as JSON text or an object;
  ``toolCallId`` (also ``tool_call_id``); ``usage`` (also ``tokenUsage``) is
  ``{promptTokens, completionTokens, totalTokens}`` (snake_case keys also accepted);
  ``metadata`` is an object. ``null`` or absent messages is no messages (``[]``: a
  conversation is only ever fetched whole). Every message field but ``role`` may be
  missing.
- Roles: ``user``, ``assistant``, ``system`` and ``tool``; ``visitor`` and ``customer`` are
  ``user``; ``ai``, ``bot``, ``agent``, ``human_agent``, ``humanAgent`` and ``operator`` are
  ``assistant`` (a human agent speaks for the site, as the assistant does). Any other role
  is a :class:`~wemasy_async.errors.ResponseDecodeError`.

``raw`` is the decoded :class:`SiteAssistConversation`, values as sent (the ``id`` a
``uuid.UUID``). The neutral messages are built from it in one pass that converts only what
is not already neutral (usage, tool calls, integer ids, a ``conversationId`` that is not the
conversation's canonical id, naive timestamps, absent metadata) and otherwise shares the
wire's objects: string ids, content, timestamps with an offset, and an object ``metadata``
(the same ``dict`` in ``raw`` and in the neutral message). Messages that name the
conversation share the conversation's ``id`` string.

The fast path (see :mod:`wemasy_async.providers.wire`) takes a conversation whose messages
all have a string or absent ``id``, a neutral role (``user``, ``assistant``, ``system``,
``tool``), timestamps with an offset, only the camelCase keys (``toolCalls``,
``toolCallId``, ``usage`` with ``promptTokens``, ``completionTokens``, ``totalTokens``) and
no other key; anything else (a synonym key, an unknown key, a role synonym) takes the
lenient path above. Its ``raw`` is decoded from the kept body on first access, and then
shares with the neutral messages what the lenient path shares.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar, cast

import msgspec

from wemasy_async.errors import (
    APIStatusError,
    status_error,
)
from wemasy_async.exchange import Request, Response
from wemasy_async.headers import parse_retry_after
from wemasy_async.models import Conversation, Message, Role, TokenUsage, lazy_raw_type
from wemasy_async.protocols import ConversationId
from wemasy_async.providers.base import Call, Provider
from wemasy_async.providers.wire import (
    Aware,
    Malformed,
    OpenAIToolCall,
    body_of,
    fallback_message,
    neutral_messages,
    reader,
    role,
    tool_calls,
    utc,
)
from wemasy_async.validation import MAX_SECONDS, check_int, check_uuid, short_repr

__all__ = [
    "SiteAssistConversation",
    "SiteAssistHumanAgent",
    "SiteAssistMessage",
    "SiteAssistProvider",
    "SiteAssistUsage",
]

NAME = "siteassist"
CONVERSATION_PATH = "/conversations/{}"

T = TypeVar("T")


# --- Wire format -----------------------------------------------------------------------------


class SiteAssistUsage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Token usage of a message, camelCase (snake_case keys accepted too)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_snake: int | None = msgspec.field(default=None, name="prompt_tokens")
    completion_tokens_snake: int | None = msgspec.field(default=None, name="completion_tokens")
    total_tokens_snake: int | None = msgspec.field(default=None, name="total_tokens")


class SiteAssistMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A conversation message (undocumented: the docs only show ``"messages": []``)."""

    id: str | int | None = None
    conversation_id: str | None = None
    role: str
    content: str | None = None
    created_at: datetime | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    tool_calls_snake: list[OpenAIToolCall] | None = msgspec.field(default=None, name="tool_calls")
    tool_call_id: str | None = None
    tool_call_id_snake: str | None = msgspec.field(default=None, name="tool_call_id")
    usage: SiteAssistUsage | None = None
    token_usage: SiteAssistUsage | None = None
    metadata: dict[str, Any] | None = None


class SiteAssistHumanAgent(msgspec.Struct, frozen=True, kw_only=True):
    """The human agent who took over, when ``humanAgent`` is an object."""

    id: str | int | None = None
    name: str | None = None
    email: str | None = None


class SiteAssistConversation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A conversation with every documented field, with the lenient types described above."""

    object: str | None = None
    id: uuid.UUID
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    last_interaction_at: datetime | None = msgspec.field(default=None, name="lastInterationAt")
    is_human_handled: bool | None = None
    human_agent: str | SiteAssistHumanAgent | None = None
    # UNSET when the key is absent ("not included"), unlike null ("none").
    messages: list[SiteAssistMessage] | msgspec.UnsetType | None = msgspec.UNSET


# One decoder per response type, built once: msgspec compiles the schema at construction.
_CONVERSATION = msgspec.json.Decoder(SiteAssistConversation)


class _FastUsage(TokenUsage, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Unknown keys refused: a snake_case count must take the lenient path.
    prompt_tokens: int | None = msgspec.field(default=None, name="promptTokens")
    completion_tokens: int | None = msgspec.field(default=None, name="completionTokens")
    total_tokens: int | None = msgspec.field(default=None, name="totalTokens")


class _FastMessage(Message, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A message in canonical form, decoded straight into a ``Message`` (see the docstring).

    Unknown keys are refused: ``tool_calls``, ``tool_call_id`` and ``tokenUsage`` are
    synonyms the lenient path reads.
    """

    conversation_id: str | None = msgspec.field(default=None, name="conversationId")
    # Absent is [] at once (no per-message fix-up); null still arrives as None.
    tool_calls: list[OpenAIToolCall] | None = msgspec.field(  # type: ignore[assignment]
        default_factory=list, name="toolCalls"
    )
    tool_call_id: str | None = msgspec.field(default=None, name="toolCallId")
    usage: _FastUsage | None = None
    created_at: Aware | None = msgspec.field(default=None, name="createdAt")
    metadata: dict[str, Any] | None = None  # type: ignore[assignment]


class _FastConversation(SiteAssistConversation, frozen=True, kw_only=True):
    messages: list[_FastMessage] | msgspec.UnsetType | None = msgspec.UNSET  # type: ignore[assignment]


_FAST_CONVERSATION = msgspec.json.Decoder(_FastConversation)


# --- Ids -------------------------------------------------------------------------------------

# A character class keeps this ASCII-only, and fullmatch refuses a trailing newline.
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _canonical(text: str) -> str:
    return text.lower() if _UUID_TEXT.fullmatch(text) else text


# --- Wire to neutral -------------------------------------------------------------------------


_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "visitor": "user",
    "customer": "user",
    "ai": "assistant",
    "bot": "assistant",
    "agent": "assistant",
    "human_agent": "assistant",
    "humanAgent": "assistant",
    "operator": "assistant",
}


def _usage(wire: SiteAssistUsage) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=_first(wire.prompt_tokens, wire.prompt_tokens_snake),
        completion_tokens=_first(wire.completion_tokens, wire.completion_tokens_snake),
        total_tokens=_first(wire.total_tokens, wire.total_tokens_snake),
    )


def _first(value: T | None, fallback: T | None) -> T | None:
    return fallback if value is None else value


def _messages(wire: SiteAssistConversation, conversation_id: str) -> list[Message]:
    """The neutral messages; one pass, converting only the fields that are not canonical.

    A ``conversationId`` that is the conversation's own id in canonical form is replaced by
    the conversation's id text (one string for all messages); any other goes through the
    UUID check. String ids, ``content``, ``created_at`` with an offset and an object
    ``metadata`` are the wire's own objects (shared with ``raw``).
    """
    roles, utc_zone = _ROLES, timezone.utc
    wires = wire.messages or ()  # UNSET (absent) and null are none
    try:
        return [
            Message(
                id=m.id if m.id is None or type(m.id) is str else str(m.id),
                conversation_id=(
                    conversation_id
                    if m.conversation_id is None or m.conversation_id == conversation_id
                    else _canonical(m.conversation_id)
                ),
                role=roles[m.role],
                content=m.content,
                tool_calls=(
                    tool_calls(m.tool_calls)
                    if m.tool_calls is not None
                    else []
                    if m.tool_calls_snake is None
                    else tool_calls(m.tool_calls_snake)
                ),
                tool_call_id=m.tool_call_id_snake if m.tool_call_id is None else m.tool_call_id,
                usage=(
                    None
                    if m.usage is None and m.token_usage is None
                    else _usage(cast(SiteAssistUsage, m.usage or m.token_usage))  # a Struct is true
                ),
                created_at=(
                    m.created_at
                    if m.created_at is None or m.created_at.tzinfo is not None
                    else m.created_at.replace(tzinfo=utc_zone)
                ),
                metadata={} if m.metadata is None else m.metadata,
            )
            for m in wires
        ]
    except KeyError:
        # roles[...] is the only lookup that can fail: report the first unknown role.
        for m in wires:
            role(m.role, roles)  # raises Malformed for a role that is not in roles
        raise


def _human_agent(value: str | SiteAssistHumanAgent | None) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    if value.name or value.email:
        return value.name or value.email
    return None if value.id is None else str(value.id)


def _conversation(wire: SiteAssistConversation) -> Conversation[list[Message]]:
    conversation_id = str(wire.id)
    return _neutral_conversation(wire, conversation_id, _messages(wire, conversation_id), wire)


def _neutral_conversation(
    wire: SiteAssistConversation,
    conversation_id: str,
    messages: list[Message],
    raw: object,
) -> Conversation[list[Message]]:
    if wire.object is not None and wire.object != "conversation":
        raise Malformed(f"object is {short_repr(wire.object)}, not 'conversation'")
    return Conversation(
        id=conversation_id,
        provider=NAME,
        status=wire.status,
        started_at=utc(wire.created_at),
        updated_at=utc(wire.updated_at),
        ended_at=utc(wire.closed_at),
        last_activity_at=utc(wire.last_interaction_at),
        close_reason=wire.close_reason,
        human_handled=wire.is_human_handled,
        human_agent=_human_agent(wire.human_agent),
        messages=messages,
        raw=raw,
    )


def _share(wire: SiteAssistConversation, messages: list[Message]) -> SiteAssistConversation:
    """Give the lazily decoded ``wire`` the neutral messages' objects the lenient path
    shares."""
    if isinstance(wire.messages, list) and messages:
        force = msgspec.structs.force_setattr
        for w, m in zip(wire.messages, messages, strict=True):
            force(w, "id", m.id)  # a string or None on the fast path
            force(w, "content", m.content)
            force(w, "tool_call_id", m.tool_call_id)
            force(w, "created_at", m.created_at)  # aware on the fast path
            if w.metadata is not None:
                force(w, "metadata", m.metadata)
    return wire


_LazyConversation = lazy_raw_type(
    SiteAssistConversation, lambda body, messages: _share(_CONVERSATION.decode(body), messages)
)


def _fast_conversation(body: bytes) -> Conversation[list[Message]]:
    """The fast path (see the module docstring); raises when the body is not canonical."""
    wire = _FAST_CONVERSATION.decode(body)
    conversation_id = str(wire.id)
    fast = wire.messages
    messages: list[Message] = []
    if fast:  # UNSET (absent) and null are none, like []
        force = msgspec.structs.force_setattr
        for m in fast:
            other = m.conversation_id
            force(
                m,
                "conversation_id",
                conversation_id if other is None or other == conversation_id else _canonical(other),
            )
        messages = neutral_messages(fast)
    return _neutral_conversation(wire, conversation_id, messages, _LazyConversation(body, messages))


def _fast_messages(body: bytes) -> list[Message]:
    return _fast_conversation(body).messages


def _conversation_messages(wire: SiteAssistConversation) -> list[Message]:
    return _conversation(wire).messages


# --- Responses -------------------------------------------------------------------------------

# A hint beyond a day is a server bug; treat it as unreadable, as parse_retry_after does.
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _seconds(value: object) -> float | None:
    """``details.retryAfter`` in seconds: a number or a numeric string, 0 to a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS else None


def _error_fields(body: object) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """``(message, code, details)`` from an error envelope, each ``None`` when unusable."""
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    if isinstance(error, str):
        return error.strip() or None, None, None
    source: dict[str, Any] = error if isinstance(error, dict) else body
    message, code, details = source.get("message"), source.get("code"), source.get("details")
    return (
        message if isinstance(message, str) and message.strip() else None,
        code if isinstance(code, str) and code else None,
        details if isinstance(details, dict) else None,
    )


def _field_errors(details: Mapping[str, Any] | None, message: str) -> dict[str, list[str]] | None:
    if details is None:
        return None
    field = details.get("field")
    if not isinstance(field, str) or not field:
        return None
    reason = details.get("reason")
    return {field: [reason if isinstance(reason, str) and reason else message]}


def error_from_response(response: Response) -> APIStatusError:
    """Translate a non-2xx SiteAssist response into the most specific error of the tree."""
    body = body_of(response)
    message, code, details = _error_fields(body)
    message = message or fallback_message(response)
    retry_after = _seconds(details.get("retryAfter")) if details is not None else None
    if retry_after is None:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), date=response.headers.get("Date")
        )
    return status_error(
        response.status,
        message,
        provider=NAME,
        headers=response.headers,
        body=body,
        code=code,
        details=details,
        errors=_field_errors(details, message),
        retry_after=retry_after,
        # The documented envelope is {error: {message, code, ...}}.
        documented=isinstance(body, dict) and isinstance(body.get("error"), dict),
    )


def _reader(
    convert: Callable[[SiteAssistConversation], T], fast: Callable[[bytes], T | None]
) -> Callable[[Response], T]:
    return reader(
        provider=NAME,
        expected="a SiteAssist conversation",
        decode=_CONVERSATION.decode,
        convert=convert,
        error=error_from_response,
        fast=fast,
    )


_read_conversation = _reader(_conversation, _fast_conversation)
_read_messages = _reader(_conversation_messages, _fast_messages)


# --- Requests --------------------------------------------------------------------------------


def _get(conversation_id: ConversationId) -> Request:
    return Request(
        method="GET",
        path=CONVERSATION_PATH.format(check_uuid(conversation_id, "conversation_id")),
    )


class SiteAssistProvider(Provider):
    """The SiteAssist adapter: neutral calls to REST requests and back."""

    name: ClassVar[str] = NAME
    default_base_url: ClassVar[str] = "https://api.siteassist.io/v2"
    token_env: ClassVar[str] = "SITEASSIST_API_TOKEN"

    def get_conversation(
        self, conversation_id: ConversationId
    ) -> Call[Conversation[list[Message]]]:
        """Describe ``GET /conversations/{id}``; the id must be a UUID (see `check_uuid`)."""
        return Call(_get(conversation_id), _read_conversation)

    def list_messages(
        self, conversation_id: ConversationId, limit: int | None = None
    ) -> Call[list[Message]]:
        """Describe the messages of one conversation, derived from ``GET /conversations/{id}``.

        SiteAssist has no messages endpoint; the conversation carries all its messages, and
        ``limit`` (at least 1) keeps the first ones.
        """
        request = _get(conversation_id)
        if limit is None:
            return Call(request, _read_messages)
        count = check_int(limit, "limit", minimum=1)
        return Call(request, lambda response: _read_messages(response)[:count])
