"""The blocking client (wemasy_async.sync): the async client's behaviour, without await.

The fake runs in an event loop of its own in a background thread, so these tests are plain
(synchronous) functions, as the code that uses the blocking client is.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import pickle
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.threaded import fake_wemasy_in_thread
from wemasy_async import Client as AsyncClient
from wemasy_async import Event, RateLimit, RequestEvent, ResponseEvent
from wemasy_async.errors import (
    AuthenticationError,
    ClientClosedError,
    InvalidRequestError,
    NotFoundError,
)
from wemasy_async.sync import Client
from wemasy_async.testing import FakeWemasy

TOKEN = "sync-token"


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wemasy-async-sync"]


@pytest.fixture
def fake() -> Iterator[FakeWemasy]:
    """A fake Wemasy served from a loop in a thread of its own."""
    with fake_wemasy_in_thread(seed=3, conversations=40, token=TOKEN) as server:
        yield server


@pytest.fixture
def client(fake: FakeWemasy) -> Iterator[Client]:
    with Client("wemasy", base_url=fake.url, token=TOKEN, retry=False) as c:
        yield c


def _async_result(fake: FakeWemasy, conversation_id: int) -> object:
    async def fetch() -> object:
        async with AsyncClient("wemasy", base_url=fake.url, token=TOKEN) as c:
            return await c.get_conversation(conversation_id)

    return asyncio.run(fetch())


def test_the_operations_return_what_the_async_client_returns(
    fake: FakeWemasy, client: Client
) -> None:
    assert client.get_conversation(5) == _async_result(fake, 5)
    messages = client.list_messages(5, limit=2)
    assert len(messages) <= 2
    assert all(m.conversation_id == "5" for m in messages)
    page = client.list_conversations(per_page=7)
    assert (len(page.items), page.page, page.total) == (7, 1, 40)
    assert [c.id for c in client.iter_conversations(per_page=15)] == [str(i) for i in range(1, 41)]
    reply = client.chat("hello")
    assert reply.conversation_id is not None
    assert client.provider == "wemasy"
    assert "chat" in client.capabilities


def test_hooks_and_headers_pass_through(fake: FakeWemasy) -> None:
    events: list[Event] = []
    with Client(
        "wemasy",
        base_url=fake.url,
        token=TOKEN,
        hooks=[events.append],
        default_headers={"X-Tenant": "t1"},
        user_agent="mylib/1",
    ) as client:
        client.get_conversation(5)
    assert [type(event) for event in events] == [RequestEvent, ResponseEvent]
    assert fake.requests[-1].headers["X-Tenant"] == "t1"
    assert fake.requests[-1].headers["User-Agent"].endswith(" mylib/1")
    with pytest.raises(InvalidRequestError):
        Client("wemasy", token=TOKEN, default_headers={"Host": "x"})


def test_errors_are_the_async_clients_raised_in_the_calling_thread(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_conversation(999)
    assert caught.value.status == 404
    with pytest.raises(InvalidRequestError):
        client.get_conversation(-1)  # before any I/O, as with the async client


def test_bad_arguments_raise_at_construction_and_start_no_thread() -> None:
    before = len(_sync_threads())
    with pytest.raises(InvalidRequestError):
        Client("wemasy", token=TOKEN, timeout=-1)
    with pytest.raises(InvalidRequestError):
        Client("wemasy", token="")
    assert len(_sync_threads()) == before


def test_inside_a_running_event_loop_it_refuses_clearly(fake: FakeWemasy) -> None:
    blocking = Client("wemasy", base_url=fake.url, token=TOKEN)

    async def misuse() -> None:
        with pytest.raises(InvalidRequestError, match="running event loop"):
            Client("wemasy", base_url=fake.url, token=TOKEN)
        with pytest.raises(InvalidRequestError, match=r"use wemasy_async\.Client"):
            blocking.get_conversation(1)

    asyncio.run(misuse())
    assert blocking.get_conversation(1).id == "1"  # and it still works outside
    blocking.close()


def test_retries_and_the_limiter_work_as_in_the_async_client(fake: FakeWemasy) -> None:
    fake.queue_error(503, headers={"Retry-After": "0"}, times=2)
    with Client(
        "wemasy", base_url=fake.url, token=TOKEN, rate_limit=RateLimit(window=60.0)
    ) as client:
        assert client.get_conversation(2).id == "2"  # two 503s retried
        assert client._client._engine.options.limiter is not None  # paced by the limiter
        assert client._client._engine.options.limiter.allowed_rate is not None  # learned


def test_threads_share_one_client_and_run_concurrently(fake: FakeWemasy) -> None:
    fake.latency = 0.2
    with Client("wemasy", base_url=fake.url, token=TOKEN) as client:
        client.get_conversation(1)  # the limiter's probe, so the rest go at once
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            ids = [c.id for c in pool.map(client.get_conversation, range(1, 9))]
        elapsed = time.monotonic() - started
    assert ids == [str(i) for i in range(1, 9)]
    assert elapsed < 8 * 0.2  # not one after another: they overlap in the client's loop


def test_fetch_conversations_is_a_plain_iterator(client: Client) -> None:
    results = list(client.fetch_conversations(range(1, 31)))
    assert sorted(int(r.id) for r in results) == list(range(1, 31))
    assert all(r.ok for r in results)
    missing = list(client.fetch_messages([1, 999]))
    assert {r.id: r.ok for r in missing} == {1: True, 999: False}


def test_a_batch_closed_early_stops_its_workers(client: Client) -> None:
    with client.fetch_conversations(range(1, 41), concurrency=4) as results:
        first = next(results)
    assert first.ok
    batch = results._batch
    assert all(task.done() for task in batch._workers)
    with pytest.raises(StopIteration):
        next(results)
    assert client.get_conversation(3).id == "3"  # the client is unharmed


def test_close_stops_the_loop_thread_and_later_calls_fail(fake: FakeWemasy) -> None:
    before = len(_sync_threads())
    client = Client("wemasy", base_url=fake.url, token=TOKEN)
    client.get_conversation(1)
    assert len(_sync_threads()) == before + 1
    client.close()
    client.close()  # idempotent
    assert len(_sync_threads()) == before
    with pytest.raises(ClientClosedError):
        client.get_conversation(1)
    assert "closed" in repr(client)
    assert TOKEN not in repr(client)


def test_a_forgotten_client_stops_its_thread_when_collected(fake: FakeWemasy) -> None:
    before = len(_sync_threads())
    client = Client("wemasy", base_url=fake.url, token=TOKEN)
    client.get_conversation(1)
    del client
    gc.collect()
    deadline = time.monotonic() + 5
    while len(_sync_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_sync_threads()) == before


def _in_child(client: Client, results: multiprocessing.Queue[object]) -> None:
    try:
        results.put(client.get_conversation(4).id)
        client.close()
    except BaseException as exc:  # pragma: no cover - reported to the parent
        results.put(repr(exc))


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork")
def test_a_forked_child_builds_its_own_loop(fake: FakeWemasy) -> None:
    client = Client("wemasy", base_url=fake.url, token=TOKEN)
    assert client.get_conversation(1).id == "1"  # the parent's loop and connections exist
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[object] = context.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork with threads
        child = context.Process(target=_in_child, args=(client, results))
        child.start()
    child.join(30)
    assert child.exitcode == 0
    assert results.get(timeout=5) == "4"
    assert client.get_conversation(2).id == "2"  # the parent's client is unharmed
    client.close()


def test_an_error_through_the_blocking_client_renders_without_the_token(fake: FakeWemasy) -> None:
    secret = "sync-secret-token-0123456789"
    with (
        Client("wemasy", base_url=fake.url, token=secret, retry=False) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.get_conversation(1)  # the fake wants TOKEN: 401
    error = caught.value
    assert error.__traceback__ is not None
    # From the frame below this test's own (whose locals hold the secret it was given).
    frames = error.__traceback__.tb_next
    locals_text = "".join(
        traceback.TracebackException(type(error), error, frames, capture_locals=True).format()
    )
    assert "sync.py" in locals_text  # the facade's own frames are among them
    renderings = [
        str(error),
        repr(error),
        repr(error.__cause__),
        repr(error.__context__),
        locals_text,
        repr(pickle.loads(pickle.dumps(error))),
    ]
    for text in renderings:
        assert secret not in text


def test_raw_responses_and_session_settings_block_too(fake: FakeWemasy) -> None:
    with Client("wemasy", base_url=fake.url, token=TOKEN, connection_limit=3) as client:
        raw = client.with_raw_response.get_conversation(2)
        page = client.with_raw_response.list_conversations(per_page=3)
        with pytest.raises(NotFoundError):
            client.with_raw_response.list_messages(999_999)
        assert repr(client) in repr(client.with_raw_response)
    assert raw.value.id == "2"
    assert (raw.status, raw.attempts) == (200, 1)
    assert raw.rate_limit.limit == fake.rate_limit
    assert len(page.value.items) == 3
    with pytest.raises(InvalidRequestError):
        Client("wemasy", token=TOKEN, connection_limit=0)
