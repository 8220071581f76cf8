"""``client.with_raw_response``: each operation's value with its response's status, headers
(redacted), rate-limit headers, attempts and elapsed time."""

from __future__ import annotations

import pickle
import time
import traceback
from collections.abc import AsyncIterator

import anyio
import pytest
from multidict import CIMultiDictProxy

from tests.support.loopback import ForwardProxy, unpaced_client
from wemasy_async import (
    ClientClosedError,
    InternalServerError,
    NotFoundError,
    RateLimitInfo,
    RawResponse,
    RetryPolicy,
    UnsupportedOperationError,
)
from wemasy_async.client import Client, RawResponses
from wemasy_async.testing import FakeLoop, FakeWemasy

TOKEN = "raw-token-0123456789abcdef"
SECRET_PARTS = (TOKEN, "0123456789abcdef", "cookie-secret-42")


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=5, conversations=30, token=TOKEN) as server:
        yield server


def make_client(url: str, **kwargs: object) -> Client:
    return unpaced_client(url, TOKEN, **kwargs)


def texts_of(value: object) -> list[str]:
    """Every rendering of ``value``: str, repr, and its pickle's bytes and round trip."""
    data = pickle.dumps(value)
    return [str(value), repr(value), data.decode("latin-1"), repr(pickle.loads(data))]


async def test_each_operation_returns_its_value_with_the_response(fake: FakeWemasy) -> None:
    async with make_client(fake.url) as client:
        raw = client.with_raw_response
        pairs = [
            (await raw.get_conversation(3), await client.get_conversation(3)),
            (await raw.list_messages(3, limit=2), await client.list_messages(3, limit=2)),
            (
                await raw.list_conversations(per_page=5, page=2),
                await client.list_conversations(per_page=5, page=2),
            ),
        ]
        reply = await raw.chat("hello", model="gpt-4o")
    for got, expected in pairs:
        assert isinstance(got, RawResponse)
        assert got.value == expected
    assert reply.value.conversation_id
    for got in [*(p[0] for p in pairs), reply]:
        assert got.status == 200
        assert got.attempts == 1
        assert got.headers["Content-Type"].startswith("application/json")
        assert got.rate_limit == RateLimitInfo.from_headers(got.headers)
        assert got.rate_limit.limit == fake.rate_limit
        assert got.rate_limit.remaining is not None
        assert 0 < got.elapsed < 10


async def test_attempts_and_elapsed_cover_the_retries(fake: FakeWemasy) -> None:
    fake.queue_error(503, times=2)
    async with make_client(fake.url, retry=RetryPolicy(max_attempts=3)) as client:
        started = time.perf_counter()
        raw = await client.with_raw_response.get_conversation(4)
        took = time.perf_counter() - started
    assert raw.attempts == 3
    assert raw.status == 200  # the last response's
    assert len(fake.requests) == 3
    assert 0 < raw.elapsed <= took


async def test_a_failed_call_raises_as_on_the_normal_path(fake: FakeWemasy) -> None:
    async with make_client(fake.url) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.with_raw_response.get_conversation(999_999)
    assert caught.value.status == 404


async def test_the_headers_are_redacted_read_only_and_keep_repeats(fake: FakeWemasy) -> None:
    hostile = {
        "Set-Cookie": "sid=cookie-secret-42; HttpOnly",
        "Authorization": f"Bearer {TOKEN}",
        "X-Note": f"seen {TOKEN} here",
    }
    async with (
        ForwardProxy(add_headers=hostile, echo_authorization=True) as proxy,
        make_client(fake.url, proxy=proxy.url) as client,
    ):
        raw = await client.with_raw_response.get_conversation(2)
    assert proxy.seen  # it went through the proxy
    assert isinstance(raw.headers, CIMultiDictProxy)
    assert raw.headers["set-cookie"] == "[REDACTED]"
    assert raw.headers["Authorization"] == "[REDACTED]"
    assert raw.headers["X-Note"] == "seen [REDACTED] here"
    assert raw.headers["X-Echo"] == "Bearer [REDACTED]"
    with pytest.raises(TypeError):
        raw.headers["X-New"] = "1"  # type: ignore[index]
    with pytest.raises(AttributeError):
        raw.status = 500  # type: ignore[misc]  # frozen
    for text in texts_of(raw):
        assert not any(part in text for part in SECRET_PARTS), text


async def test_a_raw_response_pickles_with_its_headers(fake: FakeWemasy) -> None:
    fake.queue_error(200, body=b'{"success": true, "data": []}', headers={"X-A": "1"})
    async with make_client(fake.url) as client:
        raw = await client.with_raw_response.list_conversations()
    copy = pickle.loads(pickle.dumps(raw))
    assert copy == raw
    assert isinstance(copy.headers, CIMultiDictProxy)
    assert copy.headers["x-a"] == "1"


async def test_concurrent_raw_calls_keep_their_own_counts(fake: FakeWemasy) -> None:
    fake.queue_error(500)
    results: dict[int, RawResponse[object]] = {}
    async with make_client(fake.url) as client:

        async def one(i: int) -> None:
            results[i] = await client.with_raw_response.get_conversation(i)

        async with anyio.create_task_group() as group:
            for i in range(1, 9):
                group.start_soon(one, i)
    assert sorted(r.attempts for r in results.values()) == [1] * 7 + [2]
    assert {r.value.id for r in results.values()} == {str(i) for i in range(1, 9)}  # type: ignore[attr-defined]


async def test_on_a_copy_and_after_close(fake: FakeWemasy) -> None:
    client = make_client(fake.url)
    copy = client.with_options(extra_headers={"X-Copy": "1"})
    raw = await copy.with_raw_response.get_conversation(1)
    assert raw.value.id == "1"
    assert fake.requests[-1].headers["X-Copy"] == "1"
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.with_raw_response.get_conversation(1)
    assert "with_raw_response" not in repr(client)
    assert repr(client) in repr(client.with_raw_response)


async def test_a_provider_without_the_operation_still_says_so() -> None:
    async with FakeLoop(seed=1) as fake, Client("loop", base_url=fake.url, token="t") as client:
        with pytest.raises(UnsupportedOperationError):
            await client.with_raw_response.list_conversations()
        raw = await client.with_raw_response.list_messages(fake.conversation_ids[0])
    assert raw.status == 200
    assert raw.value


def test_batches_and_iteration_are_not_offered() -> None:
    # Many requests per call: a raw response of one does not fit (see RawResponses).
    for name in ("iter_conversations", "fetch_conversations", "fetch_messages"):
        assert not hasattr(RawResponses, name)
    for name in ("get_conversation", "list_messages", "list_conversations", "chat"):
        assert getattr(RawResponses, name).__doc__


async def test_an_error_through_a_raw_call_renders_without_the_token(fake: FakeWemasy) -> None:
    fake.queue_error(500, headers={"X-Echo": TOKEN}, body={"message": f"bad {TOKEN}"})
    async with make_client(fake.url, retry=False) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.with_raw_response.get_conversation(1)
    error = caught.value
    rendered = [
        "".join(traceback.format_exception(error)),
        "".join(
            traceback.TracebackException(
                type(error), error, error.__traceback__, capture_locals=True
            ).format()
        ),
        *texts_of(error),
    ]
    for text in rendered:
        assert TOKEN not in text, text
