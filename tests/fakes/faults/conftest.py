"""Fixtures of the fault-mode tests: a Wemasy fake and a one-connection session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from wemasy_async.testing import FakeWemasy


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=0, conversations=20) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection, so that consecutive requests reuse it (keep-alive).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as client:
        yield client
