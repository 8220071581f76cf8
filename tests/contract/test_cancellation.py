"""Cancelling a call at each of its await points leaves the client consistent.

A call waits in four places: for the rate limiter, while connecting, while reading the
response, and while backing off before a retry. For each, on every provider, a call is
cancelled there (by ``Task.cancel()``, ``anyio.move_on_after`` or ``anyio.fail_after``) and
then: the limiter has nothing queued or in flight, the connection pool has nothing checked
out (a pool of one connection proves it: a leaked connection would hang the next call), no
task is left behind, and the next call works.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import socket
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from tests.support.cases import ProviderCase
from wemasy_async import Client, InternalServerError, RateLimit, RetryPolicy
from wemasy_async.ratelimit import Limiter, LocalStore, Pacing
from wemasy_async.schedule import Decision, Event
from wemasy_async.testing import FakeServer

TOKEN = "cancel-token"


@pytest.fixture
async def fake(case: ProviderCase) -> AsyncIterator[FakeServer]:
    async with case.start(token=TOKEN) as server:
        yield server


@pytest.fixture
async def one_connection() -> AsyncIterator[aiohttp.ClientSession]:
    """A caller's session with a pool of exactly one connection.

    A connection left checked out after a cancellation makes the next request wait for it
    forever, so "the next call works" proves the pool is consistent.
    """
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        yield session
    assert session.closed


def checked_out(session: aiohttp.ClientSession) -> int:
    """Connections the session's pool has handed out (aiohttp has no public count)."""
    acquired: set[object] = getattr(session.connector, "_acquired", set())
    return len(acquired)


def limiter_of(client: Client) -> Limiter:
    limiter = client._engine.options.limiter
    assert limiter is not None
    return limiter


def assert_limiter_idle(client: Client) -> None:
    limiter = limiter_of(client)
    assert limiter.waiting == 0
    assert isinstance(limiter.store, LocalStore)
    assert limiter.store.in_flight(limiter.key) == 0


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    # The fakes run in the test's loop; a handler parked in a queued delay outlives the
    # client that gave up on it (aiohttp does not cancel handlers on disconnect).
    coro = task.get_coro()
    module = getattr(getattr(coro, "cr_code", None), "co_filename", "")
    return "aiohttp/web" in module or "wemasy_async/testing" in module


def client_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if not t.done() and not _is_server_task(t)}


async def settle() -> None:
    """A few loop passes, for callbacks scheduled by a cancellation to run."""
    for _ in range(5):
        await asyncio.sleep(0)


def assert_no_unclosed_resources() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


Method = Callable[[Callable[[], Awaitable[object]], Callable[[], bool]], Awaitable[None]]


async def by_task_cancel(call: Callable[[], Awaitable[object]], ready: Callable[[], bool]) -> None:
    task = asyncio.ensure_future(call())
    await wait_until(ready)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# Long enough for the call to reach its await point on a loaded machine; shorter than the
# delays that hold it there (a 1.2 s response, a 5 s backoff, a connect that never ends).
DEADLINE = 0.5


async def _watched(
    call: Callable[[], Awaitable[object]], ready: Callable[[], bool], seen: list[bool]
) -> None:
    """Run ``call``, noting in ``seen`` once ``ready()`` held while it ran."""

    async def watch() -> None:
        await wait_until(ready)
        seen.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await call()


async def by_move_on_after(
    call: Callable[[], Awaitable[object]], ready: Callable[[], bool]
) -> None:
    seen: list[bool] = []
    with anyio.move_on_after(DEADLINE) as scope:
        await _watched(call, ready, seen)
    assert scope.cancelled_caught
    assert seen  # the deadline found the call at the await point under test


async def by_fail_after(call: Callable[[], Awaitable[object]], ready: Callable[[], bool]) -> None:
    seen: list[bool] = []
    with pytest.raises(TimeoutError), anyio.fail_after(DEADLINE):
        await _watched(call, ready, seen)
    assert seen


METHODS: dict[str, Method] = {
    "task-cancel": by_task_cancel,
    "move_on_after": by_move_on_after,
    "fail_after": by_fail_after,
}
method_param = pytest.mark.parametrize("cancel", METHODS.values(), ids=METHODS)


# --- While waiting for the rate limiter ------------------------------------------------------


async def test_cancelled_limiter_waiters_leak_nothing(case: ProviderCase) -> None:
    # 2 per 0.5 s: one send per window (the probe's included), so the next ones wait.
    async with (
        case.start(token=TOKEN, rate_limit=2, window=0.5) as fake,
        Client(case.name, token=TOKEN, base_url=fake.url, rate_limit=RateLimit(window=0.5)) as c,
    ):
        ids = case.ids(fake)
        tasks_before = client_tasks()
        await c.get_conversation(ids[0])  # the probe: the limit is learned from its answer
        limiter = limiter_of(c)
        queued = [asyncio.ensure_future(c.get_conversation(i)) for i in ids[1:6]]
        await wait_until(lambda: limiter.waiting == 5)
        for task in queued[0], queued[2], queued[4]:  # the head among them
            task.cancel()
        kept = await asyncio.gather(*queued, return_exceptions=True)
        assert [type(r).__name__ for r in kept[0::2]] == ["CancelledError"] * 3
        assert [r.id for r in kept[1::2]] == [ids[2], ids[4]]  # type: ignore[union-attr]
        assert_limiter_idle(c)
        # The three cancelled calls gave their sends back: only the probe and two reached
        # the fake, and the next call goes out a window after the last send, not three.
        assert len(fake.requests) == 3
        with anyio.fail_after(0.5 + 0.3):
            assert (await c.get_conversation(ids[6])).id == ids[6]
        assert len(fake.requests) == 4
        assert fake.stats.rate_limited == 0
        assert_limiter_idle(c)
        await settle()
        assert client_tasks() == tasks_before


async def test_cancelled_probe_waiters_leak_nothing(case: ProviderCase) -> None:
    # Before the first answer tells the limit, one request probes and the others wait for it.
    async with case.start(token=TOKEN) as fake:
        fake.queue_delay(0.5, path=case.get_path)
        async with Client(case.name, token=TOKEN, base_url=fake.url) as c:
            ids = case.ids(fake)
            probe = asyncio.ensure_future(c.get_conversation(ids[0]))
            await wait_until(lambda: len(fake.requests) == 1)
            waiters = [asyncio.ensure_future(c.get_conversation(i)) for i in ids[1:4]]
            await wait_until(lambda: limiter_of(c).waiting == 3)
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            assert limiter_of(c).waiting == 0
            assert (await probe).id == ids[0]
            assert (await c.get_conversation(ids[4])).id == ids[4]
            assert len(fake.requests) == 2
            assert_limiter_idle(c)


class _SuspendingStore(LocalStore):
    """A LocalStore whose ``apply`` suspends first, as a shared store's round trip does.

    When ``trap`` is the task calling, it is cancelled during the call that reserves its send.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trap: asyncio.Task[Any] | None = None

    async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
        await anyio.lowlevel.checkpoint()
        decision = self.apply_now(key, pacing, event)
        if self.trap is not None and decision.ticket is not None:
            self.trap.cancel()
            self.trap = None
        return decision


async def test_a_caller_cancelled_in_the_call_that_reserves_gives_its_send_back() -> None:
    store = _SuspendingStore()
    limiter = Limiter("reserve-cancel", RateLimit(window=1.0, ceiling=10), store)

    async def request() -> None:
        ticket = await limiter.acquire()
        try:
            await asyncio.sleep(0.01)
        finally:
            await limiter.release(ticket, None)

    await request()
    victim = asyncio.ensure_future(request())
    store.trap = victim
    with pytest.raises(asyncio.CancelledError):
        await victim
    with anyio.fail_after(5):
        await asyncio.gather(*(request() for _ in range(3)))
        await limiter.settled()
    assert limiter.waiting == 0
    # The store call went on after the cancel; what it reserved went back.
    assert store.in_flight(limiter.key) == 0


# --- While connecting ------------------------------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[str]:
    """``host:port`` of a listener whose accept queue is full: a connect to it hangs.

    With a backlog of 0 Linux queues one connection; the kernel then drops further SYNs,
    so later connects neither succeed nor fail until their own timeout.
    """
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((host, port))
            fillers.append(filler)
        yield f"{host}:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@method_param
async def test_cancelled_while_connecting(
    case: ProviderCase,
    fake: FakeServer,
    black_hole: str,
    one_connection: aiohttp.ClientSession,
    cancel: Method,
) -> None:
    hanging = Client(
        case.name,
        token=TOKEN,
        base_url=f"http://{black_hole}{fake.url_prefix}",
        session=one_connection,
        timeout=None,  # only the cancellation ends the connect
        rate_limit=RateLimit(ceiling=1000),  # learned at once: the send is counted in flight
    )
    tasks_before = client_tasks()
    conversation_id = case.ids(fake)[0]
    await cancel(
        lambda: hanging.get_conversation(conversation_id),
        lambda: limiter_of(hanging).store.in_flight(limiter_of(hanging).key) == 1,  # type: ignore[attr-defined]
    )
    await settle()
    assert checked_out(one_connection) == 0
    assert_limiter_idle(hanging)
    assert client_tasks() == tasks_before
    # The same session (its only connection slot) now serves another client at once.
    working = Client(case.name, token=TOKEN, base_url=fake.url, session=one_connection)
    with anyio.fail_after(5):
        assert (await working.get_conversation(conversation_id)).id == conversation_id
    await hanging.aclose()
    await working.aclose()
    assert not one_connection.closed
    assert_no_unclosed_resources()


async def test_cancelled_while_connecting_with_an_owned_session(
    case: ProviderCase, fake: FakeServer, black_hole: str
) -> None:
    client = Client(case.name, token=TOKEN, base_url=f"http://{black_hole}", timeout=None)
    tasks_before = client_tasks()
    with anyio.move_on_after(0.3) as scope:
        await client.get_conversation(case.ids(fake)[0])
    assert scope.cancelled_caught
    await client.aclose()
    await settle()
    assert client_tasks() == tasks_before
    assert not client._engine.transport.owns_open_session  # type: ignore[attr-defined]
    assert_no_unclosed_resources()


# --- While reading -------------------------------------------------------------------------


@method_param
async def test_cancelled_while_waiting_for_the_response(
    case: ProviderCase, fake: FakeServer, one_connection: aiohttp.ClientSession, cancel: Method
) -> None:
    ids = case.ids(fake)
    async with Client(case.name, token=TOKEN, base_url=fake.url, session=one_connection) as c:
        await c.get_conversation(ids[0])  # learned: later sends are counted in flight
        tasks_before = client_tasks()
        fake.queue_delay(1.2, path=case.get_path)  # the headers come after the cancellation
        await cancel(lambda: c.get_conversation(ids[1]), lambda: len(fake.requests) == 2)
        await settle()
        assert checked_out(one_connection) == 0
        assert_limiter_idle(c)
        assert client_tasks() == tasks_before
        with anyio.fail_after(5):
            assert (await c.get_conversation(ids[2])).id == ids[2]
        assert_limiter_idle(c)
    assert not one_connection.closed
    assert_no_unclosed_resources()


@pytest.fixture
async def stalling_server() -> AsyncIterator[tuple[str, anyio.Event]]:
    """A server that sends the headers and the start of a body, then nothing more.

    Yields its URL and an event set once a response has started.
    """
    started = anyio.Event()
    release = anyio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Length": "100000"}
        )
        await response.prepare(request)
        await response.write(b'{"success": true, "data": {"id": 1, "messages": [')
        started.set()
        await release.wait()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stall)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", started
    finally:
        release.set()
        await runner.cleanup()


@method_param
async def test_cancelled_while_reading_the_body(
    case: ProviderCase,
    fake: FakeServer,
    stalling_server: tuple[str, anyio.Event],
    one_connection: aiohttp.ClientSession,
    cancel: Method,
) -> None:
    url, started = stalling_server
    stalled = Client(
        case.name,
        token=TOKEN,
        base_url=url + fake.url_prefix,
        session=one_connection,
        timeout=None,
        rate_limit=RateLimit(ceiling=1000),
    )
    tasks_before = client_tasks()
    conversation_id = case.ids(fake)[0]
    await cancel(lambda: stalled.get_conversation(conversation_id), started.is_set)
    await settle()
    assert checked_out(one_connection) == 0
    assert_limiter_idle(stalled)
    assert client_tasks() == tasks_before
    working = Client(case.name, token=TOKEN, base_url=fake.url, session=one_connection)
    with anyio.fail_after(5):
        assert (await working.get_conversation(conversation_id)).id == conversation_id
    await stalled.aclose()
    await working.aclose()
    assert_no_unclosed_resources()


# --- While backing off ---------------------------------------------------------------------


class _FixedBackoff(RetryPolicy):
    """Backs off 5 s before every retry: long enough to be cancelled during, for sure."""

    def backoff(self, retry: int) -> float:
        return 5.0


class TestBackingOff:
    @pytest.fixture(autouse=True)
    def _no_retry_backoff(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Overrides the suite's no_backoff switch: these tests need the real sleep."""
        monkeypatch.delenv("WEMASY_ASYNC_NO_BACKOFF", raising=False)

    @pytest.mark.parametrize(
        ("headers", "retry"),
        [
            ({}, _FixedBackoff()),
            ({"Retry-After": "5"}, RetryPolicy()),
        ],
        ids=["backoff", "retry-after"],
    )
    @method_param
    async def test_cancelled_while_backing_off(
        self,
        case: ProviderCase,
        fake: FakeServer,
        cancel: Method,
        headers: dict[str, str],
        retry: RetryPolicy,
    ) -> None:
        ids = case.ids(fake)
        async with Client(case.name, token=TOKEN, base_url=fake.url, retry=retry) as c:
            await c.get_conversation(ids[0])
            fake.reset_log()
            tasks_before = client_tasks()
            fake.queue_error(503, path=case.get_path, headers=headers)
            await cancel(
                lambda: c.get_conversation(ids[1]),
                lambda: [r.status for r in fake.requests] == [503],
            )
            await settle()
            assert client_tasks() == tasks_before  # nothing is left to send the retry
            assert [r.status for r in fake.requests] == [503]
            assert_limiter_idle(c)
            assert (await c.get_conversation(ids[2])).id == ids[2]
            assert [r.status for r in fake.requests] == [503, 200]

    async def test_the_backoff_is_real_here(self, case: ProviderCase, fake: FakeServer) -> None:
        # Guards the override above: without it the retry would go out at once.
        fake.queue_error(503, path=case.get_path)
        async with Client(case.name, token=TOKEN, base_url=fake.url, retry=_FixedBackoff()) as c:
            with anyio.move_on_after(0.5) as scope:
                await c.get_conversation(case.ids(fake)[0])
        assert scope.cancelled_caught
        assert len(fake.requests) == 1


async def test_without_the_override_retries_do_not_sleep(
    case: ProviderCase, fake: FakeServer
) -> None:
    fake.queue_error(503, path=case.get_path, times=3)
    async with Client(case.name, token=TOKEN, base_url=fake.url, retry=_FixedBackoff()) as c:
        with anyio.fail_after(4):  # three 5 s backoffs would take 15 s
            await c.get_conversation(case.ids(fake)[0])
    assert [r.status for r in fake.requests] == [503, 503, 503, 200]


# --- Batches -------------------------------------------------------------------------------


async def _stop_by_break(client: Client, ids: list[str]) -> int:
    seen = 0
    async with client.fetch_conversations(ids, concurrency=8) as batch:
        async for _ in batch:
            seen += 1
            if seen == 5:
                break
    return seen


async def _stop_by_task_cancel(client: Client, ids: list[str]) -> int:
    seen = 0

    async def consume() -> None:
        nonlocal seen
        async with client.fetch_conversations(ids, concurrency=8) as batch:
            async for _ in batch:
                seen += 1

    task = asyncio.ensure_future(consume())
    await wait_until(lambda: seen >= 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen


async def _stop_by_move_on_after(client: Client, ids: list[str]) -> int:
    seen = 0
    with anyio.move_on_after(0.5) as scope:
        async with client.fetch_conversations(ids, concurrency=8) as batch:
            async for _ in batch:
                seen += 1
    assert scope.cancelled_caught
    return seen


STOPS = {
    "break": _stop_by_break,
    "task-cancel": _stop_by_task_cancel,
    "move_on_after": _stop_by_move_on_after,
}


@pytest.mark.parametrize("stop", STOPS.values(), ids=STOPS)
async def test_a_stopped_batch_leaves_nothing_behind(
    case: ProviderCase,
    fake: FakeServer,
    one_connection: aiohttp.ClientSession,
    stop: Callable[[Client, list[str]], Awaitable[int]],
) -> None:
    ids = case.ids(fake)
    async with Client(case.name, token=TOKEN, base_url=fake.url, session=one_connection) as c:
        await c.get_conversation(ids[0])
        tasks_before = client_tasks()
        # Every request is slow (and they share one connection): the batch is mid-flight
        # when it is stopped.
        fake.queue_delay(0.05, path=case.get_path, times=len(ids))
        seen = await stop(c, ids)
        assert 0 < seen < len(ids)
        await settle()
        assert client_tasks() == tasks_before
        assert_limiter_idle(c)
        assert checked_out(one_connection) == 0
        fake.clear_faults()
        with anyio.fail_after(5):
            assert (await c.get_conversation(ids[1])).id == ids[1]
            async with c.fetch_conversations(ids[:20], concurrency=4) as batch:
                assert len([r async for r in batch if r.ok]) == 20
    assert not one_connection.closed
    assert_no_unclosed_resources()


async def test_a_retrying_batch_cancelled_sends_nothing_more(
    case: ProviderCase, fake: FakeServer
) -> None:
    fake.queue_error(503, path=case.get_path, times=100_000)
    # Endless ids: with retries that never sleep (the suite's no_backoff), a fast machine
    # exhausts a finite list before the deadline, and the batch ends uncancelled.
    ids = itertools.cycle(case.ids(fake))
    async with Client(case.name, token=TOKEN, base_url=fake.url) as c:
        with anyio.move_on_after(0.3) as scope:
            async with c.fetch_conversations(ids, concurrency=4) as batch:
                async for result in batch:
                    assert isinstance(result.error, InternalServerError)  # retries exhausted
        assert scope.cancelled_caught
        # A request written just before the cancellation may still be on its way in.
        await asyncio.sleep(0.1)
        sent = len(fake.requests)
        await asyncio.sleep(0.2)
        assert len(fake.requests) == sent
        assert_limiter_idle(c)
