"""Unit tests of the parts `FakeServer` is composed of, each on its own.

The fakes' end-to-end behaviour is in ``test_fake_*.py``; these pin each part's contract:
the bearer check, the fixed windows, the fault plan, the request parser and the raw-wire
helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from wemasy_async.testing import _wire
from wemasy_async.testing._auth import bearer_accepted
from wemasy_async.testing._faults import FAULT_KINDS, Fault, FaultPlan
from wemasy_async.testing._limiter import FixedWindow
from wemasy_async.testing._log import most_in_any_span, parse_request


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("header", "token", "accepted"),
    [
        ("Bearer abc", None, True),
        ("bearer abc", None, True),
        ("BEARER  abc ", "abc", True),
        ("Bearer abc", "abd", False),
        ("Bearer ", None, False),
        ("Basic abc", None, False),
        ("", None, False),
        (None, None, False),
    ],
)
def test_bearer_accepted(header: str | None, token: str | None, accepted: bool) -> None:
    assert bearer_accepted(header, token) is accepted


# ---------------------------------------------------------------------------- limiter


def test_fixed_window_admits_limit_per_window_and_counts_only_admitted() -> None:
    clock = Clock()
    limiter = FixedWindow(2, 10.0, 0.0, clock)
    limiter.restart()
    assert [limiter.admit(), limiter.admit(), limiter.admit()] == [1, 0, None]
    assert limiter.count == 2
    assert limiter.remaining() == 0
    assert limiter.seconds_until_reset() == pytest.approx(10.0)
    clock.now += 10.0
    assert limiter.remaining() == 2  # a new window, before anything is counted in it
    assert limiter.admit() == 1
    assert limiter.index == 1


def test_fixed_window_offset_moves_the_boundaries() -> None:
    clock = Clock()
    limiter = FixedWindow(1, 10.0, 4.0, clock)
    limiter.restart()
    assert limiter.seconds_until_reset() == pytest.approx(4.0)
    assert limiter.admit() == 0
    clock.now += 4.0
    assert limiter.admit() == 0  # the first full window started


def test_fixed_window_without_a_limit_still_tells_the_time() -> None:
    clock = Clock()
    limiter = FixedWindow(None, 5.0, 0.0, clock)
    limiter.restart()
    clock.now += 2.0
    assert limiter.seconds_until_reset() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("limit", "window", "message"),
    [(0, 1.0, "rate_limit"), (1, 0.0, "window"), (0, 0.0, "rate_limit")],
)
def test_fixed_window_rejects_bad_arguments(limit: int, window: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FixedWindow(limit, window, 0.0, Clock())


def test_most_in_any_span() -> None:
    assert most_in_any_span([], 1.0) == 0
    assert most_in_any_span([0.0, 0.5, 0.99, 1.0, 1.2], 1.0) == 4
    assert most_in_any_span([3.0, 1.0, 2.0], 1.0) == 1


# ---------------------------------------------------------------------------- faults


def test_fault_plan_takes_queued_faults_in_order_by_path() -> None:
    plan = FaultPlan(0)
    plan.queue(Fault(kind="stall", remaining=2, path="/a"))
    plan.queue(Fault(kind="disconnect", remaining=1, path=None))
    assert plan.pending == 3
    assert plan.take("/b", "/b").kind == "disconnect"  # type: ignore[union-attr]
    assert plan.take("/b", "/b") is None
    assert plan.take("/x/1", "/a").kind == "stall"  # type: ignore[union-attr]
    assert plan.take("/a", "/a").kind == "stall"  # type: ignore[union-attr]
    assert plan.pending == 0
    assert plan.queued == []


def test_fault_plan_draws_are_seeded_and_filtered() -> None:
    def draws(plan: FaultPlan) -> list[str | None]:
        return [plan.draw("/a", "/a") for _ in range(200)]

    first, second = FaultPlan(None), FaultPlan(None)
    first.inject(0.5, ("stall", "html_502"), seed=9, path=None)
    second.inject(0.5, ("stall", "html_502"), seed=9, path=None)
    drawn = draws(first)
    assert drawn == draws(second)
    assert set(drawn) == {None, "stall", "html_502"}
    first.inject(1.0, FAULT_KINDS, seed=None, path="/other")
    assert first.draw("/a", "/a") is None
    first.clear()
    assert first.rate == 0.0


def test_fault_plan_rejects_bad_arguments() -> None:
    plan = FaultPlan(0)
    with pytest.raises(ValueError, match="unknown fault kind"):
        plan.check_kind("error")  # queue_error's kind, not a queue_fault kind
    with pytest.raises(ValueError, match="times"):
        plan.queue(Fault(kind="stall", remaining=0, path=None))
    with pytest.raises(ValueError, match="rate"):
        plan.inject(1.5, FAULT_KINDS, seed=None, path=None)
    with pytest.raises(ValueError, match="empty"):
        plan.inject(0.5, (), seed=None, path=None)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        plan.inject(0.5, ("stall", "nope"), seed=None, path=None)


# ---------------------------------------------------------------------------- request log


async def test_parse_request_describes_the_request() -> None:
    async def parse(body: bytes, path: str = "/api/x?page=2") -> object:
        request = make_mocked_request("POST", path, headers={"Authorization": "Bearer t"})
        request._read_bytes = body  # what read() returns, set the way aiohttp caches it
        return await parse_request(request, "/api", lambda: 5.0, lambda transport: 7)

    record = await parse(b'{"a": 1}')
    assert record.endpoint == "/x"  # type: ignore[attr-defined]
    assert record.query == {"page": "2"}  # type: ignore[attr-defined]
    assert record.json == {"a": 1}  # type: ignore[attr-defined]
    assert record.json_error is False  # type: ignore[attr-defined]
    assert (record.received_at, record.connection) == (5.0, 7)  # type: ignore[attr-defined]
    assert record.headers["authorization"] == "Bearer t"  # type: ignore[attr-defined]
    broken = await parse(b"{nope", "/other")
    assert broken.json is None  # type: ignore[attr-defined]
    assert broken.json_error is True  # type: ignore[attr-defined]
    assert broken.endpoint == "/other"  # type: ignore[attr-defined]
    assert (await parse(b"  ")).json_error is False  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- the wire


def test_head_serializes_a_status_line_and_headers() -> None:
    assert _wire.head(200, "OK", {"A": "1", "B": "2"}) == b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"


def test_body_bytes() -> None:
    assert _wire.body_bytes(web.Response(body=b"abc")) == b"abc"
    assert _wire.body_bytes(web.StreamResponse()) == b""


class Transport(asyncio.Transport):
    """A transport that can be weakly referenced, as the event loop's are."""


def test_connections_number_transports_in_order_of_arrival() -> None:
    connections = _wire.Connections()
    a, b = Transport(), Transport()
    assert [connections.number(a), connections.number(b), connections.number(a)] == [1, 2, 1]
    assert connections.number(None) == 0


Served = Callable[[bytes], Awaitable[bytes]]


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[Served]:
    """A bare aiohttp server answering with ``handler``; yields a raw one-request client."""
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def send(_: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), 2):
                received += chunk
        writer.close()
        return received

    try:
        yield send
    finally:
        await runner.cleanup()


async def test_feed_with_finish_sends_everything_then_closes() -> None:
    connections = _wire.Connections()

    async def handler(request: web.Request) -> web.StreamResponse:
        data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        return await connections.feed(request, (data[:5], data[5:]), 0.0, finish=True)

    async with raw_server(handler) as send:
        assert await send(b"") == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert connections.held == set()


async def test_feed_without_finish_holds_until_the_server_closes() -> None:
    connections = _wire.Connections()
    held = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        held.set()
        return await connections.feed(request, (b"HTTP/1.1 200 OK\r\n",), 0.01, finish=False)

    async with raw_server(handler) as send:
        client = asyncio.ensure_future(send(b""))
        await held.wait()
        await asyncio.sleep(0.05)
        assert len(connections.held) == 1
        connections.close_all()
        assert await client == b"HTTP/1.1 200 OK\r\n"  # then a reset, not more bytes
    assert connections.held == set()


async def test_reset_after_and_close_after_and_drop() -> None:
    answers = iter(
        [
            lambda r: _wire.reset_after(r, b"HTTP/1.1 200 OK\r\n"),
            lambda r: _wire.close_after(r, b"HTTP/1.1 204 No Content\r\n\r\n"),
            _wire.drop,
        ]
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        return next(answers)(request)  # type: ignore[no-any-return]

    async with raw_server(handler) as send:
        assert await send(b"") == b"HTTP/1.1 200 OK\r\n"
        assert await send(b"") == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert await send(b"") == b""
