"""The property tests' operations, outcome checks and Hypothesis strategies (see
``tests/contract/test_properties.py``): every provider's operations built through its adapter,
the checks an outcome must pass, arbitrary JSON, headers and envelopes, and the recorded
samples mutated at random.
"""

from __future__ import annotations

import math
import pickle
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar, Union

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from tests.support.cases import NAMES
from tests.support.recordings import read, samples_of
from wemasy_async.errors import APIStatusError, ResponseDecodeError, WemasyAsyncError, status_error
from wemasy_async.models import ChatReply, Conversation, Message, Page
from wemasy_async.providers.base import Call, ChatParams, ListConversationsParams, Response
from wemasy_async.providers.registry import get_provider

T = TypeVar("T")

PROVIDERS = NAMES
VALID_ID: dict[str, object] = {
    "wemasy": 27,
    "siteassist": "6f1c2b9e-4d3a-4e8b-9c7d-2a1b3c4d5e6f",
    "loop": "conv_42",
}
MAX_RETRY_AFTER = 86_400.0  # headers.py and the providers treat a longer hint as unreadable

# Fast enough for the whole file to run in well under 30 s on a shared 2-core machine.
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- The calls under test --------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One call of one provider and the type its successful parse must return."""

    provider: str
    name: str
    call: Call[Any]
    result_type: Any

    def __repr__(self) -> str:
        return f"{self.provider}.{self.name}"


def operations_of(provider: str) -> list[Operation]:
    adapter = get_provider(provider)
    some_id = VALID_ID[provider]
    found = [
        Operation(
            provider,
            "get_conversation",
            adapter.get_conversation(some_id),
            Conversation[list[Message]],
        ),
        Operation(provider, "list_messages", adapter.list_messages(some_id), list[Message]),
        Operation(
            provider, "list_messages(limit=2)", adapter.list_messages(some_id, 2), list[Message]
        ),
    ]
    if "list_conversations" in adapter.capabilities:
        params = ListConversationsParams(agent_id="chat", per_page=5, page=2)
        found.append(
            Operation(
                provider,
                "list_conversations",
                adapter.list_conversations(params),
                Page[Conversation],
            )
        )
    if "chat" in adapter.capabilities:
        found.append(Operation(provider, "chat", adapter.chat(ChatParams(message="hi")), ChatReply))
    return found


OPERATIONS = [op for provider in PROVIDERS for op in operations_of(provider)]
OPERATIONS_BY_PROVIDER = {p: [op for op in OPERATIONS if op.provider == p] for p in PROVIDERS}


# --- Checking an outcome ---------------------------------------------------------------------


def check_type(
    value: object, expected: Any, where: str = "result", typevars: dict[Any, Any] | None = None
) -> None:
    """Assert that ``value`` has the (annotated) type ``expected``, recursively.

    ``bool`` is not an ``int`` here, datetimes must be timezone-aware (models.py documents
    that they are) and a ``Decimal`` amount must be finite. ``typevars`` binds the type
    parameters of a generic struct (``Page[Conversation]``, ``Conversation[list[Message]]``).
    """
    typevars = typevars or {}
    if isinstance(expected, TypeVar):  # unbound (a bare Conversation): its bound, as msgspec
        expected = typevars.get(expected, expected.__bound__ or Any)
    if expected is Any or expected is object:
        return
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                check_type(value, option, where, typevars)
            except AssertionError:
                continue
            return
        raise AssertionError(f"{where} = {value!r} is none of {expected}")
    if origin is Literal:
        assert value in args, f"{where} = {value!r} is not one of {args}"
        return
    if expected is type(None):
        assert value is None, f"{where} = {value!r} is not None"
        return
    if origin is list:
        assert type(value) is list or isinstance(value, list), f"{where} is not a list"
        for index, item in enumerate(value):  # type: ignore[arg-type]
            check_type(item, args[0], f"{where}[{index}]", typevars)
        return
    if origin is dict:
        assert isinstance(value, dict), f"{where} = {value!r} is not a dict"
        for key, item in value.items():
            check_type(key, args[0], f"{where} key", typevars)
            check_type(item, args[1], f"{where}[{key!r}]", typevars)
        return
    if origin is not None and issubclass(origin, msgspec.Struct):  # Page[Conversation]
        assert isinstance(value, origin), f"{where} = {value!r} is not a {origin.__name__}"
        check_struct(value, dict(zip(origin.__parameters__, args, strict=True)), where)
        return
    if isinstance(expected, type) and issubclass(expected, msgspec.Struct):
        assert isinstance(value, expected), f"{where} = {value!r} is not a {expected.__name__}"
        check_struct(value, {}, where)
        return
    if expected is int:
        assert isinstance(value, int), f"{where} = {value!r} is not an int"
        assert not isinstance(value, bool), f"{where} = {value!r} is a bool, not an int"
        return
    if expected is datetime:
        assert isinstance(value, datetime), f"{where} = {value!r} is not a datetime"
        assert value.utcoffset() is not None, f"{where} = {value!r} is naive"
        return
    if expected is Decimal:
        assert isinstance(value, Decimal), f"{where} = {value!r} is not a Decimal"
        assert value.is_finite(), f"{where} = {value!r} is not a finite amount"
        return
    assert isinstance(value, expected), f"{where} = {value!r} is not a {expected}"


def check_struct(value: msgspec.Struct, typevars: dict[Any, Any], where: str) -> None:
    hints = typing.get_type_hints(type(value))
    for name in value.__struct_fields__:
        check_type(getattr(value, name), hints[name], f"{where}.{name}", typevars)


def check_error(error: WemasyAsyncError, response: Response) -> None:
    """An error from our tree: for an error status the matching APIStatusError, all usable."""
    if not 200 <= response.status < 300:
        assert isinstance(error, APIStatusError), repr(error)
        assert error.status == response.status
        expected = type(status_error(response.status, "x", provider="x"))
        assert type(error) is expected, f"{type(error).__name__} for HTTP {response.status}"
        hint = error.retry_after
        assert hint is None or (
            isinstance(hint, float | int) and math.isfinite(hint) and 0 <= hint <= MAX_RETRY_AFTER
        ), hint
        assert isinstance(error.message, str)
        assert error.message.strip(), "an error needs a message"
    else:
        assert isinstance(error, ResponseDecodeError), repr(error)
    # What users do with errors: print, log, pickle them across processes.
    assert str(error)
    assert repr(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)


def run(operation: Operation, response: Response) -> None:
    """Parse ``response`` (and follow-ups, answered with the same response) and check it."""
    call: Call[Any] | None = operation.call
    for _ in range(3):  # Loop asks for at most one follow-up
        assert call is not None
        try:
            result = call.parse(response)
        except WemasyAsyncError as error:
            check_error(error, response)
            return
        # A non-tree exception propagates from here and fails the example.
        assert 200 <= response.status < 300, f"HTTP {response.status} parsed as a result"
        check_type(result, operation.result_type)
        if operation.name == "list_messages(limit=2)":
            assert len(result) <= 2
        call = call.follow_up(result)
        if call is None:
            return
        assert isinstance(call, Call)
    raise AssertionError("follow-up calls never end")


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(status, CIMultiDict(headers or {}), body)


# --- Strategies ------------------------------------------------------------------------------


class Token(str):
    """JSON text that no Python value encodes to (``NaN``, ``1e999``): emitted verbatim."""


SPECIAL_NUMBERS = st.sampled_from(
    [Token(t) for t in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0")]
)

# Keys the providers read, so that arbitrary objects hit the decoders' real fields.
FIELD_NAMES = [
    *[
        "id",
        "role",
        "content",
        "messages",
        "data",
        "success",
        "message",
        "errors",
        "error",
        "code",
        "details",
        "retryAfter",
    ],
    *[
        "pagination",
        "current_page",
        "last_page",
        "per_page",
        "total",
        "usage",
        "tool_calls",
        "toolCalls",
        "function",
    ],
    *[
        "name",
        "arguments",
        "type",
        "created_at",
        "createdAt",
        "metadata",
        "cost_amount",
        "cost_tokens",
        "object",
    ],
    *[
        "started_at",
        "ended_at",
        "conversation_id",
        "conversationId",
        "humanAgent",
        "token_usage",
        "limit",
    ],
    *[
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "promptTokens",
        "tool_call_id",
        "model",
    ],
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**256), max_value=2**256),
    st.floats(allow_nan=False, allow_infinity=False),
    SPECIAL_NUMBERS,
    st.text(max_size=20),
    st.sampled_from(
        ["", " ", "[]", "{}", "null", "2024-01-15T10:30:00Z", "1705315337", "user", "NaN"]
    ),
)

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=25,
)


def to_json(value: Any) -> bytes:
    """Encode like JSON, with :class:`Token` emitted verbatim and big ints as digits."""
    if isinstance(value, Token):
        return value.encode()
    if isinstance(value, list):
        return b"[" + b",".join(to_json(v) for v in value) + b"]"
    if isinstance(value, dict):
        items = (msgspec.json.encode(str(k)) + b":" + to_json(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    return msgspec.json.encode(value)


HEADER_NAMES = [
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Date",
    "Content-Type",
    "Location",
]

header_values = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(
        [
            "0",
            "-1",
            "1.5",
            "nan",
            "inf",
            "1e309",
            "99999999999999999999999",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Mon, 01 Jan 0001 00:00:00 -0000",
            "Sun, 06 Nov 1994 08:49:37 +2359",
            "Thu, 01 Jan 1970 00:00:00 -2359",
            "Tue, 15 Nov 94 08:12:31 GMT",
            "application/json",
            "text/html",
            "https://evil.example/",
        ]
    ),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)

headers_strategy = st.dictionaries(
    st.sampled_from(HEADER_NAMES) | st.text(min_size=1, max_size=10), header_values, max_size=6
)

statuses = st.integers(min_value=100, max_value=599)


def envelopes(provider: str) -> st.SearchStrategy[Any]:
    """Each provider's error envelopes (and its success wrapper) with arbitrary contents."""
    v = json_values
    shapes: dict[str, list[st.SearchStrategy[Any]]] = {
        "wemasy": [
            st.fixed_dictionaries({"success": st.just(False), "message": v}),
            st.fixed_dictionaries({"message": v, "errors": v}),
            st.fixed_dictionaries(
                {"message": v, "errors": st.dictionaries(st.text(max_size=5), v, max_size=3)}
            ),
            st.fixed_dictionaries({"error": st.just(True), "message": v}),
            st.fixed_dictionaries({"success": st.booleans(), "data": v, "pagination": v}),
        ],
        "siteassist": [
            st.fixed_dictionaries(
                {"error": st.fixed_dictionaries({"message": v, "code": v, "details": v})}
            ),
            st.fixed_dictionaries(
                {
                    "error": st.fixed_dictionaries(
                        {
                            "message": v,
                            "code": v,
                            "details": st.fixed_dictionaries(
                                {"retryAfter": v, "field": v, "reason": v}
                            ),
                        }
                    )
                }
            ),
            st.fixed_dictionaries({"error": v}),
            st.fixed_dictionaries({"message": v, "code": v, "details": v}),
        ],
        "loop": [
            st.fixed_dictionaries({"error": v, "message": v}),
            st.fixed_dictionaries(
                {"error": st.fixed_dictionaries({"code": v, "message": v}), "message": v}
            ),
            st.fixed_dictionaries({"total": v, "messages": v}),
        ],
    }
    return st.one_of(shapes[provider])


# --- Mutating the recorded samples -----------------------------------------------------------

SAMPLES = {
    provider: [read(path) for path in sorted(samples_of(provider).glob("*.json"))]
    for provider in PROVIDERS
}
JSON_SAMPLES = {
    provider: [(r.status, r.headers, r.wire()) for r in records if r.body_text is None]
    for provider, records in SAMPLES.items()
}
# The recordings that answer an operation successfully: mutating these reaches deepest.
READS = {"get_conversation", "list_messages"}


def success_samples(operation: Operation) -> list[tuple[int, dict[str, str], Any]]:
    name = operation.name.partition("(")[0]
    wanted = READS if name in READS else {name}
    return [
        (r.status, r.headers, r.wire())
        for r in SAMPLES[operation.provider]
        if r.operation in wanted and 200 <= r.status < 300 and r.body_text is None
    ]


SUCCESS_SAMPLES = {repr(op): success_samples(op) for op in OPERATIONS}

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a node of a JSON tree, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def get_at(tree: Any, path: Path) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def replaced(tree: Any, path: Path, new: Any) -> Any:
    """A copy of ``tree`` with the node at ``path`` replaced (``DROP`` removes it)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        copy = dict(tree)
        if rest or new is not DROP:
            copy[head] = replaced(tree[head], rest, new)
        else:
            del copy[head]
        return copy
    copy_list = list(tree)
    if rest or new is not DROP:
        copy_list[head] = replaced(tree[head], rest, new)  # type: ignore[index]
    else:
        del copy_list[head]  # type: ignore[arg-type]
    return copy_list


DROP = object()

STRINGS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1.5",
            "99999999999999999999999",
            "NaN",
            "Infinity",
            "2024-01-15T10:30:00Z",
            "2024-01-15 10:30:00",
            "0000-00-00 00:00:00",
            "9999-12-31T23:59:59+23:59",
            "1705315337",
            "[]",
            "{}",
            "null",
            '[{"role": "user"}]',
            '{"id": "c", "name": "f"}',
            "user",
            "assistant",
            "tool",
            "conversation",
        ]
    ),
)


def alike(node: Any) -> st.SearchStrategy[Any]:
    if isinstance(node, bool):
        return st.booleans()
    if isinstance(node, int):
        return st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
    if isinstance(node, float):
        return st.floats(allow_nan=False, allow_infinity=False) | SPECIAL_NUMBERS
    if isinstance(node, str):
        return STRINGS
    if isinstance(node, list):
        return st.lists(st.sampled_from(node), max_size=4) if node else st.just([])
    if isinstance(node, dict):
        return st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=3).map(
            lambda extra: {**node, **extra}
        )
    return json_values


@st.composite
def mutated_samples(draw: st.DrawFn, operation: Operation) -> tuple[int, dict[str, str], bytes]:
    """A recording of the operation (mostly) or of its provider, with 1 to 3 mutations."""
    pool = SUCCESS_SAMPLES[repr(operation)]
    if not pool or draw(st.integers(0, 4)) == 0:
        pool = JSON_SAMPLES[operation.provider]
    status, headers, tree = draw(st.sampled_from(pool))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths(tree)))
        node = get_at(tree, path)
        how = draw(st.sampled_from(["alike", "replace", "drop", "wrap", "retype", "duplicate"]))
        if how == "alike":
            # Same JSON type, other value: odd but well-typed data gets past the decoder.
            new = draw(alike(node))
        elif how == "replace":
            new = draw(json_values)
        elif how == "drop" and path:
            new = DROP
        elif how == "wrap":
            # The providers decode JSON-in-a-string leniently in places: send it that way.
            new = to_json(node).decode()
        elif how == "retype":
            new = draw(
                st.sampled_from(
                    [str(node), [node], {"value": node}, None, 0, -1, 2**70, True, "", 1.5]
                )
            )
        else:
            new = [node, node] if not isinstance(node, list) else node + node
        tree = replaced(tree, path, new)
    if draw(st.integers(0, 7)) == 0:
        status = draw(statuses)
    return status, headers, to_json(tree)
