"""A fake served from an event loop in a thread of its own, for the blocking client's tests
(plain synchronous functions, as the code that uses the blocking client is)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wemasy_async.testing import FakeWemasy


@contextmanager
def fake_wemasy_in_thread(**kwargs: Any) -> Iterator[FakeWemasy]:
    """A started ``FakeWemasy(**kwargs)`` served from a thread; stopped at the end."""
    ready = threading.Event()
    served: list[tuple[FakeWemasy, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        stop = asyncio.Event()
        async with FakeWemasy(**kwargs) as server:
            served.append((server, asyncio.get_running_loop(), stop))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    server, loop, stop = served[0]
    yield server
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
