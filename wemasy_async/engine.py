"""The engine: the one place that sends requests, for every provider.

It turns a provider's :class:`~wemasy_async.providers.base.Call` into an HTTP exchange
(absolute URL, auth and content headers, timeout), hands the response to the call's pure
``parse`` and returns the result. Rate limiting and retries belong here, once, so that every
provider gets them alike.
"""

from __future__ import annotations

import logging
import time
from typing import TypeVar
from urllib.parse import urlencode

from yarl import URL

from wemasy_async._version import __version__
from wemasy_async.providers.base import Call
from wemasy_async.transport import Transport

__all__ = ["Engine"]

T = TypeVar("T")

logger = logging.getLogger("wemasy_async")


class Engine:
    """Sends calls to one provider's base URL with one token.

    Args:
        provider: The provider name, for logs.
        base_url: The base URL without a trailing slash.
        token: The API token, sent as ``Authorization: Bearer``; kept only inside the header
            dicts, never in a repr, log record or error.
        transport: What does the I/O.
        timeout: The default total timeout per request in seconds (``None``: no limit).
    """

    __slots__ = ("_base_url", "_body_headers", "_headers", "_provider", "_timeout", "transport")

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        token: str,
        transport: Transport,
        timeout: float | None,
    ) -> None:
        self._provider = provider
        # Normalised (and percent-encoded) once, since request URLs are sent as built.
        self._base_url = str(URL(base_url)).rstrip("/")
        self._timeout = timeout
        self.transport = transport
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"wemasy-async/{__version__}",
        }
        self._body_headers = {**self._headers, "Content-Type": "application/json"}

    def __repr__(self) -> str:
        return f"<Engine {self._provider} {self._base_url}>"

    async def send(self, call: Call[T]) -> T:
        """Send ``call`` and any follow-up calls it asks for; return the final result.

        Raises:
            APIConnectionError: A request could not be completed.
            APITimeoutError: It took longer than the timeout.
            APIStatusError: The provider answered with an error status.
            ResponseDecodeError: The provider answered 2xx with a body it does not document.
        """
        result = await self._send_one(call)
        next_call = call.follow_up(result)
        while next_call is not None:
            result = await self._send_one(next_call)
            next_call = next_call.follow_up(result)
        return result

    async def _send_one(self, call: Call[T]) -> T:
        request = call.request
        url = self._base_url + request.path
        if request.query:
            url = f"{url}?{urlencode(request.query)}"
        started = time.perf_counter()
        response = await self.transport.send(
            request.method,
            url,
            headers=self._headers if request.body is None else self._body_headers,
            body=request.body,
            timeout=self._timeout,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms",
                request.method,
                url,
                response.status,
                (time.perf_counter() - started) * 1000,
            )
        return call.parse(response)
