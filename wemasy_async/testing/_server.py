"""Generic machinery for in-process fake provider servers.

`FakeServer` is an `aiohttp.web` application wrapper that implements everything the fake
providers have in common: lifecycle (start/close, async context manager), bearer-token
authentication, a fixed-window rate limiter with ``X-RateLimit-*`` headers, a bounded
request log, statistics and fault injection: queued error responses and delays, and the network and
proxy faults of `FAULT_KINDS` (`FakeServer.queue_fault`, or at random with
`FakeServer.inject_faults`).
Provider fakes subclass it, declare their routes in `FakeServer.routes` and override the
``*_body`` hooks to return the provider's documented error envelopes.

`FakeServer` is the request pipeline and the public API; each step is a part of its own:
`_auth` (the bearer check), `_limiter` (the fixed windows), `_faults` (which request gets
which fault), `_wire` (raw bytes on the connection, for the faults aiohttp cannot write),
`_log` (the parsed request, the bounded log and the counters). Provider fakes import only
this module, which also passes on the parts of their data: `_cache` (bounded caches of
encoded responses) and `_uuid_data` (UUID-keyed data sets generated on demand).

This module is test infrastructure: it deliberately imports nothing from the rest of
``wemasy_async`` so the SDK is always tested against an independent implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Final, TypeVar

import msgspec
from aiohttp import web

from wemasy_async.testing import _wire
from wemasy_async.testing._auth import bearer_accepted
from wemasy_async.testing._cache import BoundedCache
from wemasy_async.testing._faults import FAULT_KINDS, Fault, FaultPlan
from wemasy_async.testing._limiter import FixedWindow
from wemasy_async.testing._log import (
    DEFAULT_REQUEST_LOG,
    RecordedRequest,
    RequestLog,
    ServerStats,
    most_in_any_span,
    parse_request,
)
from wemasy_async.testing._uuid_data import SeededUuidConversations, uuid4_of

__all__ = [
    "ADMIN_PREFIX",
    "DEFAULT_REQUEST_LOG",
    "FAULT_KINDS",
    "HUGE_BODY_CAP",
    "BoundedCache",
    "FakeServer",
    "RecordedRequest",
    "Route",
    "SeededUuidConversations",
    "ServerStats",
    "most_in_any_span",
    "uuid4_of",
]

#: Paths under this prefix are served by the fake itself (no auth, no rate limit, not logged).
ADMIN_PREFIX: Final = "/__fake__"

# The handler runs in the middleware's task, so a context variable hands it the parsed
# request without request-dict keys (whose typed API differs across aiohttp versions).
_CURRENT_RECORD: ContextVar[RecordedRequest] = ContextVar("wemasy_fake_record")
_JSON_CONTENT_TYPE: Final = "application/json"
_encode = msgspec.json.encode

# The faults' sizes and pace live here, read when a fault is served, not in `_wire`: tests
# lower them on this module to see a fault run to its end quickly.
#: The body size at which ``huge_body`` gives up on a client that never stops reading.
HUGE_BODY_CAP: Final = 256 * 1024 * 1024
_HUGE_CHUNK: Final = b"x" * (1024 * 1024)
#: The header line of ``huge_header`` (over 12 times aiohttp's 8,190-byte limit) and the
#: header count of ``many_headers`` (aiohttp accepts 128).
HUGE_HEADER_BYTES: Final = 100_000
MANY_HEADERS: Final = 5_000
#: ``slow_trickle`` sends one byte of its response every this many seconds.
TRICKLE_INTERVAL: Final = 0.01
#: The largest request body the fakes accept (aiohttp's default is 1 MiB; a chat message
#: may be larger).
MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
_HTML: Final = "text/html"
_PROXY_502_PAGE: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_PORTAL_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to Guest Wi-Fi</title></head>\n"
    b"<body><h1>Welcome</h1><p>Please sign in to continue.</p>\n"
    b'<form method="post" action="/login"><input name="code"><button>Connect</button></form>'
    b"\n</body></html>\n"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ServerT = TypeVar("_ServerT", bound="FakeServer")


@dataclass(frozen=True)
class Route:
    """One provider endpoint.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Path relative to the server's `FakeServer.url_prefix`; may contain aiohttp
            placeholders such as ``/conversations/{id}``.
        handler: Coroutine producing the response; `FakeServer.record_of` gives it the
            parsed request.
    """

    method: str
    path: str
    handler: Handler


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class FakeServer:
    """Base class of the fake provider servers.

    Request pipeline (a single aiohttp middleware), in order:

    1. Admin paths (``/__fake__/...``) are answered directly.
    2. The request is counted, its body read and JSON-decoded, and it is appended to
       `requests` (which keeps the last ``request_log`` entries).
    3. Unknown paths and wrong methods get a JSON 404/405 without auth or rate limiting,
       like a framework router that rejects them before route middleware runs.
    4. Auth: ``Authorization: Bearer <token>`` must be present (scheme case-insensitive);
       with ``token=None`` any non-empty token is accepted, otherwise it must equal
       ``token``. Failures get 401 with `unauthorized_body`.
    5. Rate limit: fixed windows of ``window`` seconds, aligned to the start time plus
       ``window_offset``, each admitting ``rate_limit`` requests. Only authenticated
       requests are counted (a deliberate choice: a misconfigured token cannot exhaust the
       budget, and the counters describe real API usage); rejected 429 requests are not
       counted either, matching Laravel's throttle middleware. Over the limit: 429 with
       `rate_limited_body`, ``Retry-After`` (whole seconds until the window resets, >= 1),
       ``X-RateLimit-Reset`` (unix time) and ``X-RateLimit-Remaining: 0``.
    6. The first queued fault matching the endpoint, if any, is consumed; else, with
       `inject_faults` on, a random fault may be drawn (see `queue_fault` for the kinds).
    7. The route handler runs (unless the fault answers instead of it).

    A request arriving on a connection that a ``keepalive_close`` fault doomed is dropped
    right after step 2, before auth.

    There is one rate-limit bucket per server (not per token). Every response from steps
    4-7 carries ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` (the remaining budget
    after counting this request, never negative) unless ``rate_limit`` is None.

    Subclasses set `url_prefix`, implement `routes` and override the ``*_body`` hooks.
    """

    #: Prefix of every provider route; part of `url` (Wemasy: ``"/api"``).
    url_prefix: ClassVar[str] = ""

    def __init__(
        self,
        *,
        token: str | None = None,
        rate_limit: int | None = 100_000,
        window: float = 60.0,
        window_offset: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
        clock: Callable[[], float] = time.monotonic,
        fault_seed: int | None = 0,
        latency: float = 0.0,
        request_log: int | None = DEFAULT_REQUEST_LOG,
    ) -> None:
        """Configure the server; nothing is bound until `start`.

        Args:
            token: Required bearer token, or None to accept any non-empty token.
            rate_limit: Requests admitted per window, or None to disable rate limiting
                (and omit the ``X-RateLimit-*`` headers).
            window: Window length in seconds.
            window_offset: Seconds added to the start time to position window boundaries.
            host: Interface to bind.
            port: Port to bind; 0 picks a free port.
            record_requests: Append every request to `requests`; False is ``request_log=0``.
            clock: Monotonic clock in seconds; injectable for deterministic tests.
            fault_seed: Seed of this server's own `random.Random` for random fault choices
                (`inject_faults`, the status of ``error_5xx``); None seeds from the OS.
            latency: Seconds every admitted request waits before it is handled, as a
                distant server would; an attribute, so a test may change it while serving.
            request_log: How many of the latest requests `requests` (and a provider fake's
                own logs) keep: 0 keeps none, None every one. The default,
                `DEFAULT_REQUEST_LOG`, is more than a test inspects and keeps the memory of
                a long run flat.

        Raises:
            ValueError: ``request_log`` is negative.
        """
        self._limiter = FixedWindow(rate_limit, window, window_offset, clock)
        self.token = token
        self.rate_limit = rate_limit
        self.window = float(window)
        self.window_offset = float(window_offset)
        self.host = host
        self.port = port
        #: Entries each log keeps (0: logging is off; None: unbounded).
        self.request_log: int | None = request_log if record_requests else 0
        self.requests: list[RecordedRequest] = self.new_log()
        self.record_requests = self.request_log != 0
        self.stats = ServerStats()
        self._clock = clock
        self.latency = float(latency)
        self._limit_header = str(rate_limit) if rate_limit is not None else ""
        self._faults = FaultPlan(fault_seed)
        #: ``Retry-After`` seconds of a ``"rate_limited"`` fault (0 makes a 429 storm that
        #: does not pause a well-behaved client, for soaks that count rather than wait).
        self.fault_retry_after = 1
        self._connections = _wire.Connections()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._url: str | None = None
        self._prefix_len = len(self.url_prefix)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the socket and start serving. Raises RuntimeError if already started."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._connections.closing = False
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_REQUEST_BYTES)
        for route in self.routes():
            app.router.add_route(route.method, self.url_prefix + route.path, route.handler)
        app.router.add_get(ADMIN_PREFIX + "/stats", self._admin_stats)
        app.router.add_get(ADMIN_PREFIX + "/requests", self._admin_requests)
        # A short shutdown timeout: a handler parked in a queued delay must not hold up
        # test teardown for aiohttp's default 60 s.
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockname = runner.addresses[0]
        host, port = sockname[0], sockname[1]
        self.port = port
        netloc = f"[{host}]" if ":" in host else host
        self._url = f"http://{netloc}:{port}{self.url_prefix}"
        self._limiter.restart()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(work) for work in self.background()]

    async def close(self) -> None:
        """Stop serving and release all resources. Safe to call repeatedly."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runner, self._runner = self._runner, None
        if runner is not None:
            # Faults that hold a connection open notice this at once, so closing never
            # waits for aiohttp's shutdown timeout on them.
            self._connections.close_all()
            await runner.cleanup()

    async def __aenter__(self: _ServerT) -> _ServerT:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL including `url_prefix`, e.g. ``http://127.0.0.1:8123/api``."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url

    @property
    def started(self) -> bool:
        """True while the server is listening."""
        return self._runner is not None

    # ------------------------------------------------------------------ provider hooks

    def routes(self) -> Iterable[Route]:
        """Return the provider's endpoints. Subclasses must override."""
        raise NotImplementedError

    def background(self) -> Iterable[Coroutine[Any, Any, None]]:
        """Work to run while serving: started once the server listens, cancelled on `close`.

        The default is none; a fake that generates its data on demand walks it here.
        """
        return ()

    def unauthorized_body(self) -> Any:
        """Body of the 401 sent for a missing or wrong bearer token."""
        return {"message": "Unauthenticated."}

    def rate_limited_body(self, retry_after: int) -> Any:
        """Body of a 429 response.

        Args:
            retry_after: The ``Retry-After`` value being sent, in seconds.
        """
        return {"message": "Too Many Attempts."}

    def error_body(self, status: int) -> Any:
        """Default body for a queued fault or a router-level error with this status."""
        if status == 401:
            return self.unauthorized_body()
        return {"message": _reason(status)}

    # ------------------------------------------------------------------ helpers for subclasses

    @staticmethod
    def json_response(obj: Any, status: int = 200) -> web.Response:
        """Encode ``obj`` with msgspec and wrap it in an ``application/json`` response."""
        return web.Response(body=_encode(obj), status=status, content_type=_JSON_CONTENT_TYPE)

    @staticmethod
    def raw_json_response(body: bytes, status: int = 200) -> web.Response:
        """Wrap already-encoded JSON bytes in an ``application/json`` response."""
        return web.Response(body=body, status=status, content_type=_JSON_CONTENT_TYPE)

    @staticmethod
    def record_of(request: web.Request) -> RecordedRequest:
        """Return the parsed form of ``request``, the request being handled."""
        return _CURRENT_RECORD.get()

    # ------------------------------------------------------------------ request log

    def new_log(self) -> list[Any]:
        """An empty log bounded like `requests` (for a provider fake's own logs)."""
        return RequestLog(self.request_log)

    def reset_log(self) -> None:
        """Forget all recorded requests."""
        self.requests.clear()

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """Return recorded requests whose endpoint (path without prefix) equals ``endpoint``."""
        return [r for r in self.requests if r.endpoint == endpoint]

    # ------------------------------------------------------------------ faults

    def queue_error(
        self,
        status: int,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        path: str | None = None,
        content_type: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` matching requests with a canned response.

        Faults apply after authentication and rate limiting (so they count against the
        window and carry the rate-limit headers) and before the route handler. Faults are
        matched in the order they were queued.

        Args:
            status: HTTP status to send.
            body: None for the provider's documented body for ``status`` (`error_body`,
                or `rate_limited_body` for 429); ``bytes`` sent verbatim as
                ``application/json`` (handy for malformed JSON); ``str`` sent verbatim as
                ``text/html`` if it starts with ``<``, else ``text/plain``; anything else
                is JSON-encoded.
            headers: Extra response headers; they override the rate-limit headers. A 429
                gets ``Retry-After: 1`` unless given here.
            times: How many matching requests to answer this way.
            path: Only match this endpoint: the path without url prefix (e.g.
                ``"/services/ai/v1/chat"``) or the route template (e.g.
                ``"/conversations/{id}"``); None matches every endpoint.
            content_type: Override the content type derived from ``body``.
            delay: Seconds to wait before responding (for client timeout tests).
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        extra: dict[str, str] = {}
        if status == 429:
            extra["Retry-After"] = "1"
            extra["X-RateLimit-Remaining"] = "0"
        if headers:
            extra.update(headers)
        if body is None:
            retry_after_header = extra.get("Retry-After", "1")
            retry_after = int(retry_after_header) if retry_after_header.isdigit() else 1
            body = self.rate_limited_body(retry_after) if status == 429 else self.error_body(status)
        if isinstance(body, bytes):
            encoded, ctype = body, _JSON_CONTENT_TYPE
        elif isinstance(body, str):
            encoded = body.encode()
            ctype = "text/html" if body.lstrip().startswith("<") else "text/plain"
        else:
            encoded, ctype = _encode(body), _JSON_CONTENT_TYPE
        self._faults.queue(
            Fault(
                kind="error",
                remaining=times,
                path=path,
                status=status,
                body=encoded,
                content_type=content_type or ctype,
                headers=extra,
                delay=delay,
            )
        )

    def queue_delay(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Delay the next ``times`` matching requests by ``seconds``, then handle them normally.

        Args:
            seconds: Delay before the handler runs.
            times: How many matching requests to delay.
            path: Endpoint filter, as for `queue_error`.
        """
        self._faults.queue(Fault(kind="delay", remaining=times, path=path, delay=seconds))

    def queue_disconnect(self, *, times: int = 1, path: str | None = None) -> None:
        """Drop the connection without a response for the next ``times`` matching requests.

        The same as ``queue_fault("disconnect", ...)``: the client sees a disconnect
        (aiohttp: ``ServerDisconnectedError``). The handler does not run, so no state
        changes; the request is still logged and counted.

        Args:
            times: How many matching requests to drop.
            path: Endpoint filter, as for `queue_error`.
        """
        self.queue_fault("disconnect", times=times, path=path)

    def queue_fault(self, kind: str, *, times: int = 1, path: str | None = None) -> None:
        """Break the next ``times`` matching requests in the way ``kind`` names.

        Faults are queued together with `queue_error` and friends and applied at the same
        point (after authentication and the rate limiter, so a faulted request counts
        against the window), in the order they were queued. "Handler runs" below means the
        route handler does its work, so state changes (a chat message is stored).

        The kinds (`FAULT_KINDS`):

        - ``"disconnect"``: the connection is closed before any response; the handler
          does not run. Recorded with status 0.
        - ``"reset_before_body"``: a canned ``200`` status line and headers (JSON, with a
          ``Content-Length``) are sent, then the connection is reset before any body byte;
          the handler does not run (as if the server died after starting a response).
        - ``"reset_mid_body"``: the handler runs; its status line, headers (with the real
          ``Content-Length``) and the first half of its body are sent, then the connection
          is reset.
        - ``"truncated_json"``: the handler runs; its response is sent with the body cut in
          half and a matching ``Content-Length``: valid HTTP, invalid JSON.
        - ``"html_502"``: an nginx-style ``502 Bad Gateway`` page (``text/html``), as a
          proxy in front of the API sends it; the handler does not run.
        - ``"empty_200"``: ``200`` with an empty ``application/json`` body; the handler does
          not run.
        - ``"wrong_content_type"``: the handler runs; its real body is sent labelled
          ``text/html; charset=utf-8``.
        - ``"html_200"``: ``200`` with an HTML login page (a captive portal), ``text/html``;
          the handler does not run.
        - ``"stall"``: the handler runs; its status line, headers and the first half of its
          body are sent, then nothing more until the client goes away or the server closes
          (then the connection is reset).
        - ``"keepalive_close"``: the request is answered normally and the connection kept
          alive; the next request that arrives on that same connection is dropped unanswered
          and unhandled (the connection is closed), as when a server closes an idle
          keep-alive connection just as the client reuses it. That dropped request is
          recorded with status 0 (and counted in ``requests_total``, not in ``accepted``).
        - ``"error_5xx"``: 500, 502, 503 or 504 (drawn from the server's seeded random
          generator) with the provider's `error_body`; no ``Retry-After``; the handler does
          not run.
        - ``"rate_limited"``: ``429`` with `rate_limited_body`, ``Retry-After`` of
          `fault_retry_after` (1 unless changed) and ``X-RateLimit-Remaining: 0``; the
          handler does not run.
        - ``"process_then_drop"``: the handler runs, then the connection is closed without
          sending its response. Recorded with status 0.
        - ``"huge_body"``: a chunked ``200`` ``application/json`` body
          (``{"data":"xxx…``) streamed in 1 MiB chunks until the client goes away, or up to
          `HUGE_BODY_CAP` (then the JSON is closed), so a client without a body size
          cap still ends; the handler does not run.
        - ``"huge_header"``: a ``200`` whose head holds one header line of
          `HUGE_HEADER_BYTES` bytes, then the connection is closed; the handler does not run.
        - ``"bad_status_line"``: the status line ``HTTP/1.1 2x0 <the request's
          Authorization header>``, echoing the token as a broken proxy might, then the
          connection is closed; the handler does not run.
        - ``"many_headers"``: a ``200`` with `MANY_HEADERS` header lines, then the connection
          is closed; the handler does not run.
        - ``"slow_trickle"``: the handler runs; its whole response (head and body) is sent
          one byte every `TRICKLE_INTERVAL` seconds, until it is all sent or the client goes
          away: a response that never stalls for long but takes far longer than any timeout.
        - ``"short_body"``: the handler runs; its response is sent with a ``Content-Length``
          100 bytes longer than its body, then the connection is closed (a FIN, not a reset).

        The proxy pages (``html_502``, ``html_200``) and the malformed heads (``huge_header``,
        ``bad_status_line``, ``many_headers``) carry no ``X-RateLimit-*`` headers; every other
        fault that sends headers carries them like a normal response. Faults that hold a
        connection (``stall``, ``huge_body``, ``slow_trickle``) count in `held_connections`.

        Args:
            kind: One of `FAULT_KINDS`.
            times: How many matching requests to break this way.
            path: Endpoint filter, as for `queue_error`.

        Raises:
            ValueError: ``kind`` is unknown or ``times`` < 1.
        """
        FaultPlan.check_kind(kind)
        self._faults.queue(Fault(kind=kind, remaining=times, path=path))

    def inject_faults(
        self,
        rate: float,
        kinds: Sequence[str] = FAULT_KINDS,
        *,
        seed: int | None = None,
        path: str | None = None,
    ) -> None:
        """From now on, break each matching request at random with probability ``rate``.

        Each authenticated request admitted by the rate limiter that no queued fault
        claimed (queued faults take precedence) independently gets a fault with probability
        ``rate``, its kind drawn uniformly from ``kinds``; see `queue_fault` for the kinds.
        The draws come from the server's own `random.Random`, so a seed makes a run
        repeatable (given the same order of requests).

        Args:
            rate: Probability per request, from 0 (off) to 1.
            kinds: The kinds to draw from.
            seed: Reseed the server's generator first; None keeps its current state.
            path: Endpoint filter, as for `queue_error`; None matches every endpoint.

        Raises:
            ValueError: ``rate`` is outside [0, 1], ``kinds`` is empty or names an unknown
                kind.
        """
        self._faults.inject(rate, kinds, seed=seed, path=path)

    def clear_faults(self) -> None:
        """Discard all queued faults, stop `inject_faults` and forget doomed connections."""
        self._faults.clear()
        self._connections.doomed.clear()

    @property
    def pending_faults(self) -> int:
        """Number of fault responses still queued (summed over ``times``)."""
        return self._faults.pending

    @property
    def held_connections(self) -> int:
        """Connections a ``stall``, ``huge_body`` or ``slow_trickle`` fault holds open now."""
        return len(self._connections.held)

    def _count_fault(self, kind: str) -> None:
        stats = self.stats
        stats.faults_served += 1
        stats.fault_counts[kind] = stats.fault_counts.get(kind, 0) + 1

    # ------------------------------------------------------------------ rate limiting

    def seconds_until_reset(self) -> float:
        """Seconds until the current rate-limit window ends."""
        return self._limiter.seconds_until_reset()

    def _admit(self) -> int | None:
        """Count one request against the limiter; the budget left, or None when throttled."""
        limiter = self._limiter
        remaining = limiter.admit()
        if remaining is not None:
            stats = self.stats
            stats.accepted += 1
            stats.window_counts[limiter.index] = limiter.count
            stats.max_in_window = max(stats.max_in_window, limiter.count)
        return remaining

    # ------------------------------------------------------------------ pipeline

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(ADMIN_PREFIX):
            return await handler(request)
        stats = self.stats
        stats.requests_total += 1
        connections = self._connections
        record = await parse_request(request, self.url_prefix, self._clock, connections.number)
        if self.record_requests:
            self.requests.append(record)
        _CURRENT_RECORD.set(record)
        transport = request.transport
        doomed = connections.doomed
        if transport is not None and doomed and transport in doomed:
            # The keep-alive connection a keepalive_close fault answered: the server
            # "closed" it while this request was on its way.
            response = self._drop(request, record)
        else:
            response = await self._dispatch(request, handler, record)
        status = record.status
        if status is None:
            transport = request.transport
            # A connection gone before the response (e.g. a client that gave up during a
            # delay) is recorded as status 0.
            status = response.status if transport is not None and not transport.is_closing() else 0
            record.status = status
        status_counts = stats.status_counts
        status_counts[status] = status_counts.get(status, 0) + 1
        return response

    async def _dispatch(
        self, request: web.Request, handler: Handler, record: RecordedRequest
    ) -> web.StreamResponse:
        router_error = request.match_info.http_exception
        if router_error is not None:
            response = self.json_response(self.error_body(router_error.status), router_error.status)
            allow = router_error.headers.get("Allow")
            if allow is not None:
                response.headers["Allow"] = allow
            return response

        limited = self.rate_limit is not None
        if not bearer_accepted(request.headers.get("Authorization"), self.token):
            self.stats.unauthorized += 1
            response = self.json_response(self.unauthorized_body(), 401)
            if limited:
                self._add_limit_headers(response, self._limiter.remaining())
            return response

        remaining = 0
        if limited:
            admitted = self._admit()
            if admitted is None:
                return self._throttled_response()
            remaining = admitted
        if self.latency > 0:
            await asyncio.sleep(self.latency)

        faults = self._faults
        fault = (
            faults.take(record.endpoint, self._route_template(request)) if faults.queued else None
        )
        kind: str | None = None
        if fault is not None:
            kind = fault.kind
        elif faults.rate > 0.0:
            kind = faults.draw(record.endpoint, self._route_template(request))
        if kind is not None:
            self._count_fault(kind)
            if fault is not None and fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if kind == "error":
                assert fault is not None
                response = web.Response(
                    body=fault.body, status=fault.status, content_type=fault.content_type
                )
                self._add_limit_headers(response, remaining)
                if fault.headers:
                    response.headers.update(fault.headers)
                return response
            if kind != "delay":
                return await self._serve_fault(kind, request, handler, record, remaining)

        handled = await handler(request)
        self._add_limit_headers(handled, remaining)
        return handled

    def _add_limit_headers(self, response: web.StreamResponse, remaining: int) -> None:
        response.headers.update(self._limit_headers(remaining))

    def _route_template(self, request: web.Request) -> str:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        return canonical[self._prefix_len :]

    def _throttled_response(self) -> web.Response:
        self.stats.rate_limited += 1
        retry_after = max(1, math.ceil(self.seconds_until_reset()))
        response = self.json_response(self.rate_limited_body(retry_after), 429)
        headers = response.headers
        headers["Retry-After"] = str(retry_after)
        headers["X-RateLimit-Limit"] = self._limit_header
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(math.ceil(time.time()) + retry_after)
        return response

    # ------------------------------------------------------------------ fault responses

    async def _serve_fault(
        self,
        kind: str,
        request: web.Request,
        handler: Handler,
        record: RecordedRequest,
        remaining: int,
    ) -> web.StreamResponse:
        """Answer (or not) one request the way fault ``kind`` says; see `queue_fault`."""
        if kind == "disconnect":
            return self._drop(request, record)
        if kind == "html_502":
            return web.Response(body=_PROXY_502_PAGE, status=502, content_type=_HTML)
        if kind == "html_200":
            return web.Response(
                body=_PORTAL_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
            )
        if kind == "reset_before_body":
            headers = {"Content-Type": _JSON_CONTENT_TYPE, "Content-Length": "64"}
            headers.update(self._limit_headers(remaining))
            record.status = 200
            return _wire.reset_after(request, _wire.head(200, "OK", headers))
        if kind == "huge_body":
            return await self._huge_body(request, record, remaining)
        if kind in _MALFORMED_HEADS:
            # huge_header and many_headers send a 200 status line; "2x0" is no status.
            record.status = 0 if kind == "bad_status_line" else 200
            return _wire.close_after(request, _malformed_head(kind, request))
        response: web.StreamResponse
        if kind == "empty_200":
            response = web.Response(body=b"", content_type=_JSON_CONTENT_TYPE)
        elif kind == "error_5xx":
            status = self._faults.rng.choice((500, 502, 503, 504))
            response = self.json_response(self.error_body(status), status)
        elif kind == "rate_limited":
            response = self.json_response(self.rate_limited_body(self.fault_retry_after), 429)
        else:
            handled = await handler(request)
            self._add_limit_headers(handled, remaining)
            return await self._break_handled(kind, request, record, handled)
        self._add_limit_headers(response, remaining)
        if kind == "rate_limited":
            response.headers["Retry-After"] = str(self.fault_retry_after)
            response.headers["X-RateLimit-Remaining"] = "0"
        return response

    async def _break_handled(
        self, kind: str, request: web.Request, record: RecordedRequest, handled: web.StreamResponse
    ) -> web.StreamResponse:
        """The faults that let the handler run first (and change state): break ``handled``."""
        if kind == "process_then_drop":
            return self._drop(request, record)
        if kind == "keepalive_close":
            transport = request.transport
            if transport is not None:
                self._connections.doomed.add(transport)
            return handled
        if kind == "wrong_content_type":
            handled.headers["Content-Type"] = "text/html; charset=utf-8"
            return handled
        body = _wire.body_bytes(handled)
        half = body[: len(body) // 2]
        if kind == "truncated_json":
            assert isinstance(handled, web.Response)
            handled.body = half
            return handled
        headers = {
            name: value
            for name, value in handled.headers.items()
            if name.lower() not in ("content-length", "transfer-encoding")
        }
        record.status = handled.status
        if kind == "short_body":
            headers["Content-Length"] = str(len(body) + 100)
            return _wire.close_after(
                request, _wire.head(handled.status, handled.reason, headers) + body
            )
        headers["Content-Length"] = str(len(body))
        connections = self._connections
        if kind == "slow_trickle":
            data = _wire.head(handled.status, handled.reason, headers) + body
            one_by_one = (data[i : i + 1] for i in range(len(data)))
            return await connections.feed(request, one_by_one, TRICKLE_INTERVAL, finish=True)
        data = _wire.head(handled.status, handled.reason, headers) + half
        if kind == "reset_mid_body":
            return _wire.reset_after(request, data)
        assert kind == "stall", kind
        return await connections.feed(request, (data,), _wire.HOLD_POLL, finish=False)

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        if self.rate_limit is None:
            return {}
        return {"X-RateLimit-Limit": self._limit_header, "X-RateLimit-Remaining": str(remaining)}

    @staticmethod
    def _drop(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        """Close the connection without a response (recorded as status 0)."""
        record.status = 0
        return _wire.drop(request)

    async def _huge_body(
        self, request: web.Request, record: RecordedRequest, remaining: int
    ) -> web.StreamResponse:
        """Stream ``{"data":"xxx…`` until the client goes away (or `HUGE_BODY_CAP`)."""
        record.status = 200
        response = web.StreamResponse(headers=self._limit_headers(remaining))
        response.content_type = _JSON_CONTENT_TYPE
        response.enable_chunked_encoding()
        # Read at call time: tests lower the cap to see the JSON closed.
        count = -(-HUGE_BODY_CAP // len(_HUGE_CHUNK))
        chunks = itertools.chain((b'{"data":"',), itertools.repeat(_HUGE_CHUNK, count), (b'"}',))
        return await self._connections.stream(request, response, chunks)

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return self.json_response(self.stats.as_dict())

    async def _admin_requests(self, request: web.Request) -> web.Response:
        # Neither headers nor bodies nor queries: they may carry the caller's credentials.
        return self.json_response(
            [
                {
                    "method": r.method,
                    "path": r.raw_path,
                    "status": r.status,
                    "received_at": r.received_at,
                    "connection": r.connection,
                }
                for r in self.requests
            ]
        )


_MALFORMED_HEADS: Final = frozenset({"huge_header", "bad_status_line", "many_headers"})


def _malformed_head(kind: str, request: web.Request) -> bytes:
    """The response head of a ``huge_header``, ``bad_status_line`` or ``many_headers`` fault."""
    tail = b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    if kind == "huge_header":
        return b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * HUGE_HEADER_BYTES + b"\r\n" + tail
    if kind == "many_headers":
        lines = b"".join(b"X-Header-%d: %d\r\n" % (i, i) for i in range(MANY_HEADERS))
        return b"HTTP/1.1 200 OK\r\n" + lines + tail
    assert kind == "bad_status_line", kind
    echoed = request.headers.get("Authorization", "")
    return f"HTTP/1.1 2x0 {echoed}\r\n".encode("latin-1", "replace") + tail
