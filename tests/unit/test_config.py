"""``ClientConfig``: a client's arguments checked once into one immutable value, what the
engine sends with, and what a ``with_options`` copy derives its own from; the token in no
rendering of it."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Iterator

import msgspec
import pytest

from wemasy_async import (
    DEFAULT_TIMEOUT,
    Client,
    InternalServerError,
    InvalidRequestError,
    RateLimit,
    RetryPolicy,
)
from wemasy_async.config import ClientConfig
from wemasy_async.exchange import Response
from wemasy_async.hooks import AnyEvent
from wemasy_async.testing import MockRequest, MockTransport, json_response

TOKEN = "cfg-SECRET-token-3141592653"
# The token and pieces of it a partial leak would still show.
SECRET_PARTS = (TOKEN, "SECRET-token", "3141592653")


def conversation(request: MockRequest) -> Response:
    return json_response(200, {"success": True, "data": {"id": 1, "agent_id": "a"}})


def failing(request: MockRequest) -> Response:
    return json_response(500, {"success": False, "message": "boom"})


def make_client(**kwargs: object) -> Client:
    settings: dict[str, object] = {"token": TOKEN, "transport": MockTransport(conversation)}
    settings.update(kwargs)
    return Client("wemasy", **settings)  # type: ignore[arg-type]


def hook(event: AnyEvent) -> None:
    pass


# --- Built once, sent with -----------------------------------------------------------------------


def test_the_client_builds_one_config_and_its_engine_sends_with_it() -> None:
    transport = MockTransport(conversation)
    config = make_client(transport=transport, timeout=3, user_agent="mylib/2.1")._config
    assert isinstance(config, ClientConfig)
    assert config.provider.name == "wemasy"
    assert config.base_url == "https://api.wemasy.nl/api"
    assert config.timeout == 3.0
    assert config.retry == RetryPolicy()
    assert config.limiter is not None
    assert config.limiter.config == RateLimit()
    assert config.hooks is None
    assert config.transport is transport
    assert config.session is None
    assert config.headers["Authorization"] == f"Bearer {TOKEN}"
    assert config.headers["User-Agent"].endswith(" mylib/2.1")
    assert "Content-Type" not in config.headers
    assert config.body_headers["Content-Type"] == "application/json"
    assert make_client()._engine.options is not config  # one per client
    client = make_client()
    assert client._engine.options is client._config


def test_a_config_cannot_be_changed_in_place() -> None:
    config = make_client()._config
    with pytest.raises(AttributeError):
        config.timeout = 1.0  # type: ignore[misc]
    assert config.timeout == DEFAULT_TIMEOUT


# --- replace: what with_options copies derive ----------------------------------------------------


def test_replace_with_nothing_is_the_config_itself() -> None:
    client = make_client()
    assert client._config.replace() is client._config
    assert client._config.replace(extra_headers={}) is client._config
    assert client.with_options()._config is client._config


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"timeout": 2}, "timeout", 2.0),
        ({"timeout": None}, "timeout", None),
        ({"retry": False}, "retry", None),
        ({"retry": RetryPolicy(max_attempts=7)}, "retry", RetryPolicy(max_attempts=7)),
        ({"hooks": None}, "hooks", None),
    ],
)
def test_replace_changes_what_it_names_and_keeps_every_other_value(
    changes: dict[str, object], field: str, expected: object
) -> None:
    config = make_client(hooks=[hook])._config
    changed = config.replace(**changes)
    assert getattr(changed, field) == expected
    for other in msgspec.structs.fields(ClientConfig):
        if other.name != field:
            # The same objects, not rebuilt: the limiter and the hooks' state are shared,
            # and the transport keeps the aiohttp form of the headers by identity.
            assert getattr(changed, other.name) is getattr(config, other.name), other.name
    assert config.timeout == DEFAULT_TIMEOUT  # the original is untouched


def test_replace_builds_new_hooks_only_when_given() -> None:
    config = make_client()._config
    assert config.replace(hooks=[hook]).hooks is not None
    assert config.replace(hooks=[]).hooks is None


def test_extra_headers_are_added_to_both_header_sets() -> None:
    config = make_client(default_headers={"X-Team": "a"})._config
    changed = config.replace(extra_headers={"x-team": "b", "X-Trace": "1"})
    for headers in (changed.headers, changed.body_headers):
        assert headers["X-Trace"] == "1"
        assert headers["x-team"] == "b"
        assert "X-Team" not in headers  # replaced whatever its case
        assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert changed.body_headers["Content-Type"] == "application/json"
    assert "X-Trace" not in config.headers


@pytest.mark.parametrize(
    ("argument", "value"),
    [("timeout", 0), ("timeout", "5"), ("retry", "yes"), ("retry", RateLimit()), ("hooks", 3)],
)
def test_replace_refuses_what_the_constructor_refuses_with_the_same_message(
    argument: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as constructed:
        make_client(**{argument: value})
    with pytest.raises(InvalidRequestError) as replaced:
        make_client()._config.replace(**{argument: value})
    assert replaced.value.argument == constructed.value.argument == argument
    assert str(replaced.value) == str(constructed.value)


def test_extra_headers_are_checked_under_their_own_name() -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_client()._config.replace(extra_headers={"Authorization": "Bearer other"})
    assert info.value.argument == "extra_headers"


async def test_a_copy_shares_the_transport_limiter_and_latency_and_owns_nothing() -> None:
    async with make_client() as client:
        copy = client.with_options(timeout=1, extra_headers={"X-Trace": "1"})
        assert copy._engine.options is copy._config
        assert copy._config.timeout == 1.0
        assert copy._engine.transport is client._engine.transport
        assert copy._engine.latency is client._engine.latency
        assert copy.limiter is client.limiter
        assert copy.base_url == client.base_url
        assert copy._transport is None
        await copy.get_conversation(1)
        assert client._engine.latency.seconds is not None  # the copy's exchange counts


async def test_a_raw_calls_copy_has_the_clients_config_and_its_closed_state() -> None:
    client = make_client()
    transport = MockTransport(conversation)
    recording = client._recording(transport)
    assert recording._config is client._config
    assert recording._engine.transport is transport
    assert not recording._closed
    await client.aclose()
    assert client._recording(transport)._closed


# --- The token in no rendering -------------------------------------------------------------------


def leaked(texts: list[str]) -> list[str]:
    return [text for text in texts if any(part in text for part in SECRET_PARTS)]


def renderings(config: ClientConfig) -> Iterator[str]:
    """repr and str of ``config`` and of each of its fields, and its pickle's refusal."""
    yield repr(config)
    yield str(config)
    for field in msgspec.structs.fields(config):
        yield repr(getattr(config, field.name))
    with pytest.raises(TypeError) as refused:
        pickle.dumps(config)
    yield str(refused.value)


def call_renderings(error: BaseException) -> list[str]:
    """The error's traceback with every frame's locals (the engine's hold the config), str,
    repr and pickle."""
    data = pickle.dumps(error)
    return [
        "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format()),
        "".join(traceback.format_exception(error)),
        str(error),
        repr(error),
        data.decode("latin-1"),
    ]


async def test_no_rendering_of_a_config_or_a_copys_shows_the_token() -> None:
    async with make_client(transport=MockTransport(failing), retry=False) as client:
        copy = client.with_options(timeout=5, hooks=[hook], extra_headers={"X-Trace": "1"})
        texts = [*renderings(client._config), *renderings(copy._config)]
        for failing_client in (client, copy):
            with pytest.raises(InternalServerError) as caught:
                await failing_client.get_conversation(1)
            texts += call_renderings(caught.value)
    rendered = "".join(texts)
    assert "ClientConfig(" in rendered  # a frame's config was rendered
    assert "SecretHeaders(" in rendered
    assert leaked(texts) == []


def test_a_bad_change_shows_no_token_either() -> None:
    config = make_client()._config
    with pytest.raises(InvalidRequestError) as caught:
        config.replace(timeout=-1)
    texts = call_renderings(caught.value)
    assert "ClientConfig(" in texts[0]  # replace's frame, whose self is the config
    assert leaked(texts) == []


@pytest.mark.parametrize("refused", [{"provider": "nope"}, {"hooks": 5}, {"timeout": 0}])
def test_a_refused_construction_renders_with_its_frames_locals(refused: dict[str, object]) -> None:
    arguments: dict[str, object] = {"provider": "wemasy", "token": TOKEN, **refused}
    with pytest.raises(InvalidRequestError) as caught:
        Client(**arguments)  # type: ignore[arg-type]
    shown = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    assert "<Client (not made" in "".join(shown.format())  # __init__'s self, half made
