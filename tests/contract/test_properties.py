"""Property-based tests: whatever a server sends, only errors from our tree come out.

Hypothesis feeds every provider's ``parse`` functions (each operation the provider supports,
built through its adapter) with arbitrary bytes, arbitrary JSON, the recorded samples in
``tests/samples/`` mutated at random, and arbitrary statuses with arbitrary headers and
error envelopes (:mod:`tests.support.properties`). Each example must end in one of two ways:

- a :class:`~wemasy_async.errors.WemasyAsyncError` (for an error status, the
  :class:`~wemasy_async.errors.APIStatusError` for that status, with a sane ``retry_after``),
- or a result of the documented type whose fields all have their declared types.

Never a ``msgspec``, ``ValueError``, ``KeyError``, ``TypeError``, ``OverflowError``,
``RecursionError``, ``UnicodeDecodeError``... The rate-limit header parser and the limiter's
in-process store get the same treatment in ``test_properties_limits.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.properties import (
    FEW,
    JSON_SAMPLES,
    OPERATIONS,
    OPERATIONS_BY_PROVIDER,
    PROVIDERS,
    SAMPLES,
    SOME,
    SUCCESS_SAMPLES,
    Operation,
    Token,
    check_error,
    envelopes,
    headers_strategy,
    json_values,
    mutated_samples,
    response,
    run,
    statuses,
    to_json,
)
from wemasy_async.errors import APIStatusError, ResponseDecodeError
from wemasy_async.providers.registry import get_provider

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
