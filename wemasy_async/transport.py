"""The seam between the engine and the network: one method, ``send``.

:class:`AiohttpTransport` is the only code in the package that touches aiohttp's request
API. It translates every aiohttp and socket failure into
:class:`~wemasy_async.errors.APIConnectionError` or
:class:`~wemasy_async.errors.APITimeoutError` (chained ``from`` the original), so nothing
above it ever sees a raw aiohttp exception.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import anyio
from yarl import URL

from wemasy_async.errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ResponseTooLargeError,
)
from wemasy_async.providers.base import Response

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "AiohttpTransport", "Transport"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The largest response body read by default: far above any documented response."""

# aiohttp >= 3.10 tells a timeout while connecting (nothing sent) from one while waiting.
_CONNECT_TIMEOUT: type[BaseException] = getattr(
    aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError
)


class Transport(Protocol):
    """Sends one HTTP request and returns the complete response."""

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> Response:
        """Send the request; raise ``APIConnectionError``/``APITimeoutError`` on failure.

        ``url`` is absolute and already percent-encoded; it is sent byte for byte.
        """
        ...

    async def aclose(self) -> None:
        """Release what the transport owns; never what it was given."""
        ...


class AiohttpTransport:
    """A :class:`Transport` over an ``aiohttp.ClientSession``.

    Args:
        provider: The provider name, for error messages.
        session: A caller-owned session to use and never close. Without one, the transport
            creates its own on first use (inside the running loop, as aiohttp requires) and
            closes it in :meth:`aclose`.
        max_connections: The connection pool size of an owned session.
        max_response_bytes: The largest body read (after decompression); a larger one
            raises :class:`~wemasy_async.errors.ResponseTooLargeError`.
    """

    __slots__ = (
        "_closed",
        "_given",
        "_loop",
        "_max_body",
        "_max_connections",
        "_owned",
        "_provider",
        "_timeouts",
    )

    def __init__(
        self,
        *,
        provider: str,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._provider = provider
        self._max_body = max_response_bytes
        self._given = session
        self._owned: aiohttp.ClientSession | None = None
        self._closed = False
        self._max_connections = max_connections
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    @property
    def pool_size(self) -> int | None:
        """The most connections the session may hold open at once (``None``: no limit)."""
        if self._given is None:
            return self._max_connections
        connector = self._given.connector
        if connector is None:
            return None
        limits = [n for n in (connector.limit, connector.limit_per_host) if n > 0]
        return min(limits) if limits else None

    @property
    def owns_open_session(self) -> bool:
        """Whether this transport created a session that is still open."""
        return self._owned is not None and not self._owned.closed

    def _session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        # An aiohttp session belongs to the loop it was created in: from another one (a
        # second asyncio.run() with the same client) aiohttp fails with a bare "Event loop
        # is closed" RuntimeError or hangs. Say what is wrong instead.
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = weakref.ref(loop)
        elif self._loop() is not loop:
            raise ClientClosedError(
                "this client was first used in another event loop, and its aiohttp session"
                " belongs to that loop; create the Client (and any session you give it) in"
                " the loop that uses it, e.g. 'async with Client(...)' inside each asyncio.run()"
            )
        session = self._given or self._owned
        if session is None:
            session = self._owned = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                # An API client has no use for cookies; a shared jar would mix callers' state.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        elif session.closed:
            raise ClientClosedError("the aiohttp.ClientSession is closed")
        return session

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            # A total deadline only: it bounds connecting, waiting and reading together.
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> Response:
        """Send one request and read the whole body.

        Redirects are not followed: the APIs never redirect, and following one could carry
        the ``Authorization`` header to another host. A 3xx is returned like any response.
        A body larger than ``max_response_bytes`` raises ``ResponseTooLargeError`` without
        being read to the end (the connection is then closed, not reused).
        """
        session = self._session()
        try:
            async with session.request(
                method,
                # encoded=True: the adapters percent-encoded every id already; letting yarl
                # re-quote would turn %40 %3B %26 back into @ ; & on the wire.
                URL(url, encoded=True),
                data=body,
                headers=headers,
                timeout=self._timeout(timeout),
                allow_redirects=False,
                # A caller's session may be built with raise_for_status=True; its
                # ClientResponseError would turn every 4xx/5xx into an APIConnectionError
                # (and a retried one). Error statuses are the providers' to map.
                raise_for_status=False,
            ) as response:
                return Response(response.status, response.headers, await self._read(response))
        except asyncio.TimeoutError as exc:  # also aiohttp's ServerTimeoutError
            raise APITimeoutError(
                f"request to {self._provider} timed out after {timeout} s",
                provider=self._provider,
                request_sent=not isinstance(exc, _CONNECT_TIMEOUT),
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise APIConnectionError(
                f"connection to {self._provider} failed: {type(exc).__name__}: {exc}",
                provider=self._provider,
                # Only a connection that was never established proves nothing was sent.
                request_sent=not isinstance(exc, aiohttp.ClientConnectorError),
            ) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._max_body
        length = response.content_length
        if length is not None and length > limit:
            response.close()
            raise ResponseTooLargeError(
                provider=self._provider, status=response.status, limit=limit
            )
        if length is not None and "Content-Encoding" not in response.headers:
            # The common case: aiohttp stops at Content-Length, which is within the limit.
            return await response.read()
        # Chunked or compressed: count what actually arrives (a small gzip body can inflate).
        chunks: list[bytes] = []
        size = 0
        content = response.content
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                response.close()
                raise ResponseTooLargeError(
                    provider=self._provider, status=response.status, limit=limit
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the owned session, if any; a given session is left open. Final."""
        self._closed = True
        owned, self._owned = self._owned, None
        if owned is not None and not owned.closed:
            # Shielded so that a cancelled caller still releases every socket.
            with anyio.CancelScope(shield=True):
                await owned.close()
