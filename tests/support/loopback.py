"""Small real servers on 127.0.0.1 for the HTTP-settings tests: a forward proxy and a TLS
front for the fakes. Real sockets and real aiohttp on both ends, no mocks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Mapping
from typing import TypeVar

import aiohttp
from aiohttp import web

from wemasy_async import Client


def unpaced_client(base_url: str, token: str, **kwargs: object) -> Client:
    """A Wemasy client for a loopback server, without rate limiting (the fakes allow plenty)."""
    return Client(
        "wemasy",
        base_url=base_url,
        token=token,
        rate_limit=False,
        **kwargs,  # type: ignore[arg-type]
    )


_S = TypeVar("_S", bound="_Served")

# Hop-by-hop headers a proxy does not forward (RFC 9110, 7.6.1), and what aiohttp derives.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class _Served:
    """``async with``: ``start`` on entry, ``close`` on exit."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: _S) -> _S:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ForwardProxy(_Served):
    """A plain-HTTP forward proxy (absolute-form requests), optionally asking for Basic
    credentials (407 otherwise) and optionally hostile: adding headers to every response,
    and echoing the request's ``Authorization`` back in ``X-Echo``.

    Attributes:
        seen: ``(method, absolute URL, Proxy-Authorization or None)`` of every request.
    """

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        add_headers: Mapping[str, str] | None = None,
        echo_authorization: bool = False,
    ) -> None:
        self._expected = (
            None
            if credentials is None
            else "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        )
        self._add = dict(add_headers or {})
        self._echo = echo_authorization
        self.seen: list[tuple[str, str, str | None]] = []
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._client = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Proxy-Authorization")
        # aiohttp's server keeps an absolute-form target as the raw path.
        target = request.raw_path
        self.seen.append((request.method, target, given))
        if self._expected is not None and given != self._expected:
            return web.Response(
                status=407,
                text="proxy authentication required",
                headers={"Proxy-Authenticate": 'Basic realm="test"'},
            )
        if not target.startswith("http://"):
            return web.Response(status=400, text="not a proxy request")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        assert self._client is not None
        async with self._client.request(
            request.method,
            target,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
            answer.update(self._add)
            if self._echo:
                answer["X-Echo"] = request.headers.get("Authorization", "")
            return web.Response(status=upstream.status, body=body, headers=answer)


class TlsFront(_Served):
    """TLS on 127.0.0.1 in front of a plain-HTTP server: bytes are copied both ways.

    ``url_of(plain_url)`` is the same URL through the front (``https://127.0.0.1:port``).
    """

    def __init__(self, context: ssl.SSLContext, upstream_port: int) -> None:
        self._context = context
        self._upstream = upstream_port
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def url_of(self, plain_url: str) -> str:
        _, _, rest = plain_url.partition("://")
        _, _, path = rest.partition("/")
        return f"https://127.0.0.1:{self.port}/{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, up_writer):
                w.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()
