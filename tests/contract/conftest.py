"""Fixtures of the contract tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.support.arguments import TOKEN
from tests.support.secrets import LOGGERS, LogCapture
from wemasy_async import Client
from wemasy_async.testing import FakeLoop, FakeServer, FakeSiteAssist, FakeWemasy

# --- The fakes and clients (one of each per provider for the module) ------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fakes() -> AsyncIterator[dict[str, FakeServer]]:
    async with (
        FakeWemasy(seed=1, conversations=5) as wemasy,
        FakeSiteAssist(seed=1, conversations=5) as siteassist,
        FakeLoop(seed=1, conversations=5, long_conversations=0) as loop,
    ):
        yield {"wemasy": wemasy, "siteassist": siteassist, "loop": loop}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(fakes: dict[str, FakeServer]) -> AsyncIterator[dict[str, Client]]:
    made = {name: Client(name, token=TOKEN, base_url=fake.url) for name, fake in fakes.items()}
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


@pytest.fixture
def quiet(fakes: dict[str, FakeServer]) -> Iterator[dict[str, FakeServer]]:
    """The fakes with empty request logs; asserts they are still empty afterwards."""
    for fake in fakes.values():
        fake.reset_log()
    yield fakes
    for name, fake in fakes.items():
        assert fake.requests == [], f"{name} was sent {fake.requests}"


# --- Every log record (the security tests) ----------------------------------------------------


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log record of every logger, at DEBUG and above, while the test runs."""
    capture = LogCapture()
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
