"""Static typing of ``Conversation.messages``; checked by ``mypy --strict``.

As ``check_client.py``: each ``assert_type`` pins a type, each ``type: ignore[code]`` marks
a line that must stay a type error. What ``get_conversation`` returns (here, through every
path its result takes) has ``messages: list[Message]``, usable without an ``assert``; a
listing's items keep ``list[Message] | None``; a bare ``Conversation`` annotation still
means the latter and accepts either.
"""

from __future__ import annotations

from typing_extensions import assert_type

from wemasy_async import Client, Conversation, ConversationStore, Message, sync


def first(conversation: Conversation[list[Message]]) -> Message:
    return conversation.messages[0]


def count(conversation: Conversation) -> int:
    # A bare Conversation may come from a listing: its messages need a check.
    return len(conversation.messages or ())


async def get(client: Client, store: ConversationStore) -> None:
    c = await client.get_conversation(1)
    assert_type(c.messages, list[Message])
    assert_type(c.messages[0], Message)
    assert_type((await store.get_conversation(1)).messages, list[Message])
    assert_type((await client.with_raw_response.get_conversation(1)).value.messages, list[Message])
    first(c)
    count(c)  # covariant: a Conversation[list[Message]] is a Conversation
    bare: Conversation = c
    assert_type(bare.messages, list[Message] | None)
    bare.messages[0]  # type: ignore[index]
    first(bare)  # type: ignore[arg-type]


async def listed(client: Client) -> None:
    page = await client.list_conversations()
    assert_type(page.items[0].messages, list[Message] | None)
    page.items[0].messages[0]  # type: ignore[index]
    first(page.items[0])  # type: ignore[arg-type]
    async for item in client.iter_conversations():
        count(item)
        item.messages[0]  # type: ignore[index]


async def batch(client: Client) -> None:
    async with client.fetch_conversations([1, 2]) as results:
        async for result in results:
            if result.ok:
                assert_type(result.value.messages[0], Message)
            assert_type(result.unwrap().messages, list[Message])


def blocking(client: sync.Client) -> None:
    assert_type(client.get_conversation(1).messages[0], Message)
    assert_type(client.with_raw_response.get_conversation(1).value.messages, list[Message])
    for result in client.fetch_conversations([1]):
        if result.error is None:
            assert_type(result.value.messages, list[Message])
    client.list_conversations().items[0].messages[0]  # type: ignore[index]


def construction(message: Message) -> None:
    # Without messages a Conversation is the default (messages may be None) ...
    plain = Conversation(id="1", provider="p")
    assert_type(plain, Conversation[list[Message] | None])
    full: Conversation[list[Message]] = plain  # type: ignore[assignment]
    # ... and with a list, a Conversation[list[Message]].
    whole = Conversation(id="1", provider="p", messages=[message])
    assert_type(whole, Conversation[list[Message]])
    first(whole)
    Conversation(id="1", provider="p", messages=[1])  # type: ignore[type-var]
    Conversation(id="1", provider="p", messages="hi")  # type: ignore[type-var]
    del full
