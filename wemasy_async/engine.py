"""The engine: the one place that sends requests, for every provider.

It turns a provider's :class:`~wemasy_async.providers.base.Call` into HTTP exchanges
(absolute URL, auth and content headers, timeout), paces them through the key's
:class:`~wemasy_async.ratelimit.Limiter`, hands each response to the call's pure ``parse``,
and retries what :func:`~wemasy_async.retry.retry_delay` says may be retried. Every provider
gets the same rate limiting and retries because they live only here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from multidict import CIMultiDict
from yarl import URL

from wemasy_async.config import ClientConfig
from wemasy_async.errors import APIConnectionError, APIError, RateLimitError
from wemasy_async.exchange import BEFORE_SEND, NotSent, Response
from wemasy_async.headers import RateLimitInfo
from wemasy_async.hooks import (
    Hooks,
    LimiterWaitEvent,
    NoResponseEvent,
    OperationEndEvent,
    OperationStartEvent,
    PauseEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from wemasy_async.latency import Latency
from wemasy_async.models import ChatReply
from wemasy_async.providers.base import Call
from wemasy_async.ratelimit import PauseTooLong, Sending
from wemasy_async.redaction import Redactor
from wemasy_async.retry import RetryPolicy, retry_delay
from wemasy_async.schedule import Ticket
from wemasy_async.transport import Transport

__all__ = ["Engine", "Latency"]

T = TypeVar("T")
E = TypeVar(
    "E", RequestEvent, ResponseEvent, RetryEvent, PauseEvent, NoResponseEvent, LimiterWaitEvent
)

logger = logging.getLogger("wemasy_async")

_DEFAULT_RETRY = RetryPolicy()


class Engine:
    """Sends calls to one provider's base URL with one token.

    Args:
        options: The client's checked configuration: provider, base URL, the request
            headers (which hold the token: it is kept only inside them and a
            :class:`~wemasy_async.redaction.Redactor`, never in a repr, log record, error
            or a plain local of a frame an error's traceback shows), timeout, retry
            policy, limiter and hooks. A ``with_options`` copy's engine gets the copy's.
        transport: What does the I/O.
        latency: The record of exchange times to add to; a copy shares its original's,
            so that a batch of either is sized by every exchange. A new one by default.
    """

    __slots__ = (
        "_base_path",
        "_base_url",
        "_body_headers",
        "_headers",
        "_max_pause",
        "_provider",
        "_redactor",
        "latency",
        "options",
        "transport",
    )

    def __init__(
        self, options: ClientConfig, transport: Transport, *, latency: Latency | None = None
    ) -> None:
        self._provider = options.provider.name
        self._redactor = options.redactor
        self._base_url, base_path = _wire_base(options.base_url)
        # Errors name the request by its path (no host, no query): base path + call path;
        # a token pasted into base_url's path is blanked there too.
        self._base_path = self._redactor.text(base_path)
        self._headers = options.headers
        self._body_headers = options.body_headers
        self.options = options
        # The longest 429 pause worth waiting out in the limiter: the retry policy's
        # max_retry_after (the default policy's without retries), fixed for this engine.
        self._max_pause = (options.retry or _DEFAULT_RETRY).max_retry_after
        self.transport = transport
        self.latency = Latency() if latency is None else latency

    def __repr__(self) -> str:
        return f"<Engine {self._provider} {self._base_url}>"

    async def send(self, call: Call[T], operation: str = "", *, observed: bool = False) -> T:
        """Send ``call`` and any follow-up calls it asks for; return the final result.

        ``operation`` (the client method) only names the call in hook events; ``observed``
        says that the operation's start and end are told already (by :meth:`_observed`).

        Raises:
            APIConnectionError: A request could not be completed (after any retries).
            APITimeoutError: An attempt took longer than the timeout (after any retries).
            APIStatusError: The provider answered with an error status (after any retries).
            ResponseDecodeError: The provider answered 2xx with a body it does not document.
        """
        # One coroutine for the calls, their attempts and (without a limiter) the exchange:
        # every coroutine frame between the caller and aiohttp costs CPU on each suspension.
        options = self.options
        if options.hooks and options.hooks.operations and not observed:
            return await self._observed(call, operation, options.hooks)
        attempt = 1
        while True:
            try:
                limiter = options.limiter
                if limiter is None:
                    result = self._parse(call, await self._exchange(call, operation, attempt))
                else:
                    # Paced here, not in a coroutine of its own: a frame more in the chain
                    # would cost CPU on every suspension of every request (a limiter that
                    # has nothing to do should cost next to nothing).
                    try:
                        reserved = limiter.reserve(self._max_pause)  # no coroutine if due
                    except PauseTooLong as held:
                        raise self._paused_error(held) from None
                    if isinstance(reserved, Ticket):
                        ticket = reserved
                    else:
                        ticket = await self._waited(reserved, call, options, operation, attempt)
                    # Nothing awaits from here to the try, so a cancellation cannot leak the
                    # send: the finally reports it also on errors and cancellation.
                    sending = Sending(limiter, ticket)  # looked at again once connected
                    before = BEFORE_SEND.set(sending)
                    answer: Response | None = None
                    paused = 0.0
                    try:
                        answer = await self._exchange(call, operation, attempt)
                        try:
                            result = self._parse(call, answer)
                        except RateLimitError as limited:
                            hint = limited.retry_after
                            paused = hint if hint is not None else limiter.config.pause_without_hint
                            raise
                    except NotSent:
                        # It got its connection too late for its slot and gave it back, before
                        # a byte was written: the same attempt reserves anew.
                        continue
                    finally:
                        BEFORE_SEND.reset(before)
                        ticket = sending.ticket  # moved, if it came late
                        if sending.given_back:
                            pending = None
                        elif answer is None:
                            pending = limiter.report(ticket, None, paused=paused)
                        elif (
                            paused
                            or ticket.count == 1
                            or not limiter.answered(ticket, answer.headers)
                        ):
                            # Read the headers unless a far-away limit took the answer as is.
                            info = RateLimitInfo.from_headers(answer.headers)
                            pending = limiter.report(ticket, info, paused=paused)
                        else:
                            pending = None
                        if pending is not None:
                            await pending
                        # Told once the limiter holds the key: no request slips out while a
                        # hook runs.
                        if paused and options.hooks:
                            await options.hooks.emit(
                                self._event(PauseEvent, call, operation, attempt, seconds=paused)
                            )
            except APIError as error:
                delay = self._retry_delay(call, options, attempt, error)
                if delay is None:
                    raise
                if options.hooks:
                    await options.hooks.emit(
                        self._event(
                            RetryEvent,
                            call,
                            operation,
                            attempt,
                            error=type(error).__name__,
                            delay=delay,
                        )
                    )
                if delay > 0:
                    await asyncio.sleep(delay)
                attempt += 1
                continue
            next_call = call.follow_up(result)
            if next_call is None:
                return result
            call = next_call
            options = self.options
            attempt = 1

    async def _observed(self, call: Call[T], operation: str, hooks: Hooks) -> T:
        """:meth:`send` between an operation's start and end events."""
        origin, host, port = _server(self._base_url)
        await hooks.emit(
            OperationStartEvent(
                provider=self._provider,
                operation=operation,
                # Not secrets (the token is); blanked all the same should one be pasted there.
                origin=self._redactor.text(origin),
                host=self._redactor.text(host),
                port=port,
            )
        )
        started = time.perf_counter()
        try:
            result = await self.send(call, operation, observed=True)
        except BaseException as error:  # cancellation too: the operation has ended
            await hooks.emit(
                OperationEndEvent(
                    provider=self._provider,
                    operation=operation,
                    elapsed=time.perf_counter() - started,
                    error=type(error).__name__,
                )
            )
            raise
        await hooks.emit(
            OperationEndEvent(
                provider=self._provider,
                operation=operation,
                elapsed=time.perf_counter() - started,
                usage=result.usage if isinstance(result, ChatReply) else None,
            )
        )
        return result

    def _retry_delay(
        self, call: Call[T], options: ClientConfig, attempt: int, error: APIError
    ) -> float | None:
        """Seconds to wait before retrying after ``error``, or ``None`` to raise it."""
        # Every error of a request names it (method and path, never the query).
        error.locate(call.request.method, self._base_path + call.request.path)
        if options.retry is None:
            return None
        delay = retry_delay(options.retry, attempt, error, idempotent=call.request.idempotent)
        if delay is None:
            return None
        if isinstance(error, RateLimitError) and options.limiter is not None:
            delay = 0.0  # the limiter already holds the whole key until the pause ends
        logger.info(
            "retrying %s %s after %s (attempt %d, waiting %.2f s)",
            call.request.method,
            call.request.path,
            type(error).__name__,
            attempt,
            delay,
        )
        return delay

    def _event(
        self, kind: type[E], call: Call[T], operation: str, attempt: int, **details: Any
    ) -> E:
        """A hook event of ``kind`` about ``call``'s attempt; ``details`` are its own fields."""
        return kind(
            provider=self._provider,
            operation=operation,
            method=call.request.method,
            # Paths hold ids the caller chose; blank the token out should one be pasted there.
            path=self._redactor.text(self._base_path + call.request.path),
            attempt=attempt,
            **details,
        )

    async def _waited(
        self,
        reserved: Coroutine[Any, Any, Ticket],
        call: Call[T],
        options: ClientConfig,
        operation: str,
        attempt: int,
    ) -> Ticket:
        """Await a reservation that was not due at once; tell hooks how long it took.

        The reservation gives itself back when cancelled; once it is held, a failing or
        cancelled hook reports it before the error goes on, so the send cannot leak.
        """
        limiter = options.limiter
        assert limiter is not None  # only called with one
        began = time.perf_counter()
        try:
            ticket = await reserved
        except PauseTooLong as held:
            raise self._paused_error(held) from None
        if options.hooks:
            waited = time.perf_counter() - began
            try:
                await options.hooks.emit(
                    self._event(LimiterWaitEvent, call, operation, attempt, seconds=waited)
                )
            except BaseException:
                pending = limiter.report(ticket, None)
                if pending is not None:
                    await pending
                raise
        return ticket

    def _paused_error(self, held: PauseTooLong) -> RateLimitError:
        # Fail fast, as for the 429 itself, rather than block for longer than the policy
        # would ever wait (also for requests that were already queued).
        return RateLimitError(
            f"requests to {self._provider} are paused for another {held.seconds:.0f} s"
            f" after a 429 (longer than max_retry_after, {self._max_pause:g} s)",
            provider=self._provider,
            status=429,
            retry_after=held.seconds,
        )

    def _parse(self, call: Call[T], response: Response) -> T:
        try:
            return call.parse(response)
        except APIError:
            # Errors quote the body and keep the headers. A server (or a proxy) that echoes
            # the token back would put it into messages, logs and tracebacks: read the
            # response again with the token blanked out, so the error raised is clean.
            redacted = _redacted(response, self._redactor)
            if redacted is None:
                raise
        try:
            return call.parse(redacted)
        except APIError as clean:
            raise clean from None

    async def _exchange(self, call: Call[T], operation: str, attempt: int) -> Response:
        request = call.request
        url = self._base_url + request.path
        if request.query:
            url = f"{url}?{urlencode(request.query)}"
        hooks = self.options.hooks
        if hooks:
            await hooks.emit(self._event(RequestEvent, call, operation, attempt))
        started = time.perf_counter()
        try:
            response = await self.transport.send(
                request.method,
                url,
                headers=self._headers if request.body is None else self._body_headers,
                body=request.body,
                timeout=self.options.timeout,
            )
        except BaseException as error:  # APIConnectionError (timeouts too), cancellation
            if isinstance(error, APIConnectionError):
                logger.debug("%s %s failed: %s", request.method, url, type(error).__name__)
            if hooks:
                await hooks.emit(
                    self._event(
                        NoResponseEvent,
                        call,
                        operation,
                        attempt,
                        error=type(error).__name__,
                        elapsed=time.perf_counter() - started,
                    )
                )
            raise
        elapsed = time.perf_counter() - started
        self.latency.observe(elapsed)
        if hooks:
            await hooks.emit(
                self._event(
                    ResponseEvent,
                    call,
                    operation,
                    attempt,
                    status=response.status,
                    elapsed=elapsed,
                    rate_limit=RateLimitInfo.from_headers(response.headers),
                )
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms", request.method, url, response.status, elapsed * 1000
            )
        return response


@functools.lru_cache(maxsize=64)
def _server(base_url: str) -> tuple[str, str, int]:
    """The origin (no user name or password), host and port of ``base_url``."""
    url = URL(base_url)
    origin = str(url.origin())
    return origin, url.host or "", url.port or 0


@functools.lru_cache(maxsize=64)
def _wire_base(base_url: str) -> tuple[str, str]:
    """``base_url`` normalised (and percent-encoded) as request URLs are sent, since they
    are sent as built, and its path; made once for a client and its copies."""
    url = str(URL(base_url)).rstrip("/")
    return url, URL(url).raw_path.rstrip("/")


def _redacted(response: Response, redactor: Redactor) -> Response | None:
    """``response`` with the secret blanked out of body and headers, or None if it has none."""
    body = redactor.bytes(response.body)
    leaked = {name for name, value in response.headers.items() if redactor.text(value) != value}
    if body == response.body and not leaked:
        return None
    headers: Mapping[str, str] = response.headers
    if leaked:
        clean = CIMultiDict(response.headers)
        for name in leaked:
            values = [redactor.text(v) for v in clean.getall(name)]
            del clean[name]
            for value in values:
                clean.add(name, value)
        headers = clean
    return Response(response.status, headers, body)
