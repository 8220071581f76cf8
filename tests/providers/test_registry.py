"""The provider registry: built-in names, unknown names, and third-party entry points.

The third-party test installs a provider the way a plug-in package would: a module plus a
``.dist-info`` directory declaring an entry point in the ``wemasy_async.providers`` group,
put on ``sys.path``. ``importlib.metadata`` finds it exactly as it finds an installed wheel.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from wemasy_async import (
    Client,
    ConversationStore,
    InvalidRequestError,
    NotFoundError,
    UnsupportedOperationError,
)
from wemasy_async.providers import get_provider, provider_names
from wemasy_async.providers.registry import ENTRY_POINT_GROUP

# A complete third-party adapter for a tiny REST API: GET /notes/{id} -> {"id", "title",
# "lines": [...]}. It uses only the public provider contract.
ACME_MODULE = """
from __future__ import annotations

from typing import ClassVar

import msgspec

from wemasy_async.errors import ResponseDecodeError, status_error
from wemasy_async.models import Conversation, Message
from wemasy_async.providers.base import Call, Operation, Provider, Request, Response
from wemasy_async.validation import check_integer_id


class Note(msgspec.Struct, frozen=True):
    id: int
    title: str
    lines: list[str]


_NOTE = msgspec.json.Decoder(Note)


def _parse(response: Response) -> Conversation:
    if response.status != 200:
        raise status_error(response.status, "acme error", provider="acme")
    try:
        note = _NOTE.decode(response.body)
    except msgspec.MsgspecError as exc:
        raise ResponseDecodeError(
            provider="acme", status=200, expected="a note", body=response.body, reason=str(exc)
        ) from exc
    messages = [
        Message(id=str(i), conversation_id=str(note.id), role="user", content=line)
        for i, line in enumerate(note.lines)
    ]
    return Conversation(id=str(note.id), provider="acme", goal=note.title, messages=messages)


class AcmeProvider(Provider):
    name: ClassVar[str] = "acme"
    default_base_url: ClassVar[str] = "https://acme.invalid"
    token_env: ClassVar[str] = "ACME_TOKEN"
    capabilities: ClassVar[frozenset[Operation]] = frozenset({"get_conversation"})

    def get_conversation(self, conversation_id: object) -> Call[Conversation]:
        note_id = check_integer_id(conversation_id, "conversation_id")
        return Call(Request(method="GET", path=f"/notes/{note_id}"), _parse)


def broken() -> object:
    raise RuntimeError("plug-in failed to initialise")


def not_a_provider() -> object:
    return object()
"""


def _install_plugin(root: Path, entry_points: dict[str, str]) -> None:
    (root / "acme_wemasy.py").write_text(ACME_MODULE)
    dist_info = root / "acme_wemasy-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-wemasy\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _install_plugin(
        tmp_path,
        {
            "acme": "acme_wemasy:AcmeProvider",
            "acme-broken": "acme_wemasy:broken",
            "acme-bogus": "acme_wemasy:not_a_provider",
            "wemasy": "acme_wemasy:AcmeProvider",  # must not hijack a built-in name
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("acme_wemasy", None)


@pytest.fixture
async def acme_server() -> AsyncIterator[str]:
    notes = {7: {"id": 7, "title": "Groceries", "lines": ["milk", "bread"]}}

    async def note(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer acme-token":
            return web.json_response({"error": "unauthorized"}, status=401)
        found = notes.get(int(request.match_info["id"]))
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(found)

    app = web.Application()
    app.router.add_get("/notes/{id}", note)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_builtin_names() -> None:
    assert {"wemasy", "siteassist", "loop"} <= set(provider_names())
    assert get_provider("wemasy").name == "wemasy"


def test_each_call_gets_a_fresh_adapter() -> None:
    assert get_provider("wemasy") is not get_provider("wemasy")


@pytest.mark.parametrize("name", ["nope", "", "WEMASY", "wemasy "])
def test_unknown_name_lists_the_known_ones(name: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Client(name, token="t")
    message = str(info.value)
    assert repr(name) in message
    for known in ("'wemasy'", "'siteassist'", "'loop'"):
        assert known in message
    assert info.value.argument == "provider"


@pytest.mark.parametrize("value", [None, 3, b"wemasy", object()])
def test_non_string_provider_is_invalid(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        Client(value, token="t")  # type: ignore[arg-type]


@pytest.mark.usefixtures("plugin")
async def test_third_party_provider_works_through_client(acme_server: str) -> None:
    assert "acme" in provider_names()
    async with Client("acme", token="acme-token", base_url=acme_server) as client:
        assert isinstance(client, ConversationStore)
        assert client.capabilities == frozenset({"get_conversation"})
        note = await client.get_conversation(7)
        assert note.provider == "acme"
        assert note.goal == "Groceries"
        assert [m.content for m in note.messages or ()] == ["milk", "bread"]
        with pytest.raises(NotFoundError):
            await client.get_conversation(8)
        with pytest.raises(UnsupportedOperationError) as info:
            await client.chat("hi")
    assert (info.value.provider, info.value.operation) == ("acme", "chat")


@pytest.mark.usefixtures("plugin")
def test_third_party_token_comes_from_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    with pytest.raises(InvalidRequestError, match=r"\$ACME_TOKEN"):
        Client("acme")
    monkeypatch.setenv("ACME_TOKEN", "from-env")
    assert Client("acme", session=None).provider == "acme"


@pytest.mark.usefixtures("plugin")
def test_entry_point_cannot_hijack_a_builtin_name() -> None:
    assert type(get_provider("wemasy")).__module__ == "wemasy_async.providers.wemasy"


@pytest.mark.usefixtures("plugin")
def test_broken_plugin_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="failed to load") as info:
        get_provider("acme-broken")
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.usefixtures("plugin")
def test_plugin_that_is_not_a_provider_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="is not a wemasy_async Provider"):
        get_provider("acme-bogus")


def test_provider_instance_can_be_passed_directly() -> None:
    namespace: dict[str, object] = {}
    exec(compile(textwrap.dedent(ACME_MODULE), "acme_inline", "exec"), namespace)
    provider_class = namespace["AcmeProvider"]
    assert isinstance(provider_class, type)
    client = Client(provider_class(), token="t")
    assert client.provider == "acme"
    assert client.base_url == "https://acme.invalid"
