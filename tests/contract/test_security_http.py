"""Security, on every provider against its fake: credentials never follow a redirect, a server
that echoes the token back, http:// is refused off loopback, and two clients in one program
never mix their credentials (see ``test_security.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.support.cases import CASES, ProviderCase
from tests.support.secrets import OTHER_TOKEN, TOKEN, LogCapture, exception_texts, leaked
from wemasy_async import (
    APIStatusError,
    AuthenticationError,
    Client,
    InvalidRequestError,
    RateLimit,
    WemasyAsyncError,
)
from wemasy_async.cli import main
from wemasy_async.cli.args import build_parser
from wemasy_async.cli.commands import client_for
from wemasy_async.testing import FakeServer, RecordedRequest


@pytest.fixture
async def fake(case: ProviderCase) -> AsyncIterator[FakeServer]:
    async with case.start(token=TOKEN) as server:
        yield server


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
    case: ProviderCase, fake: FakeServer, logs: LogCapture, echo: Callable[[], dict[str, Any]]
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
