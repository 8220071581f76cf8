"""Laravel's input handling, as the Wemasy fake imitates it where the docs are silent.

Input normalisation (``TrimStrings`` and ``ConvertEmptyStringsToNull``), the ``integer``,
``numeric`` and ``boolean`` rules as PHP evaluates them, and the 422 envelope of
validation errors with Laravel's wording. Pure functions of decoded JSON, apart from
`Errors.response`.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec
from aiohttp import web

__all__ = [
    "Errors",
    "check_int",
    "check_string",
    "is_laravel_bool",
    "is_number",
    "laravel_int",
    "normalize",
]

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_encode = msgspec.json.encode


def normalize(value: Any) -> Any:
    """Apply Laravel's TrimStrings + ConvertEmptyStringsToNull to decoded JSON input."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def laravel_int(value: Any) -> int | None:
    """Return ``value`` as an int if Laravel's ``integer`` rule accepts it, else None."""
    if isinstance(value, bool):
        return None
    result: int
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        # PHP's FILTER_VALIDATE_INT rejects leading zeros ("027").
        if not digits.isascii() or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
            return None
        result = int(text)
    else:
        return None
    return result if _INT_MIN <= result <= _INT_MAX else None


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def is_laravel_bool(value: Any) -> bool:
    # Laravel's ``boolean`` rule: a strict in_array() against true, false, 0, 1, "0", "1".
    if isinstance(value, bool):
        return True
    if type(value) is int:
        return value in (0, 1)
    return value in ("0", "1")


def _label(field: str) -> str:
    return field.replace("_", " ")


class Errors:
    """Collects Laravel-style validation errors, one per field; `response` is the 422."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def response(self) -> web.Response:
        first = next(iter(self.fields.values()))[0]
        more = sum(len(v) for v in self.fields.values()) - 1
        message = first
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        body = {"message": message, "errors": self.fields}
        return web.Response(body=_encode(body), status=422, content_type="application/json")


def check_string(errors: Errors, body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(field, f"The {_label(field)} field must be a string.")
        return None
    return value


def check_int(
    errors: Errors, body: dict[str, Any], field: str, *, minimum: int | None = None
) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    number = laravel_int(value)
    if number is None:
        errors.add(field, f"The {_label(field)} field must be an integer.")
        return None
    if minimum is not None and number < minimum:
        errors.add(field, f"The {_label(field)} field must be at least {minimum}.")
        return None
    return number
