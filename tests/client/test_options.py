"""``Client(rate_limit=, retry=, timeout=)`` and ``Client.with_options(timeout=, retry=)``."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from wemasy_async import (
    DEFAULT_TIMEOUT,
    APITimeoutError,
    Client,
    ClientClosedError,
    InternalServerError,
    InvalidRequestError,
    RateLimitError,
)
from wemasy_async.ratelimit import RateLimit
from wemasy_async.retry import RetryPolicy
from wemasy_async.testing import FakeWemasy

TOKEN = "options-token"
GET = "/services/ai/v1/conversations/get"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=9, conversations=10, token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(fake: FakeWemasy) -> AsyncIterator[Client]:
    async with Client("wemasy", base_url=fake.url, token=TOKEN) as c:
        yield c


# --- Constructor arguments -----------------------------------------------------------------------
#
# Every bad value of every argument is in tests/contract/test_arguments_options.py; the values
# here are the ones it does not try.


@pytest.mark.parametrize("value", ["fast", 3])
def test_client_rejects_a_bad_rate_limit(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", token=TOKEN, rate_limit=value)  # type: ignore[arg-type]
    assert info.value.argument == "rate_limit"


@pytest.mark.parametrize("value", [3])
def test_client_rejects_a_bad_retry(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", token=TOKEN, retry=value)  # type: ignore[arg-type]
    assert info.value.argument == "retry"


def test_client_settings_are_taken_as_given() -> None:
    policy = RetryPolicy(max_attempts=2)
    config = RateLimit(window=5.0)
    client = Client(
        "wemasy",
        token="settings-token",
        base_url="https://settings.test/api",
        retry=policy,
        rate_limit=config,
        timeout=3,
    )
    options = client._engine.options
    assert options.retry is policy
    assert options.limiter is not None
    assert options.limiter.config is config
    assert options.timeout == 3.0


def test_client_defaults() -> None:
    client = Client("wemasy", token="defaults-token", base_url="https://defaults.test/api")
    options = client._engine.options
    assert options.timeout == DEFAULT_TIMEOUT == 60.0
    assert options.retry == RetryPolicy()
    assert options.limiter is not None
    assert options.limiter.config == RateLimit()
    off = Client("wemasy", token="defaults-token", retry=False, rate_limit=False, timeout=None)
    assert (off._engine.options.retry, off._engine.options.limiter) == (None, None)
    assert off._engine.options.timeout is None


# --- with_options: validation --------------------------------------------------------------------


# The other bad values: tests/contract/test_arguments_options.py.
@pytest.mark.parametrize("value", [3])
async def test_with_options_rejects_a_bad_retry(
    client: Client, fake: FakeWemasy, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.with_options(retry=value)  # type: ignore[arg-type]
    assert info.value.argument == "retry"
    assert fake.requests == []


async def test_with_options_leaves_unnamed_settings_alone(client: Client) -> None:
    copy = client.with_options()
    assert copy._engine.options == client._engine.options
    assert client.with_options(timeout=None)._engine.options.timeout is None
    assert client.with_options(timeout=2)._engine.options.retry is client._engine.options.retry
    policy = RetryPolicy(max_attempts=7)
    assert client.with_options(retry=policy)._engine.options.retry is policy
    assert client.with_options(retry=True)._engine.options.retry == RetryPolicy()
    assert client._engine.options.timeout == DEFAULT_TIMEOUT


# --- with_options: behaviour ---------------------------------------------------------------------


async def test_timeout_applies_to_the_copy_only(fake: FakeWemasy) -> None:
    async with Client("wemasy", base_url=fake.url, token=TOKEN, retry=False) as original:
        short = original.with_options(timeout=0.2)
        fake.queue_delay(0.6, path=GET, times=2)
        with pytest.raises(APITimeoutError):
            await short.get_conversation(1)
        conversation = await original.get_conversation(1)  # 60 s timeout: waits it out
    assert conversation.id == "1"
    assert original._engine.options.timeout == DEFAULT_TIMEOUT
    assert len(fake.requests_to(GET)) == 2


async def test_timeout_of_the_copy_with_retries(fake: FakeWemasy) -> None:
    # With retries on, each attempt gets the copy's timeout, then the retry succeeds.
    async with Client("wemasy", base_url=fake.url, token=TOKEN) as original:
        fake.queue_delay(1.0, path=GET)
        assert (await original.with_options(timeout=0.2).get_conversation(2)).id == "2"
    assert len(fake.requests_to(GET)) == 2


async def test_retry_false_applies_to_the_copy_only(client: Client, fake: FakeWemasy) -> None:
    once = client.with_options(retry=False)
    fake.queue_error(500, path=GET)
    with pytest.raises(InternalServerError):
        await once.get_conversation(1)
    assert len(fake.requests_to(GET)) == 1
    fake.queue_error(500, path=GET)
    assert (await client.get_conversation(1)).id == "1"  # the original still retries
    assert [r.status for r in fake.requests_to(GET)] == [500, 500, 200]


async def test_retry_policy_of_the_copy(client: Client, fake: FakeWemasy) -> None:
    fake.queue_error(503, path=GET, times=5)
    with pytest.raises(InternalServerError):
        await client.with_options(retry=RetryPolicy(max_attempts=2)).get_conversation(1)
    assert len(fake.requests_to(GET)) == 2


async def test_the_copy_shares_the_session_and_the_limiter(client: Client) -> None:
    copy = client.with_options(timeout=5, retry=False)
    transport = client._engine.transport
    assert copy._engine.transport is transport
    assert copy._engine.options.limiter is client._engine.options.limiter
    await client.get_conversation(1)
    session = transport._owned  # type: ignore[attr-defined]
    assert session is not None
    await copy.get_conversation(2)
    assert transport._owned is session  # type: ignore[attr-defined]
    assert copy._transport is None  # borrowed, not owned
    assert not session.closed


async def test_a_pause_from_the_copy_holds_the_original(fake: FakeWemasy) -> None:
    config = RateLimit(window=1.0)
    async with Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config) as original:
        await original.get_conversation(1)
        copy = original.with_options(retry=False)
        fake.queue_error(429, path=GET, headers={"Retry-After": "0.5"})
        with pytest.raises(RateLimitError):
            await copy.get_conversation(2)
        await original.get_conversation(3)
    _, limited, after = fake.requests_to(GET)
    assert limited.status == 429
    assert after.received_at - limited.received_at >= 0.5 - 0.01


async def test_limiter_waiting_does_not_count_against_the_timeout(fake: FakeWemasy) -> None:
    config = RateLimit(window=1.0)
    client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=config, timeout=0.3)
    async with client:
        await client.get_conversation(1)
        fake.queue_error(429, path=GET, headers={"Retry-After": "0.6"})
        # The retry waits 0.6 s in the limiter, longer than the 0.3 s timeout, and succeeds.
        assert (await client.get_conversation(2)).id == "2"
    _, limited, retried = fake.requests_to(GET)
    assert retried.received_at - limited.received_at >= 0.6 - 0.01


async def test_closing_the_copy_leaves_the_original_open(client: Client, fake: FakeWemasy) -> None:
    async with client.with_options(timeout=5) as copy:
        await copy.get_conversation(1)
    with pytest.raises(ClientClosedError):
        await copy.get_conversation(1)
    assert (await client.get_conversation(2)).id == "2"
    session = client._engine.transport._owned  # type: ignore[attr-defined]
    assert session is not None
    assert not session.closed
    assert len(fake.requests_to(GET)) == 2


async def test_the_copy_of_a_closed_client_raises_and_opens_no_session(
    fake: FakeWemasy,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        original = Client("wemasy", base_url=fake.url, token=TOKEN)
        copy = original.with_options(timeout=5)
        await original.get_conversation(1)
        await original.aclose()
        with pytest.raises(ClientClosedError):
            await copy.get_conversation(1)
        with pytest.raises(ClientClosedError):
            await copy.chat("hello")
        with pytest.raises(ClientClosedError):
            await original.with_options(retry=False).get_conversation(1)
        transport = original._engine.transport
        assert transport._owned is None  # type: ignore[attr-defined]
        del original, copy, transport
        gc.collect()
        await anyio.lowlevel.checkpoint()
    assert [str(w.message) for w in caught] == []
    assert len(fake.requests_to(GET)) == 1


async def test_copy_made_before_first_use_of_a_closed_client_opens_no_session(
    fake: FakeWemasy,
) -> None:
    # The original never made a session; the copy must not make one after close either.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        original = Client("wemasy", base_url=fake.url, token=TOKEN)
        copy = original.with_options(retry=False)
        await original.aclose()
        with pytest.raises(ClientClosedError):
            await copy.get_conversation(1)
        assert original._engine.transport._owned is None  # type: ignore[attr-defined]
        del original, copy
        gc.collect()
        await anyio.lowlevel.checkpoint()
    assert [str(w.message) for w in caught] == []
    assert fake.requests == []


async def test_the_copy_uses_a_callers_session_and_never_closes_it(fake: FakeWemasy) -> None:
    async with aiohttp.ClientSession() as session:
        original = Client("wemasy", base_url=fake.url, token=TOKEN, session=session)
        async with original.with_options(retry=False) as copy:
            await copy.get_conversation(1)
        await original.aclose()
        assert not session.closed
    assert len(fake.requests_to(GET)) == 1


async def test_the_limiter_is_visible_and_shared_by_clients_of_one_key(fake: FakeWemasy) -> None:
    async with (
        Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0)) as a,
        Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=1.0)) as b,
        Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=False) as off,
    ):
        assert off.limiter is None
        limiter = a.limiter
        assert limiter is not None
        assert b.limiter is limiter  # one key, one pace
        assert a.with_options(timeout=5.0).limiter is limiter
        assert not limiter.shared  # in process
        assert limiter.allowed_rate is None  # nothing told yet
        await a.get_conversation(1)
        # The fake announces its limit: the pace is known, L - 1 per window at most.
        assert limiter.allowed_rate is not None
        assert 0 < limiter.allowed_rate < fake.rate_limit / 1.0
        assert limiter.paused_for() == 0.0
