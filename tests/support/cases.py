"""The provider-case registry: the three providers side by side, for the tests that run the
same scenario on each (the contract tests, through the ``case`` fixture of ``conftest.py``).

A :class:`ProviderCase` knows how to start the provider's fake, which ids it serves, which
endpoint a ``get_conversation`` reaches (to aim queued faults at) and an id the provider
refuses before any I/O. Parametrize over :data:`CASES` (ids are the provider names), or over
:data:`NAMES` where a test needs only the name. A new provider gets its case here.
:func:`released` waits for a fake's held fault connections to close.

:data:`RECORDED` says, per case name, which of the provider's recordings
(``tests/samples/<name>/``) the contract tests over them read, and what they expect of them;
:func:`recorded` parametrizes a test over (case, recording) pairs from it. :data:`REDIRECTED`
says how a provider's tests send its parse a redirect.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.recordings import samples_of
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


@dataclass(frozen=True)
class Recorded:
    """What one provider's recordings hold, for the tests written once over them.

    Attributes:
        conversations: The recordings of a ``get_conversation`` that decodes; ``list_messages``
            reads the same messages from each.
        refused: Recordings every parser refuses with ``ResponseDecodeError``, each with a
            reason its message names (Wemasy's refused docs examples are its own tests').
        expected: What such a refusal says the body should have been.
        refused_excerpt: How the excerpt of each refusal starts, where the provider's tests say.
        hintless_errors: Whether every error recording but the 429s raises an error without
            a retry hint (:func:`hintless_errors` lists them; SiteAssist's error test checks
            each error's hint itself).
    """

    conversations: tuple[str, ...]
    refused: Mapping[str, str]
    expected: str
    refused_excerpt: str | None
    hintless_errors: bool


RECORDED: dict[str, Recorded] = {
    "wemasy": Recorded(
        conversations=("get_int_ids", "get_lenient_types", "get_null_messages_offset_time"),
        refused={},
        expected="a Wemasy conversation envelope",
        refused_excerpt=None,
        hintless_errors=True,
    ),
    "siteassist": Recorded(
        conversations=(
            "get_docs_example",
            "get_with_messages",
            "get_closed_human_agent",
            "get_upper_case_uuid",
            "get_human_agent_email_null_messages",
            "get_human_agent_id_only_no_messages",
        ),
        refused={
            "get_wrong_object_type": "object is 'list', not 'conversation'",
            "get_unknown_role": "unknown message role 'robot'",
        },
        expected="a SiteAssist conversation",
        refused_excerpt=None,
        hintless_errors=False,
    ),
    "loop": Recorded(
        conversations=(
            "history_docs_schema",
            "history_truncated",
            "history_tool_calls",
            "history_token_usage_floats",
            "history_nulls_and_omissions",
            "history_empty",
        ),
        refused={
            "history_fractional_tokens": (
                "got `float` - at `$.messages[0].token_usage.completion_tokens`"
            ),
            "history_unknown_role": "unknown message role 'moderator'",
        },
        expected="a Loop message history",
        refused_excerpt='{ "total": 1, "messages": [',
        hintless_errors=True,
    ),
}
"""Per case name, what its recordings hold (see :class:`Recorded`)."""


def recorded(names: Callable[[Recorded], Iterable[str]]) -> list[Any]:
    """``(case, name)`` parameters: each case with each recording ``names`` picks of its own."""
    return [
        pytest.param(case, name, id=f"{case}-{name}")
        for case in CASES
        for name in names(RECORDED[case.name])
    ]


def hintless_errors(case: ProviderCase) -> list[str]:
    """The case's error recordings but the 429s, if its errors carry no retry hint (read
    from its folder, so that a new error recording is checked too)."""
    if not RECORDED[case.name].hintless_errors:
        return []
    errors = samples_of(case.name).glob("error_*.json")
    return sorted(path.stem for path in errors if not path.stem.startswith("error_429"))


REDIRECTED: dict[str, tuple[str, str]] = {
    "siteassist": ("get_conversation", "https://login.siteassist.io/?next=/v2"),
    "loop": ("list_messages", "https://login.loop.health/"),
}
"""Per case name, the operation whose parse gets a redirect and the redirect's ``Location``
(Wemasy's redirect test checks more, in ``tests/providers/wemasy/test_adapter_responses.py``)."""


async def released(fake: FakeServer) -> bool:
    """Wait (boundedly) until no fault holds a connection of ``fake`` open."""
    for _ in range(1000):
        if not fake.held_connections:
            return True
        await asyncio.sleep(0.01)
    return False
