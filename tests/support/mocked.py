"""What the aioresponses tests of the client share: Wemasy's URLs, a secret, a conversation, and
what was sent.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aioresponses import aioresponses
from yarl import URL

BASE = "https://api.wemasy.nl/api"
GET_URL = f"{BASE}/services/ai/v1/conversations/get"
LIST_URL = f"{BASE}/services/ai/v1/conversations/list"
CHAT_URL = f"{BASE}/services/ai/v1/chat"
SECRET = "sk-SECRET-123"

CONVERSATION = {
    "success": True,
    "data": {
        "id": 27,
        "agent_id": "chat",
        "status": "completed",
        "cost_tokens": 10,
        "cost_amount": "0.0010",
        "started_at": "2024-01-15T10:30:00.000000Z",
        "ended_at": None,
        "messages": [{"id": 1, "role": "user", "content": "Hallo"}],
    },
}


def sent(mock_http: aioresponses, url: str, method: str = "POST") -> list[dict[str, Any]]:
    """The keyword arguments of every request sent to ``url``."""
    return [call.kwargs for call in mock_http.requests.get((method, URL(url)), [])]


def sent_bodies(mock_http: aioresponses, url: str) -> list[Any]:
    return [msgspec.json.decode(kwargs["data"]) for kwargs in sent(mock_http, url)]


def list_page(ids: list[int], page: int, last_page: int, per_page: int, total: int) -> Any:
    return {
        "success": True,
        "data": [{"id": i, "agent_id": "chat", "status": "completed"} for i in ids],
        "pagination": {
            "current_page": page,
            "last_page": last_page,
            "per_page": per_page,
            "total": total,
        },
    }
