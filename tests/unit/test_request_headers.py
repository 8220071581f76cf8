"""The caller's request headers: ``default_headers``, ``extra_headers`` and ``user_agent``."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator

import pytest

from wemasy_async import APIConnectionError, Client, InvalidRequestError, __version__
from wemasy_async.redaction import SecretHeaders
from wemasy_async.testing import FakeWemasy

TOKEN = "headers-token-0123456789abcdef"
KEY = "caller-secret-key-9876543210"
AGENT = f"wemasy-async/{__version__}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWemasy]:
    async with FakeWemasy(seed=2, conversations=3, token=TOKEN) as server:
        yield server


def make_client(fake: FakeWemasy, **kwargs: object) -> Client:
    return Client(
        "wemasy",
        base_url=fake.url,
        token=TOKEN,
        rate_limit=False,
        **kwargs,  # type: ignore[arg-type]
    )


def with_headers(where: str, headers: dict[str, str]) -> Client:
    """A client given ``headers`` as ``default_headers`` or, on a copy, ``extra_headers``."""
    if where == "default_headers":
        return Client("wemasy", token=TOKEN, default_headers=headers)
    return Client("wemasy", token=TOKEN).with_options(extra_headers=headers)


async def test_default_headers_go_with_every_request(fake: FakeWemasy) -> None:
    async with make_client(fake, default_headers={"X-Trace": "abc", "X-Api-Key": KEY}) as client:
        await client.get_conversation(1)
        await client.chat("hi")
    for request in fake.requests:
        assert request.headers["X-Trace"] == "abc"
        assert request.headers["X-Api-Key"] == KEY
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["User-Agent"] == AGENT


async def test_user_agent_is_a_suffix(fake: FakeWemasy) -> None:
    async with make_client(fake, user_agent="mylib/2.1") as client:
        await client.get_conversation(1)
    assert fake.requests[0].headers["User-Agent"] == f"{AGENT} mylib/2.1"


async def test_default_headers_replace_the_clients_own_in_any_case(fake: FakeWemasy) -> None:
    headers = {"accept": "application/vnd.test+json", "Content-Type": "text/plain"}
    async with make_client(fake, default_headers=headers) as client:
        await client.get_conversation(1)
    sent = fake.requests[0].headers
    assert sent.getall("Accept") == ["application/vnd.test+json"]
    # The JSON body is still declared as JSON.
    assert sent.getall("Content-Type") == ["application/json"]


async def test_extra_headers_apply_to_the_copy_only(fake: FakeWemasy) -> None:
    async with make_client(fake, default_headers={"X-Tenant": "a", "X-Keep": "k"}) as client:
        await client.with_options(extra_headers={"x-tenant": "b", "X-Call": "1"}).get_conversation(
            1
        )
        await client.get_conversation(2)
        # with_options copies keep their headers through other copies.
        copy = client.with_options(extra_headers={"X-Call": "2"}).with_options(timeout=3)
        await copy.get_conversation(3)
    first, second, third = (request.headers for request in fake.requests)
    assert first.getall("X-Tenant") == ["b"]
    assert (first["X-Call"], first["X-Keep"]) == ("1", "k")
    assert second["X-Tenant"] == "a"
    assert "X-Call" not in second
    assert third["X-Call"] == "2"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "Host", "Content-Length"])
@pytest.mark.parametrize("where", ["default_headers", "extra_headers"])
def test_the_clients_own_headers_cannot_be_set(name: str, where: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        with_headers(where, {name: "x"})
    assert raised.value.argument == where
    assert name in str(raised.value)


@pytest.mark.parametrize("value", [f"{KEY}\r\nX-Evil: 1", f"{KEY}\nX", f"{KEY}\r", "a\x00b"])
@pytest.mark.parametrize("where", ["default_headers", "extra_headers"])
def test_a_value_with_cr_or_lf_is_refused_without_echoing_it(value: str, where: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        with_headers(where, {"X-Api-Key": value})
    assert raised.value.argument == where
    assert KEY not in str(raised.value)
    assert "X-Api-Key" in str(raised.value)


@pytest.mark.parametrize(
    "headers",
    [
        ["X-A", "b"],
        {"X A": "b"},
        {"": "b"},
        {"X-A:": "b"},
        {3: "b"},
        {"X-A": 3},
        {"X-A": None},
        {"X-A": "1", "x-a": "2"},
    ],
    ids=["list", "space", "empty", "colon", "int-name", "int-value", "none-value", "twice"],
)
def test_malformed_headers_are_refused(headers: object) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Client("wemasy", token=TOKEN, default_headers=headers)  # type: ignore[arg-type]
    assert raised.value.argument == "default_headers"


@pytest.mark.parametrize("agent", ["", "  ", "a\r\nb", "ünï", 3, b"lib/1"])
def test_a_bad_user_agent_is_refused(agent: object) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Client("wemasy", token=TOKEN, user_agent=agent)  # type: ignore[arg-type]
    assert raised.value.argument == "user_agent"


def test_header_values_never_show_in_a_repr() -> None:
    headers = SecretHeaders(
        {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": KEY, "User-Agent": AGENT}
    ).merged({"Accept": "application/json"})
    shown = repr(headers)
    assert TOKEN not in shown
    assert KEY not in shown
    assert "'X-Api-Key': '[REDACTED]'" in shown
    assert f"'User-Agent': '{AGENT}'" in shown


async def test_a_failure_shows_no_header_value_in_logs_or_tracebacks(
    fake: FakeWemasy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wemasy_async")
    fake.queue_disconnect()
    async with make_client(fake, default_headers={"X-Api-Key": KEY}, retry=False) as client:
        with pytest.raises(APIConnectionError) as raised:
            await client.get_conversation(1)
    rendered = "".join(
        traceback.TracebackException.from_exception(raised.value, capture_locals=True).format()
    )
    assert "SecretHeaders(" in rendered  # the frames holding the headers were rendered
    assert KEY not in rendered
    assert TOKEN not in rendered
    assert all(KEY not in record.getMessage() for record in caplog.records)
