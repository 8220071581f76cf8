"""Shared fixtures for the test suite.

Fixtures are grouped by topic; keep new groups under their own heading.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aioresponses import aioresponses

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
