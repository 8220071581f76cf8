"""A send that gets its connection late (wemasy_async.ratelimit.Sending / Limiter.late_send).

The contract: once a paced request has its connection, before a byte is written, a send
later than half a margin after its time is confirmed again: moved to now when the log has
room there, kept while at most a margin late, else given back (``NotSent``), and the engine
reserves anew for the same attempt. Unit tests with an injected clock; end to end through
the client's own session and the fake.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.support.limiter import ACQUIRE, KEY, TOKEN, Clock, info, limiter_of
from tests.support.redis_store import stored_state
from wemasy_async import Client, RateLimit
from wemasy_async.exchange import NotSent
from wemasy_async.hooks import RequestEvent
from wemasy_async.ratelimit import Limiter, LocalStore, Sending, Ticket
from wemasy_async.redis import RedisStore
from wemasy_async.schedule import Release
from wemasy_async.testing import FakeWemasy
from wemasy_async.transport import Connector

CONFIG = RateLimit(window=1.0, ceiling=3)  # at most 2 in any 1 s span; margin 25 ms
MARGIN = CONFIG.pacing_margin


def paced() -> tuple[Limiter, LocalStore, Clock]:
    clock = Clock()
    store = LocalStore(clock=clock)
    return Limiter(KEY, CONFIG, store), store, clock


def due_now(limiter: Limiter) -> Ticket:
    ticket = limiter.reserve()
    assert isinstance(ticket, Ticket), ticket
    return ticket


def test_a_send_on_time_is_left_alone() -> None:
    limiter, store, clock = paced()
    ticket = due_now(limiter)
    sending = Sending(limiter, ticket)
    clock.advance(MARGIN / 2 - 0.001)
    sending.connected()
    assert sending.ticket is ticket
    assert not sending.given_back
    assert store.in_flight(KEY) == 1


def test_a_late_send_moves_to_now_when_there_is_room() -> None:
    limiter, store, clock = paced()
    ticket = due_now(limiter)
    sending = Sending(limiter, ticket)
    clock.advance(0.4)
    sending.connected()
    assert sending.ticket.at == clock.now  # the log holds it when it really goes
    assert not sending.given_back
    assert store.in_flight(KEY) == 1
    assert store.state(KEY, limiter._pacing).sent == 1


def test_a_send_too_late_for_a_full_log_is_given_back() -> None:
    limiter, store, clock = paced()
    first, late = due_now(limiter), due_now(limiter)  # both at 1000.0: the span is full
    clock.advance(0.9)
    # The next two are reserved for a window after the first two (1001.0).
    ahead = [limiter.reserve(), limiter.reserve()]
    clock.advance(0.1)  # 1001.0: the late one's span around now holds the two ahead
    for waiting in ahead:
        assert not isinstance(waiting, Ticket)
        waiting.close()  # (their reservations stay logged: the coroutines never ran)
    sending = Sending(limiter, late)
    with pytest.raises(NotSent):
        sending.connected()
    assert sending.given_back
    assert store.in_flight(KEY) == 3  # the first and the two ahead: the late one went back
    limiter.report(first, info())


async def test_a_request_that_comes_late_still_goes_once() -> None:
    """Through the client: a hook holds a request up after the limiter let it go, so it
    gets its connection later than the margin; it is moved, sent once, and answered."""
    held_up = []

    async def slow(event: RequestEvent) -> None:
        if not held_up:
            held_up.append(event)
            await asyncio.sleep(0.2)  # 8 margins

    slow.event_kinds = (RequestEvent,)  # type: ignore[attr-defined]
    async with FakeWemasy(conversations=4, token=TOKEN, rate_limit=3, window=1.0) as fake:
        client = Client(
            "wemasy",
            base_url=fake.url,
            token=TOKEN,
            rate_limit=RateLimit(window=1.0),
            hooks=[slow],
        )
        async with client:
            limiter = limiter_of(client)
            moved: list[float] = []
            original = limiter.late_send

            def spy(sending: Sending) -> None:
                original(sending)
                moved.append(sending.ticket.at)

            limiter.late_send = spy  # type: ignore[method-assign]
            await asyncio.wait_for(client.get_conversation(1), 5)
            assert len(moved) == 1
            assert len(fake.requests) == 1
            store = limiter.store
            assert isinstance(store, LocalStore)
            assert store.in_flight(limiter.key) == 0


async def test_a_request_given_back_unsent_reserves_anew_and_goes_once() -> None:
    fake = FakeWemasy(conversations=4, token=TOKEN, rate_limit=1_000, window=60.0)
    async with fake, Client("wemasy", base_url=fake.url, token=TOKEN) as client:
        await client.get_conversation(1)  # the probe
        limiter = limiter_of(client)
        refused: list[Ticket] = []

        def refuse_once(sending: Sending) -> None:
            if refused:
                return
            refused.append(sending.ticket)
            store = limiter.store
            assert isinstance(store, LocalStore)
            store.apply_now(limiter.key, limiter._pacing, Release(sending.ticket, sent=False))
            sending.given_back = True
            raise NotSent

        limiter._late = -1.0  # every send looked at again
        limiter.late_send = refuse_once  # type: ignore[method-assign]
        conversation = await asyncio.wait_for(client.get_conversation(2), 5)
        assert conversation.id == "2"
        assert len(refused) == 1
        # Sent once (the refused try wrote nothing), and nothing left in flight.
        assert len(fake.requests) == 2
        store = limiter.store
        assert isinstance(store, LocalStore)
        assert store.in_flight(limiter.key) == 0
        assert store.state(limiter.key, limiter._pacing).sent == 2


async def test_a_callers_session_built_with_the_connector_gets_the_look_too() -> None:
    fake = FakeWemasy(conversations=4, token=TOKEN, rate_limit=1_000, window=60.0)
    async with fake, aiohttp.ClientSession(connector=Connector(limit=4)) as session:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, session=session)
        async with client:
            limiter = limiter_of(client)
            looked: list[Sending] = []
            limiter._late = -1.0  # every send looked at again
            limiter.late_send = looked.append  # type: ignore[method-assign]
            await asyncio.wait_for(client.get_conversation(1), 5)
            assert len(looked) == 1
        assert not session.closed


# --- Through a shared store (RedisStore on a real redis-server, an injected clock) ----------


async def shared_limiter_on(redis_url: str, clock: Clock) -> tuple[Limiter, RedisStore]:
    store = RedisStore(redis_url, clock=clock)
    key = f"late|{uuid.uuid4().hex}"
    return Limiter(key, RateLimit(window=1.0, ceiling=3, store=store), store), store


async def test_through_redis_a_send_within_a_margin_is_left_alone(redis_url: str) -> None:
    clock = Clock()
    limiter, store = await shared_limiter_on(redis_url, clock)
    async with store:
        ticket = await limiter.acquire()
        clock.advance(MARGIN - 0.001)
        sending = Sending(limiter, ticket)
        assert sending.connected() is None  # no round trip
        assert sending.ticket is ticket


async def test_through_redis_a_late_send_moves_to_now(redis_url: str) -> None:
    clock = Clock()
    limiter, store = await shared_limiter_on(redis_url, clock)
    async with store:
        ticket = await limiter.acquire()
        clock.advance(0.4)
        sending = Sending(limiter, ticket)
        pending = sending.connected()
        assert pending is not None
        await pending
        assert sending.ticket.at == clock.now
        assert not sending.given_back


async def test_through_redis_a_send_too_late_for_a_full_log_is_given_back(
    redis_url: str,
) -> None:
    clock = Clock()
    limiter, store = await shared_limiter_on(redis_url, clock)
    async with store:
        pacing = limiter._pacing
        first = await limiter.acquire()
        late = await limiter.acquire()  # both at 1000.0: the span is full
        clock.advance(0.9)
        for _ in range(2):  # reserved for 1001.0, as the local test's two ahead
            decision = await store.apply(limiter.key, pacing, ACQUIRE)
            assert decision.ticket is not None
            assert decision.delay > 0
        clock.advance(0.1)
        sending = Sending(limiter, late)
        pending = sending.connected()
        assert pending is not None
        with pytest.raises(NotSent):
            await pending
        assert sending.given_back
        await limiter.release(first, info())
        state = await stored_state(redis_url, store, limiter.key)
        assert state.in_flight == 2  # the two ahead: the late one went back, unsent
