"""One provider-neutral scenario, run unchanged against every provider's fake.

The scenario function is typed against the protocols only: it is the kind of code users
write once and point at any provider.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from tests.support.cases import CASES, NAMES, ProviderCase
from wemasy_async import (
    AuthenticationError,
    ChatService,
    Client,
    ConversationId,
    ConversationStore,
    NotFoundError,
    UnsupportedOperationError,
)
from wemasy_async.testing import FakeServer

TOKEN = "neutral-token"


@dataclass(frozen=True)
class Running:
    case: ProviderCase
    fake: FakeServer

    @property
    def existing(self) -> ConversationId:
        """The fourth conversation of a 12-conversation fake, as its callers hold ids."""
        return self.case.native_id(self.case.ids(self.fake)[3])


@pytest.fixture(params=CASES, ids=NAMES)
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    case: ProviderCase = request.param
    async with case.start(seed=3, conversations=12, token=TOKEN) as fake:
        yield Running(case, fake)


async def read_scenario(
    store: ConversationStore, existing: ConversationId, missing: ConversationId
) -> tuple[str, int]:
    """Get a conversation, read its messages, and handle a missing one."""
    conversation = await store.get_conversation(existing)
    messages = await store.list_messages(existing)
    assert conversation.messages == messages
    assert messages, "every seeded conversation has messages"
    assert all(m.role in ("user", "assistant", "system", "tool") for m in messages)
    assert all(m.conversation_id == conversation.id for m in messages)
    first_two = await store.list_messages(existing, limit=2)
    assert first_two == messages[:2]
    with pytest.raises(NotFoundError) as info:
        await store.get_conversation(missing)
    assert info.value.status == 404
    return conversation.id, len(messages)


async def _invoke(attempt: Callable[[], object]) -> None:
    result = attempt()  # iter_conversations raises on the call; the others when awaited
    if inspect.isawaitable(result):
        await result


async def test_same_scenario_on_every_provider(running: Running) -> None:
    case = running.case
    existing = running.existing
    async with Client(case.name, base_url=running.fake.url, token=TOKEN) as client:
        assert isinstance(client, ConversationStore)
        conversation_id, count = await read_scenario(client, existing, case.missing_id)
    assert conversation_id == str(existing).lower()
    assert count >= 2


async def test_wrong_token_is_authentication_error_everywhere(running: Running) -> None:
    case = running.case
    async with Client(case.name, base_url=running.fake.url, token="wrong") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_conversation(running.existing)
    assert info.value.status == 401
    assert info.value.provider == case.name
    assert "wrong" not in str(info.value)


async def test_unsupported_operations_fail_before_io(running: Running) -> None:
    case = running.case
    before = len(running.fake.requests)
    async with Client(case.name, base_url=running.fake.url, token=TOKEN) as client:
        assert isinstance(client, ChatService)
        attempts: dict[str, Callable[[], object]] = {
            "list_conversations": lambda: client.list_conversations(),
            "iter_conversations": lambda: client.iter_conversations(),
            "chat": lambda: client.chat("hello"),
        }
        for operation, attempt in attempts.items():
            if operation in client.capabilities:
                continue
            with pytest.raises(UnsupportedOperationError) as info:
                await _invoke(attempt)
            assert (info.value.provider, info.value.operation) == (case.name, operation)
    assert len(running.fake.requests) == before
    assert {"get_conversation", "list_messages"} <= client.capabilities
