"""Argument checks shared by the provider adapters.

Each check returns the normalised value or raises
:class:`~wemasy_async.errors.InvalidRequestError` naming the argument. They run while a
request is being described, so a bad argument never reaches the network. ``bool`` is
rejected wherever a number is expected: ``True`` is an ``int`` to Python, never to a user.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from wemasy_async.errors import InvalidRequestError

__all__ = [
    "MAX_INT64",
    "MAX_SECONDS",
    "check_bool",
    "check_int",
    "check_integer_id",
    "check_number",
    "check_text",
    "check_tools",
    "check_uuid",
    "is_positive_number",
    "short_repr",
]

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_MAX_ID_DIGITS = 19  # fits a signed 64-bit integer, which is what servers store ids in

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

MAX_INT64 = 2**63 - 1
"""The largest integer argument sent to a server: what servers store integers in."""

MAX_SECONDS = 86_400.0
"""The longest wait anything may ask for, a day: a window, pause, timeout or backoff setting,
or a server's retry hint. Beyond it a wait is a hang (or a server bug), and the arithmetic
on it need not stay finite."""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages; never raises.

    A ``repr`` can fail (an ``int`` of more than 4,300 digits, an object with a broken
    ``__repr__``): the message about a bad argument must not become another error.
    """
    try:
        shown = repr(value)
    except Exception:
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} object>"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _fail(argument: str, expected: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(
        f"{argument} must be {expected}, got {short_repr(value)} ({type(value).__name__})",
        argument=argument,
    )


def check_integer_id(value: object, argument: str) -> int:
    """Accept a positive ``int`` or a string of ASCII digits; return it as an ``int``.

    Anything else (``bool``, ``float``, negative numbers, signs, spaces, non-ASCII digits,
    path fragments) is refused, so an id can never change the shape of a request.
    """
    if type(value) is int and 0 < value < 2**63:
        return value  # the usual case, kept quick
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_ID_DIGITS
        and value.isascii()
        and value.isdigit()
    ):
        number = int(value)
    else:
        raise _fail(argument, "a positive integer or a string of digits", value)
    if not 0 < number < 2**63:
        raise _fail(argument, "a positive integer below 2**63", value)
    return number


def check_uuid(value: object, argument: str) -> str:
    """Accept a ``uuid.UUID`` or its canonical text in any case; return it lower-case.

    Only the 8-4-4-4-12 form is accepted: no braces, ``urn:uuid:`` prefix, missing hyphens
    or surrounding spaces, so an id can never change the shape of a request path.

    Raises:
        InvalidRequestError: ``value`` is anything else (``argument`` names it).
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and _UUID_TEXT.fullmatch(value):
        return value.lower()
    raise _fail(argument, "a UUID such as '123e4567-e89b-12d3-a456-426614174000'", value)


def _real(value: object) -> float | None:
    """``value`` as a ``float`` if it is an ``int`` or ``float`` (not ``bool``), else ``None``.

    An ``int`` too large for a float becomes an infinity of its sign, so that range checks
    refuse it instead of ``float()`` or ``math.isfinite()`` raising ``OverflowError``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def is_positive_number(value: object) -> bool:
    """Whether ``value`` is a finite ``int`` or ``float`` above zero (``bool`` is not)."""
    number = _real(value)
    return number is not None and math.isfinite(number) and number > 0


def check_int(
    value: object, argument: str, *, minimum: int | None = None, maximum: int | None = MAX_INT64
) -> int:
    """Accept an ``int`` (not ``bool``) within ``[minimum, maximum]``.

    ``maximum`` defaults to :data:`MAX_INT64`: a larger number would not fit the server's
    integers (a PHP backend reads it as a float), so it is refused rather than sent.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(argument, "an integer", value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(argument, _range_words(minimum, maximum), value)
    return value


def check_number(value: object, argument: str, *, minimum: float, maximum: float) -> float:
    """Accept a finite ``int`` or ``float`` (not ``bool``) within ``[minimum, maximum]``."""
    number = _real(value)
    if number is None:
        raise _fail(argument, "a number", value)
    if math.isnan(number) or not minimum <= number <= maximum:
        raise _fail(argument, _range_words(minimum, maximum), value)
    return number


def check_bool(value: object, argument: str) -> bool:
    """Accept a ``bool`` only."""
    if not isinstance(value, bool):
        raise _fail(argument, "True or False", value)
    return value


def check_text(
    value: object, argument: str, *, max_length: int | None = None, one_line: bool = False
) -> str:
    """Accept a non-blank ``str`` of at most ``max_length`` characters.

    The text must be valid Unicode (a lone surrogate such as ``"\\ud800"`` cannot be sent as
    UTF-8). With ``one_line`` (names and ids: a model, an agent, a tool call) it may not hold
    control characters either: a newline or NUL there is a mistake, never part of the name.
    """
    if not isinstance(value, str) or not value.strip():
        raise _fail(argument, "a non-empty string", value)
    if max_length is not None and len(value) > max_length:
        raise InvalidRequestError(
            f"{argument} must be at most {max_length} characters, got {len(value)}",
            argument=argument,
        )
    if _SURROGATE.search(value):
        raise _fail(argument, "valid Unicode text (it holds a lone surrogate)", value)
    if one_line and _CONTROL.search(value):
        raise _fail(argument, "free of control characters (newlines, tabs, NUL...)", value)
    return value


def check_tools(value: object, argument: str = "tools") -> list[dict[str, Any]]:
    """Accept a sequence of OpenAI-style function tools; return them as plain dicts.

    Each tool must look like ``{"type": "function", "function": {"name": "...", ...}}``;
    what else a tool holds (description, JSON-schema parameters) is passed on untouched,
    except that it may hold no ``NaN`` or infinity anywhere: JSON has none, and the encoder
    would silently send ``null`` instead.
    """
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise _fail(argument, "a list of tool definitions", value)
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(value):
        where = f"{argument}[{index}]"
        if not isinstance(tool, Mapping):
            raise _fail(where, "a mapping", tool)
        if tool.get("type") != "function":
            raise _fail(f"{where}['type']", "'function'", tool.get("type"))
        function = tool.get("function")
        if not isinstance(function, Mapping):
            raise _fail(f"{where}['function']", "a mapping", function)
        check_text(function.get("name"), f"{where}['function']['name']", one_line=True)
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise _fail(f"{where}['function']['parameters']", "a JSON-schema mapping", parameters)
        _check_finite(tool, where)
        tools.append({**tool, "function": dict(function)})
    return tools


def _check_finite(value: object, where: str) -> None:
    """Refuse a ``NaN`` or an infinity anywhere inside ``value`` (mappings and sequences)."""
    stack: list[tuple[object, str]] = [(value, where)]
    seen: set[int] = set()  # a structure that contains itself is the encoder's to refuse
    while stack:
        current, path = stack.pop()
        if isinstance(current, float):
            if not math.isfinite(current):
                raise _fail(path, "a finite number (JSON has no NaN or Infinity)", current)
            continue
        if isinstance(current, (str, bytes, bytearray)) or id(current) in seen:
            continue
        if isinstance(current, Mapping):
            seen.add(id(current))
            stack.extend((item, f"{path}[{key!r}]") for key, item in current.items())
        elif isinstance(current, Sequence):
            seen.add(id(current))
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(current))


def _range_words(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"between {minimum} and {maximum}"
    if minimum is not None:
        return f"at least {minimum}"
    return f"at most {maximum}"
