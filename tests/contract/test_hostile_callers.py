"""Careless callers (issue 12), and errors that say faithfully what the server sent, through
the public API on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import math
import threading
import warnings
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.cases import CASES, ProviderCase
from tests.support.renderings import (
    CHAT,
    GET,
    TOKEN,
    assert_clean,
    failure,
    renderings,
    serving,
    url_prefix_of,
)
from wemasy_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    Client,
    ClientClosedError,
    InvalidRequestError,
    NotFoundError,
    UnprocessableEntityError,
)
from wemasy_async.testing import FakeWemasy

# ---------------------------------------------------------------------------- careless callers


def test_a_session_from_an_earlier_asyncio_run_is_a_clear_error() -> None:
    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    old = asyncio.run(make_session())  # its loop is closed when asyncio.run returns

    async def use() -> BaseException:
        async with FakeWemasy(token=TOKEN, conversations=1) as fake:
            client = Client("wemasy", token=TOKEN, base_url=fake.url, session=old)
            async with client:
                try:
                    await client.get_conversation(1)
                except BaseException as exc:
                    return exc
            assert fake.requests == []
        raise AssertionError("the call succeeded")

    try:
        error = asyncio.run(use())
    finally:
        old.detach()  # nothing to close: it never opened a connection
    assert isinstance(error, ClientClosedError), repr(error)
    assert "another event loop" in str(error)


def test_a_session_used_in_a_live_other_loop_is_a_clear_error() -> None:
    # The session's loop still runs (in another thread); this loop must not touch it.
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    holder: dict[str, Any] = {}

    async def own() -> None:
        nonlocal stop
        holder["session"] = aiohttp.ClientSession()
        stop = asyncio.get_running_loop().create_future()
        holder["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop
        await holder["session"].close()

    thread = threading.Thread(target=lambda: asyncio.run(own()))
    thread.start()
    try:
        ready.wait(10)

        async def use() -> BaseException:
            async with FakeWemasy(token=TOKEN, conversations=1) as fake:
                session = holder["session"]
                async with Client("wemasy", token=TOKEN, base_url=fake.url, session=session) as c:
                    try:
                        await c.get_conversation(1)
                    except BaseException as exc:
                        return exc
            raise AssertionError("the call succeeded")

        error = asyncio.run(use())
    finally:
        loop = holder["loop"]
        loop.call_soon_threadsafe(lambda: stop is not None and stop.set_result(None))
        thread.join(10)
    assert isinstance(error, ClientClosedError), repr(error)


async def test_a_session_with_basic_auth_is_refused_before_any_io() -> None:
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp 3.14 deprecates it
            session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", "pass"))
        async with session:
            with pytest.raises(InvalidRequestError) as info:
                Client("wemasy", token=TOKEN, base_url=fake.url, session=session)
        assert fake.requests == []
    assert info.value.argument == "session"
    assert "auth=" in str(info.value)
    assert "pass" not in str(info.value)


NON_FINITE = [math.nan, math.inf, -math.inf]


def _tools_with(value: float, where: str) -> list[dict[str, Any]]:
    parameters: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "number"}}}
    tool: dict[str, Any] = {"type": "function", "function": {"name": "f"}}
    if where == "default":
        parameters["properties"]["n"]["default"] = value
    elif where == "enum":
        parameters["properties"]["n"]["enum"] = [1.0, value]
    elif where == "tool":
        tool["weight"] = value
    else:
        parameters["properties"]["n"]["examples"] = ({"deep": [[value]]},)
    tool["function"]["parameters"] = parameters
    return [{"type": "function", "function": {"name": "ok"}}, tool]


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize("where", ["default", "enum", "tool", "nested_tuple"])
async def test_non_finite_numbers_in_tools_are_refused_before_any_io(
    value: float, where: str
) -> None:
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            with pytest.raises(InvalidRequestError) as info:
                await client.chat("hi", tools=_tools_with(value, where))
        assert fake.requests == []
    assert info.value.argument is not None
    assert info.value.argument.startswith("tools[1]")
    assert "finite" in str(info.value)


# ---------------------------------------------------------------------------- faithful errors


@pytest.mark.parametrize(
    "errors",
    [
        {"flag": True},
        {"count": 3, "ratio": 0.5},
        {"nested": {"a": ["x"]}},
        {"mixed": ["ok", 1]},
        {"none": None},
    ],
    ids=repr,
)
async def test_a_422_with_unusual_errors_keeps_its_message_and_errors(
    errors: dict[str, Any],
) -> None:
    body = {"message": "The given data was invalid.", "errors": {"field": "plain", **errors}}
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        fake.queue_error(422, body=body, path=CHAT)
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            error = await failure(lambda: client.chat("hi"))
    assert isinstance(error, UnprocessableEntityError)
    assert error.message == "The given data was invalid."
    assert error.errors == {"field": ["plain"], **errors}  # strings listed, the rest as sent
    assert error.body == body


async def test_a_422_whose_errors_is_not_an_object_keeps_its_message() -> None:
    body = {"message": "The given data was invalid.", "errors": ["message is required"]}
    async with FakeWemasy(token=TOKEN, conversations=1) as fake:
        fake.queue_error(422, body=body, path=CHAT)
        async with Client("wemasy", token=TOKEN, base_url=fake.url) as client:
            error = await failure(lambda: client.chat("hi"))
    assert isinstance(error, UnprocessableEntityError)
    assert error.message == "The given data was invalid."
    assert error.errors == {}
    assert error.body == body


def _assert_located(error: APIError, method: str, path: str) -> None:
    assert error.method == method
    assert error.path == path
    assert f"{method} {path}" in str(error)
    assert "?" not in str(error.path)
    assert_clean(error)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_every_error_names_its_request(case: ProviderCase, free_port: int) -> None:
    async with case.start(token=TOKEN) as fake:
        conversation = case.ids(fake)[0]
        async with Client(
            case.name, token=TOKEN, base_url=fake.url, retry=False, timeout=0.3
        ) as client:
            await client.get_conversation(conversation)
            (request,) = fake.requests
            method, path = request.method, request.raw_path
            fake.queue_error(404, path=case.get_path)
            status = await failure(lambda: client.get_conversation(conversation))
            assert isinstance(status, NotFoundError)
            _assert_located(status, method, path)
            fake.queue_error(500, path=case.get_path)
            _assert_located(
                await failure(lambda: client.get_conversation(conversation)), method, path
            )
            fake.queue_fault("reset_mid_body", path=case.get_path)
            broken = await failure(lambda: client.get_conversation(conversation))
            assert isinstance(broken, APIConnectionError)
            _assert_located(broken, method, path)
            fake.queue_delay(1.0, path=case.get_path)
            slow = await failure(lambda: client.get_conversation(conversation))
            assert isinstance(slow, APITimeoutError)
            _assert_located(slow, method, path)
            # Loop sends limit= in the query: never in the error.
            fake.queue_error(503, path=case.get_path)
            limited = await failure(lambda: client.list_messages(conversation, limit=1))
            assert "limit=" not in str(limited)
            assert "limit=" not in repr(limited)
    refused_url = f"http://127.0.0.1:{free_port}{url_prefix_of(case)}"
    async with Client(case.name, token=TOKEN, base_url=refused_url, retry=False) as client:
        refused = await failure(lambda: client.get_conversation(conversation))
        refused_limited = await failure(lambda: client.list_messages(conversation, limit=1))
    assert "limit=" not in str(refused_limited)
    assert isinstance(refused, APIConnectionError)
    assert not refused.request_sent
    _assert_located(refused, method, path)


async def test_a_base_url_typo_shows_the_path_in_every_error_of_a_batch() -> None:
    async with (
        FakeWemasy(token=TOKEN, conversations=3) as fake,
        Client("wemasy", token=TOKEN, base_url=fake.url + "i", retry=False) as client,
        client.fetch_conversations([1, 2, 3]) as batch,
    ):
        results = [result async for result in batch]
    assert len(results) == 3
    for result in results:
        assert isinstance(result.error, NotFoundError)
        assert result.error.path == "/apii" + GET
        assert "POST /apii/services/ai/v1/conversations/get" in str(result.error)


UNDOCUMENTED_404 = {
    "laravel_json": (b'{"message": "Not Found"}', "application/json"),
    "nginx_html": (b"<html><body><h1>404 Not Found</h1></body></html>", "text/html"),
    "empty": (b"", "text/plain"),
}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reply", UNDOCUMENTED_404.values(), ids=UNDOCUMENTED_404)
async def test_a_404_that_is_not_the_providers_suggests_checking_base_url(
    case: ProviderCase, reply: tuple[bytes, str]
) -> None:
    body, content_type = reply

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    async with serving(app) as url:
        base_url = url.removesuffix("/api") + url_prefix_of(case)
        async with Client(case.name, token=TOKEN, base_url=base_url, retry=False) as client:
            error = await failure(lambda: client.get_conversation(case.ids(case.start())[0]))
    assert isinstance(error, NotFoundError)
    assert "check base_url" in str(error)
    assert "documented error body" in str(error)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_providers_own_404_does_not_blame_base_url(case: ProviderCase) -> None:
    async with case.start(token=TOKEN) as fake:
        fake.queue_error(404, path=case.get_path)
        conversation = case.ids(fake)[0]
        async with Client(case.name, token=TOKEN, base_url=fake.url, retry=False) as client:
            error = await failure(lambda: client.get_conversation(conversation))
    assert isinstance(error, NotFoundError)
    assert "base_url" not in str(error)


def test_renderings_see_the_token_when_it_is_there() -> None:
    # The checker itself: an error that does hold the token is caught by every rendering.
    try:
        raise APIConnectionError(f"leaky {TOKEN}", provider="x")
    except APIConnectionError as error:
        shown = renderings(error)
    for name in ("str", "repr", "format_exception", "locals", "pickle", "chain[0]"):
        assert TOKEN in shown[name], name
