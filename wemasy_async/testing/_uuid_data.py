"""The seeded conversations of `FakeLoop` and `FakeSiteAssist`, generated on demand.

Both data sets are one sequential stream: ``random.Random(seed)`` draws, conversation after
conversation, a UUID id and the conversation itself, so conversation ``k`` depends on every
one before it. `SeededUuidConversations` reproduces the stream exactly without holding it,
the way `_wemasy_data.SeededConversations` does for the Wemasy fake:

* a *walk* runs the draws only (`Stream.walk`: no dicts, strings or timestamps) ahead of the
  furthest conversation asked for so far, and keeps, every `BLOCK` conversations, a
  checkpoint (the generator's state), plus each conversation's id as two 64-bit words and
  an open-addressing table from id to position (about 35 bytes per conversation in all:
  35 MB for a million);
* `walk_ahead` runs the walk to the end in slices in the background while the server
  answers (the fakes start it once they listen);
* a conversation is *built* by restoring its block's checkpoint and generating the block
  with the original generator (`Stream.build`); a few built blocks are kept
  (`CACHED_BLOCKS`), so reading in order costs one generation each.

Starting costs nothing whatever the size, and content is identical to generating every
conversation up front, as the fakes did before. An id is found once the walk has passed
it: the first lookup of an id the walk has not reached yet, or of an id that does not exist,
walks on at once (to the end, for the latter), about 10 us per conversation. Reading at
random far beyond the cached blocks costs a block's generation (`BLOCK` conversations) per
read; reading in order, one generation per conversation.

Values handed out through the mapping interface, or assigned, move into an *overlay* and
are kept: a caller may mutate what it was given (tests do), and the change must be what
the server serves afterwards.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Final, Generic, Protocol, TypeVar

__all__ = [
    "BLOCK",
    "CACHED_BLOCKS",
    "SeededUuidConversations",
    "Stream",
    "uuid4_of",
]

#: Conversations per checkpoint of the walk (one generator state, 2.5 KB, per block).
BLOCK: Final = 256
#: Built blocks kept for reuse.
CACHED_BLOCKS: Final = 8
#: Conversations walked at a time while looking for an id the walk has not reached.
_SEARCH_SLICE: Final = 1024
#: The largest id table allocated at the walk's first step (slots of 4 bytes, at most half
#: full; beyond this the table doubles as the walk goes on, so a huge ``count`` costs
#: nothing up front).
_FIRST_TABLE: Final = 1 << 21
_WORD: Final = (1 << 64) - 1
_CHUNK_BITS: Final = 16
_CHUNK_MASK: Final = (1 << _CHUNK_BITS) - 1
_CANONICAL: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# `uuid.UUID(int=..., version=4)`: clear the variant and version bits, then set them.
_KEEP: Final = ~((0xC000 << 48) | (0xF000 << 64))
_SET: Final = (0x8000 << 48) | (0x4000 << 64)

V = TypeVar("V")


class _Column:
    """An append-only array of 64-bit words, stored in chunks allocated once at full size.

    One array grown by appending is reallocated again and again; glibc leaves the old
    copies as holes in the heap, which made the walk's RSS a third larger than its data.
    """

    __slots__ = ("_chunks", "size")

    def __init__(self) -> None:
        self._chunks: list[array[int]] = []
        self.size = 0

    def append(self, value: int) -> None:
        size = self.size
        if size & _CHUNK_MASK == 0:
            self._chunks.append(array("Q", [0]) * (_CHUNK_MASK + 1))
        self._chunks[-1][size & _CHUNK_MASK] = value
        self.size = size + 1

    def __getitem__(self, index: int) -> int:
        return self._chunks[index >> _CHUNK_BITS][index & _CHUNK_MASK]


_V_co = TypeVar("_V_co", covariant=True)


def uuid4_of(bits: int) -> int:
    """``uuid.UUID(int=bits, version=4).int``, without building the UUID."""
    return (bits & _KEEP) | _SET


class Stream(Protocol[_V_co]):
    """One provider's sequential data set: how to draw, and how to build, one conversation."""

    def walk(self, rng: random.Random, position: int) -> int:
        """Make every draw conversation ``position`` (0-based) takes; return its id's int."""
        ...

    def build(self, rng: random.Random, position: int) -> tuple[str, _V_co]:
        """Draw conversation ``position`` like `walk`, returning its id and its value."""
        ...


class SeededUuidConversations(MutableMapping[str, V], Generic[V]):
    """UUID text -> value: ``count`` seeded conversations of ``stream``, plus later changes.

    Keys are compared exactly (seeded ids are lower-case canonical UUIDs). Reading through
    the mapping interface (``[id]``, ``get``, ``values``, ``items``) keeps the value it
    returns, so changes to it stick; `peek` is the read that keeps nothing, for the server's
    own handlers. Assigning or deleting a key works like a dict; a new key iterates after
    the seeded ones.

    Args:
        seed: Seed of the stream; equal seeds give identical conversations.
        count: Seeded conversations.
        stream: The provider's draws.
    """

    def __init__(self, seed: int, count: int, stream: Stream[V]) -> None:
        self.seed = seed
        self.count = count
        self._stream = stream
        self._overlay: dict[str, V] = {}  # seeded ids handed out or assigned
        self._added: dict[str, V] = {}  # ids that are not seeded
        self._deleted: set[str] = set()
        # The walk: the generator positioned before conversation `_walked`.
        self._rng = random.Random(seed)
        self._walked = 0
        self._checkpoints: list[array[int]] = []
        self._high = _Column()
        self._low = _Column()
        self._slots: array[int] = array("I")  # position + 1 of each id; 0 is empty
        self._blocks: OrderedDict[int, list[tuple[str, V]]] = OrderedDict()

    # ------------------------------------------------------------------ the walk

    def _walk_to(self, target: int) -> None:
        """Advance the walk until ``target`` conversations (at most ``count``) are walked."""
        target = min(target, self.count)
        rng, walk = self._rng, self._stream.walk
        checkpoints, high, low = self._checkpoints, self._high, self._low
        slots = self._slots
        mask = len(slots) - 1
        walked = self._walked
        while walked < target:
            if 2 * (walked + 1) > len(slots):
                slots = self._grow()
                mask = len(slots) - 1
            if walked % BLOCK == 0:
                checkpoints.append(array("I", rng.getstate()[1]))
            value = walk(rng, walked)
            upper, lower = value >> 64, value & _WORD
            high.append(upper)
            low.append(lower)
            slot = (upper ^ lower) & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            walked += 1
            slots[slot] = walked
        self._walked = walked

    def _grow(self) -> array[int]:
        """A table twice the size (at first: sized for ``count``, within `_FIRST_TABLE`)."""
        if self._slots:
            size = 2 * len(self._slots)
        else:
            size = min(_FIRST_TABLE, max(16, 1 << (2 * self.count - 1).bit_length()))
        slots: array[int] = array("I", [0]) * size
        mask = size - 1
        high, low = self._high, self._low
        for position in range(self._walked):
            slot = (high[position] ^ low[position]) & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = position + 1
        self._slots = slots
        return slots

    async def walk_ahead(self, batch: int = 2048) -> None:
        """Walk the whole set in slices of ``batch``, yielding to the event loop in between.

        A server runs this in the background once it listens, so a lookup later finds the
        walk done instead of waiting seconds for it; each slice holds the loop for about
        20 ms.
        """
        while self._walked < self.count:
            self._walk_to(self._walked + batch)
            await asyncio.sleep(0)

    def _probe(self, upper: int, lower: int) -> int | None:
        slots = self._slots
        if not slots:
            return None
        high, low = self._high, self._low
        mask = len(slots) - 1
        slot = (upper ^ lower) & mask
        while entry := slots[slot]:
            if low[entry - 1] == lower and high[entry - 1] == upper:
                return entry - 1
            slot = (slot + 1) & mask
        return None

    def position(self, key: str) -> int | None:
        """The 0-based position of seeded id ``key``, or None; walks on until it knows."""
        if len(key) != 36 or not _CANONICAL.fullmatch(key):
            return None
        value = int(key.replace("-", ""), 16)
        upper, lower = value >> 64, value & _WORD
        while True:
            found = self._probe(upper, lower)
            if found is not None or self._walked >= self.count:
                return found
            self._walk_to(self._walked + _SEARCH_SLICE)

    def id_at(self, position: int) -> str:
        """The seeded id at ``position`` (0-based, below ``count``); walks there if needed."""
        if not 0 <= position < self.count:
            raise IndexError(position)
        self._walk_to(position + 1)
        return str(uuid.UUID(int=(self._high[position] << 64) | self._low[position]))

    def _block(self, index: int) -> list[tuple[str, V]]:
        blocks = self._blocks
        built = blocks.get(index)
        if built is not None:
            blocks.move_to_end(index)
            return built
        first = index * BLOCK
        self._walk_to(first + 1)
        rng = random.Random()
        rng.setstate((3, tuple(self._checkpoints[index]), None))
        build = self._stream.build
        built = [build(rng, position) for position in range(first, min(first + BLOCK, self.count))]
        blocks[index] = built
        if len(blocks) > CACHED_BLOCKS:
            blocks.popitem(last=False)
        return built

    # ------------------------------------------------------------------ reads

    def peek(self, key: str) -> V | None:
        """The value of ``key`` without keeping it; the caller must not change it."""
        found = self._overlay.get(key)
        if found is None:
            found = self._added.get(key)
        if found is not None or key in self._deleted:
            return found
        position = self.position(key)
        if position is None:
            return None
        return self._block(position // BLOCK)[position % BLOCK][1]

    def __getitem__(self, key: str) -> V:
        value = self.peek(key)
        if value is None:
            raise KeyError(key)
        if key not in self._added:
            self._overlay[key] = value
        return value

    def __setitem__(self, key: str, value: V) -> None:
        if key in self._overlay or self.position(key) is not None:
            self._deleted.discard(key)
            self._overlay[key] = value
        else:
            self._added[key] = value

    def __delitem__(self, key: str) -> None:
        if self.peek(key) is None:
            raise KeyError(key)
        if self._added.pop(key, None) is None:
            self._overlay.pop(key, None)
            self._deleted.add(key)

    def __len__(self) -> int:
        return self.count - len(self._deleted) + len(self._added)

    def __iter__(self) -> Iterator[str]:
        """Keys in order: the seeded ids, then any added later (as a dict would)."""
        deleted = self._deleted
        for position in range(self.count):
            if position >= self._walked:
                self._walk_to(position + _SEARCH_SLICE)
            key = self.id_at(position)
            if key not in deleted:
                yield key
        yield from list(self._added)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.peek(key) is not None
