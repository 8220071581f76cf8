"""The HTTP value types: the :class:`Request` an adapter describes and the :class:`Response`
the transport brings back.

They sit below both sides of the engine: the provider adapters build requests and parse
responses (sans-I/O), the transport turns one into the other over the network, and neither
needs the other's package. Plain frozen values, no behaviour beyond a safe ``repr``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from typing import Any, Literal, Protocol

import msgspec

__all__ = ["BEFORE_SEND", "BeforeSend", "NotSent", "Request", "Response"]


class BeforeSend(Protocol):
    """What the engine asks of the moment a request has its connection."""

    def connected(self) -> Awaitable[None] | None:
        """Called once the request has a connection, before any of its bytes are written;
        an awaitable it returns is awaited there; raising :class:`NotSent` (either) stops
        the request, unsent."""


#: Set by the engine around a paced exchange (the rate limiter's check of a late send);
#: the connector of the session the client creates calls it from the request's task.
BEFORE_SEND: ContextVar[BeforeSend | None] = ContextVar("wemasy_async_before_send", default=None)


class NotSent(Exception):
    """A request was stopped before any of its bytes were written (by :data:`BEFORE_SEND`):
    the engine sends it again, as it was never sent."""


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """A request to send, relative to the client's base URL.

    Attributes:
        method: The HTTP method.
        path: The path below the base URL, starting with ``/`` and already percent-encoded.
        query: Query parameters, in order.
        body: The JSON body, already encoded, or ``None``.
        idempotent: Whether sending it twice has the effect of sending it once; retries
            consult this before resending after an ambiguous failure.
    """

    method: Literal["GET", "POST"]
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    idempotent: bool = True


class Response(msgspec.Struct, frozen=True):
    """A complete response: status, headers (case-insensitive in the engine) and body.

    Its ``repr`` shows the status and sizes only: a server may echo the token in a header or
    the body, and a response is a local of frames that tracebacks render.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return (
            f"Response(status={self.status}, headers=<{len(self.headers)} headers>,"
            f" body=<{len(self.body)} bytes>)"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("status", self.status)]
