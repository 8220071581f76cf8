"""The provider-case registry: the three providers side by side, for the tests that run the
same scenario on each (the contract tests, through the ``case`` fixture of ``conftest.py``).

A :class:`ProviderCase` knows how to start the provider's fake, which ids it serves, which
endpoint a ``get_conversation`` reaches (to aim queued faults at) and an id the provider
refuses before any I/O. Parametrize over :data:`CASES` (ids are the provider names), or over
:data:`NAMES` where a test needs only the name. A new provider gets its case here.
:func:`released` waits for a fake's held fault connections to close.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wemasy_async import ConversationId
from wemasy_async.testing import FakeLoop, FakeServer, FakeSiteAssist, FakeWemasy
from wemasy_async.testing.loop import MESSAGES_PATH
from wemasy_async.testing.siteassist import CONVERSATION_PATH
from wemasy_async.testing.wemasy import GET_PATH


# Small conversations, 300 unless told otherwise: the scenarios are about the wire.
def _wemasy(**kwargs: Any) -> FakeServer:
    return FakeWemasy(**{"conversations": 300, **kwargs})


def _siteassist(**kwargs: Any) -> FakeServer:
    return FakeSiteAssist(**{"conversations": 300, "messages_per_conversation": (1, 3), **kwargs})


def _loop(**kwargs: Any) -> FakeServer:
    return FakeLoop(**{"conversations": 300, "long_conversations": 0, **kwargs})


def _wemasy_ids(fake: FakeServer) -> list[str]:
    assert isinstance(fake, FakeWemasy)
    return [str(i) for i in fake.conversations]


def _siteassist_ids(fake: FakeServer) -> list[str]:
    assert isinstance(fake, FakeSiteAssist)
    return fake.conversation_ids


def _loop_ids(fake: FakeServer) -> list[str]:
    assert isinstance(fake, FakeLoop)
    return list(fake.conversation_ids)


@dataclass(frozen=True)
class ProviderCase:
    """One provider as the tests see it.

    Attributes:
        name: The provider name, as given to ``Client``.
        start: Builds the provider's fake (not started) from FakeServer keyword arguments.
        ids: The conversation ids a started fake serves, as strings.
        get_path: The route template ``get_conversation`` reaches (a fault ``path``).
        bad_id: An id the adapter refuses with ``InvalidRequestError`` before any I/O.
        validates_ids: Whether the provider accepts only a fixed id shape (digits, UUIDs)
            rather than any string it percent-encodes.
        native_id: One of ``ids`` as a caller of this provider would hold it (an ``int``
            for Wemasy's integer ids, else the string).
        missing_id: An id of the provider's shape that its fakes never serve (a 404), in a
            type the client takes for it.
    """

    name: str
    start: Callable[..., FakeServer]
    ids: Callable[[FakeServer], list[str]]
    get_path: str
    bad_id: str
    validates_ids: bool
    native_id: Callable[[str], ConversationId]
    missing_id: ConversationId

    def __str__(self) -> str:
        return self.name


def _same(conversation_id: str) -> ConversationId:
    return conversation_id


CASES = [
    ProviderCase("wemasy", _wemasy, _wemasy_ids, GET_PATH, "abc", True, int, 999_999),
    ProviderCase(
        "siteassist",
        _siteassist,
        _siteassist_ids,
        CONVERSATION_PATH,
        "not-a-uuid",
        True,
        _same,
        uuid.UUID(int=1, version=4),
    ),
    ProviderCase(
        "loop",
        _loop,
        _loop_ids,
        MESSAGES_PATH,
        "..",
        False,
        _same,
        str(uuid.UUID(int=1, version=4)),
    ),
]
NAMES = tuple(case.name for case in CASES)
"""The providers' names, in the order of :data:`CASES`."""


async def released(fake: FakeServer) -> bool:
    """Wait (boundedly) until no fault holds a connection of ``fake`` open."""
    for _ in range(1000):
        if not fake.held_connections:
            return True
        await asyncio.sleep(0.01)
    return False
