"""The client inside other people's programs: anyio on asyncio, trio, several event loops.

- In an anyio program on the asyncio backend it works like in a plain asyncio one, cancel
  scopes included.
- Under trio (directly or through anyio) every call raises one clear
  ``AsyncioRequiredError`` at once: no hang, no bare error from deep inside aiohttp, no leak.
- Creating a client needs no event loop and does no I/O; a caller's session is never closed.
- A client belongs to the event loop it is first used in: a second ``asyncio.run()`` gets a
  clear error rather than aiohttp's "Event loop is closed".

These tests are synchronous on purpose: each runs its own event loop(s).
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import anyio
import pytest
import trio

from tests.support.cases import CASES, ProviderCase
from wemasy_async import (
    AsyncioRequiredError,
    Client,
    ClientClosedError,
    Conversation,
    UnsupportedOperationError,
)

TOKEN = "embedding-token"


@pytest.fixture
def no_resource_warnings() -> Iterator[None]:
    """Fails the test if a ResourceWarning (unclosed session, socket, client) shows up."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def _no_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


# --- anyio on the asyncio backend ----------------------------------------------------------


@pytest.mark.usefixtures("no_resource_warnings")
def test_an_anyio_program_on_asyncio(case: ProviderCase) -> None:
    outcome: dict[str, Any] = {}

    async def main() -> None:
        async with (
            case.start(token=TOKEN) as fake,
            Client(case.name, token=TOKEN, base_url=fake.url) as client,
        ):
            ids = case.ids(fake)
            got: dict[str, Conversation] = {}

            async def fetch(conversation_id: str) -> None:
                got[conversation_id] = await client.get_conversation(conversation_id)

            slow = anyio.CancelScope()

            async def slow_ones() -> None:
                with slow:
                    async with anyio.create_task_group() as inner:
                        for conversation_id in ids[40:50]:
                            inner.start_soon(fetch, conversation_id)

            await client.get_conversation(ids[0])  # learn the limits first
            fake.queue_delay(5.0, path=case.get_path, times=10)  # the next ten hang
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_ones)
                while len(fake.requests) < 11:  # noqa: ASYNC110 - the ten slow ones arrived
                    await anyio.sleep(0.01)
                for conversation_id in ids[1:31]:
                    tg.start_soon(fetch, conversation_id)
                while len(got) < 30:  # noqa: ASYNC110 - polling what the tasks collect
                    await anyio.sleep(0.01)
                slow.cancel()
            outcome["got"] = sorted(got)
            outcome["expected"] = sorted(ids[1:31])
            outcome["cancelled"] = slow.cancelled_caught
            with anyio.fail_after(5):
                outcome["after"] = (await client.get_conversation(ids[60])).id == ids[60]

    anyio.run(main, backend="asyncio")
    assert outcome["got"] == outcome["expected"]
    assert outcome["cancelled"] is True
    assert outcome["after"] is True


# --- trio: one clear error ------------------------------------------------------------------


def _calls(client: Client) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every public coroutine (and async-iteration entry point) of the client."""

    async def iterate() -> None:
        async for _ in client.iter_conversations():
            pass

    async def batch() -> None:
        async with client.fetch_conversations(["1"]) as results:
            async for _ in results:
                pass

    async def batch_messages() -> None:
        async with client.fetch_messages(["1"]) as results:
            async for _ in results:
                pass

    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get_conversation": lambda: client.get_conversation(_valid_id(client)),
        "list_messages": lambda: client.list_messages(_valid_id(client)),
        "fetch_conversations": batch,
        "fetch_messages": batch_messages,
        "with_options": lambda: client.with_options(timeout=1).list_messages(_valid_id(client)),
    }
    if "list_conversations" in client.capabilities:
        calls["list_conversations"] = lambda: client.list_conversations()
        calls["iter_conversations"] = iterate
    if "chat" in client.capabilities:
        calls["chat"] = lambda: client.chat("hello")
    return calls


def _valid_id(client: Client) -> str:
    return {"wemasy": "27", "siteassist": "123e4567-e89b-12d3-a456-426614174000"}.get(
        client.provider, "conversation-1"
    )


def _assert_clear(error: BaseException, library: str) -> None:
    assert type(error) is AsyncioRequiredError, repr(error)
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert "requires asyncio" in message
    assert f"called from {library}" in message
    assert "backend='asyncio'" in message
    assert error.library == library
    assert error.__cause__ is None  # one error, not a chain of aiohttp internals


@pytest.mark.usefixtures("no_resource_warnings")
@pytest.mark.parametrize("runner", ["trio.run", "anyio-trio"])
def test_under_trio_every_call_raises_one_clear_error(case: ProviderCase, runner: str) -> None:
    errors: dict[str, BaseException | None] = {}
    closed: list[bool] = []

    async def main() -> None:
        with trio.fail_after(5):  # nothing hangs
            async with Client(case.name, token=TOKEN, base_url="https://example.test") as c:
                for name, call in _calls(c).items():
                    try:
                        await call()
                    except BaseException as exc:
                        errors[name] = exc
                    else:
                        errors[name] = None
            closed.append(repr(c).endswith(" closed>"))

    if runner == "trio.run":
        trio.run(main)
    else:
        anyio.run(main, backend="trio")
    expected = {"get_conversation", "list_messages", "fetch_conversations", "fetch_messages"}
    if case.name == "wemasy":
        expected |= {"list_conversations", "iter_conversations", "chat"}
    assert set(errors) == expected | {"with_options"}
    for name, error in errors.items():
        assert error is not None, name
        _assert_clear(error, "trio")
    assert closed == [True]  # `async with` under trio closed the client cleanly


def test_under_trio_unsupported_operations_say_so_first() -> None:
    async def main() -> None:
        client = Client("loop", token=TOKEN)
        with pytest.raises(UnsupportedOperationError):
            await client.chat("hello")
        with pytest.raises(UnsupportedOperationError):
            client.iter_conversations()

    trio.run(main)


@pytest.mark.usefixtures("no_resource_warnings")
def test_a_client_refused_under_trio_works_under_asyncio_afterwards(free_port: int) -> None:
    base_url = f"http://127.0.0.1:{free_port}/api"
    client = Client("wemasy", token=TOKEN, base_url=base_url)

    async def under_trio() -> None:
        with pytest.raises(AsyncioRequiredError):
            await client.get_conversation(1)

    trio.run(under_trio)

    async def under_asyncio() -> str:
        async with CASES[0].start(token=TOKEN, port=free_port), client:
            return (await client.get_conversation(1)).id

    assert asyncio.run(under_asyncio()) == "1"


# --- Construction, sessions and event loops ------------------------------------------------


@pytest.mark.usefixtures("no_resource_warnings")
def test_a_client_is_built_outside_any_loop_and_used_inside(
    case: ProviderCase, free_port: int
) -> None:
    prefix = case.start().url_prefix
    assert _no_running_loop()
    # Nothing listens on the port yet: construction does no I/O, and needs no loop.
    client = Client(case.name, token=TOKEN, base_url=f"http://127.0.0.1:{free_port}{prefix}")
    copy = client.with_options(timeout=5)

    async def main() -> tuple[str, str]:
        async with case.start(token=TOKEN, port=free_port) as fake, client:
            first = case.ids(fake)[0]
            return (await client.get_conversation(first)).id, first

    got, expected = asyncio.run(main())
    assert got == expected
    assert repr(copy).endswith(f"{prefix}'>")


@pytest.mark.usefixtures("no_resource_warnings")
def test_a_callers_session_is_never_closed(case: ProviderCase) -> None:
    async def main() -> None:
        async with case.start(token=TOKEN) as fake, aiohttp.ClientSession() as session:
            ids = case.ids(fake)
            c = Client(case.name, token=TOKEN, base_url=fake.url, session=session)

            async def fail() -> None:
                async with c:
                    await c.get_conversation(ids[0])
                    raise KeyError("the caller's own error")

            with pytest.raises(KeyError):
                await fail()
            assert not session.closed
            client = Client(case.name, token=TOKEN, base_url=fake.url, session=session)
            await client.with_options(retry=False).get_conversation(ids[1])
            await client.with_options(retry=False).aclose()
            await client.aclose()
            del client  # collected: a client never closes a session it was given
            gc.collect()
            assert not session.closed
            async with session.get(fake.url + "/nowhere") as response:  # still usable
                assert response.status == 404

    asyncio.run(main())


def test_a_client_in_two_successive_event_loops(case: ProviderCase, free_port: int) -> None:
    prefix = case.start().url_prefix
    client = Client(case.name, token=TOKEN, base_url=f"http://127.0.0.1:{free_port}{prefix}")

    async def use() -> str:
        async with case.start(token=TOKEN, port=free_port) as fake:
            first = case.ids(fake)[0]
            return (await client.get_conversation(first)).id

    first = asyncio.run(use())  # the client's own session now belongs to this (ended) loop

    async def use_again() -> None:
        with anyio.fail_after(5), pytest.raises(ClientClosedError) as info:
            await use()
        assert "another event loop" in str(info.value)
        await client.aclose()  # still safe to call, from any loop
        with pytest.raises(ClientClosedError, match="closed"):
            await client.get_conversation(first)

    with warnings.catch_warnings():
        # The first loop ended with the client's session open: its sockets can no longer be
        # closed properly, and Python says so when they are collected.
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(use_again())
        gc.collect()


@pytest.mark.usefixtures("no_resource_warnings")
def test_one_client_per_loop_is_the_way(case: ProviderCase, free_port: int) -> None:
    async def use() -> str:
        async with (
            case.start(token=TOKEN, port=free_port) as fake,
            Client(case.name, token=TOKEN, base_url=fake.url) as client,
        ):
            return (await client.get_conversation(case.ids(fake)[0])).id

    assert asyncio.run(use()) == asyncio.run(use())


@pytest.mark.usefixtures("no_resource_warnings")
def test_a_client_closed_in_one_loop_says_closed_in_the_next(
    case: ProviderCase, free_port: int
) -> None:
    prefix = case.start().url_prefix
    client = Client(case.name, token=TOKEN, base_url=f"http://127.0.0.1:{free_port}{prefix}")

    async def use() -> None:
        async with case.start(token=TOKEN, port=free_port) as fake, client:
            await client.get_conversation(case.ids(fake)[0])

    asyncio.run(use())
    with pytest.raises(ClientClosedError, match="this client is closed"):
        asyncio.run(use())
