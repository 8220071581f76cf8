"""What the hostile-server tests share: a secret token, and every way an error is rendered
(``str``, ``repr``, the formatted chain, the traceback with its frames' locals, a pickle).
"""

from __future__ import annotations

import asyncio
import pickle
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from tests.support.cases import ProviderCase
from tests.support.secrets import SECRET_PARTS as SECRET_PARTS
from tests.support.secrets import TOKEN as TOKEN
from wemasy_async import WemasyAsyncError

GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"


# ---------------------------------------------------------------------------- renderings


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable through ``__cause__`` and ``__context__``."""
    found: list[BaseException] = []
    stack = [error]
    while stack:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found


def renderings(error: BaseException) -> dict[str, str]:
    """Everything that shows ``error``: each rendering by name."""
    shown = {
        "str": str(error),
        "repr": repr(error),
        "format_exception": "".join(traceback.format_exception(error)),
        "locals": "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        ),
    }
    shown["pickle"] = pickle.dumps(error).decode("latin-1")
    for index, link in enumerate(error_chain(error)):
        shown[f"chain[{index}]"] = " ".join(
            [str(link), repr(link), repr(link.args), repr(getattr(link, "__dict__", None))]
        )
    return shown


def assert_clean(error: BaseException) -> None:
    """No rendering of ``error``, nor of anything in its chain, holds the token."""
    leaks = {
        name: text
        for name, text in renderings(error).items()
        if any(part in text for part in SECRET_PARTS)
    }
    assert not leaks, {name: _around(text) for name, text in leaks.items()}
    # No aiohttp exception (whose request_info holds the Authorization header) is reachable.
    for link in error_chain(error):
        assert not isinstance(link, aiohttp.ClientError), repr(link)
        assert not any(isinstance(v, aiohttp.RequestInfo) for v in vars(link).values())


def _around(text: str) -> str:
    index = min(i for i in (text.find(part) for part in SECRET_PARTS) if i >= 0)
    return text[max(0, index - 200) : index + 60]


async def failure(call: Callable[[], Awaitable[object]]) -> WemasyAsyncError:
    """The SDK error ``call()`` raises (anything else fails the test).

    The token is only a module global here, never a local: the frames of this function and
    below are what the traceback renderings show.
    """
    try:
        await asyncio.wait_for(call(), 30)
    except WemasyAsyncError as error:
        return error
    raise AssertionError("the call succeeded")


def url_prefix_of(case: ProviderCase) -> str:
    return type(case.start()).url_prefix


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    finally:
        await runner.cleanup()
