"""The rate limiter end to end against the fakes: limits learned, kept and told.

Real time with short windows; timing asserted only as lower bounds with a tolerance.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.support.limiter import (
    ACQUIRE,
    GET,
    TOKEN,
    TOLERANCE,
    in_flight,
    info,
    limiter_of,
    pacing_of,
)
from wemasy_async import Client, RateLimitError
from wemasy_async.ratelimit import (
    Limiter,
    LocalStore,
    RateLimit,
)
from wemasy_async.testing import FakeSiteAssist, FakeWemasy

# --- End to end against the fakes --------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=5, conversations=50, token=TOKEN) as server:
        yield server


def in_flight_of(client: Client) -> int:
    return in_flight(limiter_of(client))


async def test_only_one_probe_before_the_limit_is_known() -> None:
    # 20 per 1 s (rather than 10) keeps the test short; the probe logic is the same.
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=20, window=1.0) as fake:
        fake.queue_delay(0.3, path=GET)  # the probe's answer takes 0.3 s
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for i in range(20):
                        tg.start_soon(client.get_conversation, i + 1)
                    await anyio.sleep(0.15)
                    assert len(fake.requests) == 1
        requests = fake.requests_to(GET)
        assert len(requests) == 20
        # The others waited for the probe's answer, 0.3 s after it was sent, and then 18
        # went at once (19 fit in the window, the probe included); the last a window on.
        assert requests[1].received_at - requests[0].received_at >= 0.3 - TOLERANCE
        assert requests[18].received_at - requests[1].received_at < 0.25
        assert requests[19].received_at - requests[0].received_at >= 1.0 - TOLERANCE
        assert fake.stats.max_in_window <= 19
        assert fake.stats.rate_limited == 0
        assert all(r.status == 200 for r in requests)


async def _hammer(client: Client, tasks: int) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * tasks

    async def one(i: int) -> None:
        try:
            conversation = await client.get_conversation(i % 40 + 1)
            assert conversation.id == str(i % 40 + 1)
        except Exception as error:
            outcomes[i] = error

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(one, i)
    return outcomes


@pytest.mark.slow
async def test_concurrent_load_stays_under_the_limit_without_stalling() -> None:
    # The documented 10 per minute, scaled to 10 per second. The log keeps at most 9 of
    # ours in any second (and 10 in 1.025 s), so Remaining never reaches 0 from our own
    # traffic and the credit never holds the key for a whole window: 60 requests take
    # about (60 - 9) / (10 / 1.025) = 5.2 s at the allowed rate.
    limit, tasks = 10, 60
    async with FakeWemasy(
        conversations=40, token=TOKEN, rate_limit=limit, window=1.0, window_offset=0.37
    ) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            started = time.monotonic()
            with anyio.fail_after(30):
                outcomes = await _hammer(client, tasks)
            elapsed = time.monotonic() - started
        assert outcomes == [None] * tasks
        assert fake.stats.rate_limited == 0
        assert fake.stats.status_counts == {200: tasks}
        assert fake.stats.max_in_window <= limit - 1
        assert in_flight_of(client) == 0
        # No stall: close to the allowed rate (a stalled window would add a whole second).
        assert elapsed < tasks / (limit / 1.025) + 0.5


async def test_the_same_load_without_the_limiter_is_rate_limited() -> None:
    # Proves the test above can fail: the fake really enforces its limit.
    limit, tasks = 10, 60
    async with FakeWemasy(
        conversations=40, token=TOKEN, rate_limit=limit, window=1.0, window_offset=0.37
    ) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=False, retry=False)
        async with client:
            outcomes = await _hammer(client, tasks)
        assert fake.stats.rate_limited > 0
        assert any(isinstance(o, RateLimitError) for o in outcomes)
        assert fake.stats.max_in_window == limit


class FakeWemasyWithoutRemaining(FakeWemasy):
    """Sends X-RateLimit-Limit but not X-RateLimit-Remaining, as some proxies leave it."""

    async def _dispatch(self, request: Any, handler: Any, record: Any) -> Any:
        response = await super()._dispatch(request, handler, record)
        response.headers.popall("X-RateLimit-Remaining", None)
        return response


async def test_start_up_stays_under_the_limit_without_remaining_header() -> None:
    # The probe counts towards the first window: had it not
    # kept its distance, it and `limit` paced sends would land in the server's first window.
    async with FakeWemasyWithoutRemaining(token=TOKEN, rate_limit=2, window=0.4) as fake:
        config = RateLimit(window=0.4)
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, retry=False)
        async with client:
            with anyio.fail_after(10):
                outcomes = await _hammer(client, 3)
        assert fake.stats.rate_limited == 0
        assert outcomes == [None] * 3


async def test_a_429_pauses_every_waiter_then_they_resume_within_the_limit() -> None:
    limit = 20
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=limit, window=1.0) as fake:
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0))
        async with client:
            await client.get_conversation(1)  # learn the limit
            fake.queue_error(429, path=GET, headers={"Retry-After": "1"})
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.get_conversation, 2)  # answered 429, then retried
                    await anyio.sleep(0.15)
                    assert limiter_of(client).paused_for() > 0.5  # the 429 has reached it
                    for i in range(5):
                        tg.start_soon(client.get_conversation, i + 3)
            assert in_flight_of(client) == 0
        requests = fake.requests_to(GET)
        assert [r.status for r in requests] == [200, 429] + [200] * 6
        paused_at = requests[1].received_at
        assert all(r.received_at >= paused_at + 1.0 - TOLERANCE for r in requests[2:])
        assert fake.stats.rate_limited == 0  # the limiter's own windows were respected
        assert fake.stats.max_in_window <= limit - 1


async def test_a_429_without_hint_pauses_for_pause_without_hint(fake: FakeWemasy) -> None:
    config = RateLimit(window=1.0, pause_without_hint=0.4)
    async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as client:
        await client.get_conversation(1)
        # An empty Retry-After is unreadable: no hint.
        fake.queue_error(429, path=GET, headers={"Retry-After": "", "X-RateLimit-Remaining": "9"})
        with anyio.fail_after(5):
            await client.get_conversation(2)
    requests = fake.requests_to(GET)
    assert [r.status for r in requests] == [200, 429, 200]
    assert requests[2].received_at - requests[1].received_at >= 0.4 - TOLERANCE


async def test_siteassist_details_retry_after_pauses_the_key() -> None:
    async with FakeSiteAssist(seed=2, conversations=3, token=TOKEN) as fake:
        ids = fake.conversation_ids
        config = RateLimit(window=1.0)
        async with Client("siteassist", base_url=fake.url, token=TOKEN, rate_limit=config) as c:
            await c.get_conversation(ids[0])
            # The header says 0 and leaves credit; only details.retryAfter asks for a pause.
            fake.queue_error(
                429,
                body=fake.rate_limited_body(1),
                headers={"Retry-After": "0", "X-RateLimit-Remaining": "50"},
            )
            with anyio.fail_after(5):
                conversation = await c.get_conversation(ids[1])
        assert conversation.id == ids[1]
        requests = fake.requests
        assert [r.status for r in requests] == [200, 429, 200]
        assert requests[2].received_at - requests[1].received_at >= 1.0 - TOLERANCE


async def test_cancellation_during_the_exchange_releases_in_flight(fake: FakeWemasy) -> None:
    config = RateLimit(window=1.0)
    async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as client:
        await client.get_conversation(1)  # learned: later sends are counted in flight
        assert in_flight_of(client) == 0
        fake.queue_delay(0.5, path=GET)  # outlives the 0.25 s below
        seen_in_flight: list[int] = []

        async def watch() -> None:
            await anyio.sleep(0.1)
            seen_in_flight.append(in_flight_of(client))

        with anyio.move_on_after(0.25) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await client.get_conversation(2)
        assert scope.cancelled_caught
        assert seen_in_flight == [1]
        assert in_flight_of(client) == 0
        assert limiter_of(client).waiting == 0
        with anyio.fail_after(2):
            assert (await client.get_conversation(3)).id == "3"
        assert in_flight_of(client) == 0


async def test_a_cancelled_probe_lets_the_next_request_probe(fake: FakeWemasy) -> None:
    # A token of its own: a fresh key that has learned nothing yet.
    token = "probe-cancel-token"
    fake.token = None
    fake.queue_delay(0.5, path=GET)  # outlives the 0.2 s below
    config = RateLimit(window=1.0)
    async with Client("wemasy", base_url=fake.url, token=token, rate_limit=config) as client:
        with anyio.move_on_after(0.2) as scope:
            await client.get_conversation(1)
        assert scope.cancelled_caught
        with anyio.fail_after(2):
            assert (await client.get_conversation(2)).id == "2"


async def test_requests_are_not_paced_when_the_server_sends_no_headers() -> None:
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=None) as fake:
        config = RateLimit(window=60.0)
        async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as c:
            await c.get_conversation(1)  # the probe: its answer has no rate-limit headers
            limiter = limiter_of(c)
            assert isinstance(limiter.store, LocalStore)
            state = limiter.store._states[limiter.key]
            assert (state.learned, state.limit, state.credit) == (True, None, None)
            # Learned and unpaced: sends are due at once, however many (no information is
            # not zero). Paced at even 100 per 60 s, 19 more would take over 11 s.
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for i in range(19):
                        tg.start_soon(c.get_conversation, i + 2)
            pacing = pacing_of(limiter)
            delays = [limiter.store.apply_now(limiter.key, pacing, ACQUIRE) for _ in range(5)]
            assert [d.delay for d in delays] == [0.0] * 5
        assert len(fake.requests) == 20


class FakeWemasyWithConflictingHeaders(FakeWemasy):
    """Enforces its limit, and also sends a looser X-RateLimit-Limit (as a proxy might)."""

    async def _dispatch(self, request: Any, handler: Any, record: Any) -> Any:
        response = await super()._dispatch(request, handler, record)
        response.headers.add("X-RateLimit-Limit", "500")
        response.headers.add("X-RateLimit-Remaining", "499")
        return response


async def test_conflicting_rate_limit_headers_the_stricter_wins() -> None:
    # Once the looser of two X-RateLimit-Limit headers won, and a 5/s server answered 429.
    async with FakeWemasyWithConflictingHeaders(
        conversations=20, token=TOKEN, rate_limit=5, window=0.5
    ) as fake:
        config = RateLimit(window=0.5)
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, retry=False)
        async with client:
            with anyio.fail_after(10):
                outcomes = await _hammer(client, 12)
            assert limiter_of(client).allowed_rate == pytest.approx(4 / 0.5)
        assert outcomes == [None] * 12
        assert fake.stats.rate_limited == 0
        assert fake.stats.max_in_window <= 4


# --- Telling the user what pace it keeps ----------------------------------------------------


async def test_the_pace_is_logged_once_when_learned_and_when_it_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = Limiter("wemasy|https://api.example|digest", RateLimit(window=60.0), LocalStore())
    caplog.set_level("INFO", logger="wemasy_async")
    for limit in (100, 100, 100, 50):
        await limiter.release(await limiter.acquire(), info(limit=limit))
    paces = [r.getMessage() for r in caplog.records if r.message.startswith("pacing")]
    assert paces == [
        "pacing wemasy|https://api.example at 100 requests per 60 s window (1.63/s)",
        "pacing wemasy|https://api.example at 50 requests per 60 s window (0.813/s)",
    ]
    assert "digest" not in caplog.text
