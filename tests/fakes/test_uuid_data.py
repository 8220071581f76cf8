"""Tests of `SeededUuidConversations`, the on-demand data sets of the Loop and SiteAssist fakes.

The reference is the fakes' eager generation (every conversation built in ``__init__``) as
it was before it went on demand, at commit 2f127df: the SHA-256 of the whole data set there
(``[[id, value], ...]`` in creation order, encoded by msgspec) for several seeds and shapes.
The on-demand set must give the same bytes, read in any order.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

import msgspec
import pytest

from wemasy_async.testing import FakeLoop, FakeSiteAssist
from wemasy_async.testing import _uuid_data as data
from wemasy_async.testing._uuid_data import BLOCK, SeededUuidConversations

COUNT = 2 * BLOCK + 37  # three blocks, the last one partial

# FakeLoop(seed, conversations=COUNT, messages_per_conversation=(low, high),
#          long_conversations=n, long_conversation_messages=m) at 2f127df.
LOOP_DIGESTS = {
    (0, 2, 8, 1, 120): "f63ab02c1127df489ea85499d46deac4b2d92694920ad9b19a3fe188b50cf34f",
    (7, 2, 8, 3, 60): "bdf3b9c96e7e9e186d7b419814e3cf3b0ea5f41173d8d0c7df30865c92722b77",
    (3, 0, 0, 0, 120): "2237a86dda96284c930de75fe407d6d5bd0953734dd5f80b9e8a0efe2188d130",
    (5, 1, 12, 300, 4): "3a11d3ef4177ccffc44860208a5326047054e900992da7dc271a14016ffaea5c",
    (11, 3, 3, COUNT, 2): "07ceb88fab3df4b5a4bec7f2f82c865b4c88c9712e027fb540552f4d200cd4d8",
}
# FakeSiteAssist(seed, conversations=COUNT, messages_per_conversation=(low, high)).
SITEASSIST_DIGESTS = {
    (0, 2, 8): "61aa87b54600807eba1b1e1d0b54d3af27613a2d2420a26ec0f517d35d7e4e92",
    (7, 2, 8): "6a8da640c2b948be49e23e7ec42099f700c70cead83258b535a64d841b6a706c",
    (3, 0, 0): "4fc4aa941cee0ac657f003397120156b1c5ed8b47a2f4d4a28c0ad7de9602d2c",
    (5, 1, 1): "113686a88b1da5e88e160c1cf45d989de0301414de644d35b4f83609d899818c",
    (11, 0, 12): "adfbba11ac84049d37bd74aac6c4531dd1abaf91f9e394bff9bf3d3d7e95c515",
}
# seed=2, conversations=5000, the other arguments at their defaults.
LARGE_DIGESTS = {
    "loop": "13e39539d8709a053f16b68ef4fab9509aaa8cc6dcb15023aaf8e3e7e4e25740",
    "siteassist": "f6208ebf3c98a94286fae0a9438caf3b0555a23fe19672823cc36ce636e848ef",
}


def _digest_in_order(seeded: SeededUuidConversations[Any], order: list[int]) -> str:
    """The digest of the set, each conversation taken from its first read in ``order``."""
    first: dict[int, list[Any]] = {}
    for position in order:
        key = seeded.id_at(position)
        assert seeded.position(key) == position
        value = seeded.peek(key)
        first.setdefault(position, [key, value])
    pairs = [first[position] for position in range(seeded.count)]
    return hashlib.sha256(msgspec.json.encode(pairs)).hexdigest()


def _far_first(count: int) -> list[int]:
    # Far positions first: the walk must reach them, and earlier blocks rebuild from
    # checkpoints; then everything in order.
    return [count - 1, BLOCK, 0, BLOCK - 1, *range(count)]


@pytest.mark.parametrize("shape", sorted(LOOP_DIGESTS))
def test_loop_identical_to_eager_generation(shape: tuple[int, int, int, int, int]) -> None:
    seed, low, high, long_count, long_messages = shape
    fake = FakeLoop(
        seed=seed,
        conversations=COUNT,
        messages_per_conversation=(low, high),
        long_conversations=long_count,
        long_conversation_messages=long_messages,
    )
    assert _digest_in_order(fake.conversations, _far_first(COUNT)) == LOOP_DIGESTS[shape]


@pytest.mark.parametrize("shape", sorted(SITEASSIST_DIGESTS))
def test_siteassist_identical_to_eager_generation(shape: tuple[int, int, int]) -> None:
    seed, low, high = shape
    fake = FakeSiteAssist(seed=seed, conversations=COUNT, messages_per_conversation=(low, high))
    assert _digest_in_order(fake.conversations, _far_first(COUNT)) == SITEASSIST_DIGESTS[shape]


@pytest.mark.parametrize("provider", sorted(LARGE_DIGESTS))
def test_identical_in_random_order_beyond_the_cached_blocks(provider: str) -> None:
    fake = FakeLoop(seed=2, conversations=5000) if provider == "loop" else None
    seeded = (fake or FakeSiteAssist(seed=2, conversations=5000)).conversations
    # Reads at random over 20 blocks, 8 cached, rebuild blocks (each read here costs a
    # block's generation); then the rest in order.
    order = [*random.Random(1).sample(range(5000), 40), *range(5000)]
    assert _digest_in_order(seeded, order) == LARGE_DIGESTS[provider]


@pytest.mark.parametrize("provider", ["loop", "siteassist"])
def test_walk_makes_exactly_the_draws_of_build(provider: str) -> None:
    """`walk` is a faster copy of `build`'s draws: same id, same generator state after."""
    maker = FakeLoop if provider == "loop" else FakeSiteAssist
    stream = maker(conversations=50, messages_per_conversation=(0, 14)).conversations._stream
    walker, builder = random.Random(9), random.Random(9)
    for position in range(300):
        value = stream.walk(walker, position)
        key, _ = stream.build(builder, position)
        assert str(uuid.UUID(int=value)) == key
        assert walker.getstate() == builder.getstate()


def test_uuid4_of_sets_the_version_like_uuid() -> None:
    rng = random.Random(0)
    for bits in [0, (1 << 128) - 1, *(rng.getrandbits(128) for _ in range(100))]:
        assert data.uuid4_of(bits) == uuid.UUID(int=bits, version=4).int


def test_nothing_is_generated_up_front() -> None:
    fake = FakeLoop(conversations=10**12, long_conversations=2)
    seeded = fake.conversations
    assert len(seeded) == 10**12
    assert seeded._walked == 0
    assert len(seeded._slots) == 0
    assert len(fake.long_conversation_ids) == 2
    assert seeded._walked == 2  # only as far as asked
    assert len(seeded._slots) == data._FIRST_TABLE
    assert seeded.peek(fake.long_conversation_ids[1]) is not None
    assert seeded._walked == 2


def test_lookup_is_exact_and_walks_only_as_far_as_needed() -> None:
    seeded = FakeSiteAssist(seed=4, conversations=3000).conversations
    key = seeded.id_at(10)
    walked = seeded._walked
    assert walked == 11
    assert seeded.position(key) == 10
    assert seeded._walked == walked
    assert seeded.position(key.upper()) is None  # keys are exact (the handler lowers)
    assert seeded.position(key[:-1]) is None
    assert seeded.position(f"{{{key[1:-1]}}}") is None
    assert seeded._walked == walked  # malformed: no walk
    assert seeded.position(str(uuid.UUID(int=0))) is None
    assert seeded._walked == 3000  # unknown: known only once everything is walked
    with pytest.raises(IndexError):
        seeded.id_at(3000)


def test_the_id_table_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "_FIRST_TABLE", 16)
    seeded = FakeSiteAssist(seed=6, conversations=COUNT).conversations
    ids = [seeded.id_at(position) for position in range(COUNT)]
    assert len(seeded._slots) == 2048  # doubled from 16 while the walk went on
    assert [seeded.position(key) for key in ids] == list(range(COUNT))


def test_built_blocks_are_bounded() -> None:
    seeded = FakeSiteAssist(conversations=BLOCK * (data.CACHED_BLOCKS + 3)).conversations
    for position in range(0, seeded.count, BLOCK):
        seeded.peek(seeded.id_at(position))
    assert len(seeded._blocks) == data.CACHED_BLOCKS
    assert len(seeded._checkpoints) == data.CACHED_BLOCKS + 3


def test_peek_keeps_nothing_and_reading_keeps_the_value() -> None:
    seeded = FakeSiteAssist(conversations=3 * BLOCK).conversations
    key = seeded.id_at(5)
    assert seeded.peek(key) is not None
    assert seeded._overlay == {}
    seeded[key]["status"] = "archived"
    for position in range(BLOCK, 3 * BLOCK):  # evict block 0
        seeded.peek(seeded.id_at(position))
    assert seeded.peek(key)["status"] == "archived"  # type: ignore[index]


def test_mapping_behaves_like_a_dict() -> None:
    fake = FakeLoop(seed=1, conversations=5)
    seeded = fake.conversations
    reference = {key: seeded.peek(key) for key in fake.conversation_ids}
    assert seeded == reference
    first, second, *_ = fake.conversation_ids
    added = "not-a-uuid"
    del seeded[second], reference[second]
    seeded[added] = reference[added] = []
    seeded[first] = reference[first] = [{"content": "replaced"}]
    assert seeded == reference
    assert list(seeded) == list(reference)
    assert len(seeded) == 5
    assert second not in seeded
    assert added in seeded
    assert 1 not in seeded  # type: ignore[comparison-overlap]
    with pytest.raises(KeyError):
        seeded[second]
    with pytest.raises(KeyError):
        del seeded[str(uuid.UUID(int=1))]
    del seeded[added]
    assert added not in seeded
    seeded[second] = []  # a deleted seeded id comes back in its place (a dict: at the end)
    assert seeded.peek(second) == []
    assert list(seeded) == fake.conversation_ids
    assert SeededUuidConversations(0, 0, seeded._stream) == {}


async def test_walk_ahead_walks_everything_in_slices() -> None:
    fake = FakeLoop(seed=4, conversations=1000)
    await fake.conversations.walk_ahead(batch=300)
    assert fake.conversations._walked == 1000
    assert len(fake.conversations._checkpoints) == -(-1000 // BLOCK)


async def test_the_fakes_walk_while_serving() -> None:
    async with FakeSiteAssist(conversations=5000) as fake:
        for _ in range(1000):
            if fake.conversations._walked == 5000:
                break
            await fake._tasks[0]
        assert fake.conversations._walked == 5000
    assert fake._tasks == []
