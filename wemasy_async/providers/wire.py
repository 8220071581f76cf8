"""Wire-format pieces the provider adapters share (sans-I/O, like the adapters).

- OpenAI-style tool calls, which every provider embeds in its messages, and their
  translation into neutral :class:`~wemasy_async.models.ToolCall` objects.
- Small normalisers: naive timestamps to UTC, provider roles to neutral ones.
- :func:`reader`, which turns "decode this body, convert it" into a ``parse`` function with
  the error handling every operation needs, and the helpers an adapter's
  ``error_from_response`` builds on.
- The fast path (:func:`neutral_messages`): a body whose messages are already in neutral form
  decodes straight into :class:`~wemasy_async.models.Message` objects.

The fast path. Building a neutral ``Message`` in Python for every wire message costs about
as much as msgspec's whole decode, so an adapter first tries a decoder whose message type is
a subclass of ``Message`` that only renames fields and types them as the wire sends them in
the canonical case (a ``Role``, an aware timestamp, ...; each adapter says which). msgspec
builds those in C; :func:`neutral_messages` then fills what the wire leaves ``null`` and
converts tool calls, and changes each object's class to ``Message`` itself (the subclass adds
no slots, so CPython allows the ``__class__`` assignment): the result *is* a ``Message``,
equal to the one the lenient path builds. Anything the fast types refuse (a synonym role, a
naive timestamp, usage as text, an unknown key where a synonym could hide, a malformed body)
falls back to the lenient path, which decodes the body again and says what is wrong exactly
as before. ``raw`` is then a :class:`~wemasy_async.models.LazyRaw` over the body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

import msgspec

from wemasy_async.errors import APIStatusError, ResponseDecodeError
from wemasy_async.exchange import Response
from wemasy_async.models import Message, Role, TokenUsage, ToolCall
from wemasy_async.validation import short_repr

__all__ = [
    "DECODE_ERRORS",
    "Aware",
    "Malformed",
    "OpenAIFunction",
    "OpenAIToolCall",
    "body_of",
    "decode_failure",
    "fallback_message",
    "json_text",
    "neutral_messages",
    "reader",
    "role",
    "tool_calls",
    "utc",
]

T = TypeVar("T")
W = TypeVar("W")

_ANY = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


DECODE_ERRORS: tuple[type[Exception], ...] = (msgspec.MsgspecError, RecursionError, UnicodeError)
"""What msgspec's JSON decoding raises for bytes that are not the JSON expected: its own
errors, ``RecursionError`` past ~1,000 nesting levels (in an ``Any`` field, or in JSON
embedded in a string), and ``UnicodeError`` for a string that is not valid UTF-8 (a Latin-1
"é" from a misconfigured server) or, re-encoding a ``str``, holds a lone surrogate."""


def decode_failure(exc: BaseException, data: bytes | str | None = None) -> str:
    """Why decoding ``data`` failed, in words, for an error message.

    The answer depends on the input, never on the wording or type of the installed msgspec's
    error where versions differ: msgspec 0.22 raises ``UnicodeDecodeError`` for invalid UTF-8
    inside a JSON string, 0.23 a ``DecodeError`` ("Invalid UTF-8 encoded string").
    """
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(data, bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return (
                f"the JSON is not valid UTF-8 (byte 0x{data[bad.start]:02x} at offset {bad.start})"
            )
    if isinstance(exc, UnicodeError):
        return "the JSON is not valid UTF-8 (it holds a lone surrogate)"
    return str(exc)


class Malformed(ValueError):
    """A body that decoded but still is not what the provider documents.

    Raised by conversion code; :func:`reader` turns it into a
    :class:`~wemasy_async.errors.ResponseDecodeError`.
    """


_READ_ERRORS: tuple[type[Exception], ...] = (*DECODE_ERRORS, Malformed)


class OpenAIFunction(msgspec.Struct, frozen=True, kw_only=True):
    """The ``function`` part of an OpenAI-style tool call."""

    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class OpenAIToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """An OpenAI-style tool call: ``{id, type, function: {name, arguments}}``.

    The flat form ``{id, name, arguments}`` is accepted too; ``arguments`` may be JSON text
    or an object.
    """

    id: str | int | None = None
    type: str | None = None
    function: OpenAIFunction | None = None
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


def json_text(value: str | dict[str, Any] | None) -> str:
    """Tool-call arguments as JSON text, whichever way they arrived (``None`` is ``{}``)."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    return _ENCODER.encode(value).decode()


def tool_calls(wires: Iterable[OpenAIToolCall] | None) -> list[ToolCall]:
    """Translate wire tool calls; one without an id or a function name is malformed."""
    calls = []
    for wire in wires or ():
        function = wire.function
        name = function.name if function is not None else wire.name
        if not name or wire.id is None or wire.id == "":
            raise Malformed("a tool call has no id or no function name")
        arguments = function.arguments if function is not None else wire.arguments
        calls.append(
            ToolCall(
                id=str(wire.id),
                name=name,
                arguments=json_text(arguments),
                type=wire.type or "function",
            )
        )
    return calls


Aware = Annotated[datetime, msgspec.Meta(tz=True)]
"""A timestamp with an offset: the fast path's type (a naive one takes the lenient path)."""

_force = msgspec.structs.force_setattr


def neutral_messages(messages: list[Any]) -> list[Message]:
    """Finish the fast path's messages in place and return them as neutral ``Message``s.

    ``messages`` are instances of a ``Message`` subclass whose ids and ``conversation_id``
    are already neutral (the adapter sets them first), whose ``tool_calls`` are wire calls,
    ``[]`` (the fast types' default for an absent key) or ``None``, ``metadata`` a dict or
    ``None``, and ``usage`` ``None`` or an instance of a ``TokenUsage`` subclass without
    slots of its own. Raises :class:`Malformed` for a tool call without an id or a name.
    """
    message_type, usage_type = Message, TokenUsage
    for m in messages:
        calls = m.tool_calls
        if calls is None:
            _force(m, "tool_calls", [])
        elif calls:  # an empty list (a default_factory's) is already neutral
            _force(m, "tool_calls", tool_calls(calls))
        if m.metadata is None:
            _force(m, "metadata", {})
        usage = m.usage
        if usage is not None and type(usage) is not usage_type:
            _force(usage, "__class__", usage_type)
        _force(m, "__class__", message_type)
    return messages


def utc(value: datetime | None) -> datetime | None:
    """Take a timestamp without an offset as UTC; leave aware ones alone."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def role(value: str, roles: Mapping[str, Role]) -> Role:
    """Map a provider's role name onto a neutral role; an unknown one is malformed."""
    neutral = roles.get(value)
    if neutral is None:
        raise Malformed(f"unknown message role {short_repr(value)}")
    return neutral


def body_of(response: Response) -> object:
    """An error response's body for ``APIStatusError.body``: decoded JSON, else the text."""
    try:
        return _ANY.decode(response.body)
    except DECODE_ERRORS:
        return response.body.decode("utf-8", errors="replace")


def fallback_message(response: Response) -> str:
    """The message of an error whose body says nothing usable: the reason phrase.

    A redirect says where it pointed instead: the engine never follows one.
    """
    location = response.headers.get("Location")
    if 300 <= response.status < 400 and location:
        return f"unexpected redirect to {location}"
    try:
        return HTTPStatus(response.status).phrase
    except ValueError:
        return f"HTTP {response.status}"


def reader(
    *,
    provider: str,
    expected: str,
    decode: Callable[[bytes], W],
    convert: Callable[[W], T],
    error: Callable[[Response], APIStatusError],
    fast: Callable[[bytes], T | None] | None = None,
) -> Callable[[Response], T]:
    """Build a ``parse`` function for a :class:`~wemasy_async.providers.base.Call`.

    Args:
        provider: The provider name, for errors.
        expected: What a 2xx body should be, in words, for ``ResponseDecodeError``.
        decode: Bytes to the wire object (a msgspec decoder's ``decode``).
        convert: Wire object to the result; raises :class:`Malformed` when it cannot.
        error: Builds the typed error for a non-2xx response.
        fast: The fast path (see the module docstring): the result, or ``None`` (or an
            error) when the body is not in the canonical form, and then the lenient
            ``convert(decode(body))`` decides.

    Returns:
        A function that raises ``error(response)`` for a non-2xx status, and otherwise
        returns ``convert(decode(body))`` or raises ``ResponseDecodeError`` saying why not.
    """

    def parse(response: Response) -> T:
        if not 200 <= response.status < 300:
            raise error(response)
        if fast is not None:
            try:
                result = fast(response.body)
            except _READ_ERRORS:
                result = None
            if result is not None:
                return result
        try:
            return convert(decode(response.body))
        except _READ_ERRORS as exc:
            raise ResponseDecodeError(
                provider=provider,
                status=response.status,
                expected=expected,
                body=response.body,
                reason=decode_failure(exc, response.body),
            ) from exc

    return parse
