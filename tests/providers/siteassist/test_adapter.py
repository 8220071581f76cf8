"""The SiteAssist adapter without I/O: its identity, request descriptions, argument checks.

Response parsing is in ``test_adapter_responses.py``.
"""

from __future__ import annotations

import ast
import inspect
import uuid
from typing import Any

import pytest
from aioresponses import aioresponses

from tests.support.siteassist_adapter import (
    DOCS_ID,
    UPPER_ID,
    conversation_body,
    messages_parse,
    response,
)
from wemasy_async import Client, InvalidRequestError, UnsupportedOperationError
from wemasy_async.providers import get_provider
from wemasy_async.providers import siteassist as siteassist_module
from wemasy_async.providers.base import Call, ChatParams, ListConversationsParams, Request
from wemasy_async.providers.siteassist import SiteAssistProvider
from wemasy_async.validation import check_uuid


@pytest.fixture
def siteassist() -> SiteAssistProvider:
    return SiteAssistProvider()


# --- The adapter's identity ------------------------------------------------------------------


def test_provider_metadata(siteassist: SiteAssistProvider) -> None:
    assert siteassist.name == "siteassist"
    assert siteassist.default_base_url == "https://api.siteassist.io/v2"
    assert siteassist.token_env == "SITEASSIST_API_TOKEN"
    assert siteassist.capabilities == frozenset({"get_conversation", "list_messages"})
    assert repr(siteassist) == "<SiteAssistProvider 'siteassist'>"


def test_registry_finds_siteassist() -> None:
    provider = get_provider("siteassist")
    assert isinstance(provider, SiteAssistProvider)
    assert get_provider("siteassist") is not provider


def test_adapter_module_does_no_io() -> None:
    tree = ast.parse(inspect.getsource(siteassist_module))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert not imported & {"aiohttp", "socket", "asyncio", "anyio", "httpx"}


# --- Request descriptions --------------------------------------------------------------------


@pytest.mark.parametrize(
    "conversation_id",
    [DOCS_ID, UPPER_ID, "123E4567-e89b-12D3-a456-426614174000", uuid.UUID(DOCS_ID)],
    ids=repr,
)
def test_get_conversation_request(siteassist: SiteAssistProvider, conversation_id: Any) -> None:
    call = siteassist.get_conversation(conversation_id)
    assert isinstance(call, Call)
    request = call.request
    assert request.method == "GET"
    assert request.path == f"/conversations/{DOCS_ID}"
    assert request.query == ()
    assert request.body is None
    assert request.idempotent is True


def test_list_messages_reads_the_conversation_endpoint(siteassist: SiteAssistProvider) -> None:
    expected = siteassist.get_conversation(DOCS_ID).request
    assert siteassist.list_messages(UPPER_ID).request == expected
    assert siteassist.list_messages(uuid.UUID(DOCS_ID), limit=3).request == expected


def test_requests_are_immutable_descriptions(siteassist: SiteAssistProvider) -> None:
    request = siteassist.get_conversation(DOCS_ID).request
    with pytest.raises(AttributeError):
        request.path = "/elsewhere"  # type: ignore[misc]
    assert hash(request) == hash(siteassist.get_conversation(UPPER_ID).request)
    assert request == Request(method="GET", path=f"/conversations/{DOCS_ID}")


@pytest.mark.parametrize(
    "value",
    [
        "00000000-0000-0000-0000-000000000000",  # the nil UUID is still a UUID
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        str(uuid.UUID(int=5, version=4)),
        # A version-1 UUID, fixed: xdist workers must collect the same ids.
        uuid.UUID("d6f30fea-ed6c-11f1-8001-000000000001"),
    ],
    ids=repr,
)
def test_any_uuid_version_is_accepted(siteassist: SiteAssistProvider, value: Any) -> None:
    path = siteassist.get_conversation(value).request.path
    assert path == f"/conversations/{str(value).lower()}"


# --- Id validation ---------------------------------------------------------------------------


BAD_IDS: list[object] = [
    1,
    0,
    2**128 - 1,
    True,
    False,
    None,
    1.5,
    "",
    " ",
    "27",
    f" {DOCS_ID}",
    f"{DOCS_ID} ",
    f"{DOCS_ID}\n",
    f"{{{DOCS_ID}}}",
    f"urn:uuid:{DOCS_ID}",
    DOCS_ID.replace("-", ""),
    DOCS_ID[:-1],
    DOCS_ID + "0",
    "g23e4567-e89b-12d3-a456-426614174000",
    "123e4567-e89b-12d3-a456_426614174000",
    "123e4567e-89b-12d3-a456-426614174000",
    "１２３e4567-e89b-12d3-a456-426614174000",  # FULLWIDTH digits
    "../x",
    f"../{DOCS_ID}",
    f"{DOCS_ID}/messages",
    f"{DOCS_ID}?x=1",
    f"{DOCS_ID}#frag",
    f"{DOCS_ID[:8]}%2F{DOCS_ID[9:]}",
    DOCS_ID.encode(),
    uuid.UUID(DOCS_ID).bytes,
    [DOCS_ID],
    {"id": DOCS_ID},
]


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
@pytest.mark.parametrize("operation", ["get_conversation", "list_messages"])
def test_conversation_id_rejected(
    siteassist: SiteAssistProvider, operation: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        getattr(siteassist, operation)(value)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.argument == "conversation_id"
    assert str(error).startswith("conversation_id must be a UUID")


def test_rejected_id_message_shows_a_short_repr() -> None:
    with pytest.raises(InvalidRequestError) as info:
        SiteAssistProvider().get_conversation("x" * 500)
    assert len(str(info.value)) < 200
    assert "..." in str(info.value)
    assert "(str)" in str(info.value)


def test_check_uuid_names_the_argument_it_checks() -> None:
    assert check_uuid(UPPER_ID, "agent_id") == DOCS_ID
    assert check_uuid(uuid.UUID(DOCS_ID), "agent_id") == DOCS_ID
    with pytest.raises(InvalidRequestError) as info:
        check_uuid("nope", "agent_id")
    assert info.value.argument == "agent_id"


@pytest.mark.parametrize("limit", [0, -1, True, False, 1.0, "2"], ids=repr)
def test_limit_rejected(siteassist: SiteAssistProvider, limit: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        siteassist.list_messages(DOCS_ID, limit)  # type: ignore[arg-type]
    assert info.value.argument == "limit"


def test_bad_id_is_reported_before_a_bad_limit(siteassist: SiteAssistProvider) -> None:
    with pytest.raises(InvalidRequestError) as info:
        siteassist.list_messages("nope", 0)
    assert info.value.argument == "conversation_id"


THREE_MESSAGES = conversation_body(
    messages=[
        {"id": "a", "role": "user", "content": "one"},
        {"id": "b", "role": "assistant", "content": "two"},
        {"id": "c", "role": "user", "content": "three"},
    ]
)


@pytest.mark.parametrize(
    ("limit", "ids"),
    [
        (None, ["a", "b", "c"]),
        (1, ["a"]),
        (2, ["a", "b"]),
        (3, ["a", "b", "c"]),
        (50, ["a", "b", "c"]),
    ],
)
def test_limit_keeps_the_first_messages(limit: int | None, ids: list[str]) -> None:
    messages = messages_parse(response(200, THREE_MESSAGES), limit)
    assert [m.id for m in messages] == ids


# --- Unsupported operations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "describe"),
    [
        ("list_conversations", lambda p: p.list_conversations(ListConversationsParams())),
        ("chat", lambda p: p.chat(ChatParams(message="hi"))),
    ],
)
def test_unsupported_operations_on_the_adapter(operation: str, describe: Any) -> None:
    with pytest.raises(UnsupportedOperationError) as info:
        describe(SiteAssistProvider())
    assert info.value.provider == "siteassist"
    assert info.value.operation == operation
    assert str(info.value) == f"provider 'siteassist' does not support {operation!r}"


async def test_unsupported_operations_through_the_client_do_no_io(
    mock_http: aioresponses,
) -> None:
    async with Client("siteassist", token="t") as client:
        assert client.capabilities == frozenset({"get_conversation", "list_messages"})
        with pytest.raises(UnsupportedOperationError) as info:
            await client.list_conversations()
        assert (info.value.provider, info.value.operation) == ("siteassist", "list_conversations")
        with pytest.raises(UnsupportedOperationError) as info:
            await client.chat("hi")
        assert (info.value.provider, info.value.operation) == ("siteassist", "chat")
        with pytest.raises(UnsupportedOperationError) as info:
            client.iter_conversations()  # raised at call time, before any iteration
        assert info.value.provider == "siteassist"
        # The client describes iteration through list_conversations.
        assert info.value.operation in {"iter_conversations", "list_conversations"}
        with pytest.raises(InvalidRequestError):
            await client.get_conversation(27)
    assert mock_http.requests == {}
