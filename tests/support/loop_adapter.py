"""What the Loop adapter's tests share: its base, an id and path, responses, the pure parsers,
and the docs' JSON schema of a message history (:class:`SchemaHistory`)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from tests.support.recordings import response as response
from wemasy_async.providers.base import Response
from wemasy_async.providers.loop import LoopProvider

BASE = "https://ai.platform.loop.health"
CID = "7d0f4a52-1b9e-4c3a-8f21-6a5e9b3c2d10"
PATH = f"/v1/conversations/{CID}/messages"
SEGMENT = re.compile(r"[A-Za-z0-9._~%-]+")


# The docs' JSON schema, transcribed: every field required, exact types, nothing else allowed.
class SchemaUsage(msgspec.Struct, forbid_unknown_fields=True):
    """A message's ``token_usage`` as the docs' schema gives it."""

    prompt_tokens: int | float
    completion_tokens: int | float
    total_tokens: int | float


class SchemaMessage(msgspec.Struct, forbid_unknown_fields=True):
    """A message as the docs' schema gives it."""

    id: str
    conversation_id: str
    role: str
    content: str
    tool_calls: list[Any] | None
    token_usage: SchemaUsage | None
    metadata: dict[str, Any]
    created_at: str


class SchemaHistory(msgspec.Struct, forbid_unknown_fields=True):
    """A message history as the docs' schema gives it."""

    total: int
    messages: list[SchemaMessage]


def wire_message(index: int, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{index:012d}",
        "conversation_id": CID,
        "role": "user" if index % 2 else "assistant",
        "content": f"message {index}",
        "tool_calls": None,
        "token_usage": None,
        "metadata": {},
        "created_at": f"2024-03-05T09:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
    }
    message.update(fields)
    return message


def history(count: int, total: int | None = None) -> Response:
    body = {
        "total": count if total is None else total,
        "messages": [wire_message(i) for i in range(1, count + 1)],
    }
    return response(200, msgspec.json.encode(body))


def messages_parse(resp: Response) -> Any:
    return LoopProvider().list_messages(CID).parse(resp)


def get_parse(resp: Response) -> Any:
    return LoopProvider().get_conversation(CID).parse(resp)
