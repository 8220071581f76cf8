"""The fast decode path and the lazy ``raw`` (``wemasy_async.models.LazyRaw``).

Every body the fakes serve takes the fast path; what it returns must be what the lenient
path returns (the same neutral models, and a ``raw`` equal to the eagerly decoded one), and a
``Conversation`` holding a ``raw`` not yet decoded must compare, hash, print, pickle, copy
and encode exactly as one holding it decoded.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from wemasy_async.models import Conversation, LazyRaw, Message, ToolCall, stored
from wemasy_async.providers import loop, siteassist, wemasy
from wemasy_async.providers.base import Response
from wemasy_async.testing.loop import FakeLoop
from wemasy_async.testing.siteassist import FakeSiteAssist
from wemasy_async.testing.wemasy import FakeWemasy

COUNT = 12
SIZES = {"messages_per_conversation": (0, 30)}


def _wemasy() -> list[tuple[bytes, Callable[[bytes], Conversation], Callable[[bytes], Any]]]:
    fake = FakeWemasy(conversations=COUNT, seed=3, record_requests=False, **SIZES)
    parse = wemasy.WemasyProvider().get_conversation(1).parse

    def lenient(body: bytes) -> Conversation:
        return wemasy._conversation(wemasy._ok(wemasy._CONVERSATION.decode(body)))

    bodies = [fake._encoded_conversation(i + 1) or b"" for i in range(COUNT)]
    return [(b, lambda b: parse(Response(200, {}, b)), lenient) for b in bodies]


def _siteassist() -> list[tuple[bytes, Callable[[bytes], Conversation], Callable[[bytes], Any]]]:
    fake = FakeSiteAssist(conversations=COUNT, seed=3, record_requests=False, **SIZES)
    ids = fake.conversation_ids
    parse = siteassist.SiteAssistProvider().get_conversation(ids[0]).parse

    def lenient(body: bytes) -> Conversation:
        return siteassist._conversation(siteassist._CONVERSATION.decode(body))

    bodies = [fake._encoded_conversation(c) or b"" for c in ids]
    return [(b, lambda b: parse(Response(200, {}, b)), lenient) for b in bodies]


def _loop() -> list[tuple[bytes, Callable[[bytes], Conversation], Callable[[bytes], Any]]]:
    fake = FakeLoop(
        conversations=COUNT, seed=3, long_conversations=0, record_requests=False, **SIZES
    )
    cases = []
    for conversation_id in fake.conversation_ids:
        encoded = fake._encoded_messages(conversation_id) or []
        body = b'{"total":%d,"messages":[%s]}' % (len(encoded), b",".join(encoded))
        parse = loop.LoopProvider().get_conversation(conversation_id).parse

        def lenient(body: bytes, conversation_id: str = conversation_id) -> Conversation:
            return loop._conversation(loop._HISTORY.decode(body), conversation_id)

        cases.append((body, lambda b, parse=parse: parse(Response(200, {}, b)), lenient))
    return cases


CASES = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name, make in (("wemasy", _wemasy), ("siteassist", _siteassist), ("loop", _loop))
    for i, case in enumerate(make())
]


@pytest.mark.parametrize(("provider", "case"), CASES)
def test_the_fast_path_returns_what_the_lenient_path_returns(
    provider: str, case: tuple[bytes, Callable[[bytes], Conversation], Callable[[bytes], Any]]
) -> None:
    body, parse, lenient = case
    fast, eager = parse(body), lenient(body)
    assert isinstance(stored(fast), LazyRaw)  # the fakes' bodies are canonical
    assert not isinstance(stored(eager), LazyRaw)
    assert fast.messages is not None
    assert all(type(m) is Message for m in fast.messages)
    # Before raw is decoded: every rendering as the eager one's.
    assert fast == eager
    assert eager == fast
    assert repr(fast) == repr(eager)
    assert msgspec.json.encode(fast) == msgspec.json.encode(eager)
    assert msgspec.msgpack.encode(fast) == msgspec.msgpack.encode(eager)
    assert msgspec.to_builtins(fast) == msgspec.to_builtins(eager)
    assert pickle.loads(pickle.dumps(fast)) == eager
    assert copy.deepcopy(fast) == eager
    assert isinstance(stored(fast), LazyRaw)  # none of that decoded it into the field
    # On access: the same type, an equal value, stored once.
    raw = fast.raw
    assert type(raw) is type(eager.raw)
    assert raw == eager.raw
    assert fast.raw is raw
    assert stored(fast) is raw
    assert fast == eager


@pytest.mark.parametrize("provider", ["wemasy", "siteassist", "loop"])
def test_the_decoded_raw_shares_what_the_lenient_path_shares(provider: str) -> None:
    make = {"wemasy": _wemasy, "siteassist": _siteassist, "loop": _loop}[provider]
    body, parse, _ = next(c for c in make() if b'"metadata"' in c[0])
    conversation = parse(body)
    assert conversation.messages
    for message, wire in zip(conversation.messages, conversation.raw.messages, strict=True):
        assert message.content is wire.content
        assert message.created_at is wire.created_at
        assert message.metadata is wire.metadata


def test_a_body_the_fast_types_refuse_takes_the_lenient_path() -> None:
    parse = wemasy.WemasyProvider().get_conversation(1).parse
    body = b'{"data": {"id": 1, "messages": [{"id": 2, "role": "developer"}]}}'
    conversation = parse(Response(200, {}, body))
    assert not isinstance(stored(conversation), LazyRaw)
    assert conversation.messages == [
        Message(id="2", conversation_id="1", role="system", metadata={})
    ]


def test_a_truncated_loop_history_takes_the_lenient_path() -> None:
    body = b'{"total": 3, "messages": [{"id": "a", "role": "user"}]}'
    parse = loop.LoopProvider().get_conversation("c").parse
    conversation = parse(Response(200, {}, body))
    assert isinstance(stored(conversation), loop.LoopHistory)
    assert conversation.raw.total == 3


def test_siteassist_tool_calls_absent_empty_or_null_are_each_their_own_list() -> None:
    # The fast type gives an absent toolCalls a fresh [] itself; [] and null are made [] too.
    conversation_id = "0a5d2f34-6baa-4455-a3e7-0682c2094cac"
    messages = [
        {"id": "m1", "role": "user"},
        {"id": "m2", "role": "assistant", "toolCalls": []},
        {"id": "m3", "role": "assistant", "toolCalls": None},
        {"id": "m4", "role": "user"},
    ]
    body = msgspec.json.encode({"id": conversation_id, "messages": messages})
    parse = siteassist.SiteAssistProvider().get_conversation(conversation_id).parse
    fast = parse(Response(200, {}, body))
    assert isinstance(stored(fast), LazyRaw)
    assert fast.messages is not None
    assert [m.tool_calls for m in fast.messages] == [[], [], [], []]
    assert all(type(m.tool_calls) is list for m in fast.messages)
    assert len({id(m.tool_calls) for m in fast.messages}) == 4
    fast.messages[0].tool_calls.append(ToolCall(id="c", name="f"))
    assert fast.messages[3].tool_calls == []
    lenient = siteassist._conversation(siteassist._CONVERSATION.decode(body))
    assert [m.tool_calls for m in fast.messages[1:]] == [m.tool_calls for m in lenient.messages[1:]]


def test_list_messages_take_the_fast_path_too() -> None:
    fake = FakeWemasy(conversations=2, seed=4, record_requests=False, **SIZES)
    body = fake._encoded_conversation(1) or b""
    provider = wemasy.WemasyProvider()
    messages = provider.list_messages(1).parse(Response(200, {}, body))
    assert messages == provider.get_conversation(1).parse(Response(200, {}, body)).messages
    expected = wemasy._conversation(wemasy._ok(wemasy._CONVERSATION.decode(body))).messages
    assert messages == expected
