"""Loop: one ``GET`` endpoint for a conversation's message history (sans-I/O).

Endpoint (base ``https://ai.platform.loop.health``):

- ``GET /v1/conversations/{id}/messages?limit=N`` -> ``{total, messages: [...]}``

Error bodies are ``{error, message}`` (documented for 404 and 500); every status is read the
same way, mapped by status, with ``error`` as the exception's ``code``. A 429's
``Retry-After`` becomes ``retry_after``.

Loop has no conversation endpoint, no listing and no chat: ``list_conversations``,
``iter_conversations`` and ``chat`` raise ``UnsupportedOperationError`` before any I/O.

Conversation ids are put into the path, so they are checked and encoded first: a ``str`` or
a ``uuid.UUID`` (sent in its canonical lowercase form), 1 to 256 characters, without control,
format, separator or whitespace characters (Unicode categories ``C*`` and ``Z*``), and not
``"."`` or ``".."`` (which clients and proxies resolve as path steps). Everything but RFC 3986
unreserved characters is percent-encoded (``quote(id, safe="")``), so ``/``, ``?``, ``#``,
``%``, ``@`` and look-alikes such as ``"\\u2215"`` stay inside the one path segment.
The path reaches the server byte for byte as encoded here: the transport hands aiohttp an
already-encoded URL (``URL(url, encoded=True)``), so yarl does not re-quote ``%40 %3D %3B
%26`` back into ``@ = ; &``.

"All messages": without ``limit`` no limit is sent, and the server applies its own,
undocumented default. When the answer's ``total`` exceeds the messages it holds, the call
asks once more with ``limit=total`` (two requests in all). It asks at most once: if the
second answer is still short (a server-side maximum), it is returned as it is, and ``total``
on ``Conversation.raw`` tells. (A truncated first answer parses to a ``list`` subclass that
carries ``total`` for ``then``; the follow-up's plain list replaces it.) With a ``limit``,
that is sent, and at most that many messages are returned.

``get_conversation`` is derived from the same endpoint, since Loop has no other:
``Conversation(id=<the id asked for>, provider="loop", messages=<all of them>,
started_at=<earliest created_at>, last_activity_at=<latest created_at>,
cost_tokens=<sum of the messages' total_tokens, None when none has one>, raw=<the decoded
response>)``; every other field is ``None``.

What the decoder accepts where the docs are strict or vague:

- ``tool_calls``, ``token_usage``, ``metadata`` (documented as required) may be absent;
  absent or ``null`` means none (``[]``, ``None``, ``{}``). ``content`` may be ``null`` or
  absent (``None``); ``conversation_id`` absent means the conversation asked for.
- Token counts (documented as ``number``): integers, integral floats (``12.0`` -> 12) and
  numeric strings. A fractional or negative count is refused (``ResponseDecodeError``):
  tokens are whole, and rounding would silently skew ``cost_tokens``. A count missing from
  ``token_usage`` is ``None``.
- ``created_at``: RFC 3339 (``T`` or space separator, any fraction); without an offset it
  is UTC. Unix seconds are accepted too. Absent or ``null``: ``None``.
- ``tool_calls`` items (untyped in the docs): OpenAI-style ``{id, type, function: {name,
  arguments}}`` or flat ``{id, name, arguments}``; ``arguments`` as JSON text or an object.
- A message's undocumented ``tool_call_id`` (OpenAI's message shape) is kept when present.

``raw`` is the decoded :class:`LoopHistory`, values as sent. The neutral messages are built
from it in one pass that converts only what is not already neutral (usage, tool calls,
integer ids, naive timestamps, absent metadata) and otherwise shares the wire's objects:
ids, ``conversation_id`` and content strings, timestamps with an offset, and an object
``metadata`` (the same ``dict`` in ``raw`` and in the neutral message).

The fast path (see :mod:`wemasy_async.providers.wire`) takes a complete history (``total``
at most the messages it holds) whose messages all have a string or absent ``id``, a role
named above, timestamps with an offset and ``tool_calls``, ``token_usage`` and ``metadata``
as documented or ``null``; anything else takes the lenient path above. Its ``raw`` is decoded
from the kept body on first access, and then shares with the neutral messages what the
lenient path shares.

Refused (``ResponseDecodeError``): a missing ``total`` or ``messages`` (``total`` decides
whether the list is complete), a negative ``total``, a role other than ``user``,
``assistant``, ``system`` or ``tool``, and a tool call without an id or a function name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import datetime, timezone
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Final, TypeVar
from urllib.parse import quote
from uuid import UUID

import msgspec

from wemasy_async.errors import (
    APIStatusError,
    InvalidRequestError,
    status_error,
)
from wemasy_async.exchange import Request, Response
from wemasy_async.headers import parse_retry_after
from wemasy_async.models import Conversation, Message, Role, TokenUsage, lazy_raw_type, stored
from wemasy_async.protocols import ConversationId
from wemasy_async.providers.base import Call, Provider
from wemasy_async.providers.wire import (
    Aware,
    OpenAIToolCall,
    body_of,
    fallback_message,
    neutral_messages,
    reader,
    role,
    tool_calls,
)
from wemasy_async.validation import check_int, short_repr

__all__ = [
    "LoopHistory",
    "LoopMessage",
    "LoopProvider",
    "LoopTokenUsage",
    "check_conversation_id",
    "error_from_response",
    "messages_path",
]

NAME: Final = "loop"
MAX_ID_LENGTH: Final = 256

T = TypeVar("T")

Count = Annotated[int, msgspec.Meta(ge=0)]


# --- Wire format -----------------------------------------------------------------------------


class LoopTokenUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Token usage of one message; the docs type the counts as ``number``."""

    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    total_tokens: Count | None = None


class LoopMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the history, with the lenient types described above."""

    id: str | int | None = None
    conversation_id: str | None = None
    role: str
    content: str | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    tool_call_id: str | None = None
    token_usage: LoopTokenUsage | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


class LoopHistory(msgspec.Struct, frozen=True, kw_only=True):
    """The 200 body: ``total`` messages exist, ``messages`` holds the first of them."""

    total: Count
    messages: list[LoopMessage]


# Built once: msgspec compiles the schema at construction. strict=False lets counts arrive
# as integral floats or numeric strings, as the docs' "number" type allows.
_HISTORY = msgspec.json.Decoder(LoopHistory, strict=False)


class _FastUsage(TokenUsage, frozen=True, kw_only=True):
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    total_tokens: Count | None = None


class _FastMessage(Message, frozen=True, kw_only=True):
    """A message in canonical form, decoded straight into a ``Message`` (see the docstring)."""

    # Absent is [] at once, as for SiteAssist; null still arrives as None.
    tool_calls: list[OpenAIToolCall] | None = msgspec.field(  # type: ignore[assignment]
        default_factory=list
    )
    usage: _FastUsage | None = msgspec.field(default=None, name="token_usage")
    created_at: Aware | None = None
    metadata: dict[str, Any] | None = None  # type: ignore[assignment]


class _FastHistory(msgspec.Struct, frozen=True, kw_only=True):
    total: Count
    messages: list[_FastMessage]


_FAST_HISTORY = msgspec.json.Decoder(_FastHistory, strict=False)


# --- Ids and requests ------------------------------------------------------------------------


def _invalid(expected: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(
        f"conversation_id must be {expected}, got {short_repr(value)} ({type(value).__name__})",
        argument="conversation_id",
    )


def check_conversation_id(value: object) -> str:
    """Return ``value`` as the id string to send, or raise ``InvalidRequestError``.

    Accepts a ``str`` (as given) or a ``uuid.UUID`` (canonical lowercase form); see the
    module docstring for what a string may hold.
    """
    if isinstance(value, UUID):
        return str(value)
    if not isinstance(value, str) or not value:
        raise _invalid("a non-empty string or a UUID", value)
    if len(value) > MAX_ID_LENGTH:
        raise _invalid(f"at most {MAX_ID_LENGTH} characters long", value)
    if any(unicodedata.category(char)[0] in "CZ" for char in value):
        raise _invalid("free of control, format, separator and whitespace characters", value)
    if value in (".", ".."):
        # "." and ".." would be resolved away by URL normalisation, changing the path.
        raise _invalid("more than a dot path segment", value)
    return value


def messages_path(conversation_id: str) -> str:
    """The percent-encoded path of a checked id's history: always exactly one segment."""
    return f"/v1/conversations/{quote(conversation_id, safe='')}/messages"


def _request(conversation_id: str, limit: int | None) -> Request:
    query = () if limit is None else (("limit", str(limit)),)
    return Request(method="GET", path=messages_path(conversation_id), query=query)


# --- Wire to neutral -------------------------------------------------------------------------


class _PartialMessages(list[Message]):
    """Messages of an answer whose ``total`` says there are more; asks for a follow-up."""

    __slots__ = ("total",)

    def __init__(self, messages: list[Message], total: int) -> None:
        super().__init__(messages)
        self.total = total


_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
}


def _messages(history: LoopHistory, conversation_id: str) -> list[Message]:
    """The neutral messages; one pass, converting only the fields that are not canonical.

    ``id``, ``conversation_id``, ``content``, ``created_at`` with an offset and an object
    ``metadata`` are the wire's own objects (shared with ``raw``); only usage, tool calls,
    naive timestamps and absent metadata make new ones.
    """
    roles, utc_zone, neutral_usage = _ROLES, timezone.utc, TokenUsage
    try:
        return [
            Message(
                id=m.id if m.id is None or type(m.id) is str else str(m.id),
                conversation_id=m.conversation_id or conversation_id,
                role=roles[m.role],
                content=m.content,
                tool_calls=[] if m.tool_calls is None else tool_calls(m.tool_calls),
                tool_call_id=m.tool_call_id,
                usage=(
                    None
                    if m.token_usage is None
                    else neutral_usage(
                        prompt_tokens=m.token_usage.prompt_tokens,
                        completion_tokens=m.token_usage.completion_tokens,
                        total_tokens=m.token_usage.total_tokens,
                    )
                ),
                created_at=(
                    m.created_at
                    if m.created_at is None or m.created_at.tzinfo is not None
                    else m.created_at.replace(tzinfo=utc_zone)
                ),
                metadata={} if m.metadata is None else m.metadata,
            )
            for m in history.messages
        ]
    except KeyError:
        # roles[...] is the only lookup that can fail: report the first unknown role.
        for m in history.messages:
            role(m.role, roles)  # raises Malformed for a role that is not in roles
        raise


def _fast_messages(body: bytes, conversation_id: str) -> list[Message] | None:
    """The fast path's messages of a complete history, or ``None``."""
    history = _FAST_HISTORY.decode(body)
    messages = history.messages
    if history.total > len(messages):
        return None
    force = msgspec.structs.force_setattr
    for m in messages:
        if not m.conversation_id:
            force(m, "conversation_id", conversation_id)
    return neutral_messages(messages)


def _share(history: LoopHistory, messages: list[Message]) -> LoopHistory:
    """Give the lazily decoded ``history`` the neutral messages' objects the lenient path
    shares."""
    force = msgspec.structs.force_setattr
    for w, m in zip(history.messages, messages, strict=True):
        force(w, "id", m.id)  # a string or None on the fast path
        if w.conversation_id:
            force(w, "conversation_id", m.conversation_id)
        force(w, "content", m.content)
        force(w, "tool_call_id", m.tool_call_id)
        force(w, "created_at", m.created_at)  # aware on the fast path
        if w.metadata is not None:
            force(w, "metadata", m.metadata)
    return history


_LazyHistory = lazy_raw_type(
    LoopHistory, lambda body, messages: _share(_HISTORY.decode(body), messages)
)


def _fast_conversation(body: bytes, conversation_id: str) -> Conversation[list[Message]] | None:
    messages = _fast_messages(body, conversation_id)
    if messages is None:
        return None
    return _aggregate(messages, conversation_id, _LazyHistory(body, messages))


_CREATED_AT = attrgetter("created_at")
_USAGE = attrgetter("usage")
_TOTAL_TOKENS = attrgetter("total_tokens")


def _conversation(history: LoopHistory, conversation_id: str) -> Conversation[list[Message]]:
    return _aggregate(_messages(history, conversation_id), conversation_id, history)


def _aggregate(
    messages: list[Message], conversation_id: str, raw: object
) -> Conversation[list[Message]]:
    # map/filter/count run in C; a datetime and a TokenUsage are always true, and
    # filter(None, ...) dropping zero counts does not change their sum.
    times = list(filter(None, map(_CREATED_AT, messages)))
    totals = list(map(_TOTAL_TOKENS, filter(None, map(_USAGE, messages))))
    cost_tokens = None if totals.count(None) == len(totals) else sum(filter(None, totals))
    return Conversation(
        id=conversation_id,
        provider=NAME,
        started_at=min(times, default=None),
        last_activity_at=max(times, default=None),
        cost_tokens=cost_tokens,
        messages=messages,
        raw=raw,
    )


def _truncated(history: LoopHistory) -> bool:
    return history.total > len(history.messages)


# --- Responses -------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def error_from_response(response: Response) -> APIStatusError:
    """Translate a non-2xx Loop response into the most specific error of the tree.

    ``{error, message}`` gives ``code`` and message; an ``error`` object
    ``{code, message}`` is read too. Anything else falls back to the reason phrase.
    """
    body = body_of(response)
    code: str | None = None
    message: str | None = None
    documented = False
    if isinstance(body, dict):
        # The documented body is {error: string, message: string}.
        documented = isinstance(body.get("error"), str) and isinstance(body.get("message"), str)
        error = body.get("error")
        if isinstance(error, dict):
            code, message = _text(error.get("code")), _text(error.get("message"))
        else:
            code = _text(error)
        message = _text(body.get("message")) or message
    return status_error(
        response.status,
        message or fallback_message(response),
        provider=NAME,
        headers=response.headers,
        body=body,
        code=code,
        retry_after=parse_retry_after(
            response.headers.get("Retry-After"), date=response.headers.get("Date")
        ),
        documented=documented,
    )


def _reader(
    convert: Callable[[LoopHistory], T], fast: Callable[[bytes], T | None] | None = None
) -> Callable[[Response], T]:
    return reader(
        provider=NAME,
        expected="a Loop message history",
        decode=_HISTORY.decode,
        convert=convert,
        error=error_from_response,
        fast=fast,
    )


# --- The adapter -----------------------------------------------------------------------------


def _all_messages(conversation_id: str) -> Call[list[Message]]:
    def first(history: LoopHistory) -> list[Message]:
        messages = _messages(history, conversation_id)
        return _PartialMessages(messages, history.total) if _truncated(history) else messages

    def then(result: list[Message]) -> Call[list[Message]] | None:
        if not isinstance(result, _PartialMessages):
            return None
        # No then: the follow-up's answer is final, whatever its total says.
        return Call(
            _request(conversation_id, result.total),
            _reader(lambda history: _messages(history, conversation_id)),
        )

    return Call(
        _request(conversation_id, None),
        _reader(first, lambda body: _fast_messages(body, conversation_id)),
        then,
    )


def _first_messages(conversation_id: str, limit: int) -> Call[list[Message]]:
    # A server that ignores the limit must not hand the caller more than asked for.
    return Call(
        _request(conversation_id, limit),
        _reader(lambda history: _messages(history, conversation_id)[:limit]),
    )


class LoopProvider(Provider):
    """The Loop adapter: message history by conversation id, and conversations derived from it."""

    name: ClassVar[str] = NAME
    default_base_url: ClassVar[str] = "https://ai.platform.loop.health"
    token_env: ClassVar[str] = "LOOP_API_TOKEN"

    def get_conversation(
        self, conversation_id: ConversationId
    ) -> Call[Conversation[list[Message]]]:
        """Describe reading every message of a conversation, as a derived ``Conversation``.

        Raises:
            InvalidRequestError: The id is not a valid Loop id.
        """
        checked = check_conversation_id(conversation_id)
        read = _reader(
            lambda history: _conversation(history, checked),
            lambda body: _fast_conversation(body, checked),
        )

        def then(result: Conversation[list[Message]]) -> Call[Conversation[list[Message]]] | None:
            # A lazy raw is never truncated (the fast path takes complete histories only).
            history = stored(result)
            if not isinstance(history, LoopHistory) or not _truncated(history):
                return None
            return Call(_request(checked, history.total), read)

        return Call(_request(checked, None), read, then)

    def list_messages(
        self, conversation_id: ConversationId, limit: int | None = None
    ) -> Call[list[Message]]:
        """Describe ``GET /v1/conversations/{id}/messages``: all messages, or the first ``limit``.

        Raises:
            InvalidRequestError: The id is not a valid Loop id, or ``limit`` is not an
                integer >= 1.
        """
        checked = check_conversation_id(conversation_id)
        if limit is None:
            return _all_messages(checked)
        return _first_messages(checked, check_int(limit, "limit", minimum=1))
