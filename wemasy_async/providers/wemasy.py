"""Wemasy: POST-RPC with ``{success, data}`` envelopes and integer ids (sans-I/O).

Endpoints (base ``https://api.wemasy.nl/api``), all ``POST`` with a JSON body:

- ``/services/ai/v1/conversations/get``  ``{conversation_id}`` -> ``{success, data}``
- ``/services/ai/v1/conversations/list`` ``{agent_id, search, per_page, page}`` ->
  ``{success, data: [...], pagination}``
- ``/services/ai/v1/chat`` ``{message, conversation_id, ..., tool_call_id, tool_result}`` ->
  ``{success, data: {content, model, usage, conversation_id, tool_calls}}``

Error bodies: ``{success: false, message}`` (404, 500), ``{message, errors}`` (422),
``{error: true, message}`` (401, 403, 429).

What the decoder accepts where the docs are vague (they type most fields as ``string``):

- ``id``, ``cost_tokens``, ``conversation_id``, token counts: an integer or a numeric string.
- ``cost_amount``: a decimal string (``"0.0247"``, Laravel's decimal cast) or a JSON number;
  kept exact as ``Decimal``. ``NaN`` and ``Infinity`` are refused.
- ``started_at``, ``ended_at``, ``created_at``: RFC 3339 (``T`` or space separator, with or
  without fraction) or Unix seconds; a timestamp without an offset is taken as UTC.
- ``messages``: a list of message objects, the same list JSON-encoded as a string, ``""`` or
  ``null``. Absent from a list item means "not included" (``None``), not "none"; absent
  from a ``conversations/get`` answer, which always includes them, means none (``[]``).
- ``usage``: ``{prompt_tokens, completion_tokens, total_tokens}``, that object
  JSON-encoded as a string, or a bare number (taken as the total).
- ``tool_calls`` ("mixed"): a list of OpenAI-style calls
  ``{id, type, function: {name, arguments}}`` (also the flat ``{id, name, arguments}``), a
  single such object, the list JSON-encoded as a string, ``""`` or ``null``; ``arguments``
  may be JSON text or an object.
- ``metadata``: an object; PHP's empty array ``[]`` counts as ``{}``.
- Message roles ``user``, ``assistant``, ``system``, ``tool``, plus the synonyms
  ``function`` (as ``tool``) and ``developer`` (as ``system``).
- The list request's ``page`` is not in the documented body; Laravel's paginator reads it
  from the request input, so it is sent in the JSON body.

``raw`` is the decoded :class:`WemasyConversation` (or :class:`WemasyChatData`), values as
sent. The neutral models are built from it in one pass that converts only what is not
already neutral (integer ids, synonym roles, tool calls, usage given as a number or text,
naive timestamps, ``[]`` metadata) and otherwise shares the wire's objects: content and
other strings, timestamps that have an offset, the usage object (:data:`WemasyUsage` *is*
:class:`~wemasy_async.models.TokenUsage`, immutable) and an object ``metadata`` (the same
``dict`` in ``raw`` and in the neutral message). Messages that name the conversation share
one ``conversation_id`` string. So holding a ``Conversation`` costs little more than its
wire object (``benchmarks/memory.py``).

The fast path (see :mod:`wemasy_async.providers.wire`) takes a ``conversations/get`` body whose
messages all have an ``id``, a neutral role, ``tool_calls`` as a list or ``null``,
``usage`` as an object or ``null``, timestamps with an offset and an object (or ``null``)
``metadata``, and whose ``messages`` is a list or ``null``; anything else takes the lenient
path above. Its ``raw`` is decoded from the kept body on first access, and then shares with
the neutral messages what the lenient path shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from wemasy_async.errors import (
    APIStatusError,
    InvalidRequestError,
    status_error,
)
from wemasy_async.exchange import Request, Response
from wemasy_async.headers import parse_retry_after
from wemasy_async.models import (
    ChatReply,
    Conversation,
    Message,
    Page,
    Role,
    TokenUsage,
    ToolCall,
    lazy_raw_type,
)
from wemasy_async.protocols import ConversationId
from wemasy_async.providers.base import Call, ChatParams, ListConversationsParams, Provider
from wemasy_async.providers.wire import (
    DECODE_ERRORS,
    Aware,
    Malformed,
    OpenAIToolCall,
    body_of,
    decode_failure,
    fallback_message,
    neutral_messages,
    reader,
    role,
    tool_calls,
    utc,
)
from wemasy_async.validation import (
    check_bool,
    check_int,
    check_integer_id,
    check_number,
    check_text,
    check_tools,
)

__all__ = [
    "WemasyConversation",
    "WemasyMessage",
    "WemasyProvider",
    "WemasyUsage",
]

NAME = "wemasy"
GET_PATH = "/services/ai/v1/conversations/get"
LIST_PATH = "/services/ai/v1/conversations/list"
CHAT_PATH = "/services/ai/v1/chat"

T = TypeVar("T")
M = TypeVar("M", list[Message], list[Message] | None)  # a get's messages, a list item's


# --- Wire format -----------------------------------------------------------------------------


WemasyUsage = TokenUsage
"""Token usage as Wemasy sends it: ``{prompt_tokens, completion_tokens, total_tokens}``.

The wire object already has the neutral shape, so it is the neutral :class:`TokenUsage`
itself, and ``raw`` and the neutral message share one (immutable) object.
"""


ToolCallsWire = list[OpenAIToolCall] | OpenAIToolCall | str | None
UsageWire = WemasyUsage | int | str | None


class WemasyMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A conversation message as Wemasy sends it (the docs leave its shape open)."""

    id: int | str | None = None
    conversation_id: int | str | None = None
    role: str
    content: str | None = None
    tool_calls: ToolCallsWire = None
    tool_call_id: str | None = None
    usage: UsageWire = None
    created_at: datetime | None = None
    metadata: dict[str, Any] | list[Any] | None = None


class WemasyConversation(msgspec.Struct, frozen=True, kw_only=True):
    """A conversation exactly as documented, with the lenient types described above."""

    id: int
    agent_id: str | None = None
    status: str | None = None
    goal: str | None = None
    cost_tokens: int | None = None
    cost_amount: Decimal | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # UNSET when the key is absent (list responses leave messages out), unlike null.
    messages: list[WemasyMessage] | str | msgspec.UnsetType | None = msgspec.UNSET


class WemasyPagination(msgspec.Struct, frozen=True, kw_only=True):
    current_page: int
    last_page: int
    per_page: int
    total: int


class WemasyChatData(msgspec.Struct, frozen=True, kw_only=True):
    content: str | None = None
    model: str | None = None
    usage: UsageWire = None
    conversation_id: int | str | None = None
    tool_calls: ToolCallsWire = None


class _Envelope(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    success: bool = True
    message: str | None = None
    data: T


class _ListEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    message: str | None = None
    data: list[WemasyConversation]
    pagination: WemasyPagination | None = None


class _GetBody(msgspec.Struct, frozen=True):
    conversation_id: int


class _ListBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    # per_page and page have no defaults, so they are always sent: the server's own default
    # page size is undocumented and must not silently replace the caller's.
    per_page: int
    page: int
    agent_id: str | None = None
    search: str | None = None


class _ChatBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    message: str | None = None
    conversation_id: int | None = None
    connection_id: int | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    use_tools: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    tool_result: str | None = None


# One decoder per response type, built once: msgspec compiles the schema at construction.
# strict=False lets numbers arrive as strings, as the docs' "string" types suggest they may.
_CONVERSATION = msgspec.json.Decoder(_Envelope[WemasyConversation], strict=False)
_LIST = msgspec.json.Decoder(_ListEnvelope, strict=False)
_CHAT = msgspec.json.Decoder(_Envelope[WemasyChatData], strict=False)
_MESSAGES = msgspec.json.Decoder(list[WemasyMessage], strict=False)
_TOOL_CALLS = msgspec.json.Decoder(list[OpenAIToolCall] | OpenAIToolCall | None, strict=False)
_USAGE = msgspec.json.Decoder(WemasyUsage | int | None, strict=False)


class _FastMessage(Message, frozen=True, kw_only=True):
    """A message in canonical form, decoded straight into a ``Message`` (see the docstring)."""

    # Typed as on the wire (strict=False would turn "07" into 7) and made text, as the
    # lenient path does, before the class becomes Message.
    id: int | str  # type: ignore[assignment]
    conversation_id: int | str | None = None  # type: ignore[assignment]
    # Absent is [] at once, as for SiteAssist; null still arrives as None.
    tool_calls: list[OpenAIToolCall] | None = msgspec.field(  # type: ignore[assignment]
        default_factory=list
    )
    created_at: Aware | None = None
    metadata: dict[str, Any] | None = None  # type: ignore[assignment]


class _FastConversation(WemasyConversation, frozen=True, kw_only=True):
    messages: list[_FastMessage] | msgspec.UnsetType | None = msgspec.UNSET  # type: ignore[assignment]


_FAST_CONVERSATION = msgspec.json.Decoder(_Envelope[_FastConversation], strict=False)


def _plain(value: Any) -> Any:
    """Encode hook: callers' tool definitions may use any Mapping, not only dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_ENCODER = msgspec.json.Encoder(enc_hook=_plain)


# --- Wire to neutral -------------------------------------------------------------------------


_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "developer": "system",
}


def _text_id(value: int | str | None) -> str | None:
    return None if value is None else str(value)


def _decode_embedded(decoder: msgspec.json.Decoder[Any], text: str, field: str) -> Any:
    """Decode a field that arrived JSON-encoded inside a string."""
    if not text.strip():
        return None
    try:
        return decoder.decode(text)
    except DECODE_ERRORS as exc:
        raise Malformed(
            f"{field} is a string that is not the expected JSON: {decode_failure(exc, text)}"
        ) from exc


def _tool_calls(value: ToolCallsWire) -> list[ToolCall]:
    if isinstance(value, str):
        return _tool_calls(_decode_embedded(_TOOL_CALLS, value, "tool_calls"))
    return tool_calls([value] if isinstance(value, OpenAIToolCall) else value)


def _usage(value: UsageWire) -> TokenUsage | None:
    if value is None or isinstance(value, TokenUsage):
        # The wire object already is the neutral one (WemasyUsage is TokenUsage): shared.
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return TokenUsage(total_tokens=int(text))
        return _usage(_decode_embedded(_USAGE, text, "usage"))
    return TokenUsage(total_tokens=value)


def _metadata(value: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
    if isinstance(value, list):  # PHP encodes an empty associative array as []
        return {"items": value} if value else {}
    return value or {}


def _other_id(value: int | str, conversation_id: str) -> str:
    # The rare message whose conversation_id is not the conversation's integer id.
    return str(value) or conversation_id


def _messages(
    wire: list[WemasyMessage] | str | None, wire_id: int, conversation_id: str
) -> list[Message]:
    """The neutral messages; one pass, converting only the fields that are not canonical.

    ``conversation_id`` (the conversation's id as text) is shared by every message that
    names that conversation, or none; ``created_at`` is shared when it has an offset,
    ``usage`` always (see ``_usage``), ``content`` and an object ``metadata`` are the wire's
    own objects. Only ids, roles that are synonyms, tool calls, naive timestamps and
    ``[]`` metadata are converted.
    """
    decoded: list[WemasyMessage] | None = (
        _decode_embedded(_MESSAGES, wire, "messages") if isinstance(wire, str) else wire
    )
    if not decoded:
        return []
    roles, utc_zone, neutral_usage = _ROLES, timezone.utc, TokenUsage
    try:
        return [
            Message(
                id=None if m.id is None else str(m.id),
                conversation_id=(
                    conversation_id
                    if m.conversation_id is None or m.conversation_id == wire_id
                    else _other_id(m.conversation_id, conversation_id)
                ),
                role=roles[m.role],
                content=m.content,
                tool_calls=[] if m.tool_calls is None else _tool_calls(m.tool_calls),
                tool_call_id=m.tool_call_id,
                usage=(
                    m.usage
                    if m.usage is None or type(m.usage) is neutral_usage
                    else _usage(m.usage)
                ),
                created_at=(
                    m.created_at
                    if m.created_at is None or m.created_at.tzinfo is not None
                    else m.created_at.replace(tzinfo=utc_zone)
                ),
                metadata=m.metadata if type(m.metadata) is dict else _metadata(m.metadata),
            )
            for m in decoded
        ]
    except KeyError:
        # roles[...] is the only lookup that can fail: report the first unknown role.
        for m in decoded:
            role(m.role, roles)  # raises Malformed for a role that is not in roles
        raise


def _listed_conversation(wire: WemasyConversation) -> Conversation:
    """A list item: messages absent are "not included" (``None``)."""
    conversation_id = str(wire.id)
    messages = (
        None
        if wire.messages is msgspec.UNSET
        else _messages(wire.messages, wire.id, conversation_id)
    )
    return _neutral_conversation(wire, conversation_id, messages, wire)


def _conversation(wire: WemasyConversation) -> Conversation[list[Message]]:
    """A ``conversations/get`` answer: messages absent are none (``[]``)."""
    conversation_id = str(wire.id)
    messages = _messages(wire.messages or None, wire.id, conversation_id)
    return _neutral_conversation(wire, conversation_id, messages, wire)


def _neutral_conversation(
    wire: WemasyConversation, conversation_id: str, messages: M, raw: object
) -> Conversation[M]:
    if wire.cost_amount is not None and not wire.cost_amount.is_finite():
        # Decimal reads "NaN" and "Infinity" too; neither is an amount anyone was charged.
        raise Malformed(f"cost_amount is {wire.cost_amount}, not a finite amount")
    return Conversation(
        id=conversation_id,
        provider=NAME,
        status=wire.status,
        agent_id=wire.agent_id,
        goal=wire.goal,
        started_at=utc(wire.started_at),
        ended_at=utc(wire.ended_at),
        cost_tokens=wire.cost_tokens,
        cost_amount=wire.cost_amount,
        messages=messages,
        raw=raw,
    )


def _share(wire: WemasyConversation, messages: list[Message]) -> WemasyConversation:
    """Give the lazily decoded ``wire`` the neutral messages' objects the lenient path shares."""
    if isinstance(wire.messages, list) and messages:
        force = msgspec.structs.force_setattr
        for w, m in zip(wire.messages, messages, strict=True):
            force(w, "content", m.content)
            force(w, "tool_call_id", m.tool_call_id)
            force(w, "usage", m.usage)  # always a TokenUsage or None on the fast path
            force(w, "created_at", m.created_at)  # always aware on the fast path
            if isinstance(w.metadata, dict):
                force(w, "metadata", m.metadata)
    return wire


_LazyConversation = lazy_raw_type(
    WemasyConversation,
    lambda body, messages: _share(_CONVERSATION.decode(body).data, messages),
)


def _fast_conversation(body: bytes) -> Conversation[list[Message]] | None:
    """The fast path of ``conversations/get`` (see the module docstring), or ``None``."""
    envelope = _FAST_CONVERSATION.decode(body)
    wire = envelope.data
    if not envelope.success:
        return None
    conversation_id = str(wire.id)
    fast = wire.messages
    messages: list[Message] = []
    if fast:  # UNSET (absent) and null are none, like []
        wire_id, force = wire.id, msgspec.structs.force_setattr
        for m in fast:
            force(m, "id", str(m.id))
            other = m.conversation_id
            force(
                m,
                "conversation_id",
                conversation_id
                if other is None or other == wire_id
                else _other_id(other, conversation_id),
            )
        messages = neutral_messages(fast)
    return _neutral_conversation(wire, conversation_id, messages, _LazyConversation(body, messages))


def _page(envelope: _ListEnvelope, requested: ListConversationsParams) -> Page[Conversation]:
    if not envelope.success:
        raise Malformed(f"success is false: {envelope.message or 'no message'}")
    items = [_listed_conversation(c) for c in envelope.data]
    pagination = envelope.pagination
    if pagination is None:  # undocumented, but then this page is all there is
        return Page(
            items=items,
            page=requested.page,
            last_page=requested.page,
            per_page=requested.per_page,
            total=len(items),
        )
    return Page(
        items=items,
        page=pagination.current_page,
        last_page=pagination.last_page,
        per_page=pagination.per_page,
        total=pagination.total,
    )


def _chat_reply(data: WemasyChatData) -> ChatReply:
    return ChatReply(
        content=data.content,
        model=data.model,
        usage=_usage(data.usage),
        conversation_id=_text_id(data.conversation_id),
        tool_calls=_tool_calls(data.tool_calls),
        raw=data,
    )


# --- Responses -------------------------------------------------------------------------------


def error_from_response(response: Response) -> APIStatusError:
    """Translate a non-2xx Wemasy response into the most specific error of the tree.

    ``message`` and ``errors`` are read from any JSON object: the docs type ``errors`` only as
    "object", so per-field values that are not strings or lists of strings are kept as sent
    rather than costing the message.
    """
    body = body_of(response)
    message: str | None = None
    errors: dict[str, Any] | None = None
    documented = False
    if isinstance(body, dict):
        text = body.get("message")
        # A blank message says nothing: fall back to the reason phrase, as for none.
        message = text if isinstance(text, str) and text.strip() else None
        fields = body.get("errors")
        if isinstance(fields, dict):
            errors = {k: [v] if isinstance(v, str) else v for k, v in fields.items()}
        # The documented 404 is {success: false, message}.
        documented = body.get("success") is False and isinstance(text, str)
    return status_error(
        response.status,
        message or fallback_message(response),
        provider=NAME,
        headers=response.headers,
        body=body,
        errors=errors,
        retry_after=parse_retry_after(
            response.headers.get("Retry-After"), date=response.headers.get("Date")
        ),
        documented=documented,
    )


def _ok(envelope: _Envelope[T]) -> T:
    if not envelope.success:
        raise Malformed(f"success is false: {envelope.message or 'no message'}")
    return envelope.data


def _reader(
    decoder: msgspec.json.Decoder[Any],
    expected: str,
    convert: Callable[[Any], T],
    fast: Callable[[bytes], T | None] | None = None,
) -> Callable[[Response], T]:
    return reader(
        provider=NAME,
        expected=expected,
        decode=decoder.decode,
        convert=convert,
        error=error_from_response,
        fast=fast,
    )


_read_conversation = _reader(
    _CONVERSATION,
    "a Wemasy conversation envelope",
    lambda e: _conversation(_ok(e)),
    _fast_conversation,
)


def _fast_messages(body: bytes) -> list[Message] | None:
    conversation = _fast_conversation(body)
    return None if conversation is None else conversation.messages


_read_messages = _reader(
    _CONVERSATION,
    "a Wemasy conversation envelope",
    # absent or null: none
    lambda e: _messages(_ok(e).messages or None, e.data.id, str(e.data.id)),
    _fast_messages,
)
_read_chat = _reader(_CHAT, "a Wemasy chat reply envelope", lambda e: _chat_reply(_ok(e)))


# --- Requests --------------------------------------------------------------------------------


def _post(path: str, body: msgspec.Struct, *, idempotent: bool = True) -> Request:
    try:
        encoded = _ENCODER.encode(body)
    except (TypeError, ValueError, msgspec.EncodeError, RecursionError) as exc:
        # Only user-supplied tool definitions can hold values JSON cannot encode (every other
        # argument was checked): objects, lone surrogates (UnicodeEncodeError is a
        # ValueError), a dict that contains itself (RecursionError).
        raise InvalidRequestError(
            f"tools must contain only JSON values: {exc}", argument="tools"
        ) from exc
    return Request(method="POST", path=path, body=encoded, idempotent=idempotent)


def _optional_text(value: object, argument: str, *, one_line: bool = False) -> str | None:
    return None if value is None else check_text(value, argument, one_line=one_line)


class WemasyProvider(Provider):
    """The Wemasy adapter: neutral calls to POST-RPC requests and back."""

    name: ClassVar[str] = NAME
    default_base_url: ClassVar[str] = "https://api.wemasy.nl/api"
    token_env: ClassVar[str] = "WEMASY_API_TOKEN"

    def get_conversation(
        self, conversation_id: ConversationId
    ) -> Call[Conversation[list[Message]]]:
        """Describe ``conversations/get``; the id must be a positive integer."""
        body = _GetBody(check_integer_id(conversation_id, "conversation_id"))
        return Call(_post(GET_PATH, body), _read_conversation)

    def list_messages(
        self, conversation_id: ConversationId, limit: int | None = None
    ) -> Call[list[Message]]:
        """Describe the messages of one conversation, read from ``conversations/get``.

        Wemasy has no messages endpoint; the conversation carries all its messages, and
        ``limit`` keeps the first ones.
        """
        body = _GetBody(check_integer_id(conversation_id, "conversation_id"))
        if limit is None:
            return Call(_post(GET_PATH, body), _read_messages)
        count = check_int(limit, "limit", minimum=1)
        return Call(_post(GET_PATH, body), lambda response: _read_messages(response)[:count])

    def list_conversations(self, params: ListConversationsParams) -> Call[Page[Conversation]]:
        """Describe ``conversations/list``: ``per_page`` 1..100, ``page`` >= 1."""
        body = _ListBody(
            agent_id=_optional_text(params.agent_id, "agent_id", one_line=True),
            search=_optional_text(params.search, "search", one_line=True),
            per_page=check_int(params.per_page, "per_page", minimum=1, maximum=100),
            page=check_int(params.page, "page", minimum=1),
        )
        return Call(
            _post(LIST_PATH, body), _reader(_LIST, "a Wemasy list envelope", _page_of(params))
        )

    def chat(self, params: ChatParams) -> Call[ChatReply]:
        """Describe ``chat``: a message, or a tool result for a pending tool call.

        The request is marked non-idempotent: a retry after an ambiguous failure could
        deliver the message twice.
        """
        return Call(_post(CHAT_PATH, _chat_body(params), idempotent=False), _read_chat)


def _page_of(params: ListConversationsParams) -> Callable[[_ListEnvelope], Page[Conversation]]:
    return lambda envelope: _page(envelope, params)


def _chat_body(p: ChatParams) -> _ChatBody:
    message = _optional_text(p.message, "message")
    tool_call_id = _optional_text(p.tool_call_id, "tool_call_id", one_line=True)
    tool_result = _optional_text(p.tool_result, "tool_result")
    conversation_id = (
        None
        if p.conversation_id is None
        else check_integer_id(p.conversation_id, "conversation_id")
    )
    if (tool_call_id is None) != (tool_result is None):
        missing = "tool_result" if tool_result is None else "tool_call_id"
        raise InvalidRequestError(
            "tool_call_id and tool_result must be given together", argument=missing
        )
    if tool_call_id is not None and conversation_id is None:
        raise InvalidRequestError(
            "a tool result needs the conversation_id of the tool call", argument="conversation_id"
        )
    if message is None and tool_call_id is None:
        raise InvalidRequestError(
            "chat needs a message, or a tool_call_id with its tool_result", argument="message"
        )
    return _ChatBody(
        message=message,
        conversation_id=conversation_id,
        connection_id=(
            None if p.connection_id is None else check_integer_id(p.connection_id, "connection_id")
        ),
        model=_optional_text(p.model, "model", one_line=True),
        temperature=(
            None
            if p.temperature is None
            else check_number(p.temperature, "temperature", minimum=0.0, maximum=2.0)
        ),
        max_tokens=None
        if p.max_tokens is None
        else check_int(p.max_tokens, "max_tokens", minimum=1),
        use_tools=None if p.use_tools is None else check_bool(p.use_tools, "use_tools"),
        tools=None if p.tools is None else check_tools(p.tools),
        tool_call_id=tool_call_id,
        tool_result=tool_result,
    )
