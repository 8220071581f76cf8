"""Security, on every provider against its fake: the token never leaks, and ids never reshape a
request.

Redirects, a server that echoes the token, http:// off loopback and two clients in one
program are in ``test_security_http.py``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tests.support.cases import ProviderCase
from tests.support.secrets import OTHER_TOKEN, TOKEN, LogCapture, exception_texts, leaked
from wemasy_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    Client,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    UnprocessableEntityError,
    WemasyAsyncError,
)
from wemasy_async.testing import FakeServer, RecordedRequest


@pytest.fixture
async def fake(case: ProviderCase) -> AsyncIterator[FakeServer]:
    async with case.start(token=TOKEN) as server:
        yield server


# --- The token never leaks -----------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One way a call fails: set up the fake and the client, then make the call."""

    expected: type[WemasyAsyncError]
    prepare: Callable[[ProviderCase, FakeServer], None] = lambda case, fake: None
    client: Callable[[ProviderCase, FakeServer, int], dict[str, Any]] = lambda c, f, p: {}
    bad_id: bool = False


def _queue(status: int, **kwargs: Any) -> Callable[[ProviderCase, FakeServer], None]:
    def prepare(case: ProviderCase, fake: FakeServer) -> None:
        fake.queue_error(status, path=case.get_path, **kwargs)

    return prepare


def _wrong_token(case: ProviderCase, fake: FakeServer) -> None:
    fake.token = OTHER_TOKEN  # the fake now refuses ours: a real 401 from its auth check


def _slow(case: ProviderCase, fake: FakeServer) -> None:
    fake.queue_delay(0.6, path=case.get_path)


def _nothing_listening(case: ProviderCase, fake: FakeServer, port: int) -> dict[str, Any]:
    return {"base_url": f"http://127.0.0.1:{port}{fake.url_prefix}"}


FAILURES = {
    "401": Failure(AuthenticationError, _wrong_token),
    "403": Failure(PermissionDeniedError, _queue(403)),
    "404": Failure(NotFoundError, _queue(404)),
    "422": Failure(UnprocessableEntityError, _queue(422)),
    "429": Failure(RateLimitError, _queue(429)),
    "500": Failure(InternalServerError, _queue(500)),
    "html-502": Failure(
        InternalServerError,
        _queue(502, body="<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"),
    ),
    "garbage-200": Failure(ResponseDecodeError, _queue(200, body=b"{garbage, not json")),
    "refused": Failure(APIConnectionError, client=_nothing_listening),
    "timeout": Failure(APITimeoutError, _slow, client=lambda c, f, p: {"timeout": 0.1}),
    "redirect": Failure(
        APIStatusError, _queue(302, body="", headers={"Location": "https://evil.example/x"})
    ),
    "too-large": Failure(ResponseTooLargeError, client=lambda c, f, p: {"max_response_bytes": 40}),
    "bad-id": Failure(InvalidRequestError, bad_id=True),
    "retries-exhausted": Failure(
        InternalServerError, _queue(503, times=4), client=lambda c, f, p: {"retry": True}
    ),
}


def _object_texts(client: Client) -> list[str]:
    """The reprs of the client and of everything it holds."""
    engine = client._engine
    limiter = engine.options.limiter
    copy = client.with_options(timeout=3, retry=False)
    return [
        repr(client),
        str(client),
        repr(copy),
        str(copy),
        repr(engine),
        repr(copy._engine),
        repr(engine.transport),
        repr(engine.options),
        repr(limiter),
        repr(None if limiter is None else vars(limiter)),
        repr(None if limiter is None else limiter.config),
    ]


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES)
async def test_the_token_never_appears(
    case: ProviderCase,
    fake: FakeServer,
    logs: LogCapture,
    free_port: int,
    failure: Failure,
) -> None:
    failure.prepare(case, fake)
    settings: dict[str, Any] = {"retry": False, "timeout": 5.0, "base_url": fake.url}
    settings.update(failure.client(case, fake, free_port))
    client = Client(case.name, token=TOKEN, **settings)
    texts = _object_texts(client)  # before first use too
    async with client:
        conversation_id = case.bad_id if failure.bad_id else case.ids(fake)[0]
        with pytest.raises(WemasyAsyncError) as info:
            await client.get_conversation(conversation_id)
        texts += _object_texts(client)
        async with client.fetch_conversations([conversation_id, case.bad_id]) as batch:
            results = [result async for result in batch]
        texts += [repr(batch), repr(results), *(str(r.error) for r in results)]
    texts += _object_texts(client)  # closed
    error = info.value
    assert type(error) is failure.expected or (
        failure.expected is APIStatusError and type(error) is APIStatusError
    ), repr(error)
    texts += exception_texts(error)
    assert not leaked(texts)
    logging.getLogger("wemasy_async").debug("canary %s", "record")
    assert "canary record" in logs.texts  # the capture sees DEBUG records of our logger
    assert not leaked(logs.texts)
    # The requests did carry the token: it is hidden, not missing.
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in fake.requests)


async def test_retry_logs_do_not_carry_the_token(
    case: ProviderCase, fake: FakeServer, logs: LogCapture
) -> None:
    fake.queue_error(503, path=case.get_path, times=2)
    async with Client(case.name, token=TOKEN, base_url=fake.url) as client:
        await client.get_conversation(case.ids(fake)[0])
    retries = [t for t in logs.texts if t.startswith("retrying ")]
    assert len(retries) == 2
    assert not leaked(logs.texts)


# --- Hostile ids ---------------------------------------------------------------------------

# (id, whether Loop sends it): Loop takes any id of 1 to 256 characters without control,
# format or separator characters that is not "." or ".." and percent-encodes all of it.
HOSTILE_IDS: list[tuple[str, bool]] = [
    ("../", True),
    ("..", False),
    (".", False),
    ("../../admin", True),
    ("%2e%2e", True),
    ("%2E%2E%2F", True),
    ("%2F..%2Fadmin", True),
    ("?x=1", True),
    ("27?x=1", True),
    ("#frag", True),
    ("27#frag", True),
    ("a/b", True),
    ("27/../28", True),
    ("@evil.com", True),
    ("user:pass@evil.com", True),
    ("//evil.com", True),
    ("//evil.com/x?y#z", True),
    ("http://evil.com/", True),
    ("\\", True),
    ("\\\\evil.com\\x", True),
    ("\u2215etc\u2215passwd", True),  # ∕ division slash
    ("a\u2044b", True),  # ⁄ fraction slash
    ("a\uff0fb", True),  # ／ fullwidth solidus
    ("\uff0e\uff0e", True),  # ．． fullwidth full stops
    ("a\uff1fx=1", True),  # ？ fullwidth question mark
    ("a\uff03frag", True),  # ＃ fullwidth number sign
    ("a\uff20evil.com", True),  # ＠ fullwidth commercial at
    ("\uff12\uff17", True),  # ２７ fullwidth digits: int() would read them as 27
    ("\u0662\u0667", True),  # ٢٧ Arabic-Indic digits
    ("a;b=c&d", True),
    ("a\x00b", False),
    ("a\r\nHost: evil.com", False),
    ("27\n", False),
    ("a\tb", False),
    ("a\x7fb", False),
    ("a b", False),
    (" 27", False),
    ("27 ", False),
    ("\u200b", False),  # zero-width space
    ("a\u202eb", False),  # right-to-left override
    ("x" * 256, True),
    ("x" * 257, False),
    ("9" * 5000, False),
]


def _segment_of(request: RecordedRequest) -> str:
    prefix, suffix = "/v1/conversations/", "/messages"
    raw = request.raw_path
    assert raw.startswith(prefix)
    assert raw.endswith(suffix)
    return raw[len(prefix) : -len(suffix)]


def _assert_one_segment(request: RecordedRequest, fake: FakeServer, hostile: str) -> None:
    segment = _segment_of(request)
    assert segment == quote(hostile, safe="")
    assert "/" not in segment
    assert "?" not in segment
    assert "#" not in segment
    assert unquote(segment, errors="strict") == hostile
    assert request.headers["Host"] == f"127.0.0.1:{fake.port}"


@pytest.mark.parametrize(("hostile", "loop_sends"), HOSTILE_IDS, ids=repr)
async def test_a_hostile_id_never_reshapes_the_request(
    case: ProviderCase, fake: FakeServer, hostile: str, loop_sends: bool
) -> None:
    async with Client(case.name, token=TOKEN, base_url=fake.url, retry=False) as client:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.get_conversation(hostile),
            lambda: client.list_messages(hostile),
            lambda: client.list_messages(hostile, limit=3),
        ]
        if case.name == "wemasy":
            calls.append(lambda: client.chat("hi", conversation_id=hostile))
        sends = not case.validates_ids and loop_sends
        for call in calls:
            with pytest.raises(NotFoundError if sends else InvalidRequestError) as info:
                await call()
            if not sends:
                assert isinstance(info.value, InvalidRequestError)
                assert info.value.argument == "conversation_id"
        async with client.fetch_conversations([hostile]) as batch:
            (result,) = [r async for r in batch]
        assert isinstance(result.error, NotFoundError if sends else InvalidRequestError)
    if not sends:
        assert fake.requests == []  # refused before any I/O
        return
    assert len(fake.requests) == len(calls) + 1
    for request in fake.requests:
        _assert_one_segment(request, fake, hostile)
        assert request.query == ({"limit": "3"} if request is fake.requests[2] else {})


def _random_hostile_ids(count: int, seed: int) -> list[str]:
    """Ids of URL syntax and look-alikes; about one in six also has a character Loop refuses.

    No digits: no random id is a valid Wemasy id (or SiteAssist UUID) by chance.
    """
    sendable = "/?#@%.\\:;&=+~!$'()*,[]{}|^`\"<>-_\u2215\u2044\uff0f\uff0e\uff1f\uff03\uff20aZé中"
    refused = " \u200b\u00a0\u2028\x00\r\n\t\x7f"
    rng = random.Random(seed)
    ids = []
    for _ in range(count):
        chars = rng.choices(sendable, k=rng.randint(1, 24))
        if rng.random() < 0.15:
            chars.insert(rng.randint(0, len(chars)), rng.choice(refused))
        ids.append("".join(chars))
    return ids


async def test_random_hostile_ids_in_a_batch(case: ProviderCase, fake: FakeServer) -> None:
    hostile = _random_hostile_ids(300, seed=6)
    async with (
        Client(case.name, token=TOKEN, base_url=fake.url, retry=False) as client,
        client.fetch_conversations(hostile, concurrency=8) as batch,
    ):
        results = [r async for r in batch]
    assert sorted(r.id for r in results) == sorted(hostile)
    assert all(isinstance(r.error, (InvalidRequestError, NotFoundError)) for r in results)
    sent = [r.id for r in results if isinstance(r.error, NotFoundError)]
    if case.validates_ids:
        assert sent == []
        assert fake.requests == []
        return
    assert len(sent) > 200  # most of them are legal Loop ids: the check is not vacuous
    assert sorted(_segment_of(r) for r in fake.requests) == sorted(quote(i, safe="") for i in sent)
    by_segment = {quote(i, safe=""): i for i in sent}
    for request in fake.requests:
        _assert_one_segment(request, fake, by_segment[_segment_of(request)])
        assert request.query == {}
