"""Unit tests of `_laravel`, the Laravel input rules the Wemasy fake imitates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wemasy_async.testing._laravel import (
    Errors,
    check_int,
    check_string,
    is_laravel_bool,
    is_number,
    laravel_int,
    normalize,
)


def test_normalize_trims_and_nulls_empty_strings_recursively() -> None:
    assert normalize({"a": " x ", "b": ["  ", {"c": ""}], "d": 0}) == {
        "a": "x",
        "b": [None, {"c": None}],
        "d": 0,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (27, 27),
        (27.0, 27),
        ("27", 27),
        (" -3 ", -3),
        ("+4", 4),
        ("027", None),
        ("0", 0),
        (27.5, None),
        (True, None),
        ("2.0", None),
        ("٣", None),
        (2**63, None),
        (-(2**63), -(2**63)),
        (None, None),
    ],
)
def test_laravel_int(value: Any, expected: int | None) -> None:
    assert laravel_int(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (0.5, True), ("1.5", True), (float("inf"), False), ("x", False), (True, False)],
)
def test_is_number(value: Any, expected: bool) -> None:
    assert is_number(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (0, True), (1, True), ("1", True), (2, False), ("true", False), (1.0, False)],
)
def test_is_laravel_bool(value: Any, expected: bool) -> None:
    assert is_laravel_bool(value) is expected


def test_errors_envelope_counts_the_rest() -> None:
    errors = Errors()
    assert not errors
    body = {"name": 5, "per_page": "x", "max_tokens": 0, "ok": "fine"}
    assert check_string(errors, body, "name") is None
    assert check_string(errors, body, "ok") == "fine"
    assert check_int(errors, body, "per_page") is None
    assert check_int(errors, body, "max_tokens", minimum=1) is None
    assert check_int(errors, body, "absent") is None
    response = errors.response()
    assert response.status == 422
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {
        "message": "The name field must be a string. (and 2 more errors)",
        "errors": {
            "name": ["The name field must be a string."],
            "per_page": ["The per page field must be an integer."],
            "max_tokens": ["The max tokens field must be at least 1."],
        },
    }
