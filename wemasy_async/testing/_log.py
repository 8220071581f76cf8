"""What a fake server saw: the parsed form of each request, and its counters.

`RecordedRequest` is the parsed request a handler reads (`FakeServer.record_of`) and the
request log keeps (`FakeServer.requests`, a `RequestLog`: the last N entries, so a long run
holds a bounded log); `ServerStats` counts what happened to every request, also with the
log off. Nothing here touches a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web

__all__ = [
    "DEFAULT_REQUEST_LOG",
    "RecordedRequest",
    "RequestLog",
    "ServerStats",
    "most_in_any_span",
    "parse_request",
]

#: Entries a fake's logs keep unless told otherwise: enough for any test's inspection, and
#: a few megabytes however long the fake runs.
DEFAULT_REQUEST_LOG: Final = 10_000

_decode = msgspec.json.decode
_T = TypeVar("_T")


class RequestLog(list[_T]):
    """A list that keeps only the last ``limit`` entries given to `append`.

    The servers add to their logs with `append` only; a test reads the log as the list it
    is (and may clear or edit it). Other list methods do not apply the bound.

    Args:
        limit: Entries kept; 0 keeps none (the log is off); None keeps every entry.

    Raises:
        ValueError: ``limit`` is negative.
    """

    def __init__(self, limit: int | None = DEFAULT_REQUEST_LOG) -> None:
        super().__init__()
        if limit is not None and limit < 0:
            raise ValueError("a request log's limit must be >= 0 or None")
        self.limit = limit

    def append(self, entry: _T, /) -> None:
        """Add ``entry`` at the end, dropping the oldest entry beyond the limit."""
        limit = self.limit
        if limit is None:
            super().append(entry)
        elif limit > 0:
            super().append(entry)
            if len(self) > limit:
                del self[0]


@dataclass(slots=True)
class RecordedRequest:
    """A request as the fake received it.

    Nothing is redacted: ``headers`` includes the bearer token verbatim. This is test-only
    infrastructure; never point real credentials at a fake.

    Attributes:
        method: HTTP method.
        path: Full request path, including the url prefix (e.g. ``/api/services/ai/v1/chat``).
        endpoint: ``path`` with the url prefix stripped (e.g. ``/services/ai/v1/chat``).
        query: Query string parameters (last value wins for repeated keys, like PHP).
        headers: Request headers (a read-only, case-insensitive mapping).
        body: Raw request body.
        json: The body decoded as JSON, or None when the body is empty or not valid JSON.
        json_error: True when a non-empty body failed to decode as JSON.
        received_at: Server clock reading when the request arrived.
        raw_path: The path exactly as it arrived, still percent-encoded (``path`` is
            decoded, so ``a/b`` and ``a%2Fb`` look alike there).
        status: Status of the response sent, filled in once the response is produced;
            0 when no status line was sent: the connection was dropped (the ``disconnect``,
            ``process_then_drop`` and ``keepalive_close`` faults) or the client gave up
            during a delay, or the status line was unreadable (``bad_status_line``). Faults
            that break a response after its status line (``reset_*``, ``stall``,
            ``huge_body``, ``huge_header``, ``many_headers``, ``slow_trickle``,
            ``short_body``) record that status line's status.
        connection: Sequence number of the TCP connection the request arrived on (1 for
            the first connection the server saw), to tell reused connections from new ones.
    """

    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: Any
    json_error: bool
    received_at: float
    raw_path: str = ""
    status: int | None = None
    connection: int = 0


@dataclass
class ServerStats:
    """Counters for benchmarks and assertions.

    Attributes:
        requests_total: Every request that reached the server (admin paths excluded).
        accepted: Authenticated requests admitted by the rate limiter.
        unauthorized: Requests rejected with 401 by the auth check.
        rate_limited: 429 responses produced by the rate limiter (429 faults, queued or
            injected, are not included; see ``status_counts`` for every 429 sent).
        faults_served: Faults served: queued ones consumed plus injected ones.
        max_in_window: The most requests accepted within any single rate-limit window.
        window_counts: Accepted requests per window index (window 0 starts at
            ``start time + window_offset``).
        status_counts: Responses sent, by HTTP status (0 counts dropped connections).
        fault_counts: Faults served, by kind: a `FAULT_KINDS` name, or ``"error"`` and
            ``"delay"`` for `FakeServer.queue_error` and `FakeServer.queue_delay`.
    """

    requests_total: int = 0
    accepted: int = 0
    unauthorized: int = 0
    rate_limited: int = 0
    faults_served: int = 0
    max_in_window: int = 0
    window_counts: dict[int, int] = field(default_factory=dict)
    status_counts: dict[int, int] = field(default_factory=dict)
    fault_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-able snapshot (as served on ``GET /__fake__/stats``)."""
        return {
            "requests_total": self.requests_total,
            "accepted": self.accepted,
            "unauthorized": self.unauthorized,
            "rate_limited": self.rate_limited,
            "faults_served": self.faults_served,
            "max_in_window": self.max_in_window,
            "window_counts": dict(self.window_counts),
            "status_counts": dict(self.status_counts),
            "fault_counts": dict(self.fault_counts),
        }


def most_in_any_span(times: Iterable[float], span: float) -> int:
    """The most of ``times`` within any half-open interval of length ``span``.

    With the moments requests were sent, and ``span`` a fixed window's length: the most a
    server's window could have seen, over every alignment of its windows.
    """
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def parse_request(
    request: web.Request,
    prefix: str,
    clock: Callable[[], float],
    connection_of: Callable[[asyncio.BaseTransport | None], int],
) -> RecordedRequest:
    """Read ``request``'s body and describe it; a body that is not JSON sets ``json_error``.

    Args:
        request: The request as aiohttp received it.
        prefix: The server's url prefix, stripped from the path to give ``endpoint``.
        clock: The server's clock, read once the body is in (``received_at``).
        connection_of: Numbers the connection the request arrived on.
    """
    body = await request.read()
    parsed: Any = None
    json_error = False
    if body.strip():
        try:
            parsed = _decode(body)
        except msgspec.DecodeError:
            json_error = True
    path = request.path
    return RecordedRequest(
        method=request.method,
        path=path,
        endpoint=path[len(prefix) :] if path.startswith(prefix) else path,
        query=dict(request.query),
        headers=request.headers,
        body=body,
        json=parsed,
        json_error=json_error,
        received_at=clock(),
        raw_path=request.raw_path.partition("?")[0],
        connection=connection_of(request.transport),
    )
