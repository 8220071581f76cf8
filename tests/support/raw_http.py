"""What the fault-mode tests share: Wemasy's endpoints, and requests at the raw level (plain
aiohttp, or bytes over an asyncio stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import aiohttp

from wemasy_async.testing import FakeWemasy

GET = "/services/ai/v1/conversations/get"
LIST = "/services/ai/v1/conversations/list"
CHAT = "/services/ai/v1/chat"
AUTH = {"Authorization": "Bearer test-token"}
PROOF = 10.0  # seconds: a bound that only proves "no hang"


async def post(
    session: aiohttp.ClientSession, fake: FakeWemasy, endpoint: str, body: Any
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with session.post(fake.url + endpoint, json=body, headers=AUTH) as response:
        return response.status, await response.read(), response.headers


async def reference_body(fake: FakeWemasy, conversation_id: int = 3) -> bytes:
    """The body a healthy ``conversations/get`` returns (fresh session, not logged)."""
    async with aiohttp.ClientSession() as other:
        status, body, _ = await post(other, fake, GET, {"conversation_id": conversation_id})
    assert status == 200
    fake.reset_log()
    return body


async def raw_exchange(fake: FakeWemasy, endpoint: str, body: bytes) -> tuple[bytes, bytes]:
    """POST over a bare socket; return (head, body bytes received before EOF or reset)."""
    host, port = fake.host, fake.port
    # A large read limit: some faults send heads far beyond asyncio's 64 KiB default.
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        writer.write(
            f"POST {fake.url_prefix}{endpoint} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return head, received
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def header(head: bytes, name: str) -> str | None:
    match = re.search(rf"^{name}: (.*)\r$", head.decode("latin-1"), re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else None


def user_messages(fake: FakeWemasy, text: str) -> list[dict[str, Any]]:
    return [
        message
        for conversation in fake.conversations.values()
        for message in conversation["messages"]
        if message["role"] == "user" and message["content"] == text
    ]
