"""Retries: the pure decision (``retry_delay``, ``RetryPolicy``) and the engine end to end.

The contract is the module docstring of :mod:`wemasy_async.retry`. The suite runs under the
autouse ``no_backoff`` fixture of ``conftest.py``, so retries do not sleep; tests that need
the real delays use the ``real_backoff`` fixture, which sets the private ``_NO_BACKOFF``
context variable back to ``False`` (and clears ``$WEMASY_ASYNC_NO_BACKOFF``) for one test.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

import wemasy_async.retry as retry_module
from wemasy_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    Client,
    InternalServerError,
    InvalidRequestError,
    RateLimitError,
    ResponseDecodeError,
)
from wemasy_async.errors import status_error
from wemasy_async.ratelimit import RateLimit
from wemasy_async.retry import RETRIED_STATUSES, RetryPolicy, no_backoff, retry_delay
from wemasy_async.testing import FakeWemasy

TOKEN = "retry-token"
GET = "/services/ai/v1/conversations/get"
CHAT = "/services/ai/v1/chat"
ENV = "WEMASY_ASYNC_NO_BACKOFF"


@pytest.fixture
def real_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo the suite's autouse ``no_backoff`` for one test, so real delays are computed."""
    monkeypatch.delenv(ENV, raising=False)
    token = retry_module._NO_BACKOFF.set(False)
    try:
        yield
    finally:
        retry_module._NO_BACKOFF.reset(token)


def status(code: int, retry_after: float | None = None) -> APIError:
    return status_error(code, f"HTTP {code}", provider="wemasy", retry_after=retry_after)


def connection_error(*, sent: bool) -> APIConnectionError:
    return APIConnectionError("boom", provider="wemasy", request_sent=sent)


def timeout_error(*, sent: bool) -> APITimeoutError:
    return APITimeoutError("slow", provider="wemasy", request_sent=sent)


def decode_error() -> ResponseDecodeError:
    return ResponseDecodeError(
        provider="wemasy", status=200, expected="a conversation", body=b"<html>", reason="no"
    )


# --- RetryPolicy -------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 4
    assert policy.statuses == RETRIED_STATUSES == frozenset({408, 429, 500, 502, 503, 504})


@pytest.mark.parametrize("value", [0, -1, 1.5, True, False, "3", None])
def test_policy_rejects_bad_max_attempts(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RetryPolicy(max_attempts=value)  # type: ignore[arg-type]
    assert info.value.argument == "max_attempts"


@pytest.mark.parametrize("name", ["initial_backoff", "max_backoff", "max_retry_after"])
@pytest.mark.parametrize("value", [-0.1, -1, float("nan"), float("inf"), True, "1", None])
def test_policy_rejects_bad_durations(name: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RetryPolicy(**{name: value})  # type: ignore[arg-type]
    assert info.value.argument == name


def test_policy_accepts_zero_durations_and_one_attempt() -> None:
    policy = RetryPolicy(max_attempts=1, initial_backoff=0, max_backoff=0, max_retry_after=0)
    assert policy.backoff(1) == 0.0


@pytest.mark.parametrize("retry", [1, 2, 3, 4, 5, 8, 12])
def test_backoff_is_full_jitter_below_the_doubling_cap(retry: int) -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=20.0)
    cap = min(20.0, 0.5 * 2 ** (retry - 1))
    random.seed(retry)
    samples = [policy.backoff(retry) for _ in range(2000)]
    assert all(0.0 <= s <= cap for s in samples)
    # Full jitter: spread over the whole range, not pinned to 0 or to the cap.
    assert min(samples) < cap * 0.1
    assert max(samples) > cap * 0.9


def test_backoff_cap_reaches_max_backoff() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=3.0)
    random.seed(1)
    samples = [policy.backoff(10) for _ in range(2000)]
    assert max(samples) <= 3.0
    assert max(samples) > 2.7  # capped at max_backoff, not at 1 * 2**9


@pytest.mark.parametrize("retry", [66, 1025, 5000, 10**6])
def test_backoff_stays_capped_for_very_many_retries(retry: int) -> None:
    # 2 ** 1024 does not convert to a float: the cap must hold without computing it.
    policy = RetryPolicy(max_attempts=10**6 + 1, initial_backoff=0.5, max_backoff=2.0)
    random.seed(retry)
    samples = [policy.backoff(retry) for _ in range(200)]
    assert all(0.0 <= s <= 2.0 for s in samples)
    assert max(samples) > 1.8  # capped at max_backoff, not collapsed to 0


# --- retry_delay ---------------------------------------------------------------------------------


def test_retry_delay_uses_backoff_without_hint(real_backoff: None) -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=20.0)
    random.seed(3)
    delays = [retry_delay(policy, 3, status(500), idempotent=True) for _ in range(500)]
    assert all(d is not None and 0.0 <= d <= 2.0 for d in delays)
    assert max(d for d in delays if d is not None) > 1.5


@pytest.mark.parametrize(("code", "idempotent"), [(429, True), (429, False), (503, False)])
def test_hint_wins_over_backoff(real_backoff: None, code: int, idempotent: bool) -> None:
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.01)
    assert retry_delay(policy, 1, status(code, 7.5), idempotent=idempotent) == 7.5
    assert retry_delay(policy, 1, status(code, 0.0), idempotent=idempotent) == 0.0


def test_hint_on_a_retried_500_is_used_for_reads(real_backoff: None) -> None:
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.01)
    assert retry_delay(policy, 1, status(500, 2.0), idempotent=True) == 2.0


def test_hint_beyond_max_retry_after_raises_at_once(real_backoff: None) -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert retry_delay(policy, 1, status(429, 10.0), idempotent=True) == 10.0
    assert retry_delay(policy, 1, status(429, 10.5), idempotent=True) is None
    assert retry_delay(policy, 1, status(503, 3600.0), idempotent=False) is None


def test_hint_beyond_max_retry_after_is_not_retried_under_no_backoff() -> None:
    # no_backoff removes the waiting, not the decision.
    assert retry_delay(RetryPolicy(), 1, status(429, 3600.0), idempotent=True) is None


@pytest.mark.parametrize("max_attempts", [1, 2, 4])
def test_max_attempts_counts_the_first(max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    for attempt in range(1, max_attempts):
        assert retry_delay(policy, attempt, status(500), idempotent=True) == 0.0
    assert retry_delay(policy, max_attempts, status(500), idempotent=True) is None
    assert retry_delay(policy, max_attempts + 1, status(500), idempotent=True) is None


@pytest.mark.parametrize("code", [400, 401, 402, 403, 404, 409, 422, 501, 505, 599])
def test_statuses_outside_the_policy_are_not_retried(code: int) -> None:
    assert retry_delay(RetryPolicy(), 1, status(code, 1.0), idempotent=True) is None


def test_custom_statuses() -> None:
    policy = RetryPolicy(statuses=frozenset({500, 418}))
    assert retry_delay(policy, 1, status(418), idempotent=True) == 0.0
    assert retry_delay(policy, 1, status(500), idempotent=True) == 0.0
    assert retry_delay(policy, 1, status(502), idempotent=True) is None
    assert retry_delay(policy, 1, status(429, 1.0), idempotent=True) is None


@pytest.mark.parametrize("idempotent", [True, False])
def test_decode_errors_are_not_retried(idempotent: bool) -> None:
    assert retry_delay(RetryPolicy(), 1, decode_error(), idempotent=idempotent) is None


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (connection_error(sent=False), True),
        (connection_error(sent=True), False),
        (timeout_error(sent=False), True),
        (timeout_error(sent=True), False),
        (status(429), True),
        (status(429, 2.0), True),
        (status(503, 2.0), True),
        (status(503), False),
        (status(500), False),
        (status(500, 2.0), False),
        (status(502), False),
        (status(504), False),
        (status(408), False),
    ],
    ids=repr,
)
def test_non_idempotent_retries_only_what_was_not_processed(error: APIError, retried: bool) -> None:
    delay = retry_delay(RetryPolicy(), 1, error, idempotent=False)
    assert (delay is not None) is retried


@pytest.mark.parametrize(
    "error",
    [
        connection_error(sent=False),
        connection_error(sent=True),
        timeout_error(sent=False),
        timeout_error(sent=True),
        *(status(code) for code in sorted(RETRIED_STATUSES)),
    ],
    ids=repr,
)
def test_idempotent_retries_every_retried_failure(error: APIError) -> None:
    assert retry_delay(RetryPolicy(), 1, error, idempotent=True) == 0.0


def test_no_backoff_makes_delays_zero_but_keeps_retrying(real_backoff: None) -> None:
    policy = RetryPolicy(initial_backoff=5.0, max_backoff=5.0)
    random.seed(0)
    assert retry_delay(policy, 1, status(429, 30.0), idempotent=True) == 30.0
    with no_backoff():
        assert retry_delay(policy, 1, status(429, 30.0), idempotent=True) == 0.0
        assert retry_delay(policy, 2, status(500), idempotent=True) == 0.0
        assert retry_delay(policy, 1, connection_error(sent=False), idempotent=False) == 0.0
        # What is not retried stays not retried.
        assert retry_delay(policy, 1, status(500), idempotent=False) is None
        assert retry_delay(policy, 4, status(500), idempotent=True) is None
    # And it is off again after the block.
    assert retry_delay(policy, 1, status(429, 30.0), idempotent=True) == 30.0


def test_no_backoff_nests_and_restores(real_backoff: None) -> None:
    with no_backoff():
        with no_backoff():
            assert retry_module._NO_BACKOFF.get() is True
        assert retry_module._NO_BACKOFF.get() is True
    assert retry_module._NO_BACKOFF.get() is False


async def test_no_backoff_reaches_tasks_started_inside(real_backoff: None) -> None:
    seen: list[float | None] = []

    async def decide() -> None:
        seen.append(retry_delay(RetryPolicy(), 1, status(429, 30.0), idempotent=True))

    with no_backoff():
        async with anyio.create_task_group() as tg:
            tg.start_soon(decide)
    assert seen == [0.0]


@pytest.mark.parametrize(("value", "disabled"), [("1", True), ("yes", True), ("0", False)])
def test_env_var_turns_backoff_off(
    real_backoff: None, monkeypatch: pytest.MonkeyPatch, value: str, disabled: bool
) -> None:
    monkeypatch.setenv(ENV, value)
    delay = retry_delay(RetryPolicy(), 1, status(503, 12.0), idempotent=True)
    assert delay == (0.0 if disabled else 12.0)


def test_empty_env_var_leaves_backoff_on(
    real_backoff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "")
    assert retry_delay(RetryPolicy(), 1, status(503, 12.0), idempotent=True) == 12.0


# --- End to end against FakeWemasy -------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=3, conversations=10, token=TOKEN) as server:
        yield server


def make_client(
    fake: FakeWemasy,
    *,
    retry: RetryPolicy | bool = True,
    rate_limit: RateLimit | bool = False,
    timeout: float | None = 5.0,
) -> Client:
    # The limiter is off unless a test is about it: retries are what is measured here.
    return Client(
        "wemasy",
        base_url=fake.url,
        token=TOKEN,
        retry=retry,
        rate_limit=rate_limit,
        timeout=timeout,
    )


@pytest.mark.parametrize("code", [500, 502, 503, 504, 408, 429])
async def test_reads_are_retried_after_a_retried_status(fake: FakeWemasy, code: int) -> None:
    fake.queue_error(code, path=GET, headers={"Retry-After": "0"} if code == 429 else None)
    async with make_client(fake) as client:
        conversation = await client.get_conversation(2)
    assert conversation.id == "2"
    assert [r.status for r in fake.requests_to(GET)] == [code, 200]


async def test_reads_are_retried_until_success(fake: FakeWemasy) -> None:
    fake.queue_error(500, path=GET, times=2)
    fake.queue_error(502, path=GET)
    async with make_client(fake) as client:
        assert (await client.get_conversation(4)).id == "4"
    assert [r.status for r in fake.requests_to(GET)] == [500, 500, 502, 200]


async def test_reads_are_retried_after_a_dropped_connection(fake: FakeWemasy) -> None:
    fake.queue_disconnect(path=GET)
    async with make_client(fake) as client:
        assert (await client.get_conversation(1)).id == "1"
    assert [r.status for r in fake.requests_to(GET)] == [0, 200]


async def test_reads_are_retried_after_a_timeout(fake: FakeWemasy) -> None:
    fake.queue_delay(0.6, path=GET)
    async with make_client(fake, timeout=0.3) as client:
        assert (await client.get_conversation(1)).id == "1"
    requests = fake.requests_to(GET)
    assert len(requests) == 2
    assert requests[1].received_at - requests[0].received_at >= 0.3 - 0.01


async def test_max_attempts_bounds_the_requests(fake: FakeWemasy) -> None:
    fake.queue_error(500, path=GET, times=3)
    async with make_client(fake, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(InternalServerError):
            await client.get_conversation(1)
    assert len(fake.requests_to(GET)) == 2
    assert fake.pending_faults == 1


async def test_default_policy_gives_up_after_four_attempts(fake: FakeWemasy) -> None:
    fake.queue_error(503, path=GET, times=10)
    async with make_client(fake) as client:
        with pytest.raises(InternalServerError) as info:
            await client.get_conversation(1)
    assert info.value.status == 503
    assert len(fake.requests_to(GET)) == 4


async def test_retry_false_sends_once(fake: FakeWemasy) -> None:
    fake.queue_error(503, path=GET)
    async with make_client(fake, retry=False) as client:
        with pytest.raises(InternalServerError):
            await client.get_conversation(1)
    assert len(fake.requests_to(GET)) == 1


async def test_errors_outside_the_policy_are_not_retried(fake: FakeWemasy) -> None:
    fake.queue_error(500, path=GET)
    policy = RetryPolicy(statuses=frozenset({503}))
    async with make_client(fake, retry=policy) as client:
        with pytest.raises(InternalServerError):
            await client.get_conversation(1)
    assert len(fake.requests_to(GET)) == 1


async def test_decode_error_is_not_retried(fake: FakeWemasy) -> None:
    fake.queue_error(200, path=GET, body=b"{not json")
    async with make_client(fake) as client:
        with pytest.raises(ResponseDecodeError):
            await client.get_conversation(1)
    assert len(fake.requests_to(GET)) == 1


async def test_chat_is_not_retried_after_a_500(fake: FakeWemasy) -> None:
    fake.queue_error(500, path=CHAT)
    async with make_client(fake) as client:
        with pytest.raises(InternalServerError):
            await client.chat("hello")
    assert len(fake.requests_to(CHAT)) == 1
    assert fake.chat_deliveries == []


async def test_chat_is_not_retried_after_a_dropped_connection(fake: FakeWemasy) -> None:
    fake.queue_disconnect(path=CHAT)
    async with make_client(fake) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.chat("hello")
    assert info.value.request_sent is True
    assert len(fake.requests_to(CHAT)) == 1


async def test_chat_is_not_retried_after_a_timeout(fake: FakeWemasy) -> None:
    fake.queue_delay(0.6, path=CHAT)
    async with make_client(fake, timeout=0.2) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.chat("hello")
        assert info.value.request_sent is True
        # The server still processes the delayed message: a retry would have delivered twice.
        await anyio.sleep(0.6)
    assert len(fake.requests_to(CHAT)) == 1
    assert len(fake.chat_deliveries) == 1


@pytest.mark.parametrize("code", [429, 503])
async def test_chat_is_retried_after_a_refusal_with_a_hint(fake: FakeWemasy, code: int) -> None:
    fake.queue_error(code, path=CHAT, headers={"Retry-After": "0.1"})
    async with make_client(fake) as client:
        reply = await client.chat("exactly once")
    assert reply.content
    assert [r.status for r in fake.requests_to(CHAT)] == [code, 200]
    assert [d["message"] for d in fake.chat_deliveries] == ["exactly once"]


async def test_chat_is_retried_after_a_429_with_the_limiter(fake: FakeWemasy) -> None:
    fake.queue_error(429, path=CHAT, headers={"Retry-After": "0.1"})
    async with make_client(fake, rate_limit=RateLimit(window=1.0)) as client:
        await client.chat("exactly once")
    assert [r.status for r in fake.requests_to(CHAT)] == [429, 200]
    assert len(fake.chat_deliveries) == 1


async def test_chat_is_not_retried_after_a_503_without_hint(fake: FakeWemasy) -> None:
    fake.queue_error(503, path=CHAT)
    async with make_client(fake) as client:
        with pytest.raises(InternalServerError):
            await client.chat("hello")
    assert len(fake.requests_to(CHAT)) == 1


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("rate_limit", [False, True], ids=["no-limiter", "limiter"])
async def test_chat_is_retried_when_the_connection_is_refused(
    caplog: pytest.LogCaptureFixture, rate_limit: bool
) -> None:
    caplog.set_level(logging.INFO, logger="wemasy_async")
    base_url = f"http://127.0.0.1:{_closed_port()}/api"
    client = Client(
        "wemasy",
        base_url=base_url,
        token=TOKEN,
        retry=RetryPolicy(max_attempts=3),
        rate_limit=rate_limit,
    )
    async with client:
        with anyio.fail_after(10), pytest.raises(APIConnectionError) as info:
            await client.chat("hello")
    assert info.value.request_sent is False
    assert not isinstance(info.value, APITimeoutError)
    retries = [r for r in caplog.records if r.levelno == logging.INFO and "retrying" in r.message]
    assert len(retries) == 2  # three attempts in all
    assert all("/services/ai/v1/chat" in r.message for r in retries)


async def test_huge_retry_after_raises_at_once(fake: FakeWemasy) -> None:
    fake.queue_error(429, path=GET, headers={"Retry-After": "3600"})
    async with make_client(fake, rate_limit=False) as client:
        with anyio.fail_after(5), pytest.raises(RateLimitError) as info:
            await client.get_conversation(1)
    assert info.value.retry_after == 3600
    assert len(fake.requests_to(GET)) == 1


@pytest.mark.parametrize("retry", [True, False], ids=["retry", "no-retry"])
async def test_a_long_pause_fails_later_requests_fast(fake: FakeWemasy, retry: bool) -> None:
    # A 429 asking for longer than max_retry_after (60 s by default, also without retries)
    # raises at once; so do later requests of the key while the pause lasts, instead of
    # blocking in the limiter for an hour.
    fake.queue_error(429, path=GET, headers={"Retry-After": "3600"})
    async with make_client(fake, retry=retry, rate_limit=RateLimit(window=1.0)) as client:
        with anyio.fail_after(5), pytest.raises(RateLimitError) as first:
            await client.get_conversation(1)
        assert first.value.retry_after == 3600
        assert len(fake.requests_to(GET)) == 1
        with anyio.fail_after(1), pytest.raises(RateLimitError) as later:
            await client.get_conversation(2)
    assert later.value.status == 429
    assert later.value.retry_after is not None
    assert 3600 - 5 < later.value.retry_after <= 3600
    assert len(fake.requests_to(GET)) == 1  # the later request never reached the server
    assert fake.pending_faults == 0


async def test_a_long_pause_fails_requests_already_waiting_fast() -> None:
    outcomes: dict[int, str] = {}
    async with (
        FakeWemasy(conversations=10, token=TOKEN, rate_limit=2, window=0.5) as fake,
        make_client(fake, rate_limit=RateLimit(window=0.5)) as client,
    ):

        async def one(n: int) -> None:
            try:
                await client.get_conversation(n)
                outcomes[n] = "ok"
            except RateLimitError:
                outcomes[n] = "429"

        await client.get_conversation(1)  # learn the limit: the others wait behind
        fake.queue_error(429, path=GET, headers={"Retry-After": "3600"})
        # Limit 2: one send per window. The first of the three goes 0.5 s on and meets the
        # 429; the two holding later reservations (1 s and 1.5 s on) fail when it comes.
        started = time.monotonic()
        with anyio.move_on_after(1.5):
            async with anyio.create_task_group() as tg:
                for n in (2, 3, 4):
                    tg.start_soon(one, n)
        assert time.monotonic() - started < 0.9
    assert outcomes == {2: "429", 3: "429", 4: "429"}


async def test_a_pause_within_max_retry_after_holds_later_requests(fake: FakeWemasy) -> None:
    # A pause the policy would wait out does not fail later requests: they wait for it.
    fake.queue_error(429, path=GET, headers={"Retry-After": "0.3"})
    policy = RetryPolicy(max_attempts=1, max_retry_after=0.5)  # no retries, 0.5 s at most
    async with make_client(fake, retry=policy, rate_limit=RateLimit(window=1.0)) as client:
        with pytest.raises(RateLimitError):
            await client.get_conversation(1)
        with anyio.fail_after(5):
            assert (await client.get_conversation(2)).id == "2"
    first, second = fake.requests_to(GET)
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.3 - 0.005


async def test_retry_after_is_waited_out_with_the_limiter(fake: FakeWemasy) -> None:
    # The limiter pauses the key for a 429's Retry-After, even under no_backoff.
    fake.queue_error(429, path=GET, headers={"Retry-After": "0.2"})
    async with make_client(fake, rate_limit=RateLimit(window=1.0)) as client:
        assert (await client.get_conversation(1)).id == "1"
    first, second = fake.requests_to(GET)
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.2 - 0.005


async def test_retry_after_wins_over_backoff_without_the_limiter(
    fake: FakeWemasy, real_backoff: None
) -> None:
    # Zero backoff: only the hint can make the second attempt wait.
    policy = RetryPolicy(initial_backoff=0.0, max_backoff=0.0)
    fake.queue_error(503, path=GET, headers={"Retry-After": "0.3"})
    async with make_client(fake, retry=policy, rate_limit=False) as client:
        assert (await client.get_conversation(1)).id == "1"
    first, second = fake.requests_to(GET)
    assert second.received_at - first.received_at >= 0.3 - 0.005


async def test_no_backoff_retries_without_waiting_out_the_hint(fake: FakeWemasy) -> None:
    # Under the suite's no_backoff a 30 s hint is not waited out (the retry still happens).
    fake.queue_error(503, path=GET, headers={"Retry-After": "30"})
    async with make_client(fake, rate_limit=False) as client:
        with anyio.fail_after(10):
            assert (await client.get_conversation(1)).id == "1"
    assert [r.status for r in fake.requests_to(GET)] == [503, 200]


async def test_retries_log_at_info(fake: FakeWemasy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wemasy_async")
    fake.queue_error(502, path=GET, times=2)
    async with make_client(fake) as client:
        await client.get_conversation(1)
    retries = [r for r in caplog.records if "retrying" in r.message]
    assert len(retries) == 2
    assert all(r.levelno == logging.INFO for r in retries)
    assert "InternalServerError" in retries[0].message
    assert TOKEN not in caplog.text
