"""Provider-neutral models: what every provider's responses are translated into.

All models are frozen, keyword-only ``msgspec.Struct`` types: cheap to build, hashable where
their fields are, and safe to share between tasks. Ids are always ``str`` here, whatever the
provider uses on the wire (Wemasy's integers become ``"27"``). Timestamps are timezone-aware
``datetime`` objects in UTC when the provider sends a naive one. Fields a provider does not
have are ``None``; the provider's own decoded wire object stays reachable as ``raw``.

A ``Conversation``'s ``raw`` may be decoded on first access: a provider whose body decodes
straight into the neutral models keeps the body, not a second set of objects, until someone
reads ``raw`` (see :class:`LazyRaw` below); what ``raw`` returns, and how the
``Conversation`` compares, hashes, prints, pickles and encodes, is the same either way.

Neutral models share what is already neutral with ``raw`` rather than copy it: strings,
aware timestamps, immutable usage objects, and ``metadata`` dicts (a message's ``metadata``
may be the very ``dict`` its ``raw`` counterpart holds; copy it before changing it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import msgspec

__all__ = [
    "ChatReply",
    "Conversation",
    "Message",
    "Page",
    "Role",
    "TokenUsage",
    "ToolCall",
]

Role = Literal["user", "assistant", "system", "tool"]
"""Who wrote a message. Providers' synonyms are mapped onto these four."""

T = TypeVar("T")


class TokenUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens a model call consumed; any count a provider leaves out is ``None``."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A function call the assistant asks the caller to run.

    Answer it with ``client.chat(conversation_id=..., tool_call_id=call.id, tool_result=...)``.

    Attributes:
        id: The provider's id for this call; send it back with the result.
        name: The function name.
        arguments: The arguments as the JSON text the model produced (it may be invalid JSON;
            models do that). :meth:`parsed_arguments` decodes it.
        type: The tool type; ``"function"`` for every provider today.
    """

    id: str
    name: str
    arguments: str = "{}"
    type: str = "function"

    def parsed_arguments(self) -> Any:
        """Decode :attr:`arguments` as JSON.

        Raises:
            msgspec.DecodeError: The model produced text that is not JSON.
        """
        return msgspec.json.decode(self.arguments)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a conversation."""

    id: str | None = None
    conversation_id: str | None = None
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    tool_call_id: str | None = None
    usage: TokenUsage | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


# --- A raw field decoded on first access (the providers' fast path) ------------------------
#
# Internal: the providers create LazyRaw objects; Conversation.raw is such a field.
#
# A provider whose response body decodes straight into the neutral models keeps the body,
# not a second object graph, and puts a :class:`LazyRaw` in ``Conversation.raw``. The field's
# descriptor (:func:`install`) decodes the wire object on first attribute access, stores it
# in the field and returns it, so ``conversation.raw`` is exactly what an eager decode would
# have given (same type, equal value). What reads the field without ``getattr`` sees the
# :class:`LazyRaw`, which behaves as the wire object would:
#
# - ``==``, ``hash`` and ``repr`` are the wire object's;
# - ``pickle`` and ``copy`` give the wire object itself (a round trip holds it decoded);
# - ``msgspec.json.encode``, ``msgspec.msgpack.encode`` and ``msgspec.to_builtins`` see a
#   dataclass whose fields are the wire Struct's encoded names, in order, so they write what
#   encoding the wire Struct writes (``UNSET`` fields left out).
#
# Only ``msgspec.structs.asdict``/``astuple`` hand out the :class:`LazyRaw` itself.

_PENDING: Any = object()
_LOCK = threading.Lock()


class LazyRaw:
    """A wire object still to decode: the body, and what ``resolve`` shares with it."""

    __slots__ = ("_body", "_context", "_value")

    # Set by lazy_raw_type: bytes and context -> the wire object.
    _resolve: ClassVar[Callable[[bytes, Any], object]]

    def __init__(self, body: bytes, context: Any = None) -> None:
        self._body = body
        self._context = context
        self._value = _PENDING

    def resolved(self) -> Any:
        """The wire object, decoded once (the first caller decodes; the body is dropped)."""
        value = self._value
        if value is _PENDING:
            with _LOCK:
                value = self._value
                if value is _PENDING:
                    value = self._value = type(self)._resolve(self._body, self._context)
                    self._body = b""
                    self._context = None
        return value

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not slots: the encoded field names msgspec reads.
        fields: dict[str, str] = type(self).__dict__.get("_names", {})
        if name not in fields:
            raise AttributeError(name)
        return getattr(self.resolved(), fields[name])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRaw):
            other = other.resolved()
        result: bool = self.resolved() == other
        return result

    def __hash__(self) -> int:
        return hash(self.resolved())

    def __repr__(self) -> str:
        return repr(self.resolved())

    def __reduce__(self) -> str | tuple[Any, ...]:
        return self.resolved().__reduce__()  # type: ignore[no-any-return]


def lazy_raw_type(
    wire: type[msgspec.Struct], resolve: Callable[[bytes, Any], object]
) -> type[LazyRaw]:
    """A :class:`LazyRaw` subclass for ``wire``: ``resolve(body, context)`` decodes it."""
    names = {f.encode_name: f.name for f in msgspec.structs.fields(wire)}
    return type(
        f"Lazy{wire.__name__}",
        (LazyRaw,),
        {
            "__slots__": (),
            "_resolve": staticmethod(resolve),
            "_names": names,
            # msgspec encodes any object whose type has __dataclass_fields__ as a dataclass,
            # reading each field with getattr: here, the wire Struct's fields by encoded name.
            "__dataclass_fields__": dict.fromkeys(names),
        },
    )


class _Field:
    """The descriptor of a field that may hold a :class:`LazyRaw`."""

    def __init__(self, member: Any) -> None:
        self.member = member

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.member.__get__(instance, owner)
        if isinstance(value, LazyRaw):
            value = value.resolved()
            # The slot's own descriptor: a frozen Struct refuses setattr, not this.
            self.member.__set__(instance, value)
        return value

    def __set__(self, instance: object, value: Any) -> None:
        self.member.__set__(instance, value)

    def __delete__(self, instance: object) -> None:
        self.member.__delete__(instance)


def install(cls: type[msgspec.Struct], name: str) -> None:
    """Make field ``name`` of ``cls`` decode a :class:`LazyRaw` on first access."""
    setattr(cls, name, _Field(cls.__dict__[name]))


def stored(instance: msgspec.Struct, name: str = "raw") -> Any:
    """Field ``name`` as stored, without decoding a :class:`LazyRaw` in it."""
    field = type(instance).__dict__[name]
    member = field.member if isinstance(field, _Field) else field
    return member.__get__(instance, type(instance))


# What a Conversation's messages may be: a list, or None when the response left them out.
# get_conversation's result is Conversation[list[Message]]; a bare Conversation is this
# default, so annotations written before the parameter existed keep their meaning. The
# default needs typing_extensions (PEP 696, in typing from 3.13), which is not a runtime
# dependency: type checkers read it, and at runtime the bound alone is enough (msgspec
# decodes an unparametrized Conversation's messages as the bound).
if TYPE_CHECKING:
    from typing_extensions import TypeVar as _TypeVar

    MessagesT = _TypeVar(
        "MessagesT", bound="list[Message] | None", covariant=True, default="list[Message] | None"
    )
else:
    MessagesT = TypeVar("MessagesT", bound=list[Message] | None, covariant=True)


class Conversation(msgspec.Struct, Generic[MessagesT], frozen=True, kw_only=True):
    """A conversation with an assistant.

    ``Conversation`` is generic in the type of :attr:`messages`: ``get_conversation``
    returns a ``Conversation[list[Message]]`` (its messages are always a list; a response
    that has no ``messages`` key at all gives ``[]``, while ``raw`` shows the wire as sent),
    and listings give plain ``Conversation`` items, the same as
    ``Conversation[list[Message] | None]``. The parameter exists for type checkers only: at
    runtime every conversation is of the one class ``Conversation``.

    Attributes:
        id: The provider's id, as a string.
        provider: The provider name, e.g. ``"wemasy"``.
        started_at: When the conversation began (SiteAssist: ``createdAt``).
        ended_at: When it ended or was closed (SiteAssist: ``closedAt``).
        last_activity_at: The last message or event (SiteAssist: ``lastInterationAt``).
        close_reason: Why it was closed, when the provider says.
        human_handled: Whether a human agent took over, when the provider says.
        human_agent: Who that human agent is (name, else email, else id), when the provider says.
        messages: The messages, or ``None`` when the response did not include them
            (list endpoints leave them out); always a list from ``get_conversation``.
        raw: The provider's decoded wire object, for fields this model does not carry.
    """

    id: str
    provider: str
    status: str | None = None
    agent_id: str | None = None
    goal: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    last_activity_at: datetime | None = None
    close_reason: str | None = None
    human_handled: bool | None = None
    human_agent: str | None = None
    cost_tokens: int | None = None
    cost_amount: Decimal | None = None
    # None is a MessagesT only for the default parameter. A call without messages is
    # inferred as that default; only an explicit Conversation[list[Message]](...) without
    # messages gets past the checker with None.
    messages: MessagesT = None  # type: ignore[assignment]
    raw: Any = None


install(Conversation, "raw")


class ChatReply(msgspec.Struct, frozen=True, kw_only=True):
    """The assistant's answer to a chat call.

    Attributes:
        content: The reply text; ``None`` when the model only asked for tool calls.
        conversation_id: The conversation the exchange belongs to (new ones get an id).
        tool_calls: Calls the caller should run and answer with ``tool_result``.
    """

    content: str | None = None
    model: str | None = None
    usage: TokenUsage | None = None
    conversation_id: str | None = None
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    raw: Any = None


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a paginated listing; pages are numbered from 1."""

    items: list[T]
    page: int
    last_page: int
    per_page: int
    total: int

    @property
    def has_next(self) -> bool:
        """Whether a later page exists."""
        return self.page < self.last_page
