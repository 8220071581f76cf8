"""Security, on every provider against its fake: the token never leaks, ids never reshape a
request, credentials never follow a redirect, http:// is refused off loopback, and two clients
in one program never mix their credentials."""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest

from tests.support.cases import CASES, ProviderCase
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
    RateLimit,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    UnprocessableEntityError,
    WemasyAsyncError,
)
from wemasy_async.cli import main
from wemasy_async.cli.args import build_parser
from wemasy_async.cli.commands import client_for
from wemasy_async.testing import FakeServer, RecordedRequest

TOKEN = "sk-SECRET-token-1234567890"
OTHER_TOKEN = "sk-OTHER-token-0987654321"
# The whole token and pieces of it that a partial leak (a prefix cut off, a digest-free
# excerpt) would still show.
SECRET_PARTS = (TOKEN, "SECRET-token", "token-1234567890", "1234567890")


def leaked(texts: Iterator[str] | list[str]) -> list[str]:
    """The texts that contain the token or a distinctive piece of it."""
    return [text for text in texts if any(part in text for part in SECRET_PARTS)]


def exception_texts(error: BaseException) -> list[str]:
    """Everything an exception shows: the formatted traceback with its whole chain, and
    ``str``, ``repr``, ``args`` and attributes of every exception in the chain."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        state = getattr(current, "__dict__", None)
        if state:
            texts.append(repr(state))
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        stack += getattr(current, "exceptions", ())  # an exception group's members
    return texts


class _Capture(logging.Handler):
    """Keeps every record's message, arguments and formatted exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.records = 0
        self._formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.texts += [record.getMessage(), repr(record.args), self._formatter.format(record)]
        if record.exc_info and record.exc_info[1] is not None:
            self.texts += exception_texts(record.exc_info[1])


_LOGGERS = (
    "",
    "wemasy_async",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.access",
    "aiohttp.web",
    "asyncio",
)


@pytest.fixture
def logs() -> Iterator[_Capture]:
    """Every log record of every logger, at DEBUG and above, while the test runs."""
    capture = _Capture()
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


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
    logs: _Capture,
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
    case: ProviderCase, fake: FakeServer, logs: _Capture
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


# --- Redirects: credentials never follow -----------------------------------------------------


@pytest.fixture
async def elsewhere(case: ProviderCase) -> AsyncIterator[FakeServer]:
    """A second server, another origin, that would accept anything it is sent."""
    async with case.start(token=None) as server:
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("body", ["", "<html><body>Moved</body></html>"], ids=["empty", "html"])
async def test_a_redirect_to_another_origin_is_not_followed(
    case: ProviderCase, fake: FakeServer, elsewhere: FakeServer, status: int, body: str
) -> None:
    location = elsewhere.url + case.get_path.replace("{id}", "x")
    fake.queue_error(status, body=body, headers={"Location": location})
    async with Client(case.name, token=TOKEN, base_url=fake.url) as client:  # retries on
        with pytest.raises(APIStatusError) as info:
            await client.get_conversation(case.ids(fake)[0])
    error = info.value
    assert error.status == status
    assert location in str(error)
    assert error.headers["Location"] == location
    assert len(fake.requests) == 1  # not retried either
    assert elsewhere.requests == []
    assert elsewhere.stats.requests_total == 0


@pytest.mark.parametrize("status", [307, 308])
async def test_a_redirected_chat_is_not_resent_anywhere(status: int) -> None:
    async with (
        CASES[0].start(token=TOKEN) as fake,
        CASES[0].start(token=None) as elsewhere,
        Client("wemasy", token=TOKEN, base_url=fake.url) as client,
    ):
        fake.queue_error(status, body="", headers={"Location": elsewhere.url + "/steal"})
        with pytest.raises(APIStatusError) as info:
            await client.chat("a message that must be delivered once")
        assert info.value.status == status
        assert len(fake.requests) == 1
        assert elsewhere.requests == []


async def test_a_same_origin_redirect_is_not_followed_either(
    case: ProviderCase, fake: FakeServer
) -> None:
    conversation_id = case.ids(fake)[0]
    location = f"{fake.url}/elsewhere"
    fake.queue_error(302, body="", headers={"Location": location})
    async with Client(case.name, token=TOKEN, base_url=fake.url) as client:
        with pytest.raises(APIStatusError) as info:
            await client.get_conversation(conversation_id)
    assert info.value.status == 302
    assert location in str(info.value)
    assert len(fake.requests) == 1


async def test_a_redirect_with_a_json_message_still_carries_the_location(
    case: ProviderCase, fake: FakeServer, elsewhere: FakeServer
) -> None:
    # The fake's default error body is JSON with a "message": the error shows that message
    # and says where the redirect pointed, and that it was not followed.
    fake.queue_error(302, headers={"Location": elsewhere.url})
    async with Client(case.name, token=TOKEN, base_url=fake.url) as client:
        with pytest.raises(APIStatusError) as info:
            await client.get_conversation(case.ids(fake)[0])
    assert info.value.headers["Location"] == elsewhere.url
    assert f"redirect to {elsewhere.url}, not followed" in str(info.value)
    assert elsewhere.requests == []


# --- A server that echoes the token back ---------------------------------------------------


ECHOES = {
    "401-json-body": lambda: {"status": 401, "body": {"message": f"Bad token {TOKEN}"}},
    "500-text-body": lambda: {"status": 500, "body": f"debug: Authorization: Bearer {TOKEN}"},
    "200-garbage-body": lambda: {"status": 200, "body": f"<html>{TOKEN}</html>"},
    "403-header": lambda: {
        "status": 403,
        "headers": {"WWW-Authenticate": f'Bearer error="invalid_token" token="{TOKEN}"'},
    },
    "429-header-and-body": lambda: {
        "status": 429,
        "body": {"message": TOKEN, "error": {"message": TOKEN}},
        "headers": {"X-Echo": TOKEN},
    },
}


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES)
async def test_a_server_echoing_the_token_does_not_put_it_in_errors_or_logs(
    case: ProviderCase, fake: FakeServer, logs: _Capture, echo: Callable[[], dict[str, Any]]
) -> None:
    # A debugging proxy or a careless server may quote the Authorization header back. Error
    # messages quote bodies and keep headers, so the SDK blanks the token out of both.
    fake.queue_error(path=case.get_path, **echo())
    async with Client(case.name, token=TOKEN, base_url=fake.url, retry=False) as client:
        with pytest.raises(WemasyAsyncError) as info:
            await client.get_conversation(case.ids(fake)[0])
    texts = exception_texts(info.value)
    assert not leaked(texts)
    assert not leaked(logs.texts)
    if isinstance(info.value, APIStatusError):
        assert not leaked([repr(dict(info.value.headers)), repr(info.value.body)])
    # Blanked, not dropped: the rest of what the server said is still there.
    assert any("[REDACTED]" in text for text in texts)


# --- http:// only on loopback ---------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://example.com",
        "http://example.com/api",
        "HTTP://EXAMPLE.COM",
        "http://10.0.0.1",
        "http://192.168.1.10:8080/v2",
        "http://[2001:db8::1]",
        "http://[2001:db8::1]:8080/api",
        "http://127.0.0.1.evil.com",
        "http://localhost.evil.com",
        "http://0.0.0.0",
        "http://[::]",
    ],
)
@pytest.mark.parametrize("provider", [c.name for c in CASES])
def test_plain_http_off_loopback_is_refused(provider: str, base_url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client(provider, token=TOKEN, base_url=base_url)
    assert info.value.argument == "base_url"
    assert "allow_http=True" in str(info.value)
    assert not leaked(exception_texts(info.value))
    # Explicitly allowed, it is taken (construction does no I/O).
    client = Client(provider, token=TOKEN, base_url=base_url, allow_http=True)
    assert client.base_url == base_url.rstrip("/")
    assert client.with_options(timeout=1).base_url == client.base_url


@pytest.mark.parametrize(
    "base_url",
    [
        "https://example.com/api",
        "https://10.0.0.1",
        "https://[2001:db8::1]:8443",
        "http://127.0.0.1",
        "http://127.0.0.1:8080/api",
        "http://127.5.5.5:1234",
        "http://[::1]",
        "http://[::1]:9000/v2",
        "http://localhost",
        "http://LOCALHOST.",
        "http://localhost:8000/api",
    ],
)
@pytest.mark.parametrize("provider", [c.name for c in CASES])
def test_https_and_loopback_http_are_allowed(provider: str, base_url: str) -> None:
    client = Client(provider, token=TOKEN, base_url=base_url)
    assert client.base_url == base_url.rstrip("/")
    copy = client.with_options(timeout=1, retry=False)
    assert copy.base_url == client.base_url
    assert repr(copy) == repr(client)


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_allow_http_must_be_a_bool(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client("wemasy", token=TOKEN, base_url="https://x.example", allow_http=value)  # type: ignore[arg-type]
    assert info.value.argument == "allow_http"


def test_cli_refuses_plain_http_off_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", TOKEN)
    assert main(["get", "1", "--base-url", "http://example.com/api"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: base_url uses plain http:// on a non-loopback host")
    assert err.count("\n") == 1
    assert "SECRET" not in err


@pytest.mark.parametrize("command", ["get", "messages", "list", "chat", "fetch"])
def test_cli_allow_http_reaches_the_client(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", TOKEN)
    extra = {"get": ["1"], "messages": ["1"], "fetch": ["--ids-file", "i", "--out", "o"]}
    argv = [command, *extra.get(command, []), "--base-url", "http://10.1.2.3/api"]
    with pytest.raises(InvalidRequestError):
        client_for(build_parser().parse_args(argv))
    # Building the client does no I/O: nothing is contacted here.
    client = client_for(build_parser().parse_args([*argv, "--allow-http"]))
    assert client.base_url == "http://10.1.2.3/api"


# --- Two clients never share auth --------------------------------------------------------------


def _id_of(case: ProviderCase, request: RecordedRequest) -> str:
    if case.name == "wemasy":
        return str(request.json["conversation_id"])
    segments = request.path.split("/")
    return segments[3] if case.name == "loop" else segments[-1]


async def _interleaved(
    first: Client, second: Client, first_ids: list[str], second_ids: list[str]
) -> None:
    calls = []
    for a, b in zip(first_ids, second_ids, strict=True):
        calls += [first.get_conversation(a), second.get_conversation(b)]
    results = await asyncio.gather(*calls)
    assert [c.id for c in results] == [
        i for pair in zip(first_ids, second_ids, strict=True) for i in pair
    ]


def _split(case: ProviderCase, fake: FakeServer) -> tuple[list[str], list[str]]:
    ids = case.ids(fake)
    assert len(ids) >= 240
    return ids[:120], ids[120:240]


def _assert_separate_limiters(first: Client, second: Client) -> None:
    first_limiter = first._engine.options.limiter
    second_limiter = second._engine.options.limiter
    assert first_limiter is not None
    assert second_limiter is not None
    assert first_limiter is not second_limiter
    assert first_limiter.key != second_limiter.key


async def test_two_clients_against_two_servers(case: ProviderCase) -> None:
    async with (
        case.start(token=TOKEN) as fake_a,
        case.start(token=OTHER_TOKEN) as fake_b,
        Client(case.name, token=TOKEN, base_url=fake_a.url, retry=False) as a,
        Client(case.name, token=OTHER_TOKEN, base_url=fake_b.url, retry=False) as b,
    ):
        ids_a, ids_b = _split(case, fake_a)
        await _interleaved(a, b, ids_a, ids_b)
        _assert_separate_limiters(a, b)
    for fake, token in ((fake_a, TOKEN), (fake_b, OTHER_TOKEN)):
        assert len(fake.requests) == 120
        assert fake.stats.unauthorized == 0
        assert {r.headers["Authorization"] for r in fake.requests} == {f"Bearer {token}"}


@pytest.mark.parametrize("shared_session", [False, True], ids=["own-sessions", "one-session"])
async def test_two_clients_against_one_server(case: ProviderCase, shared_session: bool) -> None:
    async with case.start(token=None) as fake, aiohttp.ClientSession() as session:
        ids_a, ids_b = _split(case, fake)
        given: dict[str, Any] = {"session": session} if shared_session else {}
        async with (
            Client(case.name, token=TOKEN, base_url=fake.url, retry=False, **given) as a,
            Client(case.name, token=OTHER_TOKEN, base_url=fake.url, retry=False, **given) as b,
        ):
            await _interleaved(a, b, ids_a, ids_b)
            # with_options copies keep their original's credentials, interleaved too.
            await _interleaved(
                b.with_options(timeout=5), a.with_options(timeout=5), ids_b[:20], ids_a[:20]
            )
            _assert_separate_limiters(a, b)
        assert not session.closed
    expected = dict.fromkeys(ids_a, TOKEN) | dict.fromkeys(ids_b, OTHER_TOKEN)
    assert len(fake.requests) == 280
    for request in fake.requests:
        assert request.headers["Authorization"] == f"Bearer {expected[_id_of(case, request)]}"
        sent = [v for k, v in request.headers.items() if k.lower() == "authorization"]
        assert sent == [request.headers["Authorization"]]  # one, not one per client
    assert "Cookie" not in {h for r in fake.requests for h in r.headers}


async def test_same_token_other_base_url_gets_its_own_limiter(case: ProviderCase) -> None:
    async with case.start(token=TOKEN) as one, case.start(token=TOKEN) as two:
        config = RateLimit(window=60.0)
        a = Client(case.name, token=TOKEN, base_url=one.url, rate_limit=config)
        b = Client(case.name, token=TOKEN, base_url=two.url, rate_limit=config)
        c = Client(case.name, token=TOKEN, base_url=one.url, rate_limit=config)
        _assert_separate_limiters(a, b)
        # Same provider, base URL and token: one limiter, by design (one server budget).
        assert a._engine.options.limiter is c._engine.options.limiter
        assert not leaked([repr(a._engine.options.limiter.key)])  # type: ignore[union-attr]


async def test_a_short_token_is_blanked_only_where_it_stands_alone(case: ProviderCase) -> None:
    # A short test token ("tok") also occurs inside words; blanking it there would turn
    # error messages into nonsense, so only stand-alone occurrences are blanked.
    async with case.start() as fake:
        fake.queue_error(
            401, path=case.get_path, body={"message": "token tok refused; stoke tokens"}
        )
        async with Client(case.name, token="tok", base_url=fake.url, retry=False) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.get_conversation(case.ids(fake)[0])
    assert "token [REDACTED] refused; stoke tokens" in str(info.value)
