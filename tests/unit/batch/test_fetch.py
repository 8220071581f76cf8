"""Batch fetching (``Client.fetch_conversations`` / ``fetch_messages``, ``BatchFetch``): every
id accounted for, id sources, the concurrency bound, arguments, progress, the rate limiter.

Against the bundled fakes over real sockets on 127.0.0.1. Fakes that need to be slow (to
see the concurrency bound, the completion order or a cancellation mid-batch) subclass
``FakeWemasy`` and sleep in the ``conversations/get`` handler, counting handler entries
(:class:`tests.support.batch.SlowWemasy`; the fixtures are in ``conftest.py``). Stopping
early, the completion order and bugs in the fetch function are in ``test_stopping.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest

from tests.support.batch import TOKEN, SlowWemasy, collect_all, sent_ids
from wemasy_async import (
    Client,
    ClientClosedError,
    Conversation,
    FetchProgress,
    FetchResult,
    InvalidRequestError,
    NotFoundError,
    RateLimit,
    UnsupportedOperationError,
)
from wemasy_async.batch import MAX_CONCURRENCY
from wemasy_async.protocols import ConversationId
from wemasy_async.providers.base import Operation
from wemasy_async.providers.wemasy import WemasyProvider
from wemasy_async.testing import FakeWemasy

# --- Every id accounted for exactly once ------------------------------------------------------


async def test_every_id_yields_exactly_one_result(client: Client, fake: FakeWemasy) -> None:
    known: list[ConversationId] = list(range(1, 201))
    known += ["27", "150"]  # string ids, also duplicates of 27 and 150
    known += [5, 5, 5]  # duplicates
    unknown: list[ConversationId] = [201, 999, 12345, "4040"]
    malformed: list[Any] = ["abc", -1, 0, "", "1.5", 2.5, True, None]
    ids: list[Any] = known + unknown + malformed
    ids += list(range(1, 300 - len(ids) + 1))  # more duplicates, up to 300 ids
    assert len(ids) == 300

    results = await collect_all(client.fetch_conversations(ids, concurrency=32))

    def key(conversation_id: Any) -> tuple[type, Any]:
        return type(conversation_id), conversation_id  # True == 1, but not the same id

    malformed_keys = {key(i) for i in malformed}
    unknown_keys = {key(i) for i in unknown}
    assert len(results) == 300
    # Ids are preserved as given: 27 and "27" are different results.
    assert Counter(key(r.id) for r in results) == Counter(key(i) for i in ids)
    for result in results:
        if key(result.id) in malformed_keys:
            assert not result.ok
            assert isinstance(result.error, InvalidRequestError), result
            assert result.value is None
            with pytest.raises(InvalidRequestError):
                result.unwrap()
        elif key(result.id) in unknown_keys:
            assert not result.ok
            assert isinstance(result.error, NotFoundError), result
            assert result.value is None
            with pytest.raises(NotFoundError) as caught:
                result.unwrap()
            assert caught.value is result.error
        else:
            assert result.ok, result
            assert result.error is None
            conversation = result.unwrap()
            assert conversation is result.value
            assert isinstance(conversation, Conversation)
            assert conversation.id == str(result.id)
            assert conversation.goal == fake.conversations[int(result.id)]["goal"]

    # Malformed ids never reached the fake; every other id did, once per occurrence.
    sent = Counter(str(i) for i in sent_ids(fake))
    expected = Counter(str(int(i)) for i in ids if key(i) not in malformed_keys)
    assert sent == expected
    assert sum(expected.values()) == 300 - len(malformed)


async def test_int_and_str_ids_are_kept_apart(client: Client) -> None:
    results = await collect_all(client.fetch_conversations([27, "27"], concurrency=2))
    assert sorted(repr(r.id) for r in results) == ["'27'", "27"]
    assert all(r.ok and r.unwrap().id == "27" for r in results)


async def test_empty_ids_end_at_once(client: Client, fake: FakeWemasy) -> None:
    progress: list[FetchProgress] = []
    batch = client.fetch_conversations([], concurrency=4, progress=progress.append)
    assert await collect_all(batch) == []
    assert progress == []
    assert fake.requests == []
    # Exhausted: iterating again yields nothing.
    assert [r async for r in batch] == []


# --- Kinds of id sources ---------------------------------------------------------------------


async def test_ids_as_generator(client: Client) -> None:
    results = await collect_all(
        client.fetch_conversations((i for i in range(1, 51)), concurrency=7)
    )
    assert sorted(r.id for r in results) == list(range(1, 51))
    assert all(r.ok for r in results)


async def test_ids_as_async_generator(client: Client) -> None:
    async def ids() -> AsyncIterator[int]:
        for i in range(1, 51):
            if i % 10 == 0:
                await asyncio.sleep(0)  # a real suspension point inside the generator
            yield i

    results = await collect_all(client.fetch_conversations(ids(), concurrency=7))
    assert sorted(r.id for r in results) == list(range(1, 51))
    assert all(r.ok for r in results)


async def test_ids_as_other_iterables(client: Client) -> None:
    ids: dict[int, str] = {1: "a", 2: "b", 3: "c"}  # iterating a dict gives its keys
    results = await collect_all(client.fetch_conversations(ids, concurrency=2))
    assert sorted(r.id for r in results) == [1, 2, 3]
    results = await collect_all(client.fetch_conversations(range(4, 7), concurrency=2))
    assert sorted(r.id for r in results) == [4, 5, 6]
    results = await collect_all(client.fetch_conversations((8, 9), concurrency=2))
    assert sorted(r.id for r in results) == [8, 9]


async def test_huge_lazy_generator_is_consumed_lazily(fake: FakeWemasy) -> None:
    concurrency = 16
    taken = 1000
    pulled = 0

    def ids() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count(1):
            pulled += 1
            yield i % 200 + 1

    fake.record_requests = False
    async with Client("wemasy", base_url=fake.url, token=TOKEN) as client:
        batch = client.fetch_conversations(ids(), concurrency=concurrency)
        results: list[FetchResult[Conversation]] = []
        async for result in batch:
            results.append(result)
            if len(results) == taken:
                break
        await batch.aclose()
        assert batch._workers
        assert all(task.done() for task in batch._workers)

    assert all(r.ok for r in results)
    # Pulled ids are: the ones delivered, at most `concurrency` waiting in the results queue
    # and at most one held by each worker (being fetched or waiting to be queued).
    assert taken <= pulled <= taken + 2 * concurrency
    # Ids held by a worker when it was cancelled were pulled but never sent.
    assert taken <= fake.stats.requests_total <= pulled


async def test_slow_consumer_slows_fetching_down(slow_client: Client, slow: SlowWemasy) -> None:
    concurrency = 4
    batch = slow_client.fetch_conversations(range(1, 201), concurrency=concurrency)
    async with batch:
        first = await anext(batch)
        assert first.ok
        await asyncio.sleep(0.3)  # a stalled consumer: the workers fill the queue and wait
        # 1 delivered, `concurrency` queued, at most one more held by each worker.
        assert len(slow.requests) <= 1 + 2 * concurrency
        assert batch._shared.results.qsize() == concurrency


# --- Concurrency bound -----------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 5, 16])
async def test_requests_in_flight_never_exceed_concurrency(
    slow_client: Client, slow: SlowWemasy, concurrency: int
) -> None:
    results = await collect_all(
        slow_client.fetch_conversations(range(1, 3 * concurrency + 2), concurrency=concurrency)
    )
    assert len(results) == 3 * concurrency + 1
    assert all(r.ok for r in results)
    # The bound holds and is reached: the workers really run in parallel.
    assert slow.peak_in_flight == concurrency


async def test_concurrency_above_id_count(slow_client: Client, slow: SlowWemasy) -> None:
    results = await collect_all(slow_client.fetch_conversations([1, 2, 3], concurrency=50))
    assert sorted(r.id for r in results) == [1, 2, 3]
    assert slow.peak_in_flight == 3


async def test_max_concurrency(client: Client) -> None:
    batch = client.fetch_conversations(range(1, 11), concurrency=MAX_CONCURRENCY)
    results = await collect_all(batch)
    assert sorted(r.id for r in results) == list(range(1, 11))
    assert len(batch._workers) == MAX_CONCURRENCY


# --- Invalid arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [0, -1, MAX_CONCURRENCY + 1, True, False, 2.5, "4"])
@pytest.mark.parametrize("method", ["fetch_conversations", "fetch_messages"])
async def test_invalid_concurrency_raises_at_call_time(
    client: Client, fake: FakeWemasy, concurrency: Any, method: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        getattr(client, method)([1, 2], concurrency=concurrency)
    assert caught.value.argument == "concurrency"
    assert fake.requests == []


@pytest.mark.parametrize("ids", ["123", b"123", 5, None, 2.5, object()])
async def test_invalid_ids_raise_at_call_time(client: Client, fake: FakeWemasy, ids: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.fetch_conversations(ids)
    assert caught.value.argument == "ids"
    with pytest.raises(InvalidRequestError):
        client.fetch_messages(ids)
    assert fake.requests == []


@pytest.mark.parametrize("progress", [3, "print", [print]])
async def test_invalid_progress_raises_at_call_time(
    client: Client, fake: FakeWemasy, progress: Any
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.fetch_conversations([1], progress=progress)
    assert caught.value.argument == "progress"
    assert fake.requests == []


async def test_invalid_arguments_do_not_consume_the_ids(client: Client) -> None:
    pulled: list[int] = []

    def ids() -> Iterator[int]:
        for i in range(1, 4):
            pulled.append(i)
            yield i

    with pytest.raises(InvalidRequestError):
        client.fetch_conversations(ids(), concurrency=0)
    assert pulled == []
    batch = client.fetch_conversations(ids(), concurrency=2)
    assert pulled == []  # nothing is pulled (or fetched) before iteration starts
    await batch.aclose()
    assert pulled == []


class ChatOnlyProvider(WemasyProvider):
    """A provider that can chat but neither get conversations nor list messages."""

    capabilities: ClassVar[frozenset[Operation]] = frozenset({"chat"})


async def test_unsupported_operation_raises_at_call_time(fake: FakeWemasy) -> None:
    async with Client(ChatOnlyProvider(), base_url=fake.url, token=TOKEN) as client:
        with pytest.raises(UnsupportedOperationError):
            client.fetch_conversations([1, 2])
        with pytest.raises(UnsupportedOperationError):
            client.fetch_messages([1, 2])
    assert fake.requests == []


async def test_closed_client_raises_at_call_time(fake: FakeWemasy) -> None:
    client = Client("wemasy", base_url=fake.url, token=TOKEN)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        client.fetch_conversations([1, 2])
    with pytest.raises(ClientClosedError):
        client.fetch_messages([1, 2])
    assert fake.requests == []


# --- Progress ----------------------------------------------------------------------------------


async def test_progress_hook_once_per_result(client: Client) -> None:
    ids: list[Any] = [*range(1, 41), 500, 501, "x", -1]
    seen: list[FetchProgress] = []
    batch = client.fetch_conversations(ids, concurrency=8, progress=seen.append)
    assert batch.progress == FetchProgress(done=0, succeeded=0, failed=0, elapsed=0.0)
    assert batch.progress.rate == 0.0
    results = await collect_all(batch)

    assert len(seen) == len(results) == len(ids)
    assert [p.done for p in seen] == list(range(1, len(ids) + 1))
    assert all(p.done == p.succeeded + p.failed for p in seen)
    assert [p.elapsed for p in seen] == sorted(p.elapsed for p in seen)
    final = seen[-1]
    assert (final.done, final.succeeded, final.failed) == (44, 40, 4)
    assert final.succeeded == sum(r.ok for r in results)
    assert final.rate > 0
    snapshot = batch.progress
    assert (snapshot.done, snapshot.succeeded, snapshot.failed) == (44, 40, 4)
    assert snapshot.elapsed >= final.elapsed > 0
    assert snapshot.rate > 0


async def test_progress_snapshot_during_iteration(client: Client) -> None:
    batch = client.fetch_conversations(range(1, 21), concurrency=3)
    async with batch:
        delivered = 0
        async for result in batch:
            delivered += 1
            snapshot = batch.progress
            # Results are counted when fetched, so the counters run ahead of the consumer
            # by at most what is queued or waiting to be queued.
            assert delivered <= snapshot.done <= delivered + 2 * 3
            assert snapshot.done == snapshot.succeeded + snapshot.failed
            assert result.ok
    assert batch.progress.done == 20


# --- Rate limiter ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_rate_limiter_paces_the_workers() -> None:
    async with (
        FakeWemasy(seed=1, conversations=60, token=TOKEN, rate_limit=20, window=1.0) as fake,
        Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0)) as c,
    ):
        results = await collect_all(c.fetch_conversations(range(1, 61), concurrency=32))
        assert len(results) == 60
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert fake.stats.rate_limited == 0
        assert fake.stats.status_counts.get(429, 0) == 0
        assert fake.stats.max_in_window <= 20
        assert fake.stats.requests_total == 60
