"""Settings of the session the client creates: ``connection_limit``, ``proxy``,
``trust_env`` and ``ssl``; a caller's session keeps its own.

Against the fakes on 127.0.0.1, through a real forward proxy and a real TLS front
(:mod:`tests.support.loopback`), with a throwaway CA from ``trustme``.
"""

from __future__ import annotations

import base64
import pickle
import ssl
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest
import trustme

from tests.support.loopback import ForwardProxy, TlsFront, unpaced_client
from wemasy_async import (
    APIConnectionError,
    APIStatusError,
    Client,
    InvalidRequestError,
)
from wemasy_async.session_settings import SessionSettings, check_session_settings
from wemasy_async.testing import FakeWemasy

TOKEN = "settings-token-0123456789abcdef"
LOGIN, PASSWORD = "proxy@user", "pa:ss-w0rd-7f3a9c"
SECRETS = (TOKEN, "0123456789abcdef", PASSWORD, "pa%3Ass-w0rd", "w0rd-7f3a9c")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=4, conversations=10, token=TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy variables must not steer these tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


def proxy_url(proxy: ForwardProxy, login: str = LOGIN, password: str = PASSWORD) -> str:
    quoted = [part.replace("@", "%40").replace(":", "%3A") for part in (login, password)]
    return f"http://{quoted[0]}:{quoted[1]}@127.0.0.1:{proxy.port}"


def make_client(url: str, **kwargs: object) -> Client:
    return unpaced_client(url, TOKEN, **kwargs)


def renderings(error: BaseException) -> list[str]:
    """str, repr, the traceback (chained, and with every frame's locals below the test's
    own, which holds what the test gave) and the pickle."""
    data = pickle.dumps(error)
    assert error.__traceback__ is not None
    below_the_test = error.__traceback__.tb_next
    return [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        "".join(
            traceback.TracebackException(
                type(error), error, below_the_test, capture_locals=True
            ).format()
        ),
        data.decode("latin-1"),
        repr(pickle.loads(data)),
    ]


def assert_clean(texts: list[str]) -> None:
    for text in texts:
        assert not any(secret in text for secret in SECRETS), text


# --- connection_limit ------------------------------------------------------------------------


async def test_the_pool_is_sized_for_a_batch_unless_told(fake: FakeWemasy) -> None:
    assert Client("wemasy", token=TOKEN)._transport.pool_size == 1000  # type: ignore[union-attr]
    client = make_client(fake.url, connection_limit=2)
    assert client._transport.pool_size == 2  # type: ignore[union-attr]
    fake.latency = 0.05
    async with client:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for i in range(1, 7):
                group.start_soon(client.get_conversation, i)
        took = time.perf_counter() - started
    # Six requests of 50 ms through two connections take three rounds at least.
    assert took >= 0.14
    assert len(fake.requests) == 6


async def test_a_self_tuning_batch_stays_within_the_pool() -> None:
    async with (
        FakeWemasy(conversations=50, token=TOKEN, latency=0.02, rate_limit=None) as fake,
        make_client(fake.url, connection_limit=6) as client,
    ):
        workers = []
        batch = client.fetch_conversations(i % 50 + 1 for i in range(10_000))
        async with batch:
            async for result in batch:
                assert result.ok, result.error
                workers.append(batch.workers)
                if len(workers) == 150:
                    break
    # Unpaced, it would grow towards max_concurrency (512).
    assert max(workers) == 6


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "5", 100_001])
def test_a_bad_connection_limit_is_refused(value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Client("wemasy", token=TOKEN, connection_limit=value)  # type: ignore[arg-type]
    assert caught.value.argument == "connection_limit"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("connection_limit", 5),
        ("trust_env", True),
        ("proxy", "http://127.0.0.1:3128"),
        ("ssl", ssl.create_default_context()),
    ],
)
async def test_a_callers_session_keeps_its_own_settings(setting: str, value: object) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidRequestError, match="keeps its own settings") as caught:
            Client("wemasy", token=TOKEN, session=session, **{setting: value})  # type: ignore[arg-type]
        assert caught.value.argument == setting
        # Its defaults are fine with a session, and leave it as it is.
        client = Client("wemasy", token=TOKEN, session=session, trust_env=False)
        assert client._transport.pool_size == 100  # type: ignore[union-attr]  # aiohttp's


# --- proxy -----------------------------------------------------------------------------------


async def test_requests_go_through_the_proxy_with_its_credentials(fake: FakeWemasy) -> None:
    async with ForwardProxy(credentials=(LOGIN, PASSWORD)) as proxy:
        client = make_client(fake.url, proxy=proxy_url(proxy))
        async with client:
            conversation = await client.get_conversation(3)
            await client.with_options(timeout=5).chat("hi")  # a copy shares the session
        for text in (repr(client), repr(client._transport), repr(client._engine)):
            assert_clean([text])
    assert conversation.id == "3"
    assert [(m, url.startswith(fake.url)) for m, url, _ in proxy.seen] == [
        ("POST", True),
        ("POST", True),
    ]
    basic = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    assert {auth for _, _, auth in proxy.seen} == {f"Basic {basic}"}
    # The proxy's credentials go to the proxy only.
    assert all("Proxy-Authorization" not in r.headers for r in fake.requests)
    assert len(fake.requests) == 2


async def test_a_refused_proxy_login_names_no_credentials(fake: FakeWemasy) -> None:
    async with (
        ForwardProxy(credentials=(LOGIN, "the-right-one")) as proxy,
        make_client(fake.url, proxy=proxy_url(proxy), retry=False) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await client.get_conversation(1)
    assert caught.value.status == 407
    assert fake.requests == []
    assert_clean(renderings(caught.value))


async def test_an_unreachable_proxy_names_no_credentials(fake: FakeWemasy) -> None:
    async with ForwardProxy() as proxy:
        url = proxy_url(proxy)
    # Closed: nothing listens on its port any more.
    async with make_client(fake.url, proxy=url, retry=False) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.get_conversation(1)
    assert caught.value.request_sent is False
    assert_clean(renderings(caught.value))


@pytest.mark.parametrize(
    "value",
    [
        5,
        "ftp://127.0.0.1:21",
        "socks5://127.0.0.1:1080",
        "http://",
        f"http://{LOGIN}:{PASSWORD}@127.0.0.1:99999",
        f"http://u:{PASSWORD}@127.0.0.1:3128/path",
        f"http://u:{PASSWORD}@127.0.0.1:3128?x=1",
        f"http://u:{PASSWORD} @127.0.0.1:3128",
        f"http://u:{PASSWORD}@127.0.0.1:3128\n",
    ],
)
def test_a_bad_proxy_is_refused_without_echoing_it(value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Client("wemasy", token=TOKEN, proxy=value)  # type: ignore[arg-type]
    assert caught.value.argument == "proxy"
    assert_clean(
        [str(caught.value), repr(caught.value), repr(pickle.loads(pickle.dumps(caught.value)))]
    )


def test_settings_show_the_proxy_without_its_credentials() -> None:
    settings = check_session_settings(
        base_url="https://api.example",
        session_given=False,
        connection_limit=None,
        trust_env=False,
        proxy=f"http://u:{PASSWORD}@proxy.internal:3128",
        ssl=None,
        default_limit=1000,
    )
    assert repr(settings) == (
        "<SessionSettings connection_limit=1000"
        " proxy='http://[REDACTED]@proxy.internal:3128' ssl=default>"
    )
    with pytest.raises(TypeError):
        pickle.dumps(settings)
    assert isinstance(settings, SessionSettings)


def test_with_options_does_not_take_session_settings() -> None:
    # A copy shares the session, whose settings are fixed once it exists.
    client = Client("wemasy", token=TOKEN)
    for setting in ("proxy", "ssl", "trust_env", "connection_limit"):
        with pytest.raises(TypeError, match=setting):
            client.with_options(**{setting: None})  # type: ignore[arg-type]


# --- trust_env -------------------------------------------------------------------------------


async def test_trust_env_reads_the_proxy_variables(
    fake: FakeWemasy, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy(credentials=(LOGIN, PASSWORD)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy_url(proxy))
        async with make_client(fake.url) as client:  # off by default
            await client.get_conversation(1)
        assert proxy.seen == []
        async with make_client(fake.url, trust_env=True) as client:
            await client.get_conversation(2)
        assert len(proxy.seen) == 1
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with make_client(fake.url, trust_env=True) as client:
            await client.get_conversation(3)
        assert len(proxy.seen) == 1
        # An explicit proxy wins over the variables (and over NO_PROXY).
        async with make_client(fake.url, trust_env=True, proxy=proxy_url(proxy)) as client:
            await client.get_conversation(4)
        assert len(proxy.seen) == 2
        # Without a scheme, a variable's proxy is an http:// one, as curl reads it.
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.setenv("HTTP_PROXY", proxy_url(proxy).removeprefix("http://"))
        async with make_client(fake.url, trust_env=True) as client:
            await client.get_conversation(5)
        assert len(proxy.seen) == 3
    assert len(fake.requests) == 5


def test_a_bad_proxy_variable_is_named_not_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"socks5://u:{PASSWORD}@127.0.0.1:1080")
    Client("wemasy", token=TOKEN)  # not read without trust_env
    with pytest.raises(InvalidRequestError, match=r"\$HTTPS_PROXY") as caught:
        Client("wemasy", token=TOKEN, trust_env=True)
    assert_clean([str(caught.value), repr(caught.value)])


# --- ssl -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls(fake: FakeWemasy, ca: trustme.CA) -> AsyncIterator[str]:
    """The fake's base URL through a TLS front whose certificate the throwaway CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with TlsFront(context, fake.port) as front:
        yield front.url_of(fake.url)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


async def test_an_ssl_context_trusts_a_private_ca(tls: str, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with make_client(tls, ssl=context) as client:
        assert (await client.get_conversation(5)).id == "5"
    async with make_client(tls, retry=False) as client:  # the default trust lacks that CA
        with pytest.raises(APIConnectionError, match="certificate") as caught:
            await client.get_conversation(5)
    assert_clean(renderings(caught.value))


async def test_trust_env_reads_the_ca_bundle(
    tls: str, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    async with make_client(tls, trust_env=True) as client:
        assert (await client.get_conversation(6)).id == "6"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file.with_name("missing.pem")))
    with pytest.raises(InvalidRequestError, match=r"\$SSL_CERT_FILE") as caught:
        make_client(tls, trust_env=True)
    assert caught.value.argument == "trust_env"


@pytest.mark.parametrize("value", [False, True, "ca.pem", object()])
def test_ssl_takes_a_context_only(value: object) -> None:
    with pytest.raises(InvalidRequestError, match="SSLContext") as caught:
        Client("wemasy", token=TOKEN, ssl=value)  # type: ignore[arg-type]
    assert caught.value.argument == "ssl"
