"""Fake provider servers for testing code that uses ``wemasy_async``.

Usage::

    from wemasy_async.testing import FakeWemasy

    async with FakeWemasy(seed=0, conversations=200) as fake:
        ...  # point the client at fake.url

The fakes are independent ``aiohttp.web`` implementations of the provider APIs (they import
nothing else from ``wemasy_async``). For unit tests of request shapes without a server,
``Client(..., transport=MockTransport(handler))`` answers every request from a function.
``python -m wemasy_async.testing serve`` runs a fake in a separate process. Every fake can
break requests on purpose (``fake.queue_fault(kind)``, or at random with
``fake.inject_faults(rate)``; the kinds are in ``FAULT_KINDS``). Attributes are
resolved lazily so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wemasy_async.testing._mock import MockRequest, MockTransport, json_response
    from wemasy_async.testing._server import (
        FAULT_KINDS,
        FakeServer,
        RecordedRequest,
        Route,
        ServerStats,
        most_in_any_span,
    )
    from wemasy_async.testing.loop import FakeLoop
    from wemasy_async.testing.siteassist import FakeSiteAssist
    from wemasy_async.testing.wemasy import FakeWemasy

__all__ = [
    "FAULT_KINDS",
    "FakeLoop",
    "FakeServer",
    "FakeSiteAssist",
    "FakeWemasy",
    "MockRequest",
    "MockTransport",
    "RecordedRequest",
    "Route",
    "ServerStats",
    "json_response",
    "most_in_any_span",
]

_LOCATIONS = {
    "FAULT_KINDS": "wemasy_async.testing._server",
    "FakeServer": "wemasy_async.testing._server",
    "RecordedRequest": "wemasy_async.testing._server",
    "Route": "wemasy_async.testing._server",
    "ServerStats": "wemasy_async.testing._server",
    "most_in_any_span": "wemasy_async.testing._server",
    "FakeWemasy": "wemasy_async.testing.wemasy",
    "FakeSiteAssist": "wemasy_async.testing.siteassist",
    "FakeLoop": "wemasy_async.testing.loop",
    "MockRequest": "wemasy_async.testing._mock",
    "MockTransport": "wemasy_async.testing._mock",
    "json_response": "wemasy_async.testing._mock",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
