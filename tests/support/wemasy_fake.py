"""What the Wemasy fake's tests share: its endpoints, a request through plain aiohttp."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from wemasy_async.testing import FakeServer

GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"
AUTH = {"Authorization": "Bearer test-token"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z$")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
            },
        },
    },
}


Result = tuple[int, Any, Mapping[str, str]]


async def call(
    session: aiohttp.ClientSession,
    fake: FakeServer,
    endpoint: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    params: dict[str, str] | None = None,
) -> Result:
    """POST ``body`` as JSON (or raw ``data``) and return (status, decoded body, headers)."""
    async with session.post(
        fake.url + endpoint,
        json=body if data is None else None,
        data=data,
        headers=AUTH if headers is None else headers,
        params=params,
    ) as response:
        raw = await response.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw.decode()
        return response.status, decoded, response.headers
