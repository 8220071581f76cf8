"""Fixtures of the batch tests: a Wemasy fake, a slow one, and clients of each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.batch import TOKEN, SlowWemasy, warm_up
from wemasy_async import Client
from wemasy_async.testing import FakeWemasy


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=3, conversations=200, token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(fake: FakeWemasy) -> AsyncIterator[Client]:
    async with Client("wemasy", base_url=fake.url, token=TOKEN) as c:
        yield c


@pytest.fixture
async def slow() -> AsyncIterator[SlowWemasy]:
    async with SlowWemasy(seed=3, conversations=200, token=TOKEN, delay=0.02) as server:
        yield server


@pytest.fixture
async def slow_client(slow: SlowWemasy) -> AsyncIterator[Client]:
    async with Client("wemasy", base_url=slow.url, token=TOKEN) as c:
        await warm_up(c, slow)
        yield c
