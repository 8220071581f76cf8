"""Raw HTTP/1.1 on a fake server's connections: what the network faults write and break.

aiohttp writes well-formed responses only, so the faults that send half a response, a
malformed head or one byte at a time write to the transport themselves and then close or
reset it. `Connections` numbers the connections a server sees, remembers the ones a
``keepalive_close`` fault doomed and the ones a fault holds open, and frees those at once
when the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import weakref
from collections.abc import Iterable, Mapping
from typing import Final

from aiohttp import web

__all__ = ["Connections", "body_bytes", "close_after", "drop", "head", "reset", "reset_after"]

#: How often a held connection looks whether its client or the server is gone.
HOLD_POLL: Final = 0.02


def head(status: int, reason: str, headers: Mapping[str, str]) -> bytes:
    """A serialized HTTP/1.1 status line and header block."""
    lines = [f"HTTP/1.1 {status} {reason}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def body_bytes(response: web.StreamResponse) -> bytes:
    """The body of an already built `web.Response` (b"" for a streamed one)."""
    body = response.body if isinstance(response, web.Response) else None
    return bytes(body) if isinstance(body, (bytes, bytearray)) else b""


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP RST (not a FIN), what a crashed or killed server's peer sees."""
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER with a zero timeout turns close() into an abortive RST.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert isinstance(transport, asyncio.WriteTransport)
    transport.abort()


def _discarded() -> web.StreamResponse:
    # What a handler returns once it wrote or closed the transport itself: aiohttp
    # discards a response for a closed transport, and the client never sees this one.
    return web.Response(status=500)


def _open(request: web.Request) -> asyncio.WriteTransport | None:
    transport = request.transport
    if transport is None or transport.is_closing():
        return None
    assert isinstance(transport, asyncio.WriteTransport)
    return transport


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without a response."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return _discarded()


def reset_after(request: web.Request, data: bytes) -> web.StreamResponse:
    """Send ``data`` (a response head, maybe part of a body) raw, then reset."""
    transport = _open(request)
    if transport is not None:
        transport.write(data)
        reset(transport)
    return _discarded()


def close_after(request: web.Request, data: bytes) -> web.StreamResponse:
    """Send ``data`` raw, then close the connection (a FIN)."""
    transport = _open(request)
    if transport is not None:
        transport.write(data)
        transport.close()
    return _discarded()


class Connections:
    """The connections of one server: their numbers, the doomed ones and the held ones."""

    def __init__(self) -> None:
        # Connections are told apart by their transports; weak, so nothing outlives them.
        self._numbers: weakref.WeakKeyDictionary[asyncio.BaseTransport, int] = (
            weakref.WeakKeyDictionary()
        )
        self._count = 0
        #: Connections whose next request is dropped (``keepalive_close``).
        self.doomed: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        #: Connections a fault holds open now; reset by `close_all`.
        self.held: set[asyncio.BaseTransport] = set()
        self.closing = False

    def number(self, transport: asyncio.BaseTransport | None) -> int:
        """The connection's sequence number (1 for the first one seen; 0 for none)."""
        if transport is None:
            return 0
        number = self._numbers.get(transport)
        if number is None:
            self._count += 1
            number = self._numbers[transport] = self._count
        return number

    def close_all(self) -> None:
        """Reset every held connection; the faults holding them notice and return."""
        self.closing = True
        for transport in list(self.held):
            reset(transport)

    async def feed(
        self, request: web.Request, chunks: Iterable[bytes], interval: float, *, finish: bool
    ) -> web.StreamResponse:
        """Write ``chunks`` one every ``interval`` seconds while client and server stay.

        With ``finish`` the connection is closed (a FIN, so nothing sent is lost) once all
        chunks are out (``slow_trickle``); without it, it is then held, polled every
        ``interval``, until the client or the server goes away (``stall``). Any other end
        is a reset.
        """
        transport = _open(request)
        if transport is None:
            return _discarded()
        self.held.add(transport)
        done = False
        try:
            for chunk in chunks:
                if transport.is_closing() or self.closing:
                    break
                transport.write(chunk)
                await asyncio.sleep(interval)
            else:
                done = finish
                # Polling is plenty for a fault: aiohttp offers no "client went away" awaitable.
                while not done and not transport.is_closing() and not self.closing:  # noqa: ASYNC110
                    await asyncio.sleep(interval)
        finally:
            self.held.discard(transport)
            if done:
                transport.close()
            else:
                reset(transport)
        return _discarded()

    async def stream(
        self, request: web.Request, response: web.StreamResponse, chunks: Iterable[bytes]
    ) -> web.StreamResponse:
        """Send ``response`` with ``chunks`` as its body until done or the client goes away.

        `web.StreamResponse.write` waits for the client to drain the socket buffer, so a
        client that stops reading holds this coroutine, not memory. The server closing
        resets the connection.
        """
        transport = request.transport
        if transport is None:
            return response
        self.held.add(transport)
        try:
            await response.prepare(request)
            for chunk in chunks:
                if self.closing:
                    reset(transport)
                    return response
                await response.write(chunk)
        except ConnectionError:
            pass  # the client went away: the point of the fault
        finally:
            self.held.discard(transport)
        return response
