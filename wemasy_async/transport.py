"""The seam between the engine and the network: one method, ``send``.

:class:`AiohttpTransport` is the only code in the package that touches aiohttp's request
API. It translates every aiohttp and socket failure into
:class:`~wemasy_async.errors.APIConnectionError` or
:class:`~wemasy_async.errors.APITimeoutError`, so nothing above it ever sees a raw aiohttp
exception. The original is *not* chained: aiohttp's exceptions (and the locals of aiohttp's
frames in their tracebacks) hold the request headers, token included. The translated error
keeps its type name and its message, with the token and the URL's query blanked out, and is
raised with neither ``__cause__`` nor ``__context__``. A cancellation leaves ``send`` as a fresh
``CancelledError`` (same arguments) for the same reason.

Whether a failed request may have reached the server (``request_sent``) is told from the
moment it got a connection: a request that was still waiting for a free connection of the
pool, or for a new one to be established, was not sent. The session the transport creates
observes that in its connector (:class:`Connector`, at no cost per request); a
caller's session does with aiohttp's tracing hooks, if it was built with
:data:`TRACE_CONFIG` (tracing costs some CPU per request); otherwise nothing is known and a
timeout counts as sent.
"""

from __future__ import annotations

import asyncio
import io
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from ssl import SSLContext
from types import SimpleNamespace
from typing import NamedTuple, Protocol

import aiohttp
import anyio
import msgspec
from multidict import CIMultiDict
from yarl import URL

from wemasy_async.errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ResponseTooLargeError,
    WemasyAsyncError,
)
from wemasy_async.exchange import BEFORE_SEND, NotSent, Response
from wemasy_async.redaction import REDACTED, Redactor, SecretHeaders, credential_of

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "TRACE_CONFIG",
    "AiohttpTransport",
    "Connector",
    "Transport",
]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The largest response body read by default: far above any documented response."""

# A timeout while connecting (nothing sent), told apart from one while waiting
# (aiohttp >= 3.10, the lowest version pyproject.toml allows).
_CONNECT_TIMEOUT: type[BaseException] = aiohttp.ConnectionTimeoutError
# aiohttp warns ("might lock the event loop") for a bytes body above 1 MiB and writes it in
# one piece; a BytesIO body is written in chunks, yielding to the loop between them.
_LARGE_BODY = 1024 * 1024
# Distinct timeouts (with_options(timeout=...) per call) are common; a few are cached.
_TIMEOUT_CACHE = 32
# An engine and its with_options copies share two header sets (with and without a body).
_HEADER_CACHE = 8
_MESSAGE_CHARS = 300
_URL_CACHE = 256


class _Ready(NamedTuple):
    """A session ``send`` may use in ``loop`` (see ``AiohttpTransport._ready``)."""

    loop: asyncio.AbstractEventLoop
    session: aiohttp.ClientSession
    observed: bool  # its connector is a Connector: it tells when a request got a connection
    given: bool  # the caller's, which the caller may close


class _Progress(msgspec.Struct):
    """How far one request got: whether it is observed at all, and whether it got a
    connection (from then on its bytes may reach the server). A Struct: one is made per
    request, and a Struct is built without running Python code."""

    observed: bool
    connected: bool = False


# The request the current task is sending, for the connector (which aiohttp calls from that
# task) to mark as connected.
_CURRENT: ContextVar[_Progress | None] = ContextVar("wemasy_async_request", default=None)


class Connector(aiohttp.TCPConnector):
    """The ``TCPConnector`` of the session the client creates; build your own session with
    it (``aiohttp.ClientSession(connector=Connector(limit=...))``) to get the same.

    It marks the current request connected once it has a connection (from the pool or new);
    a timeout before that means nothing was sent. There, before a byte is written, it calls
    the engine's :data:`~wemasy_async.exchange.BEFORE_SEND` (the rate limiter's look at a
    send that comes late). Same arguments as ``aiohttp.TCPConnector``."""

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[aiohttp.tracing.Trace],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        before = BEFORE_SEND.get()
        if before is not None:
            try:
                # e.g. a send too late for the rate limit stops here (a shared store: after
                # a round trip to it)
                pending = before.connected()
                if pending is not None:
                    await pending
            except BaseException:
                connection.release()  # nothing was written: back to the pool
                raise
        progress = _CURRENT.get()
        if progress is not None:
            progress.connected = True
        return connection


async def _on_request_start(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    progress = getattr(context, "trace_request_ctx", None)
    if isinstance(progress, _Progress):
        progress.observed = True


async def _on_connection(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    # A connection of the pool was handed over, or a new one is established: from here on
    # the request's bytes may reach the server. Until then (queued for a free connection,
    # connecting) nothing was sent.
    progress = getattr(context, "trace_request_ctx", None)
    if isinstance(progress, _Progress):
        progress.connected = True


TRACE_CONFIG = aiohttp.TraceConfig()
"""The tracing hooks that tell "waiting for a connection" from "sent" on a caller's session.

The session the client creates needs none. Add them to a session of your own
(``aiohttp.ClientSession(trace_configs=[TRACE_CONFIG])``) to get the same precision; without
them, a timeout while waiting for a pooled connection counts as ``request_sent=True`` (the
safe side: ``chat`` is then not retried)."""
TRACE_CONFIG.on_request_start.append(_on_request_start)
TRACE_CONFIG.on_connection_reuseconn.append(_on_connection)
TRACE_CONFIG.on_connection_create_end.append(_on_connection)
TRACE_CONFIG.freeze()


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
        proxy: The proxy an owned session sends every request through (credentials in the
            URL become its ``Proxy-Authorization``), or ``None``.
        ssl: The TLS context of an owned session, or ``True`` for aiohttp's default.
        max_response_bytes: The largest body read (after decompression); a larger one
            raises :class:`~wemasy_async.errors.ResponseTooLargeError`.
    """

    __slots__ = (
        "_closed",
        "_given",
        "_headers",
        "_last_headers",
        "_last_prepared",
        "_loop",
        "_max_body",
        "_max_connections",
        "_owned",
        "_provider",
        "_proxy",
        "_ready",
        "_ssl",
        "_timeouts",
        "_urls",
    )

    def __init__(
        self,
        *,
        provider: str,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        proxy: URL | None = None,
        ssl: SSLContext | bool = True,
    ) -> None:
        self._provider = provider
        self._max_body = max_response_bytes
        self._given = session
        self._owned: aiohttp.ClientSession | None = None
        self._closed = False
        self._max_connections = max_connections
        self._proxy = proxy
        self._ssl = ssl
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._headers: dict[int, tuple[Mapping[str, str], CIMultiDict[str]]] = {}
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        # What send needs once the session is known to be usable in the running loop:
        # (that loop, the session, whether its connector observes connections, whether
        # it is the caller's). Checked with one comparison per request; None until then.
        self._ready: _Ready | None = None
        self._urls: dict[str, URL] = {}
        # The headers of the latest request and their prepared form (see _prepared).
        self._last_headers: Mapping[str, str] | None = None
        self._last_prepared: Mapping[str, str] = {}

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

    def _open(self) -> _Ready:
        """The session, checked (and created, if owned and not yet), as ``send`` uses it."""
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        # An aiohttp session belongs to the loop it was created in: from another one (a
        # second asyncio.run() with the same client) aiohttp fails with a bare "Event loop
        # is closed" RuntimeError or hangs. Say what is wrong instead.
        loop = asyncio.get_running_loop()
        if self._loop is None:
            # A caller's session created in an earlier asyncio.run() belongs to that (closed)
            # loop: aiohttp would fail with a bare "Event loop is closed" RuntimeError.
            owner = getattr(self._given, "_loop", None)
            if owner is not None and owner is not loop:
                raise ClientClosedError(
                    "the aiohttp.ClientSession given to this client was created in another"
                    " event loop (e.g. an earlier asyncio.run()) and cannot be used in this"
                    " one; create the session inside the loop that uses it"
                )
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
                connector=Connector(limit=self._max_connections, ssl=self._ssl),
                # An API client has no use for cookies; a shared jar would mix callers' state.
                cookie_jar=aiohttp.DummyCookieJar(),
                # A session default: aiohttp sends the URL's credentials to the proxy, and no
                # request carries an argument more than it did without a proxy.
                proxy=self._proxy,
            )
        elif session.closed:
            raise ClientClosedError("the aiohttp.ClientSession is closed")
        ready = self._ready = _Ready(
            loop, session, isinstance(session.connector, Connector), session is self._given
        )
        return ready

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        timeouts = self._timeouts
        timeout = timeouts.get(seconds)
        if timeout is None:
            if len(timeouts) >= _TIMEOUT_CACHE:
                # Bounded: a caller giving every call its own timeout must not grow it forever.
                timeouts.clear()
            # A total deadline only: it bounds connecting, waiting and reading together.
            timeout = timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
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
        ready = self._ready
        if (
            ready is None
            or ready.loop is not asyncio.get_running_loop()
            # The caller may close their session at any time; ours closes only in aclose.
            or (ready.given and ready.session.closed)
        ):
            ready = self._open()
        session = ready.session
        progress = _Progress(ready.observed)
        target = self._urls.get(url)
        if target is None:
            target = self._url(url)
        data: bytes | io.BytesIO | None = body
        if body is not None and len(body) > _LARGE_BODY:
            data = io.BytesIO(body)
        response: aiohttp.ClientResponse | None = None
        failure: BaseException
        # The whole exchange in this one coroutine: each frame between the engine and
        # aiohttp costs CPU on every suspension of every request.
        observing = _CURRENT.set(progress)
        try:
            async with session.request(
                method,
                target,
                data=data,
                # Not a local: the prepared headers hold the token, and this frame's locals
                # are what a traceback with locals shows.
                headers=(
                    self._last_prepared
                    if headers is self._last_headers
                    else self._prepared(headers)
                ),
                # The cached timeout without a method call; _timeout builds a missing one.
                timeout=self._timeouts.get(timeout) or self._timeout(timeout),
                allow_redirects=False,
                # A caller's session may be built with raise_for_status=True; its
                # ClientResponseError would turn every 4xx/5xx into an APIConnectionError
                # (and a retried one). Error statuses are the providers' to map.
                raise_for_status=False,
                trace_request_ctx=progress,
            ) as response:
                length = response.content_length
                if length is not None and length > self._max_body:
                    response.close()
                    raise ResponseTooLargeError(
                        provider=self._provider, status=response.status, limit=self._max_body
                    )
                if length is None or "Content-Encoding" in response.headers:
                    content = await self._read_counted(response)
                else:
                    # The common case: aiohttp stops at Content-Length, within the limit.
                    content = await response.read()
                return Response(response.status, response.headers, content)
        except NotSent:
            # Stopped before a byte was written; a fresh one, without aiohttp's frames.
            failure = NotSent()
        except WemasyAsyncError as ours:
            # Raised above (ResponseTooLargeError): start its traceback here, without the
            # frames that hold aiohttp's response (its headers may echo the token).
            failure = ours.with_traceback(None)
        except asyncio.CancelledError as cancelled:
            # The same cancellation, without aiohttp's frames (their locals hold the token).
            failure = asyncio.CancelledError(*cancelled.args)
        except Exception as exc:  # aiohttp's, the socket's, asyncio's TimeoutError
            failure = self._translate(exc, url, headers, timeout, progress)
        finally:
            _CURRENT.reset(observing)
        # This frame starts the traceback: aiohttp's response, whose repr shows the headers
        # the server sent (they may echo the token), must not be among its locals.
        response = None
        # Raised outside the handlers, so that the original is not its __context__.
        raise failure

    def _prepared(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` in the form aiohttp takes without converting them per request.

        The engine sends one of a few :class:`SecretHeaders` (immutable) for all its
        requests; each becomes a ``CIMultiDict`` once, and the latest is kept for ``send``
        to take with one comparison. Other mappings pass as given.
        """
        if type(headers) is not SecretHeaders:
            return headers
        cache = self._headers
        entry = cache.get(id(headers))
        # The entry holds the headers object itself: its id cannot be reused meanwhile.
        if entry is None or entry[0] is not headers:
            if len(cache) >= _HEADER_CACHE:
                cache.clear()
            entry = cache[id(headers)] = (headers, CIMultiDict(headers))
        self._last_headers, self._last_prepared = entry
        return entry[1]

    def _url(self, url: str) -> URL:
        """``url`` as aiohttp takes it, built once for each of the latest few hundred URLs
        (a client sends the same few paths again and again; REST ids make more)."""
        urls = self._urls
        if len(urls) >= _URL_CACHE:
            urls.clear()  # bounded, whatever the ids
        # encoded=True: the adapters percent-encoded every id already; letting yarl re-quote
        # would turn %40 %3B %26 back into @ ; & on the wire.
        built = urls[url] = URL(url, encoded=True)
        return built

    def _translate(
        self,
        exc: Exception,
        url: str,
        headers: Mapping[str, str],
        timeout: float | None,
        progress: _Progress,
    ) -> WemasyAsyncError:
        """Our error for a failure of aiohttp, the socket or the loop; never holds ``exc``."""
        provider = self._provider
        if isinstance(exc, RuntimeError) and not isinstance(exc, aiohttp.ClientError):
            text = str(exc)
            if "closed" in text or "loop" in text:
                # "Session is closed", "Event loop is closed", "... attached to a different
                # loop": the session cannot be used here.
                return ClientClosedError(
                    f"the aiohttp.ClientSession cannot be used: {type(exc).__name__}:"
                    f" {_clean(text, headers, url)}"
                )
        connector_failed = isinstance(exc, (aiohttp.ClientConnectorError, _CONNECT_TIMEOUT))
        # Where nothing observes the connection (a caller's session without TRACE_CONFIG),
        # only one that was never established proves nothing was sent; where something
        # does, so does a request that never got one (it waited for the pool).
        sent = not connector_failed and (progress.connected or not progress.observed)
        if isinstance(exc, asyncio.TimeoutError):  # also aiohttp's ServerTimeoutError
            waiting = "" if sent else " before a connection was available (not sent)"
            return APITimeoutError(
                f"request to {provider} timed out after {timeout} s{waiting}",
                provider=provider,
                request_sent=sent,
            )
        # A ClientResponseError's str() adds the URL, query included; its message is what
        # went wrong.
        text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
        cleaned = _clean(text, headers, url)
        return APIConnectionError(
            f"connection to {provider} failed: {type(exc).__name__}"
            + (f": {cleaned}" if cleaned else ""),
            provider=provider,
            request_sent=sent,
        )

    async def _read_counted(self, response: aiohttp.ClientResponse) -> bytes:
        """The body of a chunked or compressed response, counting what actually arrives (a
        small gzip body can inflate); ``ResponseTooLargeError`` beyond the limit."""
        limit = self._max_body
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
        self._ready = None  # send looks again, and finds the transport closed
        owned, self._owned = self._owned, None
        if owned is not None and not owned.closed:
            # Shielded so that a cancelled caller still releases every socket. anyio's
            # cancel scope, since asyncio has none on Python 3.10: the cancellation is held
            # back until the close is done, where asyncio.shield would let the caller go on
            # while the close still runs in another task.
            with anyio.CancelScope(shield=True):
                await owned.close()


def _clean(text: str, headers: Mapping[str, str], url: str) -> str:
    """``text`` (an aiohttp message, which may quote what the server sent) made fit for an
    error message: token and query blanked, on one line, cut short."""
    credential = credential_of(headers)
    if credential:
        text = Redactor(credential).text(text)
        # aiohttp quotes an over-long line cut after 100 bytes and marked "...": the token
        # may be cut there too. Any start of it (8 characters and more) before the mark goes.
        for length in range(len(credential) - 1, 7, -1):
            cut = credential[:length] + "..."
            if cut in text:
                text = text.replace(cut, REDACTED + "...")
    _, mark, query = url.partition("?")
    if mark and query:
        text = text.replace(query, REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"
