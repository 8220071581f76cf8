"""Every provider's recorded responses (``tests/samples/<provider>/``) are well-formed.

What each recording decodes to is in ``tests/providers/<name>/test_samples.py``.
"""

from __future__ import annotations

import pathlib

import msgspec
import pytest

from tests.support.cases import NAMES
from tests.support.recordings import PARSERS, read, samples_of

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
