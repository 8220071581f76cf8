"""Shared fixtures for the test suite.

Fixtures are grouped by topic; keep new groups under their own heading.
"""

from __future__ import annotations

import inspect
import shutil
import socket
import subprocess
import time
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aioresponses import aioresponses

from tests.support.cases import CASES, ProviderCase
from wemasy_async.retry import no_backoff

# --- HTTP mocking with aioresponses ----------------------------------------------------------
#
# aioresponses (0.7.x) builds ``aiohttp.ClientResponse`` objects itself. aiohttp 3.14 added a
# required keyword-only ``stream_writer`` argument to ``ClientResponse.__init__`` that
# aioresponses does not pass (pnuckowski/aioresponses#289), so every mocked request fails
# with a TypeError. Until aioresponses catches up, the ``mock_http`` fixture swaps in a
# subclass that supplies a stand-in writer; with an aiohttp that does not need it, the real
# class is used unchanged.

_NEEDS_STREAM_WRITER = (
    "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters
)


class _CompatClientResponse(aiohttp.ClientResponse):
    """``ClientResponse`` that aioresponses can construct under aiohttp >= 3.14."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        # A finished request's writer: aiohttp only reads its ``output_size``.
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mock_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """An active ``aioresponses`` mock: register responses with ``mock_http.post(url, ...)``.

    Requests to unregistered URLs fail with ``aiohttp.ClientConnectionError``; what was sent
    is in ``mock_http.requests``.
    """
    if _NEEDS_STREAM_WRITER:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatClientResponse)
    with aioresponses() as mocked:
        yield mocked


# --- Retries -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_retry_backoff() -> Iterator[None]:
    """Retries happen but never sleep: the switch users get for their own suites."""
    with no_backoff():
        yield


# --- Redis server ------------------------------------------------------------------------------
#
# wemasy_async.redis is tested against a real redis-server, never a mock: one per session
# (no persistence, on a free port in a temporary directory), flushed before each test.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """Start ``redis-server`` on ``port`` and return once it answers PING."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "redis-server is not installed; the Redis tests need a real one: "
            "apt-get install redis-server (.ci/run does it)",
            pytrace=False,
        )
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(log),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            output = log.read_text() if log.exists() else ""
            pytest.fail(f"redis-server exited with {process.returncode}:\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail("redis-server did not answer PING within 10 s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server running for the whole session; fails if none is installed."""
    port = _free_port()
    process = _start_redis_server(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's redis-server, emptied (FLUSHALL) for this test."""
    host, _, port = redis_server.removeprefix("redis://").partition("/")[0].partition(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"FLUSHALL\r\n")
        assert conn.recv(64).startswith(b"+OK")
    return redis_server


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Start more redis-servers, on given ports (e.g. one a store already points at)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> str:
        started.append(_start_redis_server(port, tmp_path / f"redis-{port}"))
        return f"redis://127.0.0.1:{port}/0"

    try:
        yield start
    finally:
        for process in started:
            _stop(process)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    return _free_port()


# --- The three providers side by side --------------------------------------------------------


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    """Each provider in turn (see ``tests/support/cases.py``), for scenarios every provider runs."""
    case: ProviderCase = request.param
    return case


# --- Plain HTTP against the fakes ------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain ``aiohttp.ClientSession``, for tests that drive a fake without the SDK."""
    async with aiohttp.ClientSession() as client:
        yield client
