"""Raw responses: an operation's result with what the HTTP exchange said about it.

``client.with_raw_response.get_conversation(27)`` (see
:class:`~wemasy_async.client.RawResponses`, which wraps each client method with what is
here) returns a :class:`RawResponse`: the same
value as ``client.get_conversation(27)``, with the status and headers of the response it was
read from, the rate-limit headers read into :class:`~wemasy_async.headers.RateLimitInfo`,
the attempts the engine made and the seconds the whole call took.

It costs nothing on the normal path: only a raw call puts a recording wrapper between its
own engine copy and the shared transport; the engine and the transport do nothing
different for it. Headers are redacted before they leave the call: cookies and
authorization headers show ``[REDACTED]``, and the token is blanked out of every value (a
server or a proxy may echo it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from wemasy_async.exchange import Response
from wemasy_async.headers import RateLimitInfo
from wemasy_async.redaction import REDACTED, Redactor
from wemasy_async.transport import Transport

__all__ = ["RawResponse"]

T = TypeVar("T")
C = TypeVar("C")

# Response headers whose values are credentials, whatever they hold.
_SECRET_HEADERS = frozenset(
    {"set-cookie", "set-cookie2", "cookie", "authorization", "proxy-authorization"}
)


class RawResponse(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """An operation's result and the HTTP response it was read from.

    Attributes:
        value: What the operation returns on the normal path.
        status: The HTTP status of the last response (of the last attempt, and of the last
            request when an operation needs more than one, e.g. Loop's ``get_conversation``).
        headers: That response's headers, read-only and case-insensitive; cookies and
            authorization headers show ``[REDACTED]``, and the token is blanked out of
            every other value.
        rate_limit: What the rate-limit headers of that response say.
        attempts: The HTTP requests the engine sent for the call: 1, plus one per retry,
            plus any follow-up request the operation needed.
        elapsed: Seconds the whole call took: rate-limiter waits, retries and their
            back-off included.
    """

    value: T
    status: int
    headers: CIMultiDictProxy[str]
    rate_limit: RateLimitInfo
    attempts: int
    elapsed: float

    def __reduce__(self) -> str | tuple[Any, ...]:
        # A CIMultiDictProxy cannot be pickled; the headers travel as a CIMultiDict.
        return (
            _rebuild,
            (
                self.value,
                self.status,
                CIMultiDict(self.headers),
                self.rate_limit,
                self.attempts,
                self.elapsed,
            ),
        )


def _rebuild(
    value: T,
    status: int,
    headers: CIMultiDict[str],
    rate_limit: RateLimitInfo,
    attempts: int,
    elapsed: float,
) -> RawResponse[T]:
    return RawResponse(
        value=value,
        status=status,
        headers=CIMultiDictProxy(headers),
        rate_limit=rate_limit,
        attempts=attempts,
        elapsed=elapsed,
    )


def redacted_headers(headers: Mapping[str, str], redactor: Redactor) -> CIMultiDictProxy[str]:
    """A read-only copy of response ``headers`` fit to be shown: see :class:`RawResponse`."""
    clean: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():  # every value of a repeated header, in order
        clean.add(name, REDACTED if name.lower() in _SECRET_HEADERS else redactor.text(value))
    return CIMultiDictProxy(clean)


class Recorder:
    """A :class:`Transport` in front of another, counting requests and keeping the last
    response; one per raw call, so concurrent raw calls do not mix."""

    __slots__ = ("_transport", "attempts", "response")

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.attempts = 0
        self.response: Response | None = None

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> Response:
        self.attempts += 1  # counted before sending: a failed attempt is an attempt
        self.response = await self._transport.send(
            method, url, headers=headers, body=body, timeout=timeout
        )
        return self.response

    async def aclose(self) -> None:
        """Nothing: the transport is the client's."""


class ClientBound(Generic[C]):
    """What an accessor such as ``with_raw_response`` holds: the client it belongs to."""

    __slots__ = ("_client",)

    def __init__(self, client: C) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"
