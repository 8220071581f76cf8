"""Batch fetching (``Client.fetch_conversations`` / ``fetch_messages``, ``BatchFetch``).

Against the bundled fakes over real sockets on 127.0.0.1. Fakes that need to be slow (to
see the concurrency bound, the completion order or a cancellation mid-batch) subclass
``FakeWemasy`` and sleep in the ``conversations/get`` handler, counting handler entries.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar

import aiohttp
import anyio
import pytest
from aiohttp import web

from wemasy_async import (
    BatchFetch,
    Client,
    ClientClosedError,
    Conversation,
    Fetched,
    FetchFailed,
    FetchProgress,
    FetchResult,
    InvalidRequestError,
    Message,
    NotFoundError,
    RateLimit,
    UnsupportedOperationError,
)
from wemasy_async.batch import MAX_CONCURRENCY
from wemasy_async.protocols import ConversationId
from wemasy_async.providers.base import Operation
from wemasy_async.providers.wemasy import WemasyProvider
from wemasy_async.testing import FakeLoop, FakeSiteAssist, FakeWemasy

TOKEN = "batch-token"
GET = "/services/ai/v1/conversations/get"


class SlowWemasy(FakeWemasy):
    """``FakeWemasy`` whose ``conversations/get`` handler sleeps and counts overlapping calls.

    Every request sleeps ``delay`` seconds; ids in ``slow_ids`` sleep ``slow_delay``. The
    counting happens in the handler, i.e. after the request fully arrived at the server.
    """

    def __init__(
        self,
        *,
        delay: float = 0.01,
        slow_ids: frozenset[int] = frozenset(),
        slow_delay: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.slow_ids = slow_ids
        self.slow_delay = slow_delay
        self.in_flight = 0
        self.peak_in_flight = 0
        self.handled: list[Any] = []

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            body = self.record_of(request).json
            raw_id = body.get("conversation_id") if isinstance(body, dict) else None
            await asyncio.sleep(self.slow_delay if raw_id in self.slow_ids else self.delay)
            self.handled.append(raw_id)
            return await super()._handle_get(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=3, conversations=200, token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(fake: FakeWemasy) -> AsyncIterator[Client]:
    async with Client("wemasy", base_url=fake.url, token=TOKEN) as c:
        yield c


@pytest.fixture
async def slow() -> AsyncIterator[SlowWemasy]:
    async with SlowWemasy(seed=3, conversations=200, token=TOKEN, delay=0.02) as server:
        yield server


async def _warm_up(client: Client, fake: FakeWemasy) -> None:
    """Let the rate limiter learn the server's limit first.

    Until it has, the limiter sends one request at a time (a probe), which would hide the
    batch's own parallelism and ordering.
    """
    await client.get_conversation(1)
    fake.reset_log()
    if isinstance(fake, SlowWemasy):
        fake.peak_in_flight = 0
        fake.handled.clear()


@pytest.fixture
async def slow_client(slow: SlowWemasy) -> AsyncIterator[Client]:
    async with Client("wemasy", base_url=slow.url, token=TOKEN) as c:
        await _warm_up(c, slow)
        yield c


def _sent_ids(fake: FakeWemasy) -> list[Any]:
    """The ``conversation_id`` of every ``conversations/get`` request the fake received."""
    return [r.json["conversation_id"] for r in fake.requests_to(GET)]


async def _wait_until_done(tasks: list[asyncio.Task[None]], within: float = 1.0) -> None:
    """Give cancelled workers a few loop turns (at most ``within`` seconds) to finish."""
    with anyio.move_on_after(within):
        while not all(task.done() for task in tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def _collect(batch: BatchFetch[Any]) -> list[FetchResult[Any]]:
    async with batch:
        return [result async for result in batch]


async def _unwrap_all(batch: BatchFetch[Any], into: list[Any] | None = None) -> None:
    """Consume ``batch`` inside ``async with``, unwrapping every result into ``into``."""
    async with batch:
        async for result in batch:
            if into is not None:
                into.append(result.unwrap())


async def _raise_in_body(batch: BatchFetch[Any]) -> None:
    async with batch:
        async for _ in batch:
            raise KeyError("consumer bug")


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

    results = await _collect(client.fetch_conversations(ids, concurrency=32))

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
    sent = Counter(str(i) for i in _sent_ids(fake))
    expected = Counter(str(int(i)) for i in ids if key(i) not in malformed_keys)
    assert sent == expected
    assert sum(expected.values()) == 300 - len(malformed)


async def test_int_and_str_ids_are_kept_apart(client: Client) -> None:
    results = await _collect(client.fetch_conversations([27, "27"], concurrency=2))
    assert sorted(repr(r.id) for r in results) == ["'27'", "27"]
    assert all(r.ok and r.unwrap().id == "27" for r in results)


async def test_empty_ids_end_at_once(client: Client, fake: FakeWemasy) -> None:
    progress: list[FetchProgress] = []
    batch = client.fetch_conversations([], concurrency=4, progress=progress.append)
    assert await _collect(batch) == []
    assert progress == []
    assert fake.requests == []
    # Exhausted: iterating again yields nothing.
    assert [r async for r in batch] == []


# --- Kinds of id sources ---------------------------------------------------------------------


async def test_ids_as_generator(client: Client) -> None:
    results = await _collect(client.fetch_conversations((i for i in range(1, 51)), concurrency=7))
    assert sorted(r.id for r in results) == list(range(1, 51))
    assert all(r.ok for r in results)


async def test_ids_as_async_generator(client: Client) -> None:
    async def ids() -> AsyncIterator[int]:
        for i in range(1, 51):
            if i % 10 == 0:
                await asyncio.sleep(0)  # a real suspension point inside the generator
            yield i

    results = await _collect(client.fetch_conversations(ids(), concurrency=7))
    assert sorted(r.id for r in results) == list(range(1, 51))
    assert all(r.ok for r in results)


async def test_ids_as_other_iterables(client: Client) -> None:
    ids: dict[int, str] = {1: "a", 2: "b", 3: "c"}  # iterating a dict gives its keys
    results = await _collect(client.fetch_conversations(ids, concurrency=2))
    assert sorted(r.id for r in results) == [1, 2, 3]
    results = await _collect(client.fetch_conversations(range(4, 7), concurrency=2))
    assert sorted(r.id for r in results) == [4, 5, 6]
    results = await _collect(client.fetch_conversations((8, 9), concurrency=2))
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
    results = await _collect(
        slow_client.fetch_conversations(range(1, 3 * concurrency + 2), concurrency=concurrency)
    )
    assert len(results) == 3 * concurrency + 1
    assert all(r.ok for r in results)
    # The bound holds and is reached: the workers really run in parallel.
    assert slow.peak_in_flight == concurrency


async def test_concurrency_above_id_count(slow_client: Client, slow: SlowWemasy) -> None:
    results = await _collect(slow_client.fetch_conversations([1, 2, 3], concurrency=50))
    assert sorted(r.id for r in results) == [1, 2, 3]
    assert slow.peak_in_flight == 3


async def test_max_concurrency(client: Client) -> None:
    batch = client.fetch_conversations(range(1, 11), concurrency=MAX_CONCURRENCY)
    results = await _collect(batch)
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
    results = await _collect(batch)

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
        results = await _collect(c.fetch_conversations(range(1, 61), concurrency=32))
        assert len(results) == 60
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert fake.stats.rate_limited == 0
        assert fake.stats.status_counts.get(429, 0) == 0
        assert fake.stats.max_in_window <= 20
        assert fake.stats.requests_total == 60


# --- Stopping early ------------------------------------------------------------------------


async def test_cancelled_consumer_stops_workers(slow: SlowWemasy) -> None:
    async with aiohttp.ClientSession() as session:
        client = Client("wemasy", base_url=slow.url, token=TOKEN, session=session)
        batch = client.fetch_conversations(range(1, 201), concurrency=8)
        got: list[FetchResult[Conversation]] = []
        with anyio.move_on_after(0.15) as scope:
            async for result in batch:
                got.append(result)
        assert scope.cancelled_caught
        assert 0 < len(got) < 200

        await asyncio.sleep(0.05)
        assert len(batch._workers) == 8
        assert all(task.done() for task in batch._workers)
        sent = len(slow.requests)
        await asyncio.sleep(0.1)
        assert len(slow.requests) == sent  # nothing more is fetched
        assert [r async for r in batch] == []  # the batch is over

        assert not session.closed
        assert (await client.get_conversation(7)).id == "7"
        again = await _collect(client.fetch_conversations([1, 2, 3], concurrency=2))
        assert sorted(r.id for r in again) == [1, 2, 3]
        await client.aclose()
        assert not session.closed


async def test_cancelled_consumer_inside_async_with(slow_client: Client) -> None:
    batch = slow_client.fetch_conversations(range(1, 201), concurrency=8)
    with anyio.move_on_after(0.15) as scope:
        async with batch:
            async for _ in batch:
                await asyncio.sleep(0.001)  # cancellation may land in the loop body too
    assert scope.cancelled_caught
    assert all(task.done() for task in batch._workers)
    assert (await slow_client.get_conversation(1)).id == "1"


async def test_break_and_aclose_stop_workers(slow_client: Client, slow: SlowWemasy) -> None:
    batch = slow_client.fetch_conversations(range(1, 201), concurrency=8)
    async for _ in batch:
        break
    await batch.aclose()
    assert len(batch._workers) == 8
    assert all(task.done() for task in batch._workers)
    await asyncio.sleep(0.05)  # requests cancelled in flight may still reach the server
    sent = len(slow.requests)
    assert sent <= 1 + 2 * 8
    await asyncio.sleep(0.1)
    assert len(slow.requests) == sent
    await batch.aclose()  # idempotent
    assert [r async for r in batch] == []


async def test_async_with_exit_stops_workers(slow_client: Client, slow: SlowWemasy) -> None:
    batch = slow_client.fetch_conversations(range(1, 201), concurrency=8)
    async with batch as entered:
        assert entered is batch
        async for _ in batch:
            break
    assert all(task.done() for task in batch._workers)
    await asyncio.sleep(0.05)  # requests cancelled in flight may still reach the server
    sent = len(slow.requests)
    await asyncio.sleep(0.1)
    assert len(slow.requests) == sent


async def test_exception_in_consumer_body_inside_async_with(slow_client: Client) -> None:
    batch = slow_client.fetch_conversations(range(1, 201), concurrency=8)
    with pytest.raises(KeyError):
        await _raise_in_body(batch)
    assert all(task.done() for task in batch._workers)


async def test_aclose_before_iteration(client: Client, fake: FakeWemasy) -> None:
    batch = client.fetch_conversations(range(1, 10), concurrency=2)
    await batch.aclose()
    assert [r async for r in batch] == []
    assert fake.requests == []


async def _drop_batch_mid_flight(client: Client) -> list[weakref.ref[asyncio.Task[None]]]:
    """Start a batch, take one result, drop it without closing; return its workers."""
    batch = client.fetch_conversations(range(1, 201), concurrency=4)
    async for _ in batch:
        break
    workers = [weakref.ref(task) for task in batch._workers]
    dropped = weakref.ref(batch)
    del batch

    def stopped() -> bool:
        return all(t is None or t.done() for t in (ref() for ref in workers))

    # The workers finish the fetches they are in, fill the queue, and then wait for a
    # consumer that is gone: only then is the batch garbage.
    with anyio.move_on_after(2):
        while not stopped():
            gc.collect()
            await asyncio.sleep(0.02)
    assert stopped()
    gc.collect()
    assert dropped() is None
    return workers


async def test_dropped_batch_stops_fetching(
    slow_client: Client, slow: SlowWemasy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What this test checks works; how the workers go away is test_dropped_batch_is_clean.
    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)
    await _drop_batch_mid_flight(slow_client)
    sent = len(slow.requests)
    assert sent <= 1 + 2 * 4
    await asyncio.sleep(0.1)
    assert len(slow.requests) == sent
    assert (await slow_client.get_conversation(2)).id == "2"


async def test_dropped_batch_is_clean(
    slow_client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda args: unraisable.append(f"{args.exc_type.__name__}")
    )
    await _drop_batch_mid_flight(slow_client)
    assert unraisable == []
    assert "Task was destroyed but it is pending" not in caplog.text


# --- Completion order ------------------------------------------------------------------------


async def test_results_arrive_in_completion_order() -> None:
    async with (
        SlowWemasy(conversations=10, token=TOKEN, delay=0.0, slow_ids=frozenset({1})) as fake,
        Client("wemasy", base_url=fake.url, token=TOKEN) as client,
    ):
        await _warm_up(client, fake)
        results = await _collect(client.fetch_conversations(range(1, 11), concurrency=10))
    order = [r.id for r in results]
    assert sorted(order) == list(range(1, 11))
    assert order[0] != 1
    assert order[-1] == 1  # the slow one comes last, not first


# --- fetch_messages on every provider -----------------------------------------------------


async def test_fetch_messages_wemasy(client: Client, fake: FakeWemasy) -> None:
    ids = [1, 2, 3, 999]
    results = await _collect(client.fetch_messages(ids, concurrency=3))
    assert sorted(r.id for r in results) == ids
    for result in results:
        if result.id == 999:
            assert isinstance(result.error, NotFoundError)
            continue
        messages = result.unwrap()
        assert isinstance(messages, list)
        assert all(isinstance(m, Message) for m in messages)
        wire = fake.conversations[result.id]["messages"]
        assert [m.id for m in messages] == [str(m["id"]) for m in wire]
        assert messages == await client.list_messages(result.id)


async def test_fetch_messages_siteassist() -> None:
    async with (
        FakeSiteAssist(seed=5, conversations=6, token=TOKEN) as fake,
        Client("siteassist", base_url=fake.url, token=TOKEN) as client,
    ):
        ids: list[Any] = [*fake.conversation_ids, "00000000-0000-4000-8000-000000000000", "x"]
        results = await _collect(client.fetch_messages(ids, concurrency=4))
        assert sorted(r.id for r in results) == sorted(ids)
        by_id = {r.id: r for r in results}
        for conversation_id in fake.conversation_ids:
            messages = by_id[conversation_id].unwrap()
            assert isinstance(messages, list)
            assert all(isinstance(m, Message) for m in messages)
            assert messages == await client.list_messages(conversation_id)
        assert isinstance(by_id["00000000-0000-4000-8000-000000000000"].error, NotFoundError)
        assert isinstance(by_id["x"].error, InvalidRequestError)


async def test_fetch_messages_loop() -> None:
    async with (
        FakeLoop(seed=5, conversations=6, long_conversations=1, token=TOKEN) as fake,
        Client("loop", base_url=fake.url, token=TOKEN) as client,
    ):
        # Loop ids are free-form strings: ".." is malformed, "x" merely unknown.
        ids: list[Any] = [*fake.conversation_ids, "00000000-0000-4000-8000-000000000000", ".."]
        results = await _collect(client.fetch_messages(ids, concurrency=4))
        assert sorted(r.id for r in results) == sorted(ids)
        by_id = {r.id: r for r in results}
        for conversation_id in fake.conversation_ids:
            messages = by_id[conversation_id].unwrap()
            assert isinstance(messages, list)
            assert all(isinstance(m, Message) for m in messages)
            assert len(messages) == len(fake.conversations[conversation_id])
            assert messages == await client.list_messages(conversation_id)
        assert isinstance(by_id["00000000-0000-4000-8000-000000000000"].error, NotFoundError)
        assert isinstance(by_id[".."].error, InvalidRequestError)


# --- BatchFetch directly: bugs in the fetch function ----------------------------------------


def _fetcher(
    behaviour: Callable[[ConversationId], Awaitable[int]],
) -> tuple[Callable[[ConversationId], Awaitable[int]], list[ConversationId]]:
    calls: list[ConversationId] = []

    async def fetch(conversation_id: ConversationId) -> int:
        calls.append(conversation_id)
        return await behaviour(conversation_id)

    return fetch, calls


async def test_bug_in_fetch_propagates_and_stops_the_workers() -> None:
    async def behaviour(conversation_id: ConversationId) -> int:
        if conversation_id == 1:
            raise RuntimeError("bug in fetch")
        await asyncio.Event().wait()  # never finishes on its own
        return 0

    fetch, calls = _fetcher(behaviour)
    batch = BatchFetch(fetch=fetch, ids=[1, 2, 3], concurrency=2, progress=None)
    with pytest.raises(RuntimeError, match="bug in fetch"):
        await anext(batch)  # no `async with`: the error alone must stop the workers
    await _wait_until_done(batch._workers, within=0.2)
    assert all(task.done() for task in batch._workers)
    assert sorted(calls) == [1, 2]  # id 3 was never started
    assert [r async for r in batch] == []
    await batch.aclose()


async def test_bug_after_some_results() -> None:
    async def behaviour(conversation_id: ConversationId) -> int:
        assert isinstance(conversation_id, int)
        await asyncio.sleep(0.001 * conversation_id)
        if conversation_id == 5:
            raise ZeroDivisionError("boom")
        return conversation_id * 10

    fetch, _ = _fetcher(behaviour)
    batch = BatchFetch(fetch=fetch, ids=range(1, 100), concurrency=3, progress=None)
    got: list[int] = []
    with pytest.raises(ZeroDivisionError):
        await _unwrap_all(batch, got)
    assert all(task.done() for task in batch._workers)
    assert 1 <= len(got) < 99
    assert all(value % 10 == 0 for value in got)


async def test_bug_in_progress_hook_propagates() -> None:
    async def behaviour(conversation_id: ConversationId) -> int:
        return 1

    def progress(snapshot: FetchProgress) -> None:
        if snapshot.done == 3:
            raise ValueError("bug in hook")

    fetch, _ = _fetcher(behaviour)
    batch = BatchFetch(fetch=fetch, ids=range(10), concurrency=2, progress=progress)
    with pytest.raises(ValueError, match="bug in hook"):
        await _unwrap_all(batch)
    assert all(task.done() for task in batch._workers)


async def test_bug_in_ids_iterable_propagates() -> None:
    async def behaviour(conversation_id: ConversationId) -> int:
        return 1

    def ids() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("bug in ids")

    fetch, _ = _fetcher(behaviour)
    batch = BatchFetch(fetch=fetch, ids=ids(), concurrency=2, progress=None)
    with pytest.raises(LookupError, match="bug in ids"):
        await _unwrap_all(batch)
    assert all(task.done() for task in batch._workers)


async def test_batch_fetch_validates_directly() -> None:
    async def fetch(conversation_id: ConversationId) -> int:
        return 1

    with pytest.raises(InvalidRequestError):
        BatchFetch(fetch=fetch, ids=[1], concurrency=0, progress=None)
    with pytest.raises(InvalidRequestError):
        BatchFetch(fetch=fetch, ids="12", concurrency=1, progress=None)
    progress: Any = 3
    with pytest.raises(InvalidRequestError):
        BatchFetch(fetch=fetch, ids=[1], concurrency=1, progress=progress)


async def test_fetch_result_unwrap_and_ok() -> None:
    good: FetchResult[int] = Fetched(id="7", value=7)
    assert good.ok
    assert good.unwrap() == 7
    error = InvalidRequestError("bad id", argument="conversation_id")
    bad: FetchResult[int] = FetchFailed(id=-1, error=error)
    assert not bad.ok
    with pytest.raises(InvalidRequestError) as caught:
        bad.unwrap()
    assert caught.value is error
