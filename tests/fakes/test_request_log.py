"""The fakes' request logs are bounded: a long run keeps the last ``request_log`` entries."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path

import aiohttp
import pytest

import wemasy_async.testing
from tests.support.served import served
from wemasy_async.testing import FakeLoop, FakeServer, FakeSiteAssist, FakeWemasy
from wemasy_async.testing.__main__ import main
from wemasy_async.testing._log import DEFAULT_REQUEST_LOG, RecordedRequest, RequestLog
from wemasy_async.testing.wemasy import CHAT_PATH

AUTH = {"Authorization": "Bearer log-token"}
TESTING = str(Path(wemasy_async.testing.__file__).parent)


def test_request_log_keeps_the_last_entries() -> None:
    log: RequestLog[int] = RequestLog(3)
    for entry in range(10):
        log.append(entry)
    assert log == [7, 8, 9]
    off: RequestLog[int] = RequestLog(0)
    off.append(1)
    assert off == []
    unbounded: RequestLog[int] = RequestLog(None)
    for entry in range(DEFAULT_REQUEST_LOG + 5):
        unbounded.append(entry)
    assert len(unbounded) == DEFAULT_REQUEST_LOG + 5
    with pytest.raises(ValueError, match=">= 0"):
        RequestLog(-1)


@pytest.mark.parametrize("fake_class", [FakeLoop, FakeSiteAssist, FakeWemasy])
def test_every_fake_takes_the_option(fake_class: type[FakeServer]) -> None:
    assert fake_class().request_log == DEFAULT_REQUEST_LOG
    bounded = fake_class(request_log=7)
    assert (bounded.request_log, bounded.record_requests) == (7, True)
    assert isinstance(bounded.requests, RequestLog)
    assert bounded.requests.limit == 7
    for off in (fake_class(request_log=0), fake_class(record_requests=False)):
        assert (off.request_log, off.record_requests) == (0, False)
    assert fake_class(request_log=None).request_log is None
    with pytest.raises(ValueError, match=">= 0"):
        fake_class(request_log=-1)


def _live_records() -> int:
    gc.collect()
    return sum(isinstance(o, RecordedRequest) for o in gc.get_objects())


async def test_a_long_run_keeps_the_log_and_the_memory_flat(
    session: aiohttp.ClientSession,
) -> None:
    limit = 50
    async with FakeLoop(conversations=300, request_log=limit, rate_limit=None) as fake:
        urls = [f"{fake.url}/v1/conversations/{i}/messages" for i in fake.conversation_ids]

        async def run(count: int) -> None:
            async def worker(start: int) -> None:
                for index in range(start, count, 8):
                    async with session.get(urls[index % len(urls)], headers=AUTH) as response:
                        assert response.status == 200
                        await response.read()

            await asyncio.gather(*(worker(start) for start in range(8)))

        await run(1000)  # warm: every conversation encoded, aiohttp's own caches filled
        records = _live_records()  # other tests' fakes may still be alive in this process
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            await run(2000)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        ours = [tracemalloc.Filter(True, TESTING + "/*")]
        grown = sum(
            stat.size_diff
            for stat in after.filter_traces(ours).compare_to(before.filter_traces(ours), "lineno")
        )
        assert grown < 64 * 1024, grown  # 2,000 requests; an unbounded log grows 600 KB
        assert len(fake.requests) == len(fake.history_requests) == limit
        assert fake.stats.requests_total == 3000
        assert fake.requests[-1].received_at >= fake.requests[0].received_at
        assert _live_records() <= records  # the log's entries only, as after 1,000


async def test_chat_deliveries_are_bounded_too(session: aiohttp.ClientSession) -> None:
    async with FakeWemasy(conversations=3, request_log=2) as fake:
        for text in ("one", "two", "three"):
            async with session.post(
                fake.url + CHAT_PATH, json={"message": text}, headers=AUTH
            ) as response:
                assert response.status == 200
        assert [d["message"] for d in fake.chat_deliveries] == ["two", "three"]
        assert len(fake.requests) == 2


async def test_serve_lists_the_last_requests_without_credentials(
    session: aiohttp.ClientSession,
) -> None:
    args = ("--provider", "siteassist", "--conversations", "2", "--request-log", "3")
    async with served(*args, prefix="/v2") as url:
        origin = url.removesuffix("/v2")
        for index in range(5):
            async with session.get(f"{url}/conversations/not-{index}", headers=AUTH) as response:
                assert response.status == 400
        async with session.get(origin + "/__fake__/requests") as response:
            listed = await response.json()
            raw = await response.read()
    assert [entry["path"] for entry in listed] == [f"/v2/conversations/not-{i}" for i in (2, 3, 4)]
    assert {entry["status"] for entry in listed} == {400}
    assert set(listed[0]) == {"method", "path", "status", "received_at", "connection"}
    assert b"log-token" not in raw
    async with served("--provider", "loop", "--conversations", "1") as url:
        async with session.get(f"{url}/v1/conversations/x/messages", headers=AUTH) as response:
            assert response.status == 404
        async with session.get(url + "/__fake__/requests") as response:
            assert await response.json() == []  # off by default in serve


def test_serve_rejects_a_negative_request_log(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--request-log", "-1"])
    assert exited.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err
