"""The bad values and cases of the argument tests (``tests/contract/test_arguments*.py``), and
the checks they share.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support.cases import NAMES
from wemasy_async import Client, InvalidRequestError
from wemasy_async.testing import FakeServer

TOKEN = "test-token"
PROVIDERS = NAMES
UUID_TEXT = "6f1c2b9e-4d3a-4e8b-9c7d-2a1b3c4d5e6f"

module_loop = pytest.mark.asyncio(loop_scope="module")


class Opaque:
    """Some object no argument accepts."""

    def __repr__(self) -> str:
        return "<Opaque>"


OPAQUE = Opaque()


class BadRepr:
    """An object whose ``repr`` fails: an error message about it must still be built."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


BAD_REPR = BadRepr()
HUGE = 10**5000  # repr() refuses ints of more than 4,300 digits


def cyclic() -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object"}
    parameters["self"] = parameters
    return parameters


def existing_id(fakes: dict[str, FakeServer], provider: str) -> Any:
    fake: Any = fakes[provider]
    if provider == "wemasy":
        return min(fake.conversations)
    return fake.conversation_ids[0]


def assert_names(error: InvalidRequestError, argument: str) -> None:
    assert error.argument == argument, f"argument={error.argument!r}, expected {argument!r}"
    assert argument in str(error), f"{argument!r} not in message {str(error)!r}"


# --- Bad values --------------------------------------------------------------------------------

NOT_AN_INT = [True, False, 1.0, 27.5, math.nan, math.inf, "5", b"5", [5], None, OPAQUE, BAD_REPR]
OUT_OF_RANGE_COUNTS = [0, -1, 2**63, 2**64, 10**400, HUGE, -HUGE]

BAD_WEMASY_IDS = [
    True,
    False,
    0,
    -1,
    2**63,
    2**64,
    27.0,
    27.5,
    math.nan,
    math.inf,
    "",
    " 27",
    "27 ",
    "+27",
    "-27",
    "27.0",
    "1e3",
    "٢٧",  # Arabic-Indic digits: str.isdigit() says yes
    "２７",  # fullwidth digits
    "27\n",
    "27\r\nX-Injected: 1",
    "27\x00",
    "../27",
    "27/../1",
    "27?x=1",
    "27#f",
    "1" * 20,
    uuid.UUID(UUID_TEXT),  # a UUID is not a Wemasy id
    UUID_TEXT,
    b"27",
    [27],
    {"id": 27},
    Decimal(27),
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_UUIDS = [
    27,
    True,
    0,
    "",
    "not-a-uuid",
    UUID_TEXT.replace("-", ""),
    "{" + UUID_TEXT + "}",
    "urn:uuid:" + UUID_TEXT,
    UUID_TEXT + "\n",
    " " + UUID_TEXT,
    UUID_TEXT + "/..",
    UUID_TEXT + "?x=1",
    UUID_TEXT[:-1],
    UUID_TEXT[:-1] + "g",
    UUID_TEXT.replace("6", "６", 1),  # fullwidth digit
    "../" + UUID_TEXT,
    UUID_TEXT.encode(),
    [UUID_TEXT],
    uuid.UUID(UUID_TEXT).int,
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_LOOP_IDS = [
    27,
    True,
    "",
    ".",
    "..",
    "a\nb",
    "a\r\nHost: evil",
    "a b",
    "a\tb",
    "\x00",
    "a\u200bb",  # zero-width space (format character)
    "a\u2028b",  # line separator
    "\ud800",  # lone surrogate
    "x" * 257,
    b"conv",
    ["conv"],
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_NAMES = [  # agent_id, model, tool_call_id: one-line names
    "",
    "   ",
    "\n",
    5,
    True,
    b"chat",
    ["chat"],
    "chat\n",
    "chat\r\nX-Injected: 1",
    "chat\x00",
    "chat\x7f",
    "chat\x85",  # C1 NEL
    "\ud800",
    OPAQUE,
    BAD_REPR,
]
BAD_TEXTS = ["", "   ", "\n\t", 5, True, b"hi", ["hi"], "\ud800", "hi \udfff", OPAQUE, BAD_REPR]
BAD_TEMPERATURES = [
    -0.1,
    -1,
    2.01,
    3,
    math.nan,
    math.inf,
    -math.inf,
    2**1100,
    True,
    "0.7",
    b"0.7",
    [0.7],
    Decimal("0.7"),
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_BOOLS = [1, 0, "true", "yes", b"1", [True], OPAQUE, BAD_REPR]
GOOD_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
BAD_TOOLS: list[tuple[object, str]] = [
    ("get_weather", "tools"),
    (b"tools", "tools"),
    (5, "tools"),
    (True, "tools"),
    (GOOD_TOOL, "tools"),  # one tool, not a list of them
    ((t for t in [GOOD_TOOL]), "tools"),  # a generator is not a sequence
    ([5], "tools[0]"),
    (["get_weather"], "tools[0]"),
    ([None], "tools[0]"),
    ([{"function": {"name": "f"}}], "tools[0]['type']"),
    ([{"type": "fn", "function": {"name": "f"}}], "tools[0]['type']"),
    ([{"type": "function"}], "tools[0]['function']"),
    ([{"type": "function", "function": "f"}], "tools[0]['function']"),
    ([{"type": "function", "function": {}}], "tools[0]['function']['name']"),
    ([{"type": "function", "function": {"name": ""}}], "tools[0]['function']['name']"),
    ([{"type": "function", "function": {"name": 5}}], "tools[0]['function']['name']"),
    ([{"type": "function", "function": {"name": "f\nx"}}], "tools[0]['function']['name']"),
    (
        [{"type": "function", "function": {"name": "f", "parameters": 5}}],
        "tools[0]['function']['parameters']",
    ),
    ([GOOD_TOOL, {"type": "function", "function": {"name": ""}}], "tools[1]['function']['name']"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"x": OPAQUE}}}], "tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"x": "\ud800"}}}], "tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": cyclic()}}], "tools"),
]


# --- The cases ---------------------------------------------------------------------------------

Call = Callable[[Client, Any], Awaitable[object]]


def cases_for_reads(provider: str) -> list[tuple[str, str, object]]:
    bad_ids = {"wemasy": BAD_WEMASY_IDS, "siteassist": BAD_UUIDS, "loop": BAD_LOOP_IDS}[provider]
    found: list[tuple[str, str, object]] = [
        ("get_conversation", "conversation_id", value) for value in [None, *bad_ids]
    ]
    found += [("list_messages", "conversation_id", value) for value in [None, *bad_ids]]
    found += [
        ("list_messages", "limit", value)
        for value in [*NOT_AN_INT, *OUT_OF_RANGE_COUNTS]
        if value is not None  # None is "all of them"
    ]
    return found


WEMASY_LIST_CASES: list[tuple[str, object]] = [
    *[("agent_id", value) for value in BAD_NAMES],
    *[("search", value) for value in BAD_NAMES],
    *[("per_page", value) for value in [*NOT_AN_INT, 0, -1, 101, 2**64]],
    *[("page", value) for value in [*NOT_AN_INT, *OUT_OF_RANGE_COUNTS]],
]

CHAT_CASES: list[tuple[dict[str, Any], str]] = [
    *[({"message": value}, "message") for value in BAD_TEXTS],
    *[({"conversation_id": value}, "conversation_id") for value in BAD_WEMASY_IDS],
    *[({"connection_id": value}, "connection_id") for value in BAD_WEMASY_IDS],
    *[({"model": value}, "model") for value in BAD_NAMES],
    *[({"temperature": value}, "temperature") for value in BAD_TEMPERATURES],
    *[
        ({"max_tokens": value}, "max_tokens")
        for value in [*NOT_AN_INT, *OUT_OF_RANGE_COUNTS]
        if value is not None
    ],
    *[({"use_tools": value}, "use_tools") for value in BAD_BOOLS],
    *[({"tools": value}, argument) for value, argument in BAD_TOOLS],
    *[
        ({"conversation_id": 1, "tool_call_id": value, "tool_result": "18°C"}, "tool_call_id")
        for value in BAD_NAMES
    ],
    *[
        ({"conversation_id": 1, "tool_call_id": "call_1", "tool_result": value}, "tool_result")
        for value in BAD_TEXTS
    ],
    # Combinations: what belongs together, and what chat needs at least.
    ({"message": None}, "message"),
    ({"message": None, "model": "gpt-4o", "conversation_id": 1}, "message"),
    ({"conversation_id": 1, "tool_call_id": "call_1"}, "tool_result"),
    ({"conversation_id": 1, "tool_result": "18°C"}, "tool_call_id"),
    ({"message": None, "tool_call_id": "call_1", "tool_result": "18°C"}, "conversation_id"),
    ({"tool_call_id": "call_1", "tool_result": "18°C"}, "conversation_id"),
]


def ids_of(value: object) -> str:
    """A short test id for one parameter value."""
    try:
        shown = repr(value)
    except Exception:  # BAD_REPR, HUGE
        return f"<{type(value).__name__} without a repr>"
    return shown if len(shown) <= 40 else shown[:37] + "..."
