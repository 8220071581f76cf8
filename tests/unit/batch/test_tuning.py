"""The self-tuning batch pool (``fetch_conversations(ids)`` with no ``concurrency``).

The :class:`Tuner` is tested on its own with an injected clock and a model server; the pool
as a whole against the bundled fakes on 127.0.0.1, with their ``latency`` (every admitted
request waits that long) and fixed-window limits. Requests in flight are counted at the
server: with a fixed latency, the most requests received within any span of that latency.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.limiter import AwaitingStore
from wemasy_async import Client, RateLimit
from wemasy_async.batch import DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY, BatchFetch, Tuner
from wemasy_async.engine import Latency
from wemasy_async.testing import FakeWemasy, most_in_any_span
from wemasy_async.transport import AiohttpTransport

TOKEN = "tuning-token"
LATENCY = 0.2


def _server_in_flight(fake: FakeWemasy) -> int:
    # Received within less than one latency of each other = in flight together (a margin
    # of 10% keeps requests that were merely adjacent apart).
    return most_in_any_span((r.received_at for r in fake.requests), LATENCY * 0.9)


def _ids() -> Iterator[int]:
    return (i % 200 + 1 for i in itertools.count())


async def _drain(batch: BatchFetch[Any], count: int) -> list[int]:
    """Take ``count`` results (all must be ok); the worker counts seen after each one."""
    seen: list[int] = []
    async with batch:
        async for result in batch:
            assert result.ok, result.error
            seen.append(batch.workers)
            if len(seen) == count:
                break
    return seen


@pytest.fixture
async def distant() -> AsyncIterator[FakeWemasy]:
    """200 ms away, with a limit far above what the test sends (100,000 a minute)."""
    async with FakeWemasy(conversations=200, token=TOKEN, latency=LATENCY) as server:
        yield server


# --- Against the fakes --------------------------------------------------------------------


async def test_a_high_limit_at_200_ms_fills_far_more_than_16_in_flight(
    distant: FakeWemasy,
) -> None:
    async with Client("wemasy", base_url=distant.url, token=TOKEN) as client:
        seen = await _drain(client.fetch_conversations(_ids()), 1500)
    # 100,000 a minute is ~1,600/s: at 200 ms that is ~325 in flight, plus headroom. Above
    # 100 also shows that the client's own connection pool no longer caps it there.
    assert max(seen) > 150
    assert max(seen) <= DEFAULT_MAX_CONCURRENCY
    assert _server_in_flight(distant) > 150
    assert distant.stats.rate_limited == 0


async def test_a_low_limit_keeps_the_pool_small() -> None:
    async with (
        FakeWemasy(
            conversations=200, token=TOKEN, latency=LATENCY, rate_limit=20, window=1.0
        ) as fake,
        Client(
            "wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0)
        ) as client,
    ):
        seen = await _drain(client.fetch_conversations(_ids()), 40)
        # 19 sends a second at 200 ms: ~4 in flight; 1.5x that plus 4 spare is 10 (16
        # leaves room for a loaded machine's slower responses).
        assert max(seen) <= 16
        assert _server_in_flight(fake) <= 16
        assert fake.stats.rate_limited == 0


async def test_explicit_concurrency_stays_fixed(distant: FakeWemasy) -> None:
    async with Client("wemasy", base_url=distant.url, token=TOKEN) as client:
        await client.get_conversation(1)  # the limiter learns the limit: no probe below
        distant.reset_log()
        seen = await _drain(client.fetch_conversations(_ids(), concurrency=8), 80)
    assert set(seen) == {8}
    assert _server_in_flight(distant) == 8


async def test_an_unpaced_server_grows_the_pool_to_max_concurrency() -> None:
    async with (
        FakeWemasy(conversations=200, token=TOKEN, latency=LATENCY, rate_limit=None) as fake,
        Client("wemasy", base_url=fake.url, token=TOKEN) as client,
    ):
        # No rate-limit headers: nothing paces, throughput rises with every doubling.
        seen = await _drain(client.fetch_conversations(_ids(), max_concurrency=64), 600)
        assert max(seen) == 64
        assert _server_in_flight(fake) >= 60


async def test_the_pool_stays_within_a_given_sessions_connection_pool(
    distant: FakeWemasy,
) -> None:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as session,
        Client("wemasy", base_url=distant.url, token=TOKEN, session=session) as client,
    ):
        seen = await _drain(client.fetch_messages(_ids()), 200)
    assert max(seen) == 10


# --- The tuner on its own ---------------------------------------------------------------------


def _serve(tuner: Tuner, now: float, periods: int, throughput: Callable[[int], float]) -> float:
    """Feed ``tuner`` completions at ``throughput(workers)`` per second for ``periods``
    decisions (a model server); the new now."""
    while periods:
        now += 1 / throughput(tuner.workers)
        if tuner.due(now):
            tuner.update(now, None, None)
            periods -= 1
    return now


def _period(tuner: Tuner, now: float, throughput: float, seconds: float = 0.2) -> float:
    """Feed ``tuner`` one period of completions at ``throughput`` per second; the new now."""
    count = max(1, int(throughput * seconds))
    for _ in range(count):
        now += seconds / count
        tuner.due(now)
    return now


def test_tuner_follows_littles_law_when_the_rate_is_known() -> None:
    tuner = Tuner(cap=512, now=0.0)
    assert tuner.workers == Tuner.INITIAL
    now = _period(tuner, 0.0, 5)  # the limiter's probe
    assert tuner.update(now, 500.0, 0.2) == math.ceil(500 * 0.2 * 1.5) + 4  # 154 at once
    now = _period(tuner, now, 480)
    assert tuner.update(now, 2000.0, 0.2) == 512  # a higher limit, up to the cap
    now = _period(tuner, now, 1900)
    assert tuner.update(now, 25.0, 0.2) == 12  # the rate dropped
    now = _period(tuner, now, 25)
    assert tuner.update(now, 500.0, 0.001) == 5  # the latency dropped


def test_a_tuner_on_a_shared_key_grows_from_what_it_gets() -> None:
    tuner = Tuner(cap=512, now=0.0, shared=True)
    now = _period(tuner, 0.0, 5)  # the limiter's probe
    # From what it gets (5/s) towards the rate, REACH times that a period: 7 workers.
    assert tuner.update(now, 500.0, 0.2) == math.ceil(2 * 5 * 0.2 * 1.5) + 4
    sizes = []
    for _ in range(6):  # alone on the key, each period's growth pays
        now = _period(tuner, now, min(500.0, tuner.workers / 0.2))
        sizes.append(tuner.update(now, 500.0, 0.2))
    assert sizes == [25, 79, 154, 154, 154, 154]  # then Little's law: ceil(500 x 0.2 x 1.5) + 4
    now = _period(tuner, now, 500)
    assert tuner.update(now, 2000.0, 0.2) == 304  # a higher limit: towards it, REACH at a time
    now = _period(tuner, now, 1500)
    assert tuner.update(now, 2000.0, 0.2) == 512  # up to the cap
    now = _period(tuner, now, 1900)
    assert tuner.update(now, 25.0, 0.2) == 12  # the rate dropped
    now = _period(tuner, now, 25)
    assert tuner.update(now, 500.0, 0.001) == 5  # the latency dropped


def test_a_process_sharing_the_key_sizes_for_what_it_gets_not_the_whole_rate() -> None:
    # Four processes share 500/s through one store: this one gets a quarter of the sends.
    tuner = Tuner(cap=512, now=0.0, shared=True)
    now = 0.0
    for _ in range(10):
        now = _period(tuner, now, min(125.0, tuner.workers / 0.2))
        tuner.update(now, 500.0, 0.2)
    # Sized for twice its share (room to take over the rate should the others stop), not for
    # all of it (154, in each of the four processes).
    assert abs(tuner.workers - (math.ceil(250 * 0.2 * 1.5) + 4)) <= 1  # float rounding


def test_a_shared_tuner_reads_what_it_gets_from_its_grants_at_once() -> None:
    # 200 ms answers: the period after a growth sees its sends granted at once, the answers
    # to them only a latency later.
    def tuner_after_growth(granted: int | None) -> int:
        tuner = Tuner(cap=512, now=0.0, shared=True, window=2.0, granted=granted and 0)
        now = _period(tuner, 0.0, 5)  # the limiter's probe
        tuner.update(now, None, None, granted and 4)
        now = _period(tuner, now, 20, seconds=0.1)  # 2 answers, but 16 more sends granted
        return tuner.update(now, 500.0, 0.2, granted)

    assert abs(tuner_after_growth(20) - (math.ceil(2 * 160 * 0.2 * 1.5) + 4)) <= 1  # 100
    assert abs(tuner_after_growth(None) - (math.ceil(2 * 20 * 0.2 * 1.5) + 4)) <= 1  # answers: 16


def test_a_shared_tuner_is_not_emptied_by_a_period_without_grants() -> None:
    # A binding key grants in pulses (its window's sends echo the last window's): a period
    # with none granted is not a share of nothing; the window's count holds the pool.
    tuner = Tuner(cap=512, now=0.0, shared=True, window=2.0, granted=0)
    now, granted = 0.0, 0
    for _ in range(30):  # 3 s of getting 500/s of 2,000/s
        now = _period(tuner, now, 500, seconds=0.1)
        granted += 50
        tuner.update(now, 2000.0, 0.2, granted)
    steady = tuner.workers
    assert abs(steady - (math.ceil(2 * 500 * 0.2 * 1.5) + 4)) <= 1  # 304, float rounding
    now = _period(tuner, now, 500, seconds=0.1)  # answers come back; no send was granted
    workers = tuner.update(now, 2000.0, 0.2, granted)
    # About 1,950 granted over the last 2 s (475/s), not 0/s (4 workers).
    assert math.ceil(2 * 450 * 0.2 * 1.5) + 4 <= workers <= steady
    for _ in range(25):  # then nothing granted for longer than a window: it follows
        now = _period(tuner, now, 50, seconds=0.1)
        tuner.update(now, 2000.0, 0.2, granted)
    assert tuner.workers == Tuner.SPARE  # nothing granted in a window: the spare only


def test_a_shared_tuner_keeps_a_bounded_count_of_grants() -> None:
    # A day's window at a period a tenth of a second would keep 864,000 counts.
    tuner = Tuner(cap=512, now=0.0, shared=True, window=86_400.0, granted=0)
    now, granted = 0.0, 0
    for _ in range(3 * Tuner.GRANTED_KEPT):
        now = _period(tuner, now, 100, seconds=0.1)
        granted += 10
        tuner.update(now, 1000.0, 0.2, granted)
    assert len(tuner._granted) == Tuner.GRANTED_KEPT
    assert abs(tuner.workers - (math.ceil(2 * 100 * 0.2 * 1.5) + 4)) <= 1  # 100/s, as counted


async def test_a_batch_on_a_shared_store_sizes_for_the_sends_it_is_granted() -> None:
    store = AwaitingStore()
    async with (
        FakeWemasy(conversations=20, token=TOKEN) as server,
        Client(
            "wemasy",
            base_url=server.url,
            token=TOKEN,
            rate_limit=RateLimit(window=2.0, store=store),
        ) as client,
    ):
        limiter = client.limiter
        assert limiter is not None
        assert limiter.shared
        assert limiter.sends_granted() == 0
        async with client.fetch_conversations(list(server.conversations)) as batch:
            tuner = batch._shared.tuner
            assert tuner is not None
            assert tuner.shared
            assert tuner.window == 2.0
            assert batch._shared.granted == limiter.sends_granted
            results = [result async for result in batch]
        assert len(results) == 20
        assert all(result.ok for result in results)
        assert limiter.sends_granted() == 20  # one grant a send


async def test_the_in_process_store_counts_no_grants() -> None:
    async with (
        FakeWemasy(conversations=5, token=TOKEN) as server,
        Client("wemasy", base_url=server.url, token=TOKEN) as client,
    ):
        limiter = client.limiter
        assert limiter is not None
        assert not limiter.shared
        async with client.fetch_conversations(list(server.conversations)) as batch:
            assert batch._shared.granted is None  # its key's rate is all this process's
            assert len([result async for result in batch if result.ok]) == 5
        assert limiter.sends_granted() == 0


def test_tuner_waits_for_a_period_to_pass() -> None:
    tuner = Tuner(cap=512, now=0.0)
    assert not tuner.due(0.05)  # one completion, but not PERIOD seconds yet
    assert tuner.due(0.1)


def test_tuner_climbs_while_throughput_rises_then_holds_at_the_best() -> None:
    # A server that serves at most 100 requests at once, each in 200 ms.
    tuner = Tuner(cap=1000, now=0.0)
    _serve(tuner, 0.0, 60, lambda workers: min(workers, 100) / 0.2)
    # 4, 8, ..., 256 (no gain over 128): back to 128, then probes down to what the server
    # takes, or within GAIN of it (96 serve 96% of the most).
    assert 100 / Tuner.GAIN <= tuner.workers <= 128


def test_tuner_climbs_to_the_cap_when_throughput_keeps_rising() -> None:
    tuner = Tuner(cap=64, now=0.0)
    _serve(tuner, 0.0, 8, lambda workers: workers / 0.2)
    assert tuner.workers == 64


def test_tuner_sheds_workers_that_add_no_throughput() -> None:
    # The server got fast: 8 in flight already reach its most (2,000/s).
    tuner = Tuner(cap=64, now=0.0)
    now = _serve(tuner, 0.0, 8, lambda workers: workers / 0.2)
    assert tuner.workers == 64
    _serve(tuner, now, 60, lambda workers: min(workers, 8) * 250)
    assert tuner.workers < 32


# --- What the tuner is fed ----------------------------------------------------------------------


def test_latency_is_a_running_average_that_follows_a_change() -> None:
    latency = Latency()
    assert latency() is None
    latency.observe(0.2)
    assert latency() == 0.2
    for _ in range(60):
        latency.observe(0.001)
    seconds = latency()
    assert seconds is not None
    assert seconds < 0.002


def test_calm_is_the_least_period_mean_and_floor_the_least_sample() -> None:
    latency = Latency()
    assert latency.calm() is None
    # A store under contention: most calls queue (4-6 ms), a lucky one takes 0.2 ms.
    for period in ([0.004, 0.006, 0.0002], [0.005, 0.005, 0.005], [0.02, 0.03, 0.01]):
        for seconds in period:
            latency.observe(seconds)
        latency.floor()
    assert latency.floor() == 0.0002  # the one lucky call: far below what a call costs
    assert latency.calm() == pytest.approx((0.004 + 0.006 + 0.0002) / 3)  # the calmest period
    for _ in range(Latency.PERIODS):  # the calm periods age out
        latency.observe(0.02)
        latency.floor()
    assert latency.calm() == pytest.approx(0.02)


def test_least_reaches_back_further_than_floor_and_calm() -> None:
    latency = Latency()
    assert latency.least() is None
    latency.observe(0.002)  # before the queues grew
    latency.end_period()
    for _ in range(Latency.PERIODS):  # a queue that lasts: floor and calm forget the fast one
        latency.observe(0.3)
        latency.end_period()
    assert latency.floor() == pytest.approx(0.3)
    assert latency.calm() == pytest.approx(0.3)
    assert latency.least() == 0.002
    for _ in range(Latency.LONG_PERIODS):  # the server really got slower: followed at last
        latency.observe(0.3)
        latency.end_period()
    assert latency.least() == pytest.approx(0.3)


async def test_a_shared_store_and_the_exchanges_count_at_their_calm_means(
    redis_url: str,
) -> None:
    from wemasy_async.client import QUEUED_MOST, _with_store
    from wemasy_async.redis import RedisStore

    store = RedisStore(redis_url)
    try:
        async with Client(
            "wemasy", base_url="http://127.0.0.1:9", token=TOKEN, rate_limit=RateLimit(store=store)
        ) as client:
            limiter, engine = client.limiter, client._engine
            assert limiter is not None
            estimate = _with_store(engine, limiter)
            assert estimate() is None  # no exchange yet
            for seconds in (0.001, 0.003):  # one fast exchange among slow ones
                engine.latency.observe(seconds)
            for seconds in (0.0001, 0.003, 0.003):  # and store calls
                limiter.round_trips.observe(seconds)
            # The exchange and one store call (reserving: RedisStore takes reports in the
            # background), each at the period's mean, not its floor.
            assert limiter.reports_in_background
            assert estimate() == pytest.approx(0.002 + 0.0061 / 3)
            # Then a queue that lasts (a saturated machine): the exchanges' calm mean grows
            # with it, but counts at most QUEUED_MOST times the least of the last periods.
            for _ in range(Latency.PERIODS):
                engine.latency.observe(0.5)
                limiter.round_trips.observe(0.003)
                estimate()
            assert engine.latency.calm() == pytest.approx(0.5)
            assert estimate() == pytest.approx(QUEUED_MOST * 0.001 + 0.003)
    finally:
        await store.aclose()


async def test_in_process_the_exchanges_count_at_their_capped_calm_mean_too() -> None:
    from wemasy_async.client import QUEUED_MOST, _with_store

    async with Client("wemasy", base_url="http://127.0.0.1:9", token=TOKEN) as client:
        limiter, engine = client.limiter, client._engine
        assert limiter is not None
        assert not limiter.shared
        estimate = _with_store(engine, limiter)
        assert estimate() is None  # no exchange yet
        # A client busy decoding: most exchanges wait for the event loop, one did not.
        for seconds in (0.0005, 0.004, 0.0045):
            engine.latency.observe(seconds)
        assert estimate() == pytest.approx(0.003)  # the mean, not the lucky 0.5 ms
        for _ in range(Latency.PERIODS):  # then a queue that lasts
            engine.latency.observe(0.2)
            estimate()
        assert estimate() == pytest.approx(QUEUED_MOST * 0.0005)


async def test_the_pool_size_bounds_come_from_the_session() -> None:
    own = AiohttpTransport(provider="wemasy", max_connections=MAX_CONCURRENCY)
    assert own.pool_size == MAX_CONCURRENCY
    for connector, size in (
        (aiohttp.TCPConnector(limit=10), 10),
        (aiohttp.TCPConnector(limit=0), None),
        (aiohttp.TCPConnector(limit=50, limit_per_host=8), 8),
    ):
        async with aiohttp.ClientSession(connector=connector) as session:
            assert AiohttpTransport(provider="wemasy", session=session).pool_size == size


def test_tuner_stops_growing_when_growth_buys_no_throughput() -> None:
    # A rate the machine cannot reach: it serves 1,000/s at most, 1 ms each when idle, and
    # every request beyond that waits its turn, so the latency grows with the workers.
    tuner = Tuner(cap=1000, now=0.0)
    now = 0.0
    for _ in range(50):
        throughput = min(tuner.workers / 0.001, 1000.0)
        latency = tuner.workers / throughput  # Little's law
        for _ in range(int(throughput * 0.1) + 1):
            now += 1 / throughput
            tuner.due(now)
        tuner.update(now, 2000.0, latency)
    # Little's law alone would chase the latency to the cap (1000).
    assert tuner.workers < 100


def test_tuner_stops_growing_near_the_rate_when_growth_buys_no_throughput() -> None:
    # The machine serves 1,950/s against a rate of 2,000/s: within GAIN of the rate, so a
    # guard exempt there let Little's law chase the queueing latency (512 workers, measured).
    tuner = Tuner(cap=512, now=0.0)
    now = 0.0
    most = 0
    for _ in range(100):
        throughput = min(tuner.workers / 0.001, 1950.0)
        latency = tuner.workers / throughput + 0.001  # queued in the client's own loop
        for _ in range(int(throughput * 0.1) + 1):
            now += 1 / throughput
            tuner.due(now)
        tuner.update(now, 2000.0, latency)
        most = max(most, tuner.workers)
    assert most < 40
    assert tuner.workers >= 4  # still enough for what the machine serves at 1 ms
