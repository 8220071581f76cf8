"""The aioresponses shim in conftest.py is still needed: this fails once upstream is fixed.

pnuckowski/aioresponses#289: aioresponses 0.7.x builds ``aiohttp.ClientResponse`` without
the ``stream_writer`` argument aiohttp 3.14 requires. When a release passes it, the unpatched
mock below answers, this test fails, and the shim (``_CompatClientResponse`` and the
``mock_http`` fixture's monkeypatch) should go.
"""

from __future__ import annotations

import inspect

import aiohttp
import pytest
from aioresponses import aioresponses

# What conftest.py checks to decide whether to patch.
NEEDS_SHIM = "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters


@pytest.mark.skipif(not NEEDS_SHIM, reason="this aiohttp needs no shim")
async def test_unpatched_aioresponses_still_cannot_build_a_response() -> None:
    with aioresponses() as mocked:
        mocked.get("http://127.0.0.1:9/ping", status=200, body=b"pong")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TypeError, match="stream_writer"):
                await session.get("http://127.0.0.1:9/ping")


async def test_the_shim_makes_it_answer(mock_http: aioresponses) -> None:
    mock_http.get("http://127.0.0.1:9/ping", status=200, body=b"pong")
    async with aiohttp.ClientSession() as session, session.get("http://127.0.0.1:9/ping") as got:
        assert got.status == 200
        assert await got.read() == b"pong"
