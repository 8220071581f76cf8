"""Static typing of the blocking client (``wemasy_async.sync``); checked by ``mypy --strict``.

As ``check_client.py``: each ``assert_type`` pins a return type, each ``type: ignore[code]``
a call that must stay a type error.
"""

from __future__ import annotations

from collections.abc import Iterator

from typing_extensions import assert_type

from wemasy_async import ChatReply, Conversation, FetchResult, Message, Page
from wemasy_async.sync import BatchIterator, Client


def blocking(client: Client) -> None:
    assert_type(client.get_conversation(27), Conversation[list[Message]])
    assert_type(client.list_messages(27, limit=5), list[Message])
    assert_type(client.list_conversations(per_page=5), Page[Conversation])
    assert_type(client.iter_conversations(), Iterator[Conversation])
    assert_type(client.chat("hi"), ChatReply)
    batch = client.fetch_conversations(range(10))
    assert_type(batch, BatchIterator[Conversation[list[Message]]])
    for result in batch:
        assert_type(result, FetchResult[Conversation[list[Message]]])
    assert_type(client.fetch_messages([1]), BatchIterator[list[Message]])
    with Client("wemasy", token="t") as other:
        assert_type(other, Client)
    client.get_conversation()  # type: ignore[call-arg]
    Client("wemasy", session=None)  # type: ignore[call-arg]  # a session belongs to a loop


def hooks_and_headers() -> None:
    Client("wemasy", token="t", hooks=[print], default_headers={"X-A": "1"}, user_agent="l/1")
    Client("wemasy", default_headers={"X-A": 1})  # type: ignore[dict-item]


def raw_and_settings(client: Client) -> None:
    import ssl

    from wemasy_async import RawResponse

    raw = client.with_raw_response.get_conversation(27)
    assert_type(raw, RawResponse[Conversation[list[Message]]])
    assert_type(client.with_raw_response.list_messages(27, limit=5), RawResponse[list[Message]])
    assert_type(client.with_raw_response.list_conversations(), RawResponse[Page[Conversation]])
    assert_type(client.with_raw_response.chat("hi"), RawResponse[ChatReply])
    client.with_raw_response.get_conversation(27.0)  # type: ignore[arg-type]
    Client("wemasy", token="t", connection_limit=5, proxy="http://p:3128", trust_env=True)
    Client("wemasy", token="t", ssl=ssl.create_default_context())
    Client("wemasy", ssl=False)  # type: ignore[arg-type]
