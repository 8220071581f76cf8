"""The fakes' fault modes at the raw level: the ``queue_fault`` API, and the bookkeeping
(held connections released, counts, no descriptor left open); see ``test_kinds.py``.
"""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import aiohttp
import anyio
import pytest

import wemasy_async.testing as testing
from tests.support.raw_http import AUTH, CHAT, GET, LIST, PROOF, post
from tests.support.served import served
from wemasy_async.testing import FAULT_KINDS, FakeWemasy
from wemasy_async.testing import _server as server_module

# ---------------------------------------------------------------------------- the API


def test_fault_kinds_are_exported_and_exact() -> None:
    assert testing.FAULT_KINDS is server_module.FAULT_KINDS
    assert "FAULT_KINDS" in testing.__all__
    assert FAULT_KINDS == (
        "disconnect",
        "reset_before_body",
        "reset_mid_body",
        "truncated_json",
        "html_502",
        "empty_200",
        "wrong_content_type",
        "html_200",
        "stall",
        "keepalive_close",
        "error_5xx",
        "rate_limited",
        "process_then_drop",
        "huge_body",
        "huge_header",
        "bad_status_line",
        "many_headers",
        "slow_trickle",
        "short_body",
    )
    documented = FakeWemasy.queue_fault.__doc__ or ""
    for kind in FAULT_KINDS:
        assert f'``"{kind}"``' in documented, kind


def test_fault_arguments_are_checked() -> None:
    fake = FakeWemasy(conversations=1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.queue_fault("explode")
    with pytest.raises(ValueError, match="times"):
        fake.queue_fault("stall", times=0)
    with pytest.raises(ValueError, match="rate"):
        fake.inject_faults(1.5)
    with pytest.raises(ValueError, match="rate"):
        fake.inject_faults(-0.1)
    with pytest.raises(ValueError, match="empty"):
        fake.inject_faults(0.1, ())
    with pytest.raises(ValueError, match="unknown fault kinds"):
        fake.inject_faults(0.1, ["stall", "nope"])
    assert fake.pending_faults == 0


# ---------------------------------------------------------------------------- bookkeeping


async def test_queue_fault_path_times_and_order(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_fault("empty_200", times=2, path=LIST)
    fake.queue_fault("rate_limited")
    assert fake.pending_faults == 3
    assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 429
    for _ in range(2):
        status, body, _ = await post(session, fake, LIST, {})
        assert (status, body) == (200, b"")
    assert (await post(session, fake, LIST, {}))[0] == 200
    assert fake.pending_faults == 0
    assert fake.stats.fault_counts == {"empty_200": 2, "rate_limited": 1}
    assert fake.stats.faults_served == 3
    assert fake.stats.as_dict()["fault_counts"] == {"empty_200": 2, "rate_limited": 1}


async def test_queue_disconnect_is_the_disconnect_fault(
    fake: FakeWemasy, session: aiohttp.ClientSession
) -> None:
    fake.queue_disconnect(times=2)
    fake.queue_error(503)
    fake.queue_delay(0.01)
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, fake, GET, {"conversation_id": 1})
    assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 503
    assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 200
    assert fake.stats.fault_counts == {"disconnect": 2, "error": 1, "delay": 1}


async def test_faults_apply_after_auth(fake: FakeWemasy) -> None:
    fake.queue_fault("process_then_drop")
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + CHAT, json={"message": "x"}) as r,
    ):
        assert r.status == 401
    assert fake.pending_faults == 1
    assert fake.stats.fault_counts == {}


async def test_inject_faults_rate_seed_precedence_and_off(fake: FakeWemasy) -> None:
    kinds = ("empty_200", "html_502", "error_5xx")
    fake.queue_fault("rate_limited")
    fake.inject_faults(0.25, kinds, seed=11)

    async def run(session: aiohttp.ClientSession, count: int) -> list[int]:
        """Statuses, with 0 for an empty 200."""
        outcomes = []
        for _ in range(count):
            status, body, _ = await post(session, fake, GET, {"conversation_id": 2})
            outcomes.append(status if body else 0)
        return outcomes

    async with aiohttp.ClientSession() as session:
        first = await run(session, 400)
        assert first[0] == 429  # the queued fault came first
        injected = sum(fake.stats.fault_counts.get(k, 0) for k in kinds)
        # Binomial(399, 0.25): mean 99.75, sd 8.6; a seeded run is deterministic anyway.
        assert 70 <= injected <= 130
        assert injected == sum(1 for status in first[1:] if status != 200)
        assert fake.stats.faults_served == injected + 1
        for kind in kinds:  # uniform over the kinds: each gets a fair share
            assert fake.stats.fault_counts[kind] > injected / 6
        assert set(first[1:]) <= {0, 200, 500, 502, 503, 504}

        fake.inject_faults(0.25, kinds, seed=11)
        assert await run(session, 399) == first[1:]  # same seed, same faults

        fake.inject_faults(0)
        assert set(await run(session, 50)) == {200}


async def test_inject_faults_path_filter(fake: FakeWemasy) -> None:
    fake.inject_faults(1.0, ["html_502"], path=LIST)
    async with aiohttp.ClientSession() as session:
        assert (await post(session, fake, GET, {"conversation_id": 1}))[0] == 200
        assert (await post(session, fake, LIST, {}))[0] == 502
        fake.clear_faults()
        assert (await post(session, fake, LIST, {}))[0] == 200


async def test_stats_endpoint_reports_fault_counts(fake: FakeWemasy) -> None:
    fake.queue_fault("html_200")
    async with aiohttp.ClientSession() as session:
        await post(session, fake, GET, {"conversation_id": 1})
        origin = fake.url.removesuffix("/api")
        async with session.get(origin + "/__fake__/stats") as response:
            stats = await response.json()
    assert stats["fault_counts"] == {"html_200": 1}
    assert stats["faults_served"] == 1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
async def test_every_kind_at_random_under_64_connections_leaks_nothing() -> None:
    """A small soak at the raw level: many concurrent faults, then nothing left over."""
    gc.collect()
    fds = open_fds()
    tasks = len(asyncio.all_tasks())
    requests = 1500
    outcomes: dict[str, int] = {}
    async with FakeWemasy(conversations=30, fault_seed=3) as fake:
        fake.inject_faults(0.2, seed=5)
        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            ids = iter(range(requests))

            async def worker() -> None:
                for i in ids:
                    try:
                        async with session.post(
                            fake.url + (CHAT if i % 5 == 0 else GET),
                            json={"message": f"m{i}"} if i % 5 == 0 else {"conversation_id": 1},
                            headers=AUTH,
                        ) as r:
                            # Read at most 2 MiB, like a client with a body cap.
                            size = 0
                            while (chunk := await r.content.readany()) and size < 2**21:
                                size += len(chunk)
                            outcome = str(r.status)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        outcome = type(exc).__name__
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

            with anyio.fail_after(60):
                await asyncio.gather(*(worker() for _ in range(64)))
        stats = fake.stats
        assert sum(outcomes.values()) == requests
        # Every kind was drawn, and every fault shows up in the counters.
        assert set(stats.fault_counts) == set(FAULT_KINDS)
        assert sum(stats.fault_counts.values()) == stats.faults_served
        assert 0.15 * requests < stats.faults_served < 0.25 * requests
        assert stats.requests_total == requests  # POSTs: aiohttp never resends them
        # Each dropped request (disconnect, process_then_drop, the request after a
        # keepalive_close) is exactly one ServerDisconnectedError for the client; the other
        # status 0 is a bad status line.
        bad_status = stats.fault_counts["bad_status_line"]
        assert outcomes.get("ServerDisconnectedError", 0) == stats.status_counts[0] - bad_status
        with anyio.fail_after(PROOF):
            await fake.close()
        assert fake.held_connections == 0
    await asyncio.sleep(0)
    gc.collect()
    assert len(asyncio.all_tasks()) == tasks
    assert open_fds() == fds


async def test_serve_subprocess_with_fault_rate() -> None:
    async with served(
        "--provider",
        "loop",
        "--conversations",
        "2",
        "--fault-rate",
        "1",
        "--fault-seed",
        "4",
        "--fault-kinds",
        "empty_200,html_200",
    ) as url:
        async with aiohttp.ClientSession() as session:
            for _ in range(6):
                async with session.get(url + "/v1/conversations/x/messages", headers=AUTH) as r:
                    assert r.status == 200
                    assert r.content_type in ("application/json", "text/html")
            async with session.get(url + "/__fake__/stats") as r:
                stats = await r.json()
        assert sum(stats["fault_counts"].values()) == 6
        assert set(stats["fault_counts"]) <= {"empty_200", "html_200"}
