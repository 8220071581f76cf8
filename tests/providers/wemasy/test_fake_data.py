"""Tests of `SeededConversations`, the on-demand data set of the Wemasy fake.

`_eager` is the generator the fake used before it generated on demand, kept verbatim as
the reference: the on-demand set must be identical to it for every seed and id.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from wemasy_async.testing import _wemasy_data as data
from wemasy_async.testing._wemasy_data import SeededConversations


def _eager(seed: int, conversations: int, low: int, high: int) -> dict[int, Any]:
    """The pre-on-demand generation of `FakeWemasy.__init__` (one stream, ids in order)."""
    next_message_id = 1

    def new_message(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal next_message_id
        next_message_id += 1
        return data.new_message(next_message_id - 1, *args, **kwargs)

    def seed_conversation(rng: random.Random, conversation_id: int, count: int) -> Any:
        agent_id = rng.choice(data.AGENTS)
        goal = rng.choice(data.GOALS)
        active = rng.random() < 0.25
        started = data._EPOCH + timedelta(seconds=rng.randrange(365 * 86400))
        roles: list[str] = []
        if count >= 3 and rng.random() < 0.15:
            roles.append("system")
        if count - len(roles) >= 4 and rng.random() < 0.35:
            roles += ["user", "tool_call", "tool", "assistant"]
        while len(roles) < count:
            roles.append("user" if not roles or roles[-1] != "user" else "assistant")
        messages = []
        moment = started
        cost = 0
        call_id = ""
        tool_name, tool_args, tool_output = rng.choice(data._SEEDED_TOOLS)
        for index, role in enumerate(roles):
            moment += timedelta(seconds=rng.randint(5, 120))
            if role == "system":
                message = new_message(conversation_id, "system", data._SYSTEM_PROMPT, moment)
            elif role == "user":
                template = data._USER_TEMPLATES[0 if index <= 1 else rng.randrange(1, 5)]
                content = template.format(goal=goal.lower())
                message = new_message(conversation_id, "user", content, moment)
            elif role == "tool_call":
                call_id = f"call_{rng.getrandbits(48):012x}"
                usage = data.usage_of(rng.randint(20, 400), rng.randint(5, 40))
                cost += usage["total_tokens"]
                call = {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool_name, "arguments": data._encode(tool_args).decode()},
                }
                message = new_message(
                    conversation_id, "assistant", None, moment, tool_calls=[call], usage=usage
                )
            elif role == "tool":
                message = new_message(
                    conversation_id, "tool", tool_output, moment, tool_call_id=call_id
                )
            else:
                template = data._ASSISTANT_TEMPLATES[rng.randrange(len(data._ASSISTANT_TEMPLATES))]
                content = template.format(goal_lower=goal[0].lower() + goal[1:])
                usage = data.usage_of(rng.randint(20, 400), rng.randint(10, 300))
                cost += usage["total_tokens"]
                message = new_message(conversation_id, "assistant", content, moment, usage=usage)
            messages.append(message)
        ended = None if active else data.timestamp(moment + timedelta(seconds=rng.randint(10, 300)))
        return {
            "id": conversation_id,
            "agent_id": agent_id,
            "status": "active" if active else "completed",
            "goal": goal,
            "cost_tokens": cost,
            "cost_amount": data.cost_amount(cost),
            "started_at": data.timestamp(started),
            "ended_at": ended,
            "messages": messages,
        }

    rng = random.Random(seed)
    return {
        cid: seed_conversation(rng, cid, rng.randint(low, high))
        for cid in range(1, conversations + 1)
    }


@pytest.mark.parametrize(
    ("seed", "low", "high"), [(0, 2, 8), (7, 2, 8), (3, 0, 0), (5, 1, 1), (11, 0, 12), (2, 4, 4)]
)
def test_identical_to_eager_generation_in_any_order(seed: int, low: int, high: int) -> None:
    count = 2 * data.BLOCK + 37  # three blocks, the last one partial
    expected = _eager(seed, count, low, high)
    lazy = SeededConversations(seed, count, (low, high))
    # Far ids first: the walk must reach them, and the earlier blocks rebuild from checkpoints.
    order = [count, data.BLOCK + 1, 1, data.BLOCK, *range(1, count + 1)]
    for conversation_id in order:
        assert lazy.peek(conversation_id) == expected[conversation_id]
    assert lazy.seeded_messages() == sum(len(c["messages"]) for c in expected.values())


def test_nothing_is_generated_up_front() -> None:
    lazy = SeededConversations(0, 10**12, (2, 8))
    assert len(lazy) == 10**12
    assert lazy.select() == range(1, 10**12 + 1)
    assert lazy._walked == 0
    lazy.peek(3)
    assert lazy._walked == 1  # the walk stops at the block that was asked for


def test_built_blocks_are_bounded() -> None:
    lazy = SeededConversations(0, data.BLOCK * (data.CACHED_BLOCKS + 3), (1, 1))
    for conversation_id in range(1, len(lazy) + 1, data.BLOCK):
        lazy.peek(conversation_id)
    assert len(lazy._blocks) == data.CACHED_BLOCKS
    assert len(lazy._checkpoints) == data.CACHED_BLOCKS + 3


def test_peek_keeps_nothing_and_reading_keeps_the_dict() -> None:
    lazy = SeededConversations(0, 3 * data.BLOCK, (2, 8))
    assert lazy.peek(5) is not None
    assert lazy._overlay == {}
    lazy[5]["goal"] = "Changed"
    for conversation_id in range(data.BLOCK + 1, 3 * data.BLOCK + 1):  # evict block 0
        lazy.peek(conversation_id)
    assert lazy.peek(5)["goal"] == "Changed"  # type: ignore[index]


def test_mapping_behaves_like_a_dict() -> None:
    lazy = SeededConversations(1, 5, (2, 8))
    reference = dict(_eager(1, 5, 2, 8))
    assert lazy == reference
    assert list(lazy) == [1, 2, 3, 4, 5]
    del lazy[2], reference[2]
    lazy[9] = reference[9] = {"id": 9, "agent_id": "chat", "goal": "Nine", "messages": []}
    assert lazy == reference
    assert list(lazy) == [1, 3, 4, 5, 9]
    assert len(lazy) == 5
    assert 2 not in lazy
    assert 9 in lazy
    assert "1" not in lazy
    assert lazy.max_id() == 9
    with pytest.raises(KeyError):
        lazy[2]
    with pytest.raises(KeyError):
        del lazy[6]
    assert SeededConversations(0, 0, (2, 8)) == {}
    assert SeededConversations(0, 0, (2, 8)).max_id() == 0


def test_select_filters_seeded_and_changed_conversations() -> None:
    lazy = SeededConversations(0, 300, (2, 8))
    reference = _eager(0, 300, 2, 8)
    support = [cid for cid, c in reference.items() if c["agent_id"] == "support"]
    assert list(lazy.select(lambda agent, goal: agent == "support")) == support
    lazy[support[0]]["agent_id"] = "sales"
    del lazy[support[1]]
    lazy[301] = {"id": 301, "agent_id": "support", "goal": None, "messages": []}
    assert list(lazy.select(lambda agent, goal: agent == "support")) == [*support[2:], 301]
    assert list(lazy.select()) == [cid for cid in range(1, 302) if cid != support[1]]


async def test_walk_ahead_walks_everything_in_slices() -> None:
    lazy = SeededConversations(4, 1000, (2, 8))
    await lazy.walk_ahead(batch=300)
    assert lazy._walked == 1000
    assert len(lazy._checkpoints) == -(-1000 // data.BLOCK)
    assert lazy.peek(1000) == _eager(4, 1000, 2, 8)[1000]
