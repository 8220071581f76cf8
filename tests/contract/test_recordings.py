"""Every provider's recorded responses (``tests/samples/<provider>/``) are well-formed, and
what every provider's recordings share: list_messages reads a conversation's messages, refused
bodies and errors without a retry hint (which recordings, in ``RECORDED`` of
``tests/support/cases.py``).

What each recording decodes to is in ``tests/providers/<name>/test_samples.py``.
"""

from __future__ import annotations

import pathlib

import msgspec
import pytest

from tests.support.cases import CASES, NAMES, RECORDED, ProviderCase, hintless_errors, recorded
from tests.support.recordings import PARSERS, Samples, read, samples_of
from wemasy_async import APIStatusError, Message, ResponseDecodeError

RECORDINGS = [
    pytest.param(provider, path, id=f"{provider}-{path.stem}")
    for provider in NAMES
    for path in sorted(samples_of(provider).glob("*.json"))
]


@pytest.mark.parametrize(("provider", "path"), RECORDINGS)
def test_sample_files_are_well_formed_recordings(provider: str, path: pathlib.Path) -> None:
    recording = read(path)
    assert recording.operation in PARSERS[provider]
    assert 200 <= recording.status < 600
    assert recording.description
    # Exactly one of body (JSON) and body_text (anything else).
    assert (len(recording.body) > 0) != (recording.body_text is not None)
    if recording.body_text is not None:
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(recording.body_text)


@pytest.mark.parametrize(("case", "name"), recorded(lambda r: r.conversations))
def test_list_messages_reads_the_same_messages_as_get(case: ProviderCase, name: str) -> None:
    parse = Samples(case.name).parse
    conversation = parse(name, "get_conversation")
    messages = parse(name, "list_messages")
    assert isinstance(messages, list)
    assert all(isinstance(m, Message) for m in messages)
    assert messages == (conversation.messages or [])


REFUSED = [
    pytest.param(case, name, operation, id=f"{case}-{name}-{operation}")
    for case in CASES
    for name in sorted(RECORDED[case.name].refused)
    for operation in sorted(PARSERS[case.name])
]


@pytest.mark.parametrize(("case", "name", "operation"), REFUSED)
def test_undecodable_samples(case: ProviderCase, name: str, operation: str) -> None:
    expected = RECORDED[case.name]
    with pytest.raises(ResponseDecodeError) as info:
        Samples(case.name).parse(name, operation)
    error = info.value
    assert error.status == 200
    assert error.provider == case.name
    assert error.expected == expected.expected
    assert expected.refused[name] in str(error)
    if expected.refused_excerpt is not None:
        assert error.excerpt.startswith(expected.refused_excerpt)


HINTLESS = [
    pytest.param(case, name, id=f"{case}-{name}")
    for case in CASES
    for name in hintless_errors(case)
]


@pytest.mark.parametrize(("case", "name"), HINTLESS)
def test_non_429_samples_have_no_retry_after(case: ProviderCase, name: str) -> None:
    with pytest.raises(APIStatusError) as info:
        Samples(case.name).parse(name)
    assert getattr(info.value, "retry_after", None) is None
