"""One provider-neutral scenario, run unchanged against every provider's fake.

The scenario function is typed against the protocols only: it is the kind of code users
write once and point at any provider.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import pytest

from wemasy_async import (
    AuthenticationError,
    ChatService,
    Client,
    ConversationId,
    ConversationStore,
    NotFoundError,
    UnsupportedOperationError,
)
from wemasy_async.testing import FakeLoop, FakeServer, FakeSiteAssist, FakeWemasy

TOKEN = "neutral-token"


@dataclass(frozen=True)
class Target:
    """How to reach one provider's fake, and which ids exist there."""

    provider: str
    make_fake: Callable[[], AbstractAsyncContextManager[FakeServer]]
    existing_id: Callable[[FakeServer], ConversationId]
    missing_id: ConversationId


TARGETS = [
    Target(
        "wemasy",
        lambda: FakeWemasy(seed=3, conversations=12, token=TOKEN),
        lambda fake: 4,
        999_999,
    ),
    Target(
        "siteassist",
        lambda: FakeSiteAssist(seed=3, conversations=12, token=TOKEN),
        lambda fake: fake.conversation_ids[3],  # type: ignore[attr-defined, no-any-return]
        uuid.UUID(int=1, version=4),
    ),
    Target(
        "loop",
        lambda: FakeLoop(seed=3, conversations=12, token=TOKEN),
        lambda fake: fake.conversation_ids[3],  # type: ignore[attr-defined, no-any-return]
        str(uuid.UUID(int=1, version=4)),
    ),
]


@dataclass(frozen=True)
class Running:
    target: Target
    fake: FakeServer


@pytest.fixture(params=TARGETS, ids=lambda t: t.provider)
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    target: Target = request.param
    async with target.make_fake() as fake:
        yield Running(target, fake)


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
    target = running.target
    existing = target.existing_id(running.fake)
    async with Client(target.provider, base_url=running.fake.url, token=TOKEN) as client:
        assert isinstance(client, ConversationStore)
        conversation_id, count = await read_scenario(client, existing, target.missing_id)
    assert conversation_id == str(existing).lower()
    assert count >= 2


async def test_wrong_token_is_authentication_error_everywhere(running: Running) -> None:
    target = running.target
    async with Client(target.provider, base_url=running.fake.url, token="wrong") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_conversation(target.existing_id(running.fake))
    assert info.value.status == 401
    assert info.value.provider == target.provider
    assert "wrong" not in str(info.value)


async def test_unsupported_operations_fail_before_io(running: Running) -> None:
    target = running.target
    before = len(running.fake.requests)
    async with Client(target.provider, base_url=running.fake.url, token=TOKEN) as client:
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
            assert (info.value.provider, info.value.operation) == (target.provider, operation)
    assert len(running.fake.requests) == before
    assert {"get_conversation", "list_messages"} <= client.capabilities
