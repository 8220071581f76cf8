"""Hostile servers (issue 12): waits for the connection pool, and nothing grows or leaks
(timeouts, pagination loops, connections), through the public API on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from tests.support.renderings import CHAT, GET, LIST, TOKEN, assert_clean, failure, serving
from wemasy_async import (
    APIConnectionError,
    APITimeoutError,
    Client,
    PaginationError,
    WemasyAsyncError,
)
from wemasy_async.testing import FakeWemasy
from wemasy_async.transport import TRACE_CONFIG

# ---------------------------------------------------------------------------- pool waits


async def _chat_storm(
    fake: FakeWemasy, session: aiohttp.ClientSession | None
) -> tuple[dict[str, WemasyAsyncError], set[str]]:
    """400 concurrent chats, 0.5 s timeout, 0.3 s server latency; errors by message."""
    fake.queue_delay(0.3, times=400, path=CHAT)
    errors: dict[str, WemasyAsyncError] = {}
    async with Client(
        "wemasy",
        token=TOKEN,
        base_url=fake.url,
        session=session,
        timeout=0.5,
        retry=False,
        rate_limit=False,
    ) as client:

        async def one(text: str) -> None:
            try:
                await client.chat(text)
            except WemasyAsyncError as error:
                errors[text] = error

        await asyncio.gather(*(one(f"storm {i}") for i in range(400)))
    received = {str(r.json["message"]) for r in fake.requests_to(CHAT) if r.json}
    return errors, received


async def test_waiting_for_a_pooled_connection_is_not_sent() -> None:
    # A small pool: most of the 400 calls time out while waiting for one of 10 connections.
    connector = aiohttp.TCPConnector(limit=10)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        aiohttp.ClientSession(connector=connector, trace_configs=[TRACE_CONFIG]) as session,
    ):
        errors, received = await _chat_storm(fake, session)
    unsent = {text for text, e in errors.items() if isinstance(e, APIConnectionError)}
    unsent = {text for text in unsent if not errors[text].request_sent}  # type: ignore[attr-defined]
    assert all(isinstance(e, APITimeoutError) for e in errors.values())
    assert len(unsent) > 300  # the scenario happened: most calls only waited for the pool
    # Exact accounting: "not sent" never reached the server, "sent" always did.
    assert not unsent & received
    assert set(errors) - unsent <= received
    assert all("not sent" in str(errors[text]) for text in unsent)


async def test_pool_waits_of_the_clients_own_session_are_not_sent() -> None:
    # The session the client creates tells pool waits from sends in its connector.
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        errors, received = await _chat_storm(fake, None)
    for text, error in errors.items():
        assert isinstance(error, APITimeoutError)
        assert error.request_sent == (text in received), text


async def test_without_tracing_a_callers_session_counts_pool_waits_as_sent() -> None:
    # Nothing observes the pool of a plain session: the safe side, chat is not resent.
    connector = aiohttp.TCPConnector(limit=10)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        errors, received = await _chat_storm(fake, session)
    assert len(errors) > 300
    assert all(isinstance(e, APITimeoutError) and e.request_sent for e in errors.values())
    assert len(received) < 100  # most of them never reached the server


async def test_a_chat_that_only_waited_for_the_pool_is_retried_once_delivered() -> None:
    # With retries on, a chat that never got a connection is sent again; none twice.
    connector = aiohttp.TCPConnector(limit=20)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        aiohttp.ClientSession(connector=connector, trace_configs=[TRACE_CONFIG]) as session,
        Client(
            "wemasy",
            token=TOKEN,
            base_url=fake.url,
            session=session,
            timeout=0.5,
            rate_limit=False,
        ) as client,
    ):
        fake.queue_delay(0.3, times=100, path=CHAT)
        results = await asyncio.gather(
            *(client.chat(f"retry {i}") for i in range(100)), return_exceptions=True
        )
        delivered = [str(r.json["message"]) for r in fake.requests_to(CHAT) if r.json]
    assert len(delivered) == len(set(delivered))  # nothing delivered twice
    failed = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, APITimeoutError) and r.request_sent for r in failed)
    assert len(results) - len(failed) > 30  # pool waiters got their turn on a retry (20 before)


@pytest.mark.parametrize("how", ["cancel", "asyncio.timeout", "taskgroup"])
async def test_a_call_cancelled_while_it_waits_for_the_pool_leaves_nothing_behind(
    how: str,
) -> None:
    if how != "cancel" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout and TaskGroup are new in Python 3.11")
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        FakeWemasy(token=TOKEN, conversations=2) as fake,
        aiohttp.ClientSession(connector=connector, trace_configs=[TRACE_CONFIG]) as session,
        Client("wemasy", token=TOKEN, base_url=fake.url, session=session) as client,
    ):
        fake.queue_delay(0.3, path=GET)
        holder = asyncio.create_task(client.get_conversation(1))  # holds the one connection
        await asyncio.sleep(0.05)
        if how == "cancel":
            waiter = asyncio.create_task(client.get_conversation(2))
            await asyncio.sleep(0.05)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        elif how == "asyncio.timeout":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.get_conversation(2)
        else:

            async def fail_soon() -> None:
                await asyncio.sleep(0.05)
                raise ValueError("a sibling failed")

            async def group() -> None:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(client.get_conversation(2))
                    tasks.create_task(fail_soon())

            with pytest.raises(Exception) as info:  # noqa: PT011 - an ExceptionGroup
                await group()
            assert type(info.value).__name__ == "ExceptionGroup"
        assert (await holder).id == "1"
        assert (await client.get_conversation(2)).id == "2"  # the pool is whole again
        assert [r.json["conversation_id"] for r in fake.requests] == [1, 2]
    assert connector.closed


# ---------------------------------------------------------------------------- leaks


async def test_distinct_timeouts_do_not_accumulate() -> None:
    async with (
        FakeWemasy(token=TOKEN, conversations=2) as fake,
        Client("wemasy", token=TOKEN, base_url=fake.url, rate_limit=False) as client,
    ):
        await client.get_conversation(1)  # warm up: session, pool, first allocations
        fake.reset_log()
        fake.record_requests = False
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for i in range(3000):
                await client.with_options(timeout=5 + i * 1e-6).get_conversation(1)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # A cache of every distinct timeout kept ~460 KiB; loosely bounded, not a benchmark.
    assert grown < 200 * 1024, grown


def _paging_app(pages: Callable[[int], dict[str, Any]]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(pages(int(body.get("page", 1))))

    app = web.Application()
    app.router.add_post("/api" + LIST, handle)
    return app


def _conversation(number: int) -> dict[str, Any]:
    return {"id": number, "agent_id": "a", "status": "closed", "started_at": None}


def _page(items: list[int], current: int, last: int) -> dict[str, Any]:
    return {
        "success": True,
        "data": [_conversation(i) for i in items],
        "pagination": {"current_page": current, "last_page": last, "per_page": 2, "total": 8},
    }


PAGINGS: dict[str, tuple[Callable[[int], dict[str, Any]], int, int]] = {
    # (server, the page that fails, the page the server said it sent)
    "ignores_page": (lambda page: _page([1, 2], 1, 4), 2, 1),
    "repeats_a_page": (lambda page: _page([2 * page - 1, 2 * page], min(page, 2), 4), 3, 2),
    "same_items_again": (lambda page: _page([1, 2], page, 4), 2, 2),
}


@pytest.mark.parametrize("paging", PAGINGS.values(), ids=PAGINGS)
async def test_pages_that_do_not_advance_end_in_an_error(
    paging: tuple[Callable[[int], dict[str, Any]], int, int],
) -> None:
    pages, failing, received = paging
    seen: list[str] = []

    async def iterate() -> None:
        with anyio.fail_after(10):
            async for conversation in client.iter_conversations(per_page=2):
                seen.append(conversation.id)

    async with (
        serving(_paging_app(pages)) as url,
        Client("wemasy", token=TOKEN, base_url=url, retry=False) as client,
    ):
        error = await failure(iterate)
    assert isinstance(error, PaginationError), repr(error)
    assert error.page == failing
    assert error.received == received
    assert f"page {failing}" in str(error)
    assert len(seen) == len(set(seen))  # no duplicates were yielded
    assert_clean(error)


async def test_pages_that_advance_are_all_read() -> None:
    # The control: a well-behaved server pages to the end without an error.
    app = _paging_app(lambda page: _page([2 * page - 1, 2 * page], page, 4))
    async with (
        serving(app) as url,
        Client("wemasy", token=TOKEN, base_url=url, retry=False) as client,
    ):
        ids = [c.id async for c in client.iter_conversations(per_page=2)]
    assert ids == [str(i) for i in range(1, 9)]


async def test_a_10_mb_chat_message_is_sent_once_without_a_warning() -> None:
    message = "x" * (10 * 1024 * 1024)
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            ticks = 0
            done = False

            async def ticker() -> None:
                # The loop keeps turning while the body goes out.
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            with warnings.catch_warnings():
                warnings.simplefilter("error")  # as in this suite, and many users' suites
                tick = asyncio.create_task(ticker())
                reply = await client.chat(message)
                done = True
                await tick
        assert reply.content
        (request,) = fake.requests_to(CHAT)
        assert request.json["message"] == message  # one message, the full size
        assert len(fake.chat_deliveries) == 1
        assert request.headers["Content-Type"] == "application/json"
        assert ticks > 10


@pytest.mark.parametrize("after", [0, 1, 3, 10, 30])
async def test_a_large_chat_cancelled_while_it_goes_out_leaves_the_client_usable(
    after: int,
) -> None:
    # Cancelled after `after` turns of the loop: connecting, writing the body in chunks,
    # waiting for the reply.
    message = "y" * (4 * 1024 * 1024)
    async with (
        FakeWemasy(token=TOKEN, conversations=1) as fake,
        Client("wemasy", token=TOKEN, base_url=fake.url) as client,
    ):
        task = asyncio.create_task(client.chat(message))
        for _ in range(after):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert_clean(info.value)
        reply = await client.chat("after the cancel")
        assert reply.content
        await asyncio.sleep(0.05)  # let a cut-off upload reach the fake's handler, if at all
        delivered = [d["message"] for d in fake.chat_deliveries]
    assert delivered.count(message) <= 1
    assert "after the cancel" in delivered
