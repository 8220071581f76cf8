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
    "check_bool",
    "check_int",
    "check_integer_id",
    "check_number",
    "check_text",
    "check_tools",
    "check_uuid",
    "is_positive_number",
]

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_MAX_ID_DIGITS = 19  # fits a signed 64-bit integer, which is what servers store ids in


def _fail(argument: str, expected: str, value: object) -> InvalidRequestError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return InvalidRequestError(
        f"{argument} must be {expected}, got {shown} ({type(value).__name__})", argument=argument
    )


def check_integer_id(value: object, argument: str) -> int:
    """Accept a positive ``int`` or a string of ASCII digits; return it as an ``int``.

    Anything else (``bool``, ``float``, negative numbers, signs, spaces, non-ASCII digits,
    path fragments) is refused, so an id can never change the shape of a request.
    """
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


def is_positive_number(value: object) -> bool:
    """Whether ``value`` is a finite ``int`` or ``float`` above zero (``bool`` is not)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def check_int(
    value: object, argument: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Accept an ``int`` (not ``bool``) within ``[minimum, maximum]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(argument, "an integer", value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(argument, _range_words(minimum, maximum), value)
    return value


def check_number(value: object, argument: str, *, minimum: float, maximum: float) -> float:
    """Accept a finite ``int`` or ``float`` (not ``bool``) within ``[minimum, maximum]``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _fail(argument, "a number", value)
    number = float(value)
    if math.isnan(number) or not minimum <= number <= maximum:
        raise _fail(argument, _range_words(minimum, maximum), value)
    return number


def check_bool(value: object, argument: str) -> bool:
    """Accept a ``bool`` only."""
    if not isinstance(value, bool):
        raise _fail(argument, "True or False", value)
    return value


def check_text(value: object, argument: str, *, max_length: int | None = None) -> str:
    """Accept a non-blank ``str`` of at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(argument, "a non-empty string", value)
    if max_length is not None and len(value) > max_length:
        raise InvalidRequestError(
            f"{argument} must be at most {max_length} characters, got {len(value)}",
            argument=argument,
        )
    return value


def check_tools(value: object, argument: str = "tools") -> list[dict[str, Any]]:
    """Accept a sequence of OpenAI-style function tools; return them as plain dicts.

    Each tool must look like ``{"type": "function", "function": {"name": "...", ...}}``;
    what else a tool holds (description, JSON-schema parameters) is passed on untouched.
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
        check_text(function.get("name"), f"{where}['function']['name']")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise _fail(f"{where}['function']['parameters']", "a JSON-schema mapping", parameters)
        tools.append({**tool, "function": dict(function)})
    return tools


def _range_words(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"between {minimum} and {maximum}"
    if minimum is not None:
        return f"at least {minimum}"
    return f"at most {maximum}"
