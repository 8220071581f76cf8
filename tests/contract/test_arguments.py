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
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.cases import NAMES
from wemasy_async import (
    Client,
    InvalidRequestError,
    RateLimit,
    RetryPolicy,
    UnsupportedOperationError,
)
from wemasy_async.batch import FetchResult
from wemasy_async.providers.wemasy import WemasyProvider
from wemasy_async.redis import RedisStore
from wemasy_async.testing import FakeLoop, FakeServer, FakeSiteAssist, FakeWemasy

TOKEN = "test-token"
PROVIDERS = NAMES
UUID_TEXT = "6f1c2b9e-4d3a-4e8b-9c7d-2a1b3c4d5e6f"

module_loop = pytest.mark.asyncio(loop_scope="module")


class Opaque:
    """Some object no argument accepts."""

    def __repr__(self) -> str:
        return "<Opaque>"


OPAQUE = Opaque()


class BadRepr:
    """An object whose ``repr`` fails: an error message about it must still be built."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


BAD_REPR = BadRepr()
HUGE = 10**5000  # repr() refuses ints of more than 4,300 digits


def cyclic() -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object"}
    parameters["self"] = parameters
    return parameters


# --- The fakes and clients (one of each per provider for the module) ------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fakes() -> AsyncIterator[dict[str, FakeServer]]:
    async with (
        FakeWemasy(seed=1, conversations=5) as wemasy,
        FakeSiteAssist(seed=1, conversations=5) as siteassist,
        FakeLoop(seed=1, conversations=5, long_conversations=0) as loop,
    ):
        yield {"wemasy": wemasy, "siteassist": siteassist, "loop": loop}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(fakes: dict[str, FakeServer]) -> AsyncIterator[dict[str, Client]]:
    made = {name: Client(name, token=TOKEN, base_url=fake.url) for name, fake in fakes.items()}
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


@pytest.fixture
def quiet(fakes: dict[str, FakeServer]) -> Iterator[dict[str, FakeServer]]:
    """The fakes with empty request logs; asserts they are still empty afterwards."""
    for fake in fakes.values():
        fake.reset_log()
    yield fakes
    for name, fake in fakes.items():
        assert fake.requests == [], f"{name} was sent {fake.requests}"


def existing_id(fakes: dict[str, FakeServer], provider: str) -> Any:
    fake: Any = fakes[provider]
    if provider == "wemasy":
        return min(fake.conversations)
    return fake.conversation_ids[0]


def assert_names(error: InvalidRequestError, argument: str) -> None:
    assert error.argument == argument, f"argument={error.argument!r}, expected {argument!r}"
    assert argument in str(error), f"{argument!r} not in message {str(error)!r}"


# --- Bad values --------------------------------------------------------------------------------

NOT_AN_INT = [True, False, 1.0, 27.5, math.nan, math.inf, "5", b"5", [5], None, OPAQUE, BAD_REPR]
OUT_OF_RANGE_COUNTS = [0, -1, 2**63, 2**64, 10**400, HUGE, -HUGE]

BAD_WEMASY_IDS = [
    True,
    False,
    0,
    -1,
    2**63,
    2**64,
    27.0,
    27.5,
    math.nan,
    math.inf,
    "",
    " 27",
    "27 ",
    "+27",
    "-27",
    "27.0",
    "1e3",
    "٢٧",  # Arabic-Indic digits: str.isdigit() says yes
    "２７",  # fullwidth digits
    "27\n",
    "27\r\nX-Injected: 1",
    "27\x00",
    "../27",
    "27/../1",
    "27?x=1",
    "27#f",
    "1" * 20,
    uuid.UUID(UUID_TEXT),  # a UUID is not a Wemasy id
    UUID_TEXT,
    b"27",
    [27],
    {"id": 27},
    Decimal(27),
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_UUIDS = [
    27,
    True,
    0,
    "",
    "not-a-uuid",
    UUID_TEXT.replace("-", ""),
    "{" + UUID_TEXT + "}",
    "urn:uuid:" + UUID_TEXT,
    UUID_TEXT + "\n",
    " " + UUID_TEXT,
    UUID_TEXT + "/..",
    UUID_TEXT + "?x=1",
    UUID_TEXT[:-1],
    UUID_TEXT[:-1] + "g",
    UUID_TEXT.replace("6", "６", 1),  # fullwidth digit
    "../" + UUID_TEXT,
    UUID_TEXT.encode(),
    [UUID_TEXT],
    uuid.UUID(UUID_TEXT).int,
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_LOOP_IDS = [
    27,
    True,
    "",
    ".",
    "..",
    "a\nb",
    "a\r\nHost: evil",
    "a b",
    "a\tb",
    "\x00",
    "a\u200bb",  # zero-width space (format character)
    "a\u2028b",  # line separator
    "\ud800",  # lone surrogate
    "x" * 257,
    b"conv",
    ["conv"],
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_NAMES = [  # agent_id, model, tool_call_id: one-line names
    "",
    "   ",
    "\n",
    5,
    True,
    b"chat",
    ["chat"],
    "chat\n",
    "chat\r\nX-Injected: 1",
    "chat\x00",
    "chat\x7f",
    "chat\x85",  # C1 NEL
    "\ud800",
    OPAQUE,
    BAD_REPR,
]
BAD_TEXTS = ["", "   ", "\n\t", 5, True, b"hi", ["hi"], "\ud800", "hi \udfff", OPAQUE, BAD_REPR]
BAD_TEMPERATURES = [
    -0.1,
    -1,
    2.01,
    3,
    math.nan,
    math.inf,
    -math.inf,
    2**1100,
    True,
    "0.7",
    b"0.7",
    [0.7],
    Decimal("0.7"),
    OPAQUE,
    BAD_REPR,
    HUGE,
]
BAD_BOOLS = [1, 0, "true", "yes", b"1", [True], OPAQUE, BAD_REPR]
GOOD_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
BAD_TOOLS: list[tuple[object, str]] = [
    ("get_weather", "tools"),
    (b"tools", "tools"),
    (5, "tools"),
    (True, "tools"),
    (GOOD_TOOL, "tools"),  # one tool, not a list of them
    ((t for t in [GOOD_TOOL]), "tools"),  # a generator is not a sequence
    ([5], "tools[0]"),
    (["get_weather"], "tools[0]"),
    ([None], "tools[0]"),
    ([{"function": {"name": "f"}}], "tools[0]['type']"),
    ([{"type": "fn", "function": {"name": "f"}}], "tools[0]['type']"),
    ([{"type": "function"}], "tools[0]['function']"),
    ([{"type": "function", "function": "f"}], "tools[0]['function']"),
    ([{"type": "function", "function": {}}], "tools[0]['function']['name']"),
    ([{"type": "function", "function": {"name": ""}}], "tools[0]['function']['name']"),
    ([{"type": "function", "function": {"name": 5}}], "tools[0]['function']['name']"),
    ([{"type": "function", "function": {"name": "f\nx"}}], "tools[0]['function']['name']"),
    (
        [{"type": "function", "function": {"name": "f", "parameters": 5}}],
        "tools[0]['function']['parameters']",
    ),
    ([GOOD_TOOL, {"type": "function", "function": {"name": ""}}], "tools[1]['function']['name']"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"x": OPAQUE}}}], "tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"x": "\ud800"}}}], "tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": cyclic()}}], "tools"),
]


# --- The cases ---------------------------------------------------------------------------------

Call = Callable[[Client, Any], Awaitable[object]]


def cases_for_reads(provider: str) -> list[tuple[str, str, object]]:
    bad_ids = {"wemasy": BAD_WEMASY_IDS, "siteassist": BAD_UUIDS, "loop": BAD_LOOP_IDS}[provider]
    found: list[tuple[str, str, object]] = [
        ("get_conversation", "conversation_id", value) for value in [None, *bad_ids]
    ]
    found += [("list_messages", "conversation_id", value) for value in [None, *bad_ids]]
    found += [
        ("list_messages", "limit", value)
        for value in [*NOT_AN_INT, *OUT_OF_RANGE_COUNTS]
        if value is not None  # None is "all of them"
    ]
    return found


WEMASY_LIST_CASES: list[tuple[str, object]] = [
    *[("agent_id", value) for value in BAD_NAMES],
    *[("search", value) for value in BAD_NAMES],
    *[("per_page", value) for value in [*NOT_AN_INT, 0, -1, 101, 2**64]],
    *[("page", value) for value in [*NOT_AN_INT, *OUT_OF_RANGE_COUNTS]],
]

CHAT_CASES: list[tuple[dict[str, Any], str]] = [
    *[({"message": value}, "message") for value in BAD_TEXTS],
    *[({"conversation_id": value}, "conversation_id") for value in BAD_WEMASY_IDS],
    *[({"connection_id": value}, "connection_id") for value in BAD_WEMASY_IDS],
    *[({"model": value}, "model") for value in BAD_NAMES],
    *[({"temperature": value}, "temperature") for value in BAD_TEMPERATURES],
    *[
        ({"max_tokens": value}, "max_tokens")
        for value in [*NOT_AN_INT, *OUT_OF_RANGE_COUNTS]
        if value is not None
    ],
    *[({"use_tools": value}, "use_tools") for value in BAD_BOOLS],
    *[({"tools": value}, argument) for value, argument in BAD_TOOLS],
    *[
        ({"conversation_id": 1, "tool_call_id": value, "tool_result": "18°C"}, "tool_call_id")
        for value in BAD_NAMES
    ],
    *[
        ({"conversation_id": 1, "tool_call_id": "call_1", "tool_result": value}, "tool_result")
        for value in BAD_TEXTS
    ],
    # Combinations: what belongs together, and what chat needs at least.
    ({"message": None}, "message"),
    ({"message": None, "model": "gpt-4o", "conversation_id": 1}, "message"),
    ({"conversation_id": 1, "tool_call_id": "call_1"}, "tool_result"),
    ({"conversation_id": 1, "tool_result": "18°C"}, "tool_call_id"),
    ({"message": None, "tool_call_id": "call_1", "tool_result": "18°C"}, "conversation_id"),
    ({"tool_call_id": "call_1", "tool_result": "18°C"}, "conversation_id"),
]


def ids_of(value: object) -> str:
    """A short test id for one parameter value."""
    try:
        shown = repr(value)
    except Exception:  # BAD_REPR, HUGE
        return f"<{type(value).__name__} without a repr>"
    return shown if len(shown) <= 40 else shown[:37] + "..."


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


# --- Batches ----------------------------------------------------------------------------------

BATCH_CASES: list[tuple[str, object]] = [
    *[("ids", value) for value in [5, None, "27", b"27", 2.5, OPAQUE]],
    *[
        (name, value)
        for name in ["concurrency", "max_concurrency"]
        for value in [0, -1, 1001, 2**64, HUGE, True, False, 1.5, math.nan, "16", [16]]
    ],
    ("max_concurrency", None),  # None means "tuned" for concurrency only
    *[("progress", value) for value in [5, "print", b"x", OPAQUE, BAD_REPR, [print]]],
]


@module_loop
@pytest.mark.parametrize("method", ["fetch_conversations", "fetch_messages"])
@pytest.mark.parametrize(("argument", "value"), BATCH_CASES, ids=ids_of)
async def test_batches_refuse_bad_arguments_at_call_time(
    clients: dict[str, Client],
    quiet: dict[str, FakeServer],
    method: str,
    argument: str,
    value: object,
) -> None:
    kwargs: dict[str, Any] = {"ids": [1, 2], argument: value}
    with pytest.raises(InvalidRequestError) as info:
        getattr(clients["wemasy"], method)(**kwargs)
    assert_names(info.value, argument)


@module_loop
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("method", ["fetch_conversations", "fetch_messages"])
async def test_bad_ids_in_a_batch_fail_alone_without_a_request(
    clients: dict[str, Client], fakes: dict[str, FakeServer], provider: str, method: str
) -> None:
    good = existing_id(fakes, provider)
    bad = {"wemasy": BAD_WEMASY_IDS, "siteassist": BAD_UUIDS, "loop": BAD_LOOP_IDS}[provider]
    fakes[provider].reset_log()

    async def ids() -> AsyncIterator[object]:  # async iterables are consumed lazily too
        yield good
        for value in bad:
            yield value

    results: list[FetchResult[Any]] = []
    async with getattr(clients[provider], method)(ids(), concurrency=4) as batch:
        async for result in batch:
            results.append(result)
    assert len(results) == 1 + len(bad)
    failed = [r for r in results if not r.ok]
    assert len(failed) == len(bad)
    for result in failed:
        assert isinstance(result.error, InvalidRequestError), result
        assert_names(result.error, "conversation_id")
    # Only the good id reached the server.
    assert len(fakes[provider].requests) == 1


# --- The constructor and with_options ---------------------------------------------------------

CONSTRUCTOR_CASES: list[tuple[str, object]] = [
    *[
        ("provider", value)
        for value in [None, 1, "", "openai", "WEMASY", " wemasy", b"wemasy", ["wemasy"], BAD_REPR]
    ],
    ("provider", WemasyProvider),  # the class, not an instance
    *[
        ("token", value)
        for value in ["", " ", 5, b"tok", ["tok"], "to ken", "tok\n", "tök", "tok\x00", BAD_REPR]
    ],
    *[
        ("base_url", value)
        for value in [
            5,
            b"https://api.wemasy.nl/api",
            "",
            "api.wemasy.nl",
            "ftp://api.wemasy.nl",
            "https://",
            "https://api.wemasy.nl:0/api",
            "https://api.wemasy.nl:65536/api",
            "https://api.wemasy.nl/api?",
            "https://api.wemasy.nl/api#",
            "https://api.wemasy.nl/../api",
            "https://api.wemasy.nl/api/.",
            "https://api.wemasy.nl\n.evil.example/api",
            "https://api.wemasy.nl\t/api",
            "https://api.wemasy.nl/a pi",
            "https://api.wemasy.nl/api\x00",
            "https://api.wemasy.nl/\ud800",
            "http://api.wemasy.nl/api",  # plain http on a non-loopback host
            ["https://api.wemasy.nl/api"],
            BAD_REPR,
        ]
    ],
    *[("session", value) for value in ["session", 1, OPAQUE, True, BAD_REPR]],
    *[
        ("timeout", value)
        for value in [0, -1, math.nan, math.inf, -math.inf, 2**1100, HUGE, True, "5", OPAQUE]
    ],
    *[("rate_limit", value) for value in ["yes", 1, 0, None, 1.0, {}, RetryPolicy(), BAD_REPR]],
    *[("retry", value) for value in ["yes", 1, 0, None, 1.0, {}, RateLimit(), BAD_REPR]],
    *[
        ("max_response_bytes", value)
        for value in [0, -1, -HUGE, True, 1.5, math.inf, "1024", None, OPAQUE, BAD_REPR]
    ],
    *[("allow_http", value) for value in [1, 0, "yes", None, OPAQUE, BAD_REPR]],
]


@pytest.mark.parametrize(("argument", "value"), CONSTRUCTOR_CASES, ids=ids_of)
def test_client_constructor_refuses_bad_arguments(
    argument: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEMASY_API_TOKEN", raising=False)
    kwargs: dict[str, Any] = {"provider": "wemasy", "token": TOKEN, argument: value}
    with pytest.raises(InvalidRequestError) as info:
        Client(**kwargs)
    assert_names(info.value, argument)


def test_client_constructor_refuses_a_missing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for provider in PROVIDERS:
        monkeypatch.delenv(f"{provider.upper()}_API_TOKEN", raising=False)
        with pytest.raises(InvalidRequestError) as info:
            Client(provider)
        assert_names(info.value, "token")


async def test_client_constructor_accepts_boundary_values() -> None:
    async with aiohttp.ClientSession() as session:
        for kwargs in [
            {"timeout": None},
            {"timeout": 1e-3},
            {"timeout": 10**6},
            {"max_response_bytes": 1},
            {"max_response_bytes": 2**40},
            {"base_url": "http://api.wemasy.nl/api", "allow_http": True},
            {"base_url": "http://[::1]:8080/api"},
            {"base_url": "HTTPS://API.WEMASY.NL/api/"},
            {"session": session},
            {"rate_limit": False, "retry": False},
        ]:
            await Client("wemasy", token=TOKEN, **kwargs).aclose()


WITH_OPTIONS_CASES: list[tuple[str, object]] = [
    *[("timeout", value) for value in [0, -1, math.nan, math.inf, 2**1100, True, "5", OPAQUE]],
    *[("retry", value) for value in ["yes", 1, None, RateLimit(), OPAQUE]],
]


@module_loop
@pytest.mark.parametrize(("argument", "value"), WITH_OPTIONS_CASES, ids=ids_of)
async def test_with_options_refuses_bad_arguments(
    clients: dict[str, Client], quiet: dict[str, FakeServer], argument: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        clients["wemasy"].with_options(**{argument: value})
    assert_names(info.value, argument)


# --- RateLimit, RetryPolicy, RedisStore -------------------------------------------------------

SECONDS_OUT_OF_RANGE = [math.nan, math.inf, -math.inf, 86_401, 1e308, 2**1100, HUGE]
NOT_A_NUMBER = [True, False, "1", b"1", [1], None, Decimal(1), OPAQUE, BAD_REPR]

RATE_LIMIT_CASES: list[tuple[str, object]] = [
    *[("window", value) for value in [0, -1, *SECONDS_OUT_OF_RANGE, *NOT_A_NUMBER]],
    *[
        ("margin", value)
        for value in [-0.001, -1, *SECONDS_OUT_OF_RANGE, *NOT_A_NUMBER]
        if value is not None
    ],
    *[
        ("ceiling", value)
        for value in [0, -1, 2**63, 2**64, HUGE, 1.5, 2.0, True, False, "5", OPAQUE, BAD_REPR]
    ],
    *[("store", value) for value in ["redis://localhost", 5, True, OPAQUE, {}]],
    *[("pause_without_hint", value) for value in [0, -1, *SECONDS_OUT_OF_RANGE, *NOT_A_NUMBER]],
]


@pytest.mark.parametrize(("argument", "value"), RATE_LIMIT_CASES, ids=ids_of)
def test_rate_limit_refuses_bad_arguments(argument: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RateLimit(**{argument: value})
    assert_names(info.value, argument)


def test_rate_limit_accepts_boundary_values() -> None:
    assert RateLimit(window=86_400, margin=86_400, pause_without_hint=86_400).window == 86_400
    assert RateLimit(window=1e-3, margin=0, ceiling=2**63 - 1).ceiling == 2**63 - 1
    assert RateLimit(window=10, margin=20).pacing_margin == 20  # a margin may exceed the window


RETRY_CASES: list[tuple[str, object]] = [
    *[("max_attempts", value) for value in [0, -1, 1.5, 2.0, *NOT_A_NUMBER]],
    *[
        (name, value)
        for name in ("initial_backoff", "max_backoff", "max_retry_after")
        for value in [-0.1, -1, *SECONDS_OUT_OF_RANGE, *NOT_A_NUMBER]
    ],
    *[
        ("statuses", value)
        for value in [
            "429",
            b"429",
            429,
            None,
            OPAQUE,
            [429, "500"],
            [429, 500.0],
            {True},
            {99},
            {600},
            {-429},
            [None],
            [[429]],  # unhashable
            [HUGE],
            [BAD_REPR],
        ]
    ],
]


@pytest.mark.parametrize(("argument", "value"), RETRY_CASES, ids=ids_of)
def test_retry_policy_refuses_bad_arguments(argument: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RetryPolicy(**{argument: value})
    assert_names(info.value, argument)


def test_retry_policy_accepts_boundary_values() -> None:
    policy = RetryPolicy(
        max_attempts=1,
        initial_backoff=0,
        max_backoff=86_400,
        max_retry_after=86_400,
        statuses=[429, 503],  # any iterable; kept as a frozenset
    )
    assert policy.statuses == frozenset({429, 503})
    assert RetryPolicy(statuses=frozenset()).statuses == frozenset()


REDIS_CASES: list[tuple[str, object]] = [
    *[
        ("redis", value)
        for value in [
            42,
            None,
            True,
            b"redis://localhost",
            ["redis://localhost"],
            "http://localhost",
            "localhost:6379",
            "",
            "redis://localhost:99999/0",
            "redis://[::1",
            "redis://localhost/0?socket_timeout=soon",
            OPAQUE,
        ]
    ],
    *[("prefix", value) for value in ["", 5, None, b"p", ["p"], OPAQUE, BAD_REPR]],
    *[("fallback", value) for value in ["local", 5, True, OPAQUE, {}]],
    *[("fallback_share", value) for value in [0, -0.1, 1.01, 2, math.nan, *NOT_A_NUMBER]],
    *[
        (name, value)
        for name in ("timeout", "reconnect_interval")
        for value in [0, -1, *SECONDS_OUT_OF_RANGE, *NOT_A_NUMBER]
    ],
]


@pytest.mark.parametrize(("argument", "value"), REDIS_CASES, ids=ids_of)
def test_redis_store_refuses_bad_arguments(argument: str, value: object) -> None:
    kwargs: dict[str, Any] = {"redis": "redis://localhost:6379/0", argument: value}
    with pytest.raises(InvalidRequestError) as info:
        RedisStore(**kwargs)
    assert_names(info.value, argument)
