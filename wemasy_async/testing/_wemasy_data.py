"""The seeded conversations of `FakeWemasy`, generated on demand.

The data set is defined by one sequential stream: ``random.Random(seed)`` draws, for ids
``1, 2, ...`` in order, a message count and then the conversation itself, and message ids
count up across the whole set. Conversation ``k`` therefore depends on every conversation
before it. `SeededConversations` reproduces that stream exactly without holding it:

* a *walk* runs the draws only (`_plan`, no dicts, strings or timestamps) ahead of the
  highest id asked for so far, and keeps, every `BLOCK` conversations, a checkpoint (the
  generator's state and the next message id) plus one byte per conversation (its agent and
  goal, which the list filters read);
* `walk_ahead` runs the walk to the end in slices in the background, while the server
  already answers (`FakeWemasy` starts it once it listens);
* a conversation is *built* by restoring its block's checkpoint and generating the block;
  a few recently built blocks are kept (`CACHED_BLOCKS`), so reading ids in order costs one
  generation each.

So starting costs nothing whatever the size, memory stays at a few bytes per walked
conversation (about 10 MB for a million), and content is identical to generating every
conversation up front, as the fake did before. The walk is the one cost that grows with the
size (about 10 us per conversation): until the background walk has passed id ``k``, the
first read of ``k`` walks there at once, and a filtered list or a new chat message (whose
id follows every seeded message) walks the whole set.

Conversations handed out through the mapping interface, or changed by a chat, move into an
*overlay* and are kept: a caller may mutate the dict it was given (tests do), and the
change must be what the server serves afterwards.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

import msgspec

__all__ = ["BLOCK", "CACHED_BLOCKS", "Conversation", "Message", "SeededConversations"]

Conversation = dict[str, Any]
Message = dict[str, Any]

#: Conversations per checkpoint of the walk (one generator state, 2.5 KB, per block).
BLOCK: Final = 256
#: Built blocks kept for reuse.
CACHED_BLOCKS: Final = 8

AGENTS: Final = ("chat", "support", "sales")
GOALS: Final = (
    "Improve the SEO strategy for the blog",
    "Draft an SEO strategy for the new product pages",
    "Review the local SEO strategy for the Amsterdam stores",
    "Check whether our seo strategy covers voice search",
    "Answer questions about invoice payments",
    "Plan the spring newsletter campaign",
    "Troubleshoot the contact form on the website",
    "Compare hosting plans for a webshop",
    "Write product descriptions for summer shoes",
    "Explain the results of the last Google Ads campaign",
)
_USER_TEMPLATES: Final = (
    "Can you help me with this: {goal}?",
    "What should I do first?",
    "Can you give me a concrete example?",
    "How long will that take?",
    "Thanks, what else should I consider?",
)
_ASSISTANT_TEMPLATES: Final = (
    "Sure. To {goal_lower}, start by reviewing what you have today.",
    "A good first step is to list your top ten pages and their main keywords.",
    "For example, rewrite the title and introduction of your most visited page.",
    "Most teams finish the first iteration within two weeks.",
    "Also keep an eye on page speed and mobile usability.",
)
_SYSTEM_PROMPT: Final = "You are a helpful assistant for a Dutch web agency."
_SEEDED_TOOLS: Final = (
    ("get_weather", {"city": "Amsterdam"}, "The current temperature in Amsterdam is 18°C"),
    ("search_knowledge_base", {"query": "opening hours"}, "We are open Mon-Fri 09:00-17:00."),
    ("lookup_order", {"order_id": 1042}, "Order 1042 was shipped on 12 March."),
)
_PRICE_PER_TOKEN: Final = Decimal("0.00002")
_FOUR_PLACES: Final = Decimal("0.0001")
_EPOCH: Final = datetime(2024, 1, 1, tzinfo=timezone.utc)
_encode = msgspec.json.encode


def timestamp(moment: datetime) -> str:
    """``moment`` as Laravel serialises a second-precision DB timestamp (``...00.000000Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def cost_amount(tokens: int) -> str:
    """The ``cost_amount`` decimal column for ``tokens``: 0.00002 each, 4 decimals."""
    return str((Decimal(tokens) * _PRICE_PER_TOKEN).quantize(_FOUR_PLACES))


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    """An OpenAI-style ``usage`` object."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def new_message(
    message_id: int,
    conversation_id: int,
    role: str,
    content: str | None,
    created_at: datetime,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    usage: dict[str, int] | None = None,
) -> Message:
    """One message in the wire shape `FakeWemasy` documents."""
    return {
        "id": message_id,
        "conversation_id": conversation_id,
        "role": role,
        "content": content,
        "tool_calls": tool_calls,
        "tool_call_id": tool_call_id,
        "usage": usage,
        "created_at": timestamp(created_at),
        "metadata": {},
    }


# A plan is every draw one conversation takes, in draw order, so building it needs no
# generator: (agent, goal, active, start offset, tool, steps, end gap or None); a step is
# (role, gap seconds, *numbers drawn for that role).
_Step = tuple[Any, ...]
_Plan = tuple[int, int, bool, int, int, list[_Step], "int | None"]


def _plan(rng: random.Random, count: int) -> _Plan:
    """Draw one conversation of ``count`` messages. The order of draws is the data set.

    The set was first generated with ``rng.choice``, ``randrange`` and ``randint``; each of
    those is ``_randbelow(width)`` plus an offset, so calling ``_randbelow`` directly draws
    exactly the same numbers with a third of the Python calls (the walk's whole cost).
    ``tests/providers/wemasy/test_fake_data.py`` compares with the public calls.
    """
    below: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]
    uniform = rng.random
    agent = below(len(AGENTS))
    goal = below(len(GOALS))
    active = uniform() < 0.25
    start = below(365 * 86400)
    roles: list[str] = []
    if count >= 3 and uniform() < 0.15:
        roles.append("system")
    if count - len(roles) >= 4 and uniform() < 0.35:
        roles += ["user", "tool_call", "tool", "assistant"]
    while len(roles) < count:
        roles.append("user" if not roles or roles[-1] != "user" else "assistant")
    tool = below(len(_SEEDED_TOOLS))
    steps: list[_Step] = []
    for index, role in enumerate(roles):
        gap = 5 + below(116)  # randint(5, 120)
        if role == "user":
            steps.append((role, gap, 0 if index <= 1 else 1 + below(4)))
        elif role == "tool_call":
            bits = rng.getrandbits(48)
            steps.append((role, gap, bits, 20 + below(381), 5 + below(36)))
        elif role == "assistant":
            template = below(len(_ASSISTANT_TEMPLATES))
            steps.append((role, gap, template, 20 + below(381), 10 + below(291)))
        else:
            steps.append((role, gap))
    end = None if active else 10 + below(291)  # randint(10, 300)
    return agent, goal, active, start, tool, steps, end


def _build(plan: _Plan, conversation_id: int, first_message_id: int) -> Conversation:
    """The wire dict of a planned conversation whose messages are numbered from the given id."""
    agent, goal_index, active, start, tool, steps, end = plan
    goal = GOALS[goal_index]
    tool_name, tool_args, tool_output = _SEEDED_TOOLS[tool]
    started = _EPOCH + timedelta(seconds=start)
    messages: list[Message] = []
    moment = started
    cost = 0
    call_id = ""
    for offset, (role, gap, *drawn) in enumerate(steps):
        moment += timedelta(seconds=gap)
        message_id = first_message_id + offset
        if role == "system":
            message = new_message(message_id, conversation_id, "system", _SYSTEM_PROMPT, moment)
        elif role == "user":
            content = _USER_TEMPLATES[drawn[0]].format(goal=goal.lower())
            message = new_message(message_id, conversation_id, "user", content, moment)
        elif role == "tool_call":
            call_id = f"call_{drawn[0]:012x}"
            spent = usage_of(drawn[1], drawn[2])
            cost += spent["total_tokens"]
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": tool_name, "arguments": _encode(tool_args).decode()},
            }
            message = new_message(
                message_id,
                conversation_id,
                "assistant",
                None,
                moment,
                tool_calls=[call],
                usage=spent,
            )
        elif role == "tool":
            message = new_message(
                message_id, conversation_id, "tool", tool_output, moment, tool_call_id=call_id
            )
        else:
            content = _ASSISTANT_TEMPLATES[drawn[0]].format(goal_lower=goal[0].lower() + goal[1:])
            spent = usage_of(drawn[1], drawn[2])
            cost += spent["total_tokens"]
            message = new_message(
                message_id, conversation_id, "assistant", content, moment, usage=spent
            )
        messages.append(message)
    return {
        "id": conversation_id,
        "agent_id": AGENTS[agent],
        "status": "active" if active else "completed",
        "goal": goal,
        "cost_tokens": cost,
        "cost_amount": cost_amount(cost),
        "started_at": timestamp(started),
        "ended_at": None if end is None else timestamp(moment + timedelta(seconds=end)),
        "messages": messages,
    }


class SeededConversations(MutableMapping[int, Conversation]):
    """Conversation id -> wire dict: ``count`` seeded conversations plus later changes.

    Reading through the mapping interface (``[id]``, ``get``, ``values``, ``items``) keeps
    the dict it returns, so changes to it stick; `peek` is the read that keeps nothing, for
    the server's own handlers. Assigning or deleting an id works like a dict.

    Args:
        seed: Seed of the stream; equal seeds give identical conversations.
        count: Seeded conversations, ids ``1..count``.
        messages: Inclusive (min, max) messages per seeded conversation.
    """

    def __init__(self, seed: int, count: int, messages: tuple[int, int]) -> None:
        self.seed = seed
        self.count = count
        self._low, self._high = messages
        self._overlay: dict[int, Conversation] = {}
        self._deleted: set[int] = set()
        # The walk: the generator positioned before conversation `_walked + 1`.
        self._rng = random.Random(seed)
        self._walked = 0
        self._walk_message_id = 1
        self._checkpoints: list[tuple[array[int], int]] = []
        self._codes = bytearray()  # agent * 16 + goal, per walked conversation
        self._blocks: OrderedDict[int, list[Conversation]] = OrderedDict()

    # ------------------------------------------------------------------ the walk

    def _walk_to(self, conversation_id: int) -> None:
        """Advance the walk past ``conversation_id`` (bounded by ``count``)."""
        target = min(conversation_id, self.count)
        rng, low, codes = self._rng, self._low, self._codes
        below: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]
        widths = self._high - low + 1
        checkpoints = self._checkpoints
        walked, message_id = self._walked, self._walk_message_id
        while walked < target:
            if walked % BLOCK == 0:
                state = rng.getstate()
                checkpoints.append((array("I", state[1]), message_id))
            count = low + below(widths)  # rng.randint(low, high), as `_plan` explains
            plan = _plan(rng, count)
            codes.append(plan[0] * 16 + plan[1])
            message_id += count
            walked += 1
        self._walked, self._walk_message_id = walked, message_id

    async def walk_ahead(self, batch: int = 2048) -> None:
        """Walk the whole set in slices of ``batch``, yielding to the event loop in between.

        A server runs this in the background once it listens, so a client that jumps to a
        far id later finds the walk done instead of waiting seconds for it; each slice holds
        the loop for about 20 ms.
        """
        while self._walked < self.count:
            self._walk_to(self._walked + batch)
            await asyncio.sleep(0)

    def _block(self, index: int) -> list[Conversation]:
        blocks = self._blocks
        built = blocks.get(index)
        if built is not None:
            blocks.move_to_end(index)
            return built
        first = index * BLOCK + 1
        self._walk_to(first)
        words, message_id = self._checkpoints[index]
        rng = random.Random()
        rng.setstate((3, tuple(words), None))
        built = []
        for conversation_id in range(first, min(first + BLOCK, self.count + 1)):
            count = rng.randint(self._low, self._high)
            built.append(_build(_plan(rng, count), conversation_id, message_id))
            message_id += count
        blocks[index] = built
        if len(blocks) > CACHED_BLOCKS:
            blocks.popitem(last=False)
        return built

    def seeded_messages(self) -> int:
        """How many messages the seeded conversations hold (walks the whole set once)."""
        self._walk_to(self.count)
        return self._walk_message_id - 1

    # ------------------------------------------------------------------ reads

    def peek(self, conversation_id: int) -> Conversation | None:
        """The conversation without keeping it; the caller must not change the dict."""
        found = self._overlay.get(conversation_id)
        if found is not None:
            return found
        if not 1 <= conversation_id <= self.count or conversation_id in self._deleted:
            return None
        return self._block((conversation_id - 1) // BLOCK)[(conversation_id - 1) % BLOCK]

    def __getitem__(self, conversation_id: int) -> Conversation:
        conversation = self.peek(conversation_id)
        if conversation is None:
            raise KeyError(conversation_id)
        self._overlay[conversation_id] = conversation
        return conversation

    def __setitem__(self, conversation_id: int, conversation: Conversation) -> None:
        self._deleted.discard(conversation_id)
        self._overlay[conversation_id] = conversation

    def __delitem__(self, conversation_id: int) -> None:
        if self.peek(conversation_id) is None:
            raise KeyError(conversation_id)
        self._overlay.pop(conversation_id, None)
        if 1 <= conversation_id <= self.count:
            self._deleted.add(conversation_id)

    def __len__(self) -> int:
        extra = sum(1 for key in self._overlay if not 1 <= key <= self.count)
        return self.count - len(self._deleted) + extra

    def __iter__(self) -> Iterator[int]:
        """Ids in order: the seeded ones, then any added later (as a dict would)."""
        deleted = self._deleted
        yield from (key for key in range(1, self.count + 1) if key not in deleted)
        yield from [key for key in self._overlay if not 1 <= key <= self.count]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.peek(key) is not None

    def max_id(self) -> int:
        """The highest id present, 0 when empty."""
        extra = max((key for key in self._overlay if key > self.count), default=0)
        if extra:
            return extra
        seeded = next((key for key in range(self.count, 0, -1) if key not in self._deleted), 0)
        return max(seeded, max(self._overlay, default=0))

    def select(self, keep: Callable[[str, str | None], bool] | None = None) -> Sequence[int]:
        """Ids in ascending order, only those whose (agent_id, goal) ``keep`` accepts.

        Without ``keep`` nothing is generated (and, with no id added or deleted, the answer
        is a `range`, so a million ids cost nothing); with it the seeded ones are judged by
        the walk's codes (one walk of the whole set), the overlay by its dicts.
        """
        overlay, deleted, count = self._overlay, self._deleted, self.count
        if keep is None:
            added = sorted(key for key in overlay if not 1 <= key <= count)
            if not deleted and not added:
                return range(1, count + 1)
            return [key for key in range(1, count + 1) if key not in deleted] + added
        self._walk_to(count)
        codes = {
            agent * 16 + goal
            for agent, agent_id in enumerate(AGENTS)
            for goal, text in enumerate(GOALS)
            if keep(agent_id, text)
        }
        seeded = [
            index + 1
            for index, code in enumerate(self._codes)
            if code in codes and index + 1 not in deleted and index + 1 not in overlay
        ]
        if not overlay:
            return seeded
        changed = [
            key
            for key, conversation in overlay.items()
            if keep(conversation["agent_id"], conversation.get("goal"))
        ]
        return sorted([*seeded, *changed])
