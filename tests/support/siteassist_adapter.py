"""What the SiteAssist adapter's tests share: the docs' id, responses, bodies, the pure parsers."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.support.recordings import response as response
from wemasy_async import APIStatusError
from wemasy_async.providers.base import Response
from wemasy_async.providers.siteassist import SiteAssistProvider

DOCS_ID = "123e4567-e89b-12d3-a456-426614174000"
UPPER_ID = DOCS_ID.upper()


def get_parse(resp: Response) -> Any:
    return SiteAssistProvider().get_conversation(DOCS_ID).parse(resp)


def messages_parse(resp: Response, limit: int | None = None) -> Any:
    return SiteAssistProvider().list_messages(DOCS_ID, limit).parse(resp)


def error_body(message: str, code: str, details: Any = None) -> bytes:
    error: dict[str, Any] = {"message": message, "code": code}
    if details is not None:
        error["details"] = details
    return msgspec.json.encode({"error": error})


def conversation_body(**fields: Any) -> bytes:
    return msgspec.json.encode({"object": "conversation", "id": DOCS_ID, **fields})


def raised(resp: Response) -> APIStatusError:
    with pytest.raises(APIStatusError) as info:
        get_parse(resp)
    return info.value
