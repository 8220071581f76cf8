"""A transport that answers from a function: unit tests of request shapes without a server.

Like httpx's ``MockTransport``: ``Client(..., transport=MockTransport(handler))`` sends every
request to ``handler`` instead of the network; everything above the transport (the URL, the
headers and the token, the rate limiter, retries, decoding) runs as in production. Unlike
the fakes, this module imports the SDK's HTTP value types (:mod:`wemasy_async.exchange`): a
transport returns them. It knows nothing of any provider.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from wemasy_async.exchange import Response

__all__ = ["MockRequest", "MockTransport", "json_response"]


class MockRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request a :class:`MockTransport` received.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        url: The absolute URL, percent-encoded as sent.
        headers: The request's headers as the engine sent them (``Authorization`` included,
            so a test can check it; the mapping's ``repr`` hides the token).
        body: The body, or ``None``.
        timeout: The attempt's timeout in seconds (``None``: none). The mock does not
            apply it; a handler may.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: float | None

    def json(self) -> Any:
        """The body decoded as JSON (``None`` without a body)."""
        return None if self.body is None else msgspec.json.decode(self.body)

    def __repr__(self) -> str:
        return f"MockRequest({self.method} {self.url}, body=<{len(self.body or b'')} bytes>)"


Handler = Callable[[MockRequest], "Response | Awaitable[Response]"]


class MockTransport:
    """A :class:`~wemasy_async.transport.Transport` answering from ``handler``.

    Args:
        handler: Called with each :class:`MockRequest`; returns a
            :class:`~wemasy_async.exchange.Response` (see :func:`json_response`), or an
            awaitable of one. To simulate a network failure, raise
            :class:`~wemasy_async.APIConnectionError` or
            :class:`~wemasy_async.APITimeoutError`; anything else it raises reaches the
            caller unchanged. Its headers are read case-insensitively, as aiohttp's.

    Attributes:
        requests: Every request received, in order.
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self._handler = handler
        self.requests: list[MockRequest] = []

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> Response:
        """Record the request and answer it with the handler's response."""
        request = MockRequest(method=method, url=url, headers=headers, body=body, timeout=timeout)
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, Response):
            raise TypeError(
                f"the MockTransport handler returned {type(answer).__name__}, not a Response"
                " (build one with json_response)"
            )
        if not isinstance(answer.headers, CIMultiDictProxy):
            # As aiohttp gives them: case-insensitive, so "x-ratelimit-limit" counts too.
            answer = Response(
                answer.status, CIMultiDictProxy(CIMultiDict(answer.headers)), answer.body
            )
        return answer

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"<MockTransport {len(self.requests)} requests>"


def json_response(
    status: int = 200, data: Any = None, *, headers: Mapping[str, str] | None = None
) -> Response:
    """A response with ``data`` encoded as JSON (``Content-Type: application/json``) and
    ``headers`` added, e.g. ``X-RateLimit-Limit``."""
    merged = {"Content-Type": "application/json", **(headers or {})}
    return Response(status, merged, msgspec.json.encode(data))
