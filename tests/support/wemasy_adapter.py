"""What the Wemasy adapter's tests share: its paths, a tool, responses and the pure parsers."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.support.recordings import response as response
from wemasy_async.providers.base import ChatParams, Request, Response
from wemasy_async.providers.wemasy import WemasyProvider

GET_PATH = "/services/ai/v1/conversations/get"
LIST_PATH = "/services/ai/v1/conversations/list"
CHAT_PATH = "/services/ai/v1/chat"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def body_of(request: Request) -> Any:
    assert request.body is not None
    return msgspec.json.decode(request.body)


def chat_request(**kwargs: Any) -> Request:
    return WemasyProvider().chat(ChatParams(**kwargs)).request


def get_parse(resp: Response) -> Any:
    return WemasyProvider().get_conversation(1).parse(resp)


def chat_parse(resp: Response) -> Any:
    return WemasyProvider().chat(ChatParams(message="hi")).parse(resp)
