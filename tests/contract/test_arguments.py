"""Every argument of every public method, given wrong types and out-of-range values.

Each case is ``(method, argument, bad value)`` with every other argument valid. The call must
raise :class:`~wemasy_async.errors.InvalidRequestError` whose ``argument`` names the bad
argument and whose message names it too, and it must do so before any I/O: the clients
point at the fake provider servers, whose request logs stay empty. Valid boundary values are
checked to go through (so the checks are not simply refusing everything).

Limits from the provider docs (``/work/shared/api-docs/``): Wemasy ``per_page`` 1 to 100,
``temperature`` 0 to 2, ``max_tokens`` at least 1, ids are integers; SiteAssist ids are
UUIDs; Loop ids are path segments (at most 256 characters here). Integers sent to a server
are at most ``2**63 - 1``.

The reads, listing and chat are here; batches, the constructor, ``with_options``,
``RateLimit``, ``RetryPolicy`` and ``RedisStore`` in ``test_arguments_options.py``. The
fakes and clients (one of each per provider for a module) are fixtures in ``conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.support.arguments import (
    CHAT_CASES,
    GOOD_TOOL,
    PROVIDERS,
    WEMASY_LIST_CASES,
    assert_names,
    cases_for_reads,
    existing_id,
    ids_of,
    module_loop,
)
from wemasy_async import Client, InvalidRequestError, UnsupportedOperationError
from wemasy_async.testing import FakeServer

# --- Reads: every provider --------------------------------------------------------------------

READ_CASES = [(provider, *case) for provider in PROVIDERS for case in cases_for_reads(provider)]


@module_loop
@pytest.mark.parametrize(("provider", "method", "argument", "value"), READ_CASES, ids=ids_of)
async def test_reads_refuse_bad_arguments(
    clients: dict[str, Client],
    quiet: dict[str, FakeServer],
    provider: str,
    method: str,
    argument: str,
    value: object,
) -> None:
    client = clients[provider]
    some_id = existing_id(quiet, provider)
    pending: Awaitable[object]  # the methods check their arguments when awaited
    if method == "get_conversation":
        pending = client.get_conversation(value)  # type: ignore[arg-type]
    elif argument == "conversation_id":
        pending = client.list_messages(value)  # type: ignore[arg-type]
    else:
        pending = client.list_messages(some_id, limit=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as info:
        await pending
    assert_names(info.value, argument)


@module_loop
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reads_accept_boundary_values(
    clients: dict[str, Client], fakes: dict[str, FakeServer], provider: str
) -> None:
    client = clients[provider]
    some_id = existing_id(fakes, provider)
    fakes[provider].reset_log()
    assert (await client.get_conversation(some_id)).id == str(some_id)
    assert len(await client.list_messages(some_id, limit=1)) == 1
    await client.list_messages(some_id, limit=2**63 - 1)
    await client.list_messages(some_id, limit=None)
    if provider == "wemasy":
        await client.get_conversation(str(some_id))
    if provider == "siteassist":
        await client.get_conversation(uuid.UUID(some_id))
        await client.get_conversation(some_id.upper())
    assert len(fakes[provider].requests) >= 4


@module_loop
async def test_largest_wemasy_id_is_sent(
    clients: dict[str, Client], fakes: dict[str, FakeServer]
) -> None:
    # 2**63 - 1 is a valid id (the server answers 404); 2**63 is refused above.
    fakes["wemasy"].reset_log()
    with pytest.raises(Exception, match="not found") as info:
        await clients["wemasy"].get_conversation(2**63 - 1)
    assert not isinstance(info.value, InvalidRequestError)
    assert len(fakes["wemasy"].requests) == 1


# --- Listing (Wemasy) -------------------------------------------------------------------------


@module_loop
@pytest.mark.parametrize(("argument", "value"), WEMASY_LIST_CASES, ids=ids_of)
async def test_list_conversations_refuses_bad_arguments(
    clients: dict[str, Client], quiet: dict[str, FakeServer], argument: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await clients["wemasy"].list_conversations(**{argument: value})
    assert_names(info.value, argument)


@module_loop
@pytest.mark.parametrize(
    ("argument", "value"), [case for case in WEMASY_LIST_CASES if case[0] != "page"], ids=ids_of
)
async def test_iter_conversations_refuses_bad_arguments_at_call_time(
    clients: dict[str, Client], quiet: dict[str, FakeServer], argument: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        clients["wemasy"].iter_conversations(**{argument: value})  # not awaited, not iterated
    assert_names(info.value, argument)


@module_loop
async def test_list_conversations_accepts_boundary_values(
    clients: dict[str, Client], fakes: dict[str, FakeServer]
) -> None:
    client = clients["wemasy"]
    fakes["wemasy"].reset_log()
    for kwargs in [
        {"per_page": 1},
        {"per_page": 100},
        {"page": 2**63 - 1},
        {"agent_id": "chat-é", "search": "café \u00e9t\u00e9 SEO"},
        {"search": "a\u200bb"},  # a format character is not a control character
    ]:
        await client.list_conversations(**kwargs)
    assert len(fakes["wemasy"].requests) == 5
    assert [c async for c in client.iter_conversations(per_page=100)]


@module_loop
@pytest.mark.parametrize("provider", ["siteassist", "loop"])
async def test_unsupported_operations_fail_before_io(
    clients: dict[str, Client], quiet: dict[str, FakeServer], provider: str
) -> None:
    client = clients[provider]
    with pytest.raises(UnsupportedOperationError):
        await client.list_conversations(per_page=0)
    with pytest.raises(UnsupportedOperationError):
        client.iter_conversations(per_page=0)
    with pytest.raises(UnsupportedOperationError):
        await client.chat(None)


# --- Chat (Wemasy) ----------------------------------------------------------------------------


@module_loop
@pytest.mark.parametrize(("kwargs", "argument"), CHAT_CASES, ids=ids_of)
async def test_chat_refuses_bad_arguments(
    clients: dict[str, Client],
    quiet: dict[str, FakeServer],
    kwargs: dict[str, Any],
    argument: str,
) -> None:
    call = {"message": "hi", **kwargs}
    with pytest.raises(InvalidRequestError) as info:
        await clients["wemasy"].chat(**call)
    assert_names(info.value, argument)


@module_loop
async def test_chat_accepts_boundary_values(
    clients: dict[str, Client], fakes: dict[str, FakeServer]
) -> None:
    client = clients["wemasy"]
    fake: Any = fakes["wemasy"]
    fake.reset_log()
    some_id = existing_id(fakes, "wemasy")
    for kwargs in [
        {"temperature": 0},
        {"temperature": 2},
        {"temperature": 0.7},
        {"max_tokens": 1},
        {"max_tokens": 2**63 - 1},
        {"use_tools": False, "tools": []},
        {"use_tools": True, "tools": [GOOD_TOOL]},
        {"model": "gpt-4o"},
        {"conversation_id": str(some_id)},
    ]:
        await client.chat("hi", **kwargs)
    # Free text keeps its newlines and tabs: only names must be one line.
    await client.chat("line one\nline two\ttabbed")
    assert len(fake.requests) == 10
    assert fake.requests[-1].json["message"] == "line one\nline two\ttabbed"
