"""Every argument of batches, the constructor, ``with_options``, ``RateLimit``, ``RetryPolicy``
and ``RedisStore``, given wrong types and out-of-range values (see ``test_arguments.py``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tests.support.arguments import (
    BAD_LOOP_IDS,
    BAD_REPR,
    BAD_UUIDS,
    BAD_WEMASY_IDS,
    HUGE,
    OPAQUE,
    PROVIDERS,
    TOKEN,
    assert_names,
    existing_id,
    ids_of,
    module_loop,
)
from wemasy_async import Client, InvalidRequestError, RateLimit, RetryPolicy
from wemasy_async.batch import FetchResult
from wemasy_async.providers.wemasy import WemasyProvider
from wemasy_async.redis import RedisStore
from wemasy_async.testing import FakeServer

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
