"""Recorded provider responses (``tests/samples/<provider>/*.json``), shared by the sample tests.

Each file holds ``{description, operation, status, headers, body}`` (``body_text`` instead
of ``body`` for a response that is not JSON, such as a proxy's HTML page).
"""

from __future__ import annotations

import pathlib
from typing import Any

import msgspec
from multidict import CIMultiDict

from wemasy_async.providers.base import Response

SAMPLES_ROOT = pathlib.Path(__file__).parents[1] / "samples"


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded response and the operation it answers."""

    description: str
    operation: str
    status: int
    headers: dict[str, str]
    body: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    body_text: str | None = None

    def response(self) -> Response:
        """The response as the engine hands it to a provider: case-insensitive headers."""
        body = self.body_text.encode() if self.body_text is not None else bytes(self.body)
        return Response(self.status, CIMultiDict(self.headers), body)

    def wire(self) -> Any:
        """The JSON body as plain Python values."""
        return msgspec.json.decode(self.body)


def samples_of(provider: str) -> pathlib.Path:
    """The folder of one provider's recordings."""
    return SAMPLES_ROOT / provider


def read(path: pathlib.Path) -> Recording:
    """Decode one recording file."""
    return msgspec.json.decode(path.read_bytes(), type=Recording)
