"""Recorded provider responses (``tests/samples/<provider>/*.json``), shared by the sample tests.

Each file holds ``{description, operation, status, headers, body}`` (``body_text`` instead
of ``body`` for a response that is not JSON, such as a proxy's HTML page).
:func:`utc` and :func:`assert_utc` are what the sample tests compare timestamps with.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from multidict import CIMultiDict

from wemasy_async.providers.base import ChatParams, ListConversationsParams, Response
from wemasy_async.providers.loop import LoopProvider
from wemasy_async.providers.siteassist import SiteAssistProvider
from wemasy_async.providers.wemasy import WemasyProvider

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


def response(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Response:
    """A response as the engine hands it to ``parse``: aiohttp's case-insensitive headers."""
    return Response(status, CIMultiDict(headers or {}), body)


SITEASSIST_DOCS_ID = "123e4567-e89b-12d3-a456-426614174000"
"""The conversation id of SiteAssist's documentation examples."""
LOOP_CID = "7d0f4a52-1b9e-4c3a-8f21-6a5e9b3c2d10"
"""The Loop conversation id the recordings are parsed for."""

PARSERS: dict[str, dict[str, Callable[[Response], Any]]] = {
    "wemasy": {
        "get_conversation": WemasyProvider().get_conversation(1).parse,
        "list_messages": WemasyProvider().list_messages(1).parse,
        "list_conversations": WemasyProvider()
        .list_conversations(ListConversationsParams(per_page=2, page=2))
        .parse,
        "chat": WemasyProvider().chat(ChatParams(message="hi")).parse,
    },
    "siteassist": {
        "get_conversation": SiteAssistProvider().get_conversation(SITEASSIST_DOCS_ID).parse,
        "list_messages": SiteAssistProvider().list_messages(SITEASSIST_DOCS_ID).parse,
    },
    "loop": {
        "get_conversation": LoopProvider().get_conversation(LOOP_CID).parse,
        "list_messages": LoopProvider().list_messages(LOOP_CID).parse,
    },
}
"""Per provider, the parse of each operation a recording can answer."""


class Samples:
    """One provider's recordings: the folder, the parsers, and a recording by name."""

    def __init__(self, provider: str) -> None:
        self.folder = samples_of(provider)
        self.parsers = PARSERS[provider]

    def load(self, name: str) -> Recording:
        """The recording ``<name>.json``."""
        return read(self.folder / f"{name}.json")

    def parse(self, name: str, operation: str | None = None) -> Any:
        """The recording parsed as ``operation`` (by default the one it answers)."""
        recording = self.load(name)
        return self.parsers[operation or recording.operation](recording.response())


def utc(
    year: int, month: int, day: int, hour: int, minute: int, second: int, ms: int = 0
) -> datetime:
    """An aware UTC datetime, to the millisecond: what a recording's timestamps decode to."""
    return datetime(year, month, day, hour, minute, second, ms * 1000, tzinfo=timezone.utc)


def assert_utc(value: datetime | None, expected: datetime) -> None:
    """``value`` is ``expected``, and in UTC (an offset of zero, not merely the same instant)."""
    assert value == expected
    assert value is not None
    assert value.utcoffset() == timedelta(0)
