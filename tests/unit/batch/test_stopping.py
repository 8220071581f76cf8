"""Batch fetching: stopping early, the completion order, ``fetch_messages`` on every provider,
and bugs in the fetch function (``BatchFetch`` directly); see ``test_fetch.py``.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from tests.support.batch import (
    TOKEN,
    SlowWemasy,
    collect_all,
    raise_in_body,
    unwrap_all,
    wait_until_done,
    warm_up,
)
from wemasy_async import (
    BatchFetch,
    Client,
    Conversation,
    Fetched,
    FetchFailed,
    FetchProgress,
    FetchResult,
    InvalidRequestError,
    Message,
    NotFoundError,
)
from wemasy_async.protocols import ConversationId
from wemasy_async.testing import FakeLoop, FakeSiteAssist, FakeWemasy

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
        again = await collect_all(client.fetch_conversations([1, 2, 3], concurrency=2))
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
        await raise_in_body(batch)
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
        await warm_up(client, fake)
        results = await collect_all(client.fetch_conversations(range(1, 11), concurrency=10))
    order = [r.id for r in results]
    assert sorted(order) == list(range(1, 11))
    assert order[0] != 1
    assert order[-1] == 1  # the slow one comes last, not first


# --- fetch_messages on every provider -----------------------------------------------------


async def test_fetch_messages_wemasy(client: Client, fake: FakeWemasy) -> None:
    ids = [1, 2, 3, 999]
    results = await collect_all(client.fetch_messages(ids, concurrency=3))
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
        results = await collect_all(client.fetch_messages(ids, concurrency=4))
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
        results = await collect_all(client.fetch_messages(ids, concurrency=4))
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
    await wait_until_done(batch._workers, within=0.2)
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
        await unwrap_all(batch, got)
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
        await unwrap_all(batch)
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
        await unwrap_all(batch)
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
