"""Property-based tests: whatever a server sends, only errors from our tree come out.

Hypothesis feeds every provider's ``parse`` functions (each operation the provider supports,
built through its adapter) with arbitrary bytes, arbitrary JSON, the recorded samples in
``tests/samples/`` mutated at random, and arbitrary statuses with arbitrary headers and
error envelopes. Each example must end in one of two ways:

- a :class:`~wemasy_async.errors.WemasyAsyncError` (for an error status, the
  :class:`~wemasy_async.errors.APIStatusError` for that status, with a sane ``retry_after``),
- or a result of the documented type whose fields all have their declared types.

Never a ``msgspec``, ``ValueError``, ``KeyError``, ``TypeError``, ``OverflowError``,
``RecursionError``, ``UnicodeDecodeError``... The rate-limit header parser and the limiter's
in-process store get the same treatment with arbitrary header values.
"""

from __future__ import annotations

import math
import pickle
import types
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, TypeVar, Union

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from tests.support.cases import NAMES
from tests.support.recordings import read, samples_of
from wemasy_async.errors import APIStatusError, ResponseDecodeError, WemasyAsyncError, status_error
from wemasy_async.headers import RateLimitInfo, parse_retry_after
from wemasy_async.models import ChatReply, Conversation, Message, Page
from wemasy_async.providers.base import Call, ChatParams, ListConversationsParams, Response
from wemasy_async.providers.registry import get_provider
from wemasy_async.ratelimit import LocalStore, Pacing, RateLimit, Ticket
from wemasy_async.schedule import Acquire, Release

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
        Operation(provider, "get_conversation", adapter.get_conversation(some_id), Conversation),
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
    parameters of a generic struct (``Page[Conversation]``).
    """
    typevars = typevars or {}
    if isinstance(expected, TypeVar):
        expected = typevars[expected]
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


# --- Decoders: arbitrary bytes, JSON, mutated samples, statuses and envelopes ----------------


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@FEW
@given(body=st.binary(max_size=200), status=statuses)
def test_arbitrary_bytes(operation: Operation, body: bytes, status: int) -> None:
    run(operation, response(status, body))


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@FEW
@given(value=json_values, status=st.sampled_from([200, 201, 204]) | statuses)
def test_arbitrary_json(operation: Operation, value: Any, status: int) -> None:
    run(operation, response(status, to_json(value)))


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@SOME
@given(data=st.data())
def test_mutated_samples(operation: Operation, data: st.DataObject) -> None:
    status, headers, body = data.draw(mutated_samples(operation))
    run(operation, response(status, body, headers))


@st.composite
def byte_mutated_samples(draw: st.DrawFn, operation: Operation) -> bytes:
    """A successful recording's bytes with a few bytes overwritten, inserted or cut off."""
    _, _, tree = draw(st.sampled_from(SUCCESS_SAMPLES[repr(operation)]))
    body = bytearray(to_json(tree))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        junk = draw(st.binary(min_size=1, max_size=3) | st.sampled_from([b"\x80", b"\xc3", b"\\"]))
        how = draw(st.sampled_from(["overwrite", "insert", "truncate"]))
        if how == "overwrite":
            body[at : at + len(junk)] = junk
        elif how == "insert":
            body[at:at] = junk
        else:
            del body[at:]
    return bytes(body)


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@FEW
@given(data=st.data())
def test_byte_mutated_samples(operation: Operation, data: st.DataObject) -> None:
    run(operation, response(200, data.draw(byte_mutated_samples(operation))))


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_unmutated_samples_parse_or_fail_cleanly(operation: Operation) -> None:
    # The baseline for the mutations: every recording, fed to every call of its provider.
    for record in SAMPLES[operation.provider]:
        run(operation, record.response())


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@FEW  # drawing nested envelopes is slow; an operation's error path is its provider's anyway
@given(data=st.data(), status=statuses, headers=headers_strategy)
def test_statuses_headers_and_envelopes(
    operation: Operation, data: st.DataObject, status: int, headers: dict[str, str]
) -> None:
    body = data.draw(envelopes(operation.provider).map(to_json) | st.binary(max_size=50))
    run(operation, response(status, body, headers))


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@FEW
@given(status=statuses.filter(lambda s: not 200 <= s < 300), headers=headers_strategy)
def test_error_statuses_always_give_their_status_error(
    operation: Operation, status: int, headers: dict[str, str]
) -> None:
    # Whatever the body, a non-2xx status is the APIStatusError for that status, never a
    # decode error (check_error asserts the class and the retry_after range).
    with pytest.raises(APIStatusError) as info:
        operation.call.parse(response(status, b'{"message": "nope"}', headers))
    check_error(info.value, response(status, b"", headers))


def nested(depth: int, open_: bytes = b"[", close: bytes = b"]", inner: bytes = b"") -> bytes:
    return open_ * depth + inner + close * depth


DEEP_OBJECT = nested(10_000, b'{"a":', b"}", b"1")
DEEP_BODIES = {
    "lists": nested(10_000),
    "objects": DEEP_OBJECT,
    "wemasy data": b'{"success":true,"data":' + nested(10_000) + b"}",
    # One body that is a Wemasy, SiteAssist and Loop success at once, but for the metadata.
    "metadata": (
        b'{"success":true,"total":1,"id":"6f1c2b9e-4d3a-4e8b-9c7d-2a1b3c4d5e6f",'
        b'"data":{"id":1,"messages":[{"role":"user","metadata":' + DEEP_OBJECT + b"}]},"
        b'"messages":[{"role":"user","metadata":' + DEEP_OBJECT + b"}]}"
    ),
    "messages in a string": (
        b'{"success":true,"data":{"id":1,"messages":"' + nested(10_000) + b'"}}'
    ),
    "tool_calls in a string": (
        b'{"success":true,"data":{"content":"x","tool_calls":"' + nested(10_000) + b'"}}'
    ),
    "unknown field": b'{"success":true,"data":{"id":1},"extra":' + nested(10_000) + b"}",
}


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
@pytest.mark.parametrize("status", [200, 404, 422, 429, 500])
def test_deep_nesting_gives_our_error(operation: Operation, body: bytes, status: int) -> None:
    # msgspec raises RecursionError past ~1,000 levels; it must not escape as one.
    run(operation, response(status, body))


def test_deep_nesting_is_refused_with_a_decode_error() -> None:
    (operation,) = (op for op in OPERATIONS if repr(op) == "wemasy.get_conversation")
    with pytest.raises(ResponseDecodeError, match="nested too deeply"):
        operation.call.parse(response(200, DEEP_BODIES["unknown field"]))


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
@pytest.mark.parametrize("status", [200, 404, 500])
def test_invalid_utf8_in_a_json_string_gives_our_error(operation: Operation, status: int) -> None:
    # msgspec raises UnicodeDecodeError (not a DecodeError) for these: a Latin-1 server.
    for body in (
        b'"\x80"',
        b'{"message": "caf\xe9"}',
        b'{"success":true,"data":{"id":1,"x\xff":1}}',
    ):
        run(operation, response(status, body))


def test_invalid_utf8_is_reported_as_such() -> None:
    (operation,) = (op for op in OPERATIONS if repr(op) == "loop.list_messages")
    body = b'{"total":1,"messages":[{"role":"user","content":"caf\xe9"}]}'
    with pytest.raises(ResponseDecodeError, match="not valid UTF-8"):
        operation.call.parse(response(200, body))
    with pytest.raises(APIStatusError) as info:
        operation.call.parse(response(404, b'{"error":"nope","message":"caf\xe9"}'))
    assert info.value.body == '{"error":"nope","message":"caf\ufffd"}'  # kept as text


def test_non_finite_cost_amount_is_refused() -> None:
    # A cost of NaN or Infinity is not an amount; Decimal would carry it silently.
    (operation,) = (op for op in OPERATIONS if repr(op) == "wemasy.get_conversation")
    for amount in (b'"NaN"', b'"Infinity"', b'"-inf"', b'"sNaN"'):
        body = b'{"success":true,"data":{"id":1,"cost_amount":' + amount + b"}}"
        with pytest.raises(ResponseDecodeError, match="cost_amount"):
            operation.call.parse(response(200, body))


# --- The rate-limit header parser ------------------------------------------------------------


def check_retry_after(value: float | None) -> None:
    assert value is None or (
        type(value) is float and math.isfinite(value) and 0 <= value <= MAX_RETRY_AFTER
    ), value


@SOME
@given(headers=headers_strategy)
def test_rate_limit_info_from_arbitrary_headers(headers: dict[str, str]) -> None:
    info = RateLimitInfo.from_headers(CIMultiDict(headers))
    for count in (info.limit, info.remaining):
        # Documented: a non-negative int, or None when missing or unreadable.
        assert count is None or (type(count) is int and 0 <= count < 10**18), count
    check_retry_after(info.retry_after)


@SOME
@given(value=header_values | st.none(), date=header_values | st.none())
def test_parse_retry_after_never_raises(value: str | None, date: str | None) -> None:
    check_retry_after(parse_retry_after(value, date=date))


def http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S %z")


offsets = st.integers(min_value=-1439, max_value=1439).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@SOME
@given(target=st.datetimes(timezones=st.timezones()), now=st.datetimes(timezones=st.timezones()))
def test_parse_retry_after_any_http_dates(target: datetime, now: datetime) -> None:
    # Any year (strftime writes year 5 as "5", which parsedate reads as 2005), any zone.
    check_retry_after(parse_retry_after(http_date(target), date=http_date(now)))


@SOME
@given(
    now=st.datetimes(min_value=datetime(1900, 1, 3), max_value=datetime(9999, 12, 29)),
    delta=st.floats(min_value=-2 * 86_400, max_value=2 * 86_400),
    now_zone=offsets,
    target_zone=offsets,
)
def test_parse_retry_after_reads_http_dates_against_date(
    now: datetime, delta: float, now_zone: timezone, target_zone: timezone
) -> None:
    now = now.replace(microsecond=0, tzinfo=now_zone)
    target = (now + timedelta(seconds=delta)).astimezone(target_zone)
    seconds = parse_retry_after(http_date(target), date=http_date(now))
    check_retry_after(seconds)
    # The dates are read to the second, against Date rather than the local clock.
    if delta <= 0:
        assert seconds == 0.0
    elif delta <= MAX_RETRY_AFTER:
        assert seconds == pytest.approx(delta, abs=1)
    elif delta > MAX_RETRY_AFTER + 1:
        assert seconds is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("86400", 86_400.0),
        ("86401", None),
        ("-1", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("Infinity", None),
        ("1e3", None),
        ("1_000", None),  # float() reads it; RFC 9110's delta-seconds is digits only
        ("١٢", None),  # Arabic-Indic digits: float() reads them too
        ("+5", None),
        ("0x10", None),
        ("", None),
        ("99999999999999999999999999999999", None),
    ],
)
def test_parse_retry_after_delta_seconds(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


# --- The limiter's in-process store ----------------------------------------------------------


counts = st.none() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
infos = st.none() | st.builds(
    RateLimitInfo,
    limit=counts,
    remaining=counts,
    retry_after=st.none() | st.floats(),
)
configs = st.builds(
    RateLimit,
    window=st.floats(min_value=0.001, max_value=86_400),
    margin=st.none() | st.floats(min_value=0, max_value=60),
    ceiling=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.floats(min_value=0, max_value=1e6)),
        st.tuples(
            st.just("observe"),
            st.floats(min_value=0, max_value=1e6),
            infos,
            st.booleans(),
            st.floats(),  # paused: whatever arrives must not break the schedule
        ),
    ),
    max_size=30,
)


@SOME
@given(config=configs, script=steps)
def test_local_store_waits_are_never_negative_or_nan(
    config: RateLimit, script: list[tuple[Any, ...]]
) -> None:
    now = [1000.0]
    store = LocalStore(clock=lambda: now[0])
    pacing = Pacing(config.window, config.pacing_margin, config.ceiling)
    held: list[Ticket] = []
    for step in script:
        now[0] += step[1]
        if step[0] == "acquire":
            decision = store.apply_now("key", pacing, Acquire())
            if decision.ticket is not None:
                held.append(decision.ticket)
        else:
            _, _, info, sent, paused = step
            ticket = held.pop() if held and sent else None
            decision = store.apply_now("key", pacing, Release(ticket, True, info, paused))
        for wait in decision.delay, decision.paused:
            assert type(wait) is float, decision
            assert math.isfinite(wait), decision
            assert wait >= 0, decision


@FEW
@given(headers=headers_strategy, config=configs)
def test_local_store_learns_from_any_parsed_headers(
    headers: dict[str, str], config: RateLimit
) -> None:
    # The path the engine takes: headers -> RateLimitInfo -> store, then the next acquire.
    now = [5.0]
    store = LocalStore(clock=lambda: now[0])
    pacing = Pacing(config.window, config.pacing_margin, config.ceiling)
    info = RateLimitInfo.from_headers(CIMultiDict(headers))
    assume(info != RateLimitInfo() or headers)
    probe = store.apply_now("key", pacing, Acquire())
    store.apply_now("key", pacing, Release(probe.ticket, True, info, info.retry_after or 0.0))
    for _ in range(3):
        decision = store.apply_now("key", pacing, Acquire())
        wait = decision.delay
        assert math.isfinite(wait), wait
        assert wait >= 0, wait
        if decision.ticket is not None:
            store.apply_now("key", pacing, Release(decision.ticket, True, RateLimitInfo()))
        now[0] += wait


# --- The strategies themselves exercise what they should -------------------------------------


def test_samples_are_loaded_for_every_provider() -> None:
    for provider in PROVIDERS:
        assert len(JSON_SAMPLES[provider]) >= 10, provider
    for operation in OPERATIONS:
        assert SUCCESS_SAMPLES[repr(operation)], f"no successful recording for {operation!r}"


def test_every_provider_has_an_operation_for_each_capability() -> None:
    for provider in PROVIDERS:
        names = {op.name for op in OPERATIONS_BY_PROVIDER[provider]}
        capabilities = get_provider(provider).capabilities - {"iter_conversations"}
        assert capabilities <= names | {"list_messages"}, provider


def test_to_json_writes_special_numbers_verbatim() -> None:
    assert to_json([Token("NaN"), 2**70, {"a": None}]) == b'[NaN,1180591620717411303424,{"a":null}]'
