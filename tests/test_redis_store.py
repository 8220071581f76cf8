"""RedisStore against a real redis-server: parity with LocalStore, clients, processes, outages."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
import redis.asyncio

from wemasy_async import Client, InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import Limiter, LimiterStore, LocalStore, Pacing, RateLimit
from wemasy_async.redis import RedisStore
from wemasy_async.testing import FakeWemasy

KEY = "wemasy|http://127.0.0.1:1/api|0123456789abcdef01234567"
PACING = Pacing(window=1.0, margin=0.0, ceiling=None)
TOKEN = "redis-test-secret-token-5b1f"
ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "redis_worker.py"
# A delay handed out by a store is the rest of an interval: the time that passed between the
# calls, here at most SLACK, is gone from it. Redis's clock (TIME, about 1.7e9 s as a double)
# rounds to 2.4e-7 s, so a delay may exceed the interval by that much.
SLACK = 0.05
ROUNDING = 1e-6
# Timing tolerance for lower bounds measured on this machine's monotonic clock.
TOLERANCE = 0.01


async def observe(
    store: LimiterStore,
    info: RateLimitInfo | None,
    *,
    sent: bool = False,
    paused: float = 0.0,
    pacing: Pacing = PACING,
) -> None:
    await store.observe(KEY, pacing, info, sent=sent, paused=paused)


async def take(store: LimiterStore, pacing: Pacing = PACING) -> float:
    """Wait for a send as the head of a Limiter's queue would; return the seconds waited."""
    started = time.monotonic()
    while True:
        delay = await store.acquire(KEY, pacing)
        assert delay is not None
        if delay == 0.0:
            return time.monotonic() - started
        await anyio.sleep(delay)


def assert_rest_of(delay: float | None, interval: float) -> None:
    """``delay`` is what is left of one ``interval`` that began just before."""
    assert delay is not None
    assert interval - SLACK < delay <= interval + ROUNDING


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "wemasy_async" and r.levelno == logging.WARNING and "Redis" in r.getMessage()
    ]


# --- Parity: the same scenarios against LocalStore and RedisStore ---------------------------


@pytest.fixture(params=["local", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LimiterStore]:
    if request.param == "local":
        yield LocalStore()
        return
    async with RedisStore(request.getfixturevalue("redis_url")) as redis_store:
        yield redis_store
        assert not redis_store.on_fallback


async def test_probes_until_a_response_tells(store: LimiterStore) -> None:
    assert await store.acquire(KEY, PACING) is None
    await observe(store, None)  # no response came: still nothing known
    assert await store.acquire(KEY, PACING) is None
    await observe(store, RateLimitInfo(limit=10, remaining=9))
    assert await store.acquire(KEY, PACING) is not None  # learned: paced from now on
    await take(store)
    assert await store.acquire(KEY, PACING) != 0.0


async def test_a_probe_keeps_its_distance(store: LimiterStore) -> None:
    assert await store.acquire(KEY, PACING) is None  # the caller probes
    probed = time.monotonic()
    await observe(store, RateLimitInfo(limit=10))  # the probe's response (not counted)
    # Limit 10, window 1, margin 0: max(1 / 10 = 0.1, 1 / 9 = 0.1111) = 1 / 9 from the
    # response on, as if the probe had been a paced send.
    assert_rest_of(await store.acquire(KEY, PACING), 1 / 9)
    await take(store)
    assert time.monotonic() - probed >= 1 / 9 - TOLERANCE
    assert_rest_of(await store.acquire(KEY, PACING), 1 / 9)


async def test_a_probe_does_not_pull_a_pause_back(store: LimiterStore) -> None:
    await observe(store, RateLimitInfo(limit=10), paused=0.5)  # a probe answered 429
    await observe(store, RateLimitInfo(limit=10))  # another probe's response, later
    assert_rest_of(await store.acquire(KEY, PACING), 0.5)


async def test_sends_and_the_probe_leave_a_request_of_slack(store: LimiterStore) -> None:
    # At most limit - 1 of ours, the probe included, in any window: each send is at least
    # a window after the one limit - 1 sends before it.
    pacing = Pacing(window=0.2, margin=0.0, ceiling=None)
    limit = 3  # max(0.2 / 3 = 0.0667, 0.2 / 2 = 0.1) = 0.1 apart
    assert await store.acquire(KEY, pacing) is None
    times = [time.monotonic()]  # the probe, answered at once
    await observe(store, RateLimitInfo(limit=limit), pacing=pacing)
    for _ in range(5):
        await take(store, pacing)
        times.append(time.monotonic())
    assert all(b - a >= 0.1 - TOLERANCE for a, b in itertools.pairwise(times))
    assert all(
        later - earlier >= pacing.window - TOLERANCE
        for earlier, later in zip(times, times[limit - 1 :], strict=False)
    )


async def test_no_rate_limit_headers_means_unpaced(store: LimiterStore) -> None:
    await observe(store, RateLimitInfo())
    for _ in range(20):
        assert await store.acquire(KEY, PACING) == 0.0


async def test_learned_limit_spaces_sends(store: LimiterStore) -> None:
    await observe(store, RateLimitInfo(limit=10))
    await take(store)  # one interval after the probe
    # Limit 10, window 1, margin 0: max(1 / 10 = 0.1, 1 / 9 = 0.1111) = 1 / 9.
    assert_rest_of(await store.acquire(KEY, PACING), 1 / 9)
    assert 1 / 9 - SLACK < await take(store) <= 0.2


async def test_margin_widens_the_interval(store: LimiterStore) -> None:
    # Limit 5, window 0.5, margin 0.5: max(1.0 / 5 = 0.2, 0.5 / 4 = 0.125) = 0.2, the
    # margin's; without it the sends would be 0.125 apart.
    pacing = Pacing(window=0.5, margin=0.5, ceiling=None)
    await observe(store, RateLimitInfo(limit=5), pacing=pacing)
    await take(store, pacing)
    delay = await store.acquire(KEY, pacing)
    assert_rest_of(delay, 0.2)
    assert delay is not None
    assert delay > 0.125


async def test_ceiling_paces_before_any_response(store: LimiterStore) -> None:
    pacing = Pacing(window=1.0, margin=0.0, ceiling=4)
    assert await store.acquire(KEY, pacing) == 0.0
    # Ceiling 4, window 1, margin 0: max(1 / 4 = 0.25, 1 / 3 = 0.3333) = 1 / 3.
    assert_rest_of(await store.acquire(KEY, pacing), 1 / 3)


@pytest.mark.parametrize(
    ("ceiling", "limit", "interval"),
    [
        (4, 100, 1 / 3),  # ceiling 4: max(1 / 4 = 0.25, 1 / 3 = 0.3333)
        (50, 10, 1 / 9),  # limit 10: max(1 / 10 = 0.1, 1 / 9 = 0.1111)
    ],
    ids=["ceiling-lower", "limit-lower"],
)
async def test_ceiling_and_learned_limit_the_lower_wins(
    store: LimiterStore, ceiling: int, limit: int, interval: float
) -> None:
    pacing = Pacing(window=1.0, margin=0.0, ceiling=ceiling)
    assert await store.acquire(KEY, pacing) == 0.0  # paced by the ceiling: no probe
    await observe(store, RateLimitInfo(limit=limit), sent=True, pacing=pacing)
    await take(store, pacing)  # due at the ceiling's interval, scheduled before the response
    assert_rest_of(await store.acquire(KEY, pacing), interval)


async def test_credit_counts_requests_in_flight(store: LimiterStore) -> None:
    await observe(store, RateLimitInfo())  # learned, unpaced
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == 0.0
    # One finished saying 5 remain; the other is still in flight and may not be counted.
    await observe(store, RateLimitInfo(remaining=5), sent=True)
    for _ in range(4):
        assert await store.acquire(KEY, PACING) == 0.0
    delay = await store.acquire(KEY, PACING)  # exhausted: wait for the credit to end
    assert delay is not None
    assert 0.9 < delay <= 1.0


async def test_credit_lasts_one_window(store: LimiterStore) -> None:
    pacing = Pacing(window=0.3, margin=0.0, ceiling=None)
    await observe(store, RateLimitInfo(remaining=0), pacing=pacing)
    delay = await store.acquire(KEY, pacing)
    assert delay is not None
    assert 0.2 < delay <= 0.3
    assert 0.2 < await take(store, pacing) < 1.0
    assert await store.acquire(KEY, pacing) == 0.0  # no credit any more: unpaced again


async def test_pause_blocks_then_resumes_one_interval_apart(store: LimiterStore) -> None:
    await observe(store, RateLimitInfo(limit=10))
    await take(store)  # one interval after the probe
    await observe(store, RateLimitInfo(limit=10, remaining=0), sent=True, paused=0.5)
    assert_rest_of(await store.acquire(KEY, PACING), 0.5)
    assert 0.5 - SLACK < await take(store) < 1.0
    # Limit 10, window 1, margin 0: max(1 / 10 = 0.1, 1 / 9 = 0.1111) = 1 / 9.
    assert_rest_of(await store.acquire(KEY, PACING), 1 / 9)


async def test_in_flight_never_goes_negative(store: LimiterStore) -> None:
    await observe(store, RateLimitInfo())
    for _ in range(3):  # finished requests that were never counted
        await observe(store, None, sent=True)
    await observe(store, RateLimitInfo(remaining=2))
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) == 0.0
    assert await store.acquire(KEY, PACING) != 0.0


# --- Shared between stores and processes --------------------------------------------------


@pytest.fixture
async def two_stores(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    async with RedisStore(redis_url) as first, RedisStore(redis_url) as second:
        yield first, second


async def test_stores_share_one_schedule(two_stores: tuple[RedisStore, RedisStore]) -> None:
    first, second = two_stores
    await observe(first, RateLimitInfo(limit=10))  # first's probe...
    # ...keeps its distance for second too. Limit 10, window 1, margin 0:
    # max(1 / 10 = 0.1, 1 / 9 = 0.1111) = 1 / 9.
    assert_rest_of(await second.acquire(KEY, PACING), 1 / 9)
    await take(second)
    assert_rest_of(await first.acquire(KEY, PACING), 1 / 9)


async def test_credit_counts_other_stores_in_flight(
    two_stores: tuple[RedisStore, RedisStore],
) -> None:
    first, second = two_stores
    await observe(first, RateLimitInfo())
    assert await first.acquire(KEY, PACING) == 0.0
    assert await first.acquire(KEY, PACING) == 0.0
    await observe(second, RateLimitInfo(remaining=5))  # a probe's answer: 2 still in flight
    for _ in range(3):
        assert await second.acquire(KEY, PACING) == 0.0
    assert await second.acquire(KEY, PACING) != 0.0


async def test_in_flight_of_a_silent_store_lapses(redis_url: str) -> None:
    pacing = Pacing(window=0.5, margin=0.0, ceiling=None)
    async with RedisStore(redis_url) as dead:
        await observe(dead, RateLimitInfo(), pacing=pacing)
        for _ in range(3):
            assert await dead.acquire(KEY, pacing) == 0.0
    # Its process died with three requests in flight; after the lease they no longer count.
    await anyio.sleep(0.6)
    async with RedisStore(redis_url) as alive:
        await observe(alive, RateLimitInfo(remaining=2), pacing=pacing)
        assert await alive.acquire(KEY, pacing) == 0.0
        assert await alive.acquire(KEY, pacing) == 0.0
        assert await alive.acquire(KEY, pacing) != 0.0
    reader = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    state = {str(k): str(v) for k, v in (await reader.hgetall(alive.redis_key(KEY))).items()}
    await reader.aclose()
    assert [v for k, v in state.items() if k.startswith("in_flight:")] == ["2"]  # alive's only


async def test_a_skewed_in_flight_count_heals(two_stores: tuple[RedisStore, RedisStore]) -> None:
    first, second = two_stores
    await observe(first, RateLimitInfo())
    assert await first.acquire(KEY, PACING) == 0.0
    assert await first.acquire(KEY, PACING) == 0.0
    # As if a reply had been lost: Redis believes `first` has 7 requests in flight.
    admin = redis.asyncio.Redis.from_url(first._url or "", decode_responses=True)
    fields = await admin.hkeys(first.redis_key(KEY))
    (mine,) = [str(f) for f in fields if str(f).startswith("in_flight:")]
    await admin.hset(first.redis_key(KEY), mine, "7")
    await admin.aclose()
    # Its next write states its true count (one left in flight), not a decrement.
    await observe(first, None, sent=True)
    await observe(second, RateLimitInfo(remaining=3))
    assert await second.acquire(KEY, PACING) == 0.0
    assert await second.acquire(KEY, PACING) == 0.0
    assert await second.acquire(KEY, PACING) != 0.0


def test_usable_in_one_event_loop_after_another(redis_url: str) -> None:
    store = RedisStore(redis_url)

    async def busy() -> None:
        # Concurrent observes contend for the key's lock, which binds it to this loop.
        await asyncio.gather(*(observe(store, RateLimitInfo()) for _ in range(5)))
        assert await store.acquire(KEY, PACING) == 0.0
        assert not store.on_fallback
        await store.aclose()

    asyncio.run(busy())
    asyncio.run(busy())


async def test_clients_through_redis_get_no_429(redis_url: str) -> None:
    async with (
        FakeWemasy(rate_limit=20, window=0.5, token=TOKEN) as fake,
        RedisStore(redis_url) as store,
        Client(
            "wemasy",
            base_url=fake.url,
            token=TOKEN,
            rate_limit=RateLimit(window=0.5, store=store),
            retry=False,  # a 429 would fail the test
        ) as client,
    ):
        await asyncio.gather(*(client.get_conversation(n % 20 + 1) for n in range(50)))
        assert not store.on_fallback
    assert fake.stats.accepted == 50
    assert fake.stats.rate_limited == 0
    assert fake.stats.max_in_window <= 20


async def test_processes_sharing_a_token_stay_within_the_limit(redis_url: str) -> None:
    processes, each, limit = 3, 12, 20  # 36 requests, ~1.9 s
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with FakeWemasy(rate_limit=limit, window=1.0, token=TOKEN) as fake:
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                fake.url,
                TOKEN,
                redis_url,
                str(each),
                "1.0",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=ROOT,
                env=env,
            )
            for _ in range(processes)
        ]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(worker.communicate() for worker in workers)), timeout=60
        )
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr.decode()
        assert b"unreachable" not in stderr  # no worker fell back to local pacing
        result = json.loads(stdout)
        assert result == {"ok": each, "errors": []}
    assert fake.stats.accepted == processes * each
    assert fake.stats.rate_limited == 0
    assert fake.stats.max_in_window <= limit


async def test_keys_hold_a_digest_and_expire(redis_url: str) -> None:
    async with (
        # A high limit: the second request waits one interval of the default minute window
        # after the probe, max(61.5 / 1000 = 0.0615, 60 / 999 = 0.06006) = 0.0615 s.
        FakeWemasy(rate_limit=1000, window=1.0, token=TOKEN) as fake,
        RedisStore(redis_url, prefix="test-prefix") as store,
        Client(
            "wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(store=store)
        ) as client,
    ):
        await client.get_conversation(1)
        await client.get_conversation(2)
    reader = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [str(key) async for key in reader.scan_iter()]
        assert len(keys) == 1
        assert keys[0].startswith("test-prefix:wemasy|")
        assert TOKEN not in keys[0]
        state = {str(k): str(v) for k, v in (await reader.hgetall(keys[0])).items()}
        assert all(TOKEN not in k + v for k, v in state.items())
        assert state["limit"] == "1000"
        assert 0 < await reader.pttl(keys[0]) <= 2 * 60_000  # two windows of the default
    finally:
        await reader.aclose()


async def test_two_round_trips_per_request(redis_url: str) -> None:
    reader = redis.asyncio.Redis.from_url(redis_url)
    async with (
        FakeWemasy(rate_limit=None) as fake,  # no headers: learned after a probe, unpaced
        RedisStore(redis_url) as store,
        Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(store=store)) as c,
    ):
        await c.get_conversation(1)  # the probe; loads the scripts
        await reader.config_resetstat()
        for n in range(10):
            await c.get_conversation(n + 1)
        stats = await reader.info("commandstats")
    await reader.aclose()
    calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    assert calls.pop("evalsha") == 20  # acquire and observe
    # Everything else came from inside the scripts, or from this test.
    assert set(calls) <= {
        "time",
        "hmget",
        "hgetall",
        "hset",
        "hdel",
        "pexpire",
        "info",
        "config|resetstat",
    }


async def test_scripts_reload_after_script_flush(redis_url: str) -> None:
    async with RedisStore(redis_url) as store:
        await observe(store, RateLimitInfo())
        admin = redis.asyncio.Redis.from_url(redis_url)
        await admin.script_flush()
        await admin.aclose()
        assert await store.acquire(KEY, PACING) == 0.0
        assert not store.on_fallback


async def test_given_client_is_used_and_not_closed(redis_url: str) -> None:
    given = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        store = RedisStore(given)
        await observe(store, RateLimitInfo(limit=10))
        await take(store)
        assert 0.0 < (await store.acquire(KEY, PACING) or 0.0) <= 1 / 9 + ROUNDING
        await store.aclose()
        assert await given.exists(store.redis_key(KEY)) == 1
    finally:
        await given.aclose()


# --- When Redis fails -------------------------------------------------------------------------


async def test_redis_down_falls_back_and_recovers(
    free_port: int, start_redis: Callable[[int], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wemasy_async")
    url = f"redis://127.0.0.1:{free_port}/0"
    async with (
        FakeWemasy(rate_limit=10, window=0.5, token=TOKEN) as fake,
        RedisStore(url, fallback_share=0.5, reconnect_interval=0.3) as store,
        Client(
            "wemasy",
            base_url=fake.url,
            token=TOKEN,
            rate_limit=RateLimit(window=0.5, store=store),
            retry=False,
        ) as client,
    ):
        await asyncio.gather(*(client.get_conversation(n % 20 + 1) for n in range(15)))
        assert store.on_fallback
        assert fake.stats.rate_limited == 0
        # The fallback's share, half of 10, is what any window may hold, the probe included
        # (paced for 4: max(0.5125 / 5 = 0.1025, 0.5 / 4 = 0.125) = 0.125 apart).
        assert fake.stats.max_in_window <= 5
        assert len(redis_warnings(caplog)) == 1

        start_redis(free_port)
        await anyio.sleep(0.4)  # past the reconnect interval
        await asyncio.gather(*(client.get_conversation(n + 1) for n in range(5)))
        assert not store.on_fallback
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        reader = redis.asyncio.Redis.from_url(url)
        assert len([key async for key in reader.scan_iter()]) == 1
        await reader.aclose()
    assert fake.stats.accepted == 20
    assert fake.stats.rate_limited == 0
    assert len(redis_warnings(caplog)) == 1


async def test_a_hung_redis_cannot_hold_requests(caplog: pytest.LogCaptureFixture) -> None:
    # Accepts connections and never answers, as a Redis behind a black-holed network would.
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.2) as store:
            started = time.monotonic()
            assert await store.acquire(KEY, PACING) is None  # the fallback knows nothing yet
            await observe(store, RateLimitInfo(limit=10))
            # Learned, and paced by the fallback at its share, 10 * 0.25 rounded down = 2:
            # max(1 / 2 = 0.5, 1 / 1 = 1) = 1 s after the probe.
            assert_rest_of(await store.acquire(KEY, PACING), 1.0)
            assert time.monotonic() - started < 2.0
            assert store.on_fallback
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(redis_warnings(caplog)) == 1


async def test_fallback_takes_its_share_of_the_limit(free_port: int) -> None:
    pacing = Pacing(window=1.0, margin=0.0, ceiling=16)
    async with RedisStore(f"redis://127.0.0.1:{free_port}/0", fallback_share=0.25) as store:
        assert await store.acquire(KEY, pacing) == 0.0  # the fallback, at a ceiling of 16 / 4
        # Ceiling 4, window 1, margin 0: max(1 / 4 = 0.25, 1 / 3 = 0.3333) = 1 / 3.
        assert_rest_of(await store.acquire(KEY, pacing), 1 / 3)
        await store.observe(KEY, pacing, RateLimitInfo(remaining=7), sent=True, paused=0.0)
        await take(store, pacing)  # the credit: 7 / 4 rounded down
        # Spent, with that send still in flight: look again one interval (1 / 3 s) on, since
        # its response will likely refresh the credit.
        assert_rest_of(await store.acquire(KEY, pacing), 1 / 3)
        # The server then says nothing remains: wait until the window ends, not the interval.
        await store.observe(KEY, pacing, RateLimitInfo(remaining=0), sent=True, paused=0.0)
        delay = await store.acquire(KEY, pacing)
        assert delay is not None
        assert delay > 0.5
        assert store.on_fallback


# --- Construction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "argument"),
    [
        (("http://localhost",), {}, "redis"),
        ((42,), {}, "redis"),
        (("redis://localhost",), {"prefix": ""}, "prefix"),
        (("redis://localhost",), {"fallback_share": 0}, "fallback_share"),
        (("redis://localhost",), {"fallback_share": 1.5}, "fallback_share"),
        (("redis://localhost",), {"timeout": 0}, "timeout"),
        (("redis://localhost",), {"reconnect_interval": float("nan")}, "reconnect_interval"),
    ],
)
def test_invalid_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        RedisStore(*args, **kwargs)  # type: ignore[arg-type]
    assert raised.value.argument == argument


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, wemasy_async; print(sorted(m for m in sys.modules if 'redis' in m))"
    assert _python(code).stdout.strip() == "[]"


def test_without_the_redis_package_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from wemasy_async import InvalidRequestError\n"
        "from wemasy_async.redis import RedisStore\n"
        "try:\n    RedisStore('redis://localhost')\n"
        "except InvalidRequestError as error:\n    print(error)\n"
    )
    assert "pip install 'wemasy-async[redis]'" in _python(code).stdout


async def test_first_request_probes_at_once_through_redis(redis_url: str) -> None:
    # Regression: the limiter's first look at the store claims the shared probe; discarding
    # that answer made the process wait out its own claim (min(window, 10) s).
    async with RedisStore(redis_url) as store:
        limiter = Limiter("probe|at-once", RateLimit(window=60.0, store=store), store)
        with anyio.fail_after(5):  # a hang guard: the bug waits 10 s here
            assert await limiter.acquire() is False  # the probe, uncounted
        await limiter.release(False, RateLimitInfo(limit=100, remaining=99))
        with anyio.fail_after(5):
            assert await limiter.acquire() is True
        await limiter.release(True, RateLimitInfo(limit=100, remaining=98))
