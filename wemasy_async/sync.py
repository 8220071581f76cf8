"""A blocking client: the same operations without ``await``, for scripts, notebooks and workers.

::

    from wemasy_async.sync import Client

    with Client("wemasy", token="...") as client:
        conversation = client.get_conversation(27)
        for result in client.fetch_conversations(ids):
            if result.ok:
                save(result.value)

Each client runs one asyncio event loop in a thread of its own, started on first use, and
hands every call to an ordinary :class:`wemasy_async.Client` there through anyio's blocking
portal: the same errors (raised in the calling thread), the same rate limiter, the same
retries. Calls from several threads at once run concurrently in that loop. :meth:`Client.close`
(or leaving ``with``) closes the async client and stops the loop and the thread; a client
that is garbage-collected unclosed stops them too, and the thread is a daemon, so a
forgotten client never keeps a process from exiting.

After ``os.fork()`` (Celery's prefork pool, ``multiprocessing``), a client used in the child
builds its own loop, thread and connections on first use: the parent's are not the child's
to use or to close.

It is for code without an event loop. Called inside a running one (a coroutine, a notebook
cell under an async kernel's loop) it would block that loop for the whole call, so it raises
:class:`~wemasy_async.errors.InvalidRequestError` saying to use the async client instead.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import threading
import traceback
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Concatenate, Generic, NoReturn, ParamSpec, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from wemasy_async.batch import DEFAULT_MAX_CONCURRENCY, BatchFetch, FetchProgress, FetchResult
from wemasy_async.client import DEFAULT_TIMEOUT
from wemasy_async.client import Client as AsyncClient
from wemasy_async.client import RawResponses as AsyncRawResponses
from wemasy_async.errors import ClientClosedError, InvalidRequestError
from wemasy_async.hooks import Hook
from wemasy_async.models import ChatReply, Conversation, Message, Page
from wemasy_async.protocols import ConversationId, ToolSpec
from wemasy_async.providers.base import Operation, Provider
from wemasy_async.ratelimit import RateLimit
from wemasy_async.raw import ClientBound, RawResponse
from wemasy_async.retry import RetryPolicy
from wemasy_async.transport import DEFAULT_MAX_RESPONSE_BYTES

__all__ = ["BatchIterator", "Client", "RawResponses"]

T = TypeVar("T")
P = ParamSpec("P")


def _refuse_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise InvalidRequestError(
        "wemasy_async.sync.Client blocks, so it cannot be used inside a running event loop"
        " (it would stall it for the whole call); use wemasy_async.Client and await it"
    )


class _Loop:
    """An event loop in a daemon thread of its own, and a blocking portal into it."""

    def __init__(self) -> None:
        ready = threading.Event()
        started: list[BlockingPortal | BaseException] = []

        # anyio's blocking portal, which asyncio has no counterpart of: calls from other
        # threads (their results and errors raised there, an interrupted caller's call
        # cancelled here: see call()), and a stop that cancels what still runs before the
        # loop closes (stop()).
        async def serve() -> None:
            async with BlockingPortal() as portal:
                started.append(portal)
                ready.set()
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve, backend="asyncio")
            except BaseException as exc:  # pragma: no cover - the loop failed to start
                started.append(exc)
                ready.set()

        self.thread = threading.Thread(target=run, name="wemasy-async-sync", daemon=True)
        self.thread.start()
        ready.wait()
        first = started[0]
        if isinstance(first, BaseException):  # pragma: no cover
            raise first
        self.portal = first
        self.pid = os.getpid()

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function()`` in the loop; wait for it here. Interrupted here (Ctrl-C), the
        call is cancelled there too, rather than left running unseen."""
        future = self.portal.start_task_soon(function)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    @property
    def alive(self) -> bool:
        """Whether the loop runs in this process (a forked child has only the parent's copy)."""
        return self.pid == os.getpid() and self.thread.is_alive()

    def stop(self) -> None:
        if not self.alive:
            return
        if threading.current_thread() is self.thread:  # pragma: no cover - from a finalizer
            return
        self.portal.call(self.portal.stop, True)
        self.thread.join()


def _shut_down(loop: _Loop, client: AsyncClient) -> None:
    """Close ``client`` in ``loop`` and stop it: what close() and the finalizer both do."""
    if not loop.alive:
        return
    try:
        loop.call(client.aclose)
    finally:
        loop.stop()


class _Arguments:
    """The arguments a forked child builds its own client from; rendered, they show nothing
    (the token, secret headers and a proxy's password are among them)."""

    __slots__ = ("_options", "_provider")

    def __init__(self, provider: str | Provider, options: dict[str, Any]) -> None:
        self._provider, self._options = provider, options

    def __call__(self) -> AsyncClient:
        return AsyncClient(self._provider, **self._options)

    def __repr__(self) -> str:
        return "<client arguments, not shown>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("client arguments cannot be pickled: they hold the token")


class Client:
    """A blocking client for one provider; see the module docstring.

    Takes the arguments of :class:`wemasy_async.Client`, except ``session`` (an aiohttp
    session belongs to an event loop, and this client's loop is its own). Hooks run in the
    client's own thread, an ``async`` one on its loop.

    Raises:
        InvalidRequestError: An argument is invalid, no token was given or found, or it was
            created inside a running event loop.
    """

    def __init__(
        self,
        provider: str | Provider,
        *,
        token: str | None = None,
        base_url: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        rate_limit: RateLimit | bool = True,
        retry: RetryPolicy | bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        allow_http: bool = False,
        hooks: Sequence[Hook] | None = None,
        default_headers: Mapping[str, str] | None = None,
        user_agent: str | None = None,
        connection_limit: int | None = None,
        trust_env: bool = False,
        proxy: str | None = None,
        ssl: ssl.SSLContext | None = None,
    ) -> None:
        try:
            _refuse_running_loop()
            options: dict[str, Any] = {
                "token": token,
                "base_url": base_url,
                "timeout": timeout,
                "rate_limit": rate_limit,
                "retry": retry,
                "max_response_bytes": max_response_bytes,
                "allow_http": allow_http,
                "hooks": hooks,
                "default_headers": default_headers,
                "user_agent": user_agent,
                "connection_limit": connection_limit,
                "trust_env": trust_env,
                "proxy": proxy,
                "ssl": ssl,
            }
            # Built now, in this thread (no I/O, no loop needed): bad arguments raise here.
            self._make = _Arguments(provider, options)
            self._client = self._make()
        except BaseException as refused:
            # As in AsyncClient.__init__: rendered with its frames' locals, the traceback
            # would show the token (this frame's arguments, `options`, the checks' locals).
            traceback.clear_frames(refused.__traceback__)
            token = default_headers = proxy = None
            options = {}
            raise
        token = default_headers = proxy = None  # the arguments hide them now
        options = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._closed = False

    def __repr__(self) -> str:
        client = getattr(self, "_client", None)
        if client is None:  # refused while being made (a traceback's locals show it so)
            return "<wemasy_async.sync.Client not made>"
        state = "closed" if getattr(self, "_closed", False) else "open"
        return f"<wemasy_async.sync.Client {client.provider!r} {state}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``"wemasy"``."""
        return self._client.provider

    @property
    def capabilities(self) -> frozenset[Operation]:
        """The operations this provider offers."""
        return self._client.capabilities

    @property
    def with_raw_response(self) -> RawResponses:
        """:attr:`wemasy_async.Client.with_raw_response`, blocking: ``get_conversation``,
        ``list_messages``, ``list_conversations`` and ``chat`` return a
        :class:`~wemasy_async.raw.RawResponse`."""
        return RawResponses(self)

    def close(self) -> None:
        """Close the client, its connections, and stop its loop and thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer()

    # --- Running calls in the loop -------------------------------------------------------------

    def _running(self) -> tuple[_Loop, AsyncClient]:
        _refuse_running_loop()
        if self._pid != os.getpid():
            # A forked child: the lock may have been copied held by a parent's thread.
            self._lock = threading.Lock()
        with self._lock:
            if self._closed:
                raise ClientClosedError("this client is closed; create a new one")
            if self._pid != os.getpid():
                # A forked child: drop (never close) what belongs to the parent.
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._finalizer, self._loop = None, None
                self._client, self._pid = self._make(), os.getpid()
            if self._loop is None:
                self._loop = _Loop()
                self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._client)
            return self._loop, self._client

    def _call(self, call: Callable[[AsyncClient], Awaitable[T]]) -> T:
        loop, client = self._running()
        return loop.call(lambda: call(client))

    # --- ConversationStore -------------------------------------------------------------------

    def get_conversation(self, conversation_id: ConversationId) -> Conversation[list[Message]]:
        """:meth:`wemasy_async.Client.get_conversation`, blocking."""
        return self._call(lambda client: client.get_conversation(conversation_id))

    def list_messages(
        self, conversation_id: ConversationId, *, limit: int | None = None
    ) -> list[Message]:
        """:meth:`wemasy_async.Client.list_messages`, blocking."""
        return self._call(lambda client: client.list_messages(conversation_id, limit=limit))

    def list_conversations(
        self,
        *,
        agent_id: str | None = None,
        search: str | None = None,
        per_page: int = 20,
        page: int = 1,
    ) -> Page[Conversation]:
        """:meth:`wemasy_async.Client.list_conversations`, blocking."""
        return self._call(
            lambda client: client.list_conversations(
                agent_id=agent_id, search=search, per_page=per_page, page=page
            )
        )

    def iter_conversations(
        self, *, agent_id: str | None = None, search: str | None = None, per_page: int = 100
    ) -> Iterator[Conversation]:
        """:meth:`wemasy_async.Client.iter_conversations` as a plain iterator (pages are
        fetched as it goes; closing it early stops)."""
        loop, client = self._running()
        pages = client.iter_conversations(agent_id=agent_id, search=search, per_page=per_page)
        return _blocking_iterator(loop, pages)

    # --- ChatService -------------------------------------------------------------------------

    def chat(
        self,
        message: str | None = None,
        *,
        conversation_id: ConversationId | None = None,
        connection_id: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        use_tools: bool | None = None,
        tools: Sequence[ToolSpec] | None = None,
        tool_call_id: str | None = None,
        tool_result: str | None = None,
    ) -> ChatReply:
        """:meth:`wemasy_async.Client.chat`, blocking (sent once: see the retry table)."""
        return self._call(
            lambda client: client.chat(
                message,
                conversation_id=conversation_id,
                connection_id=connection_id,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
                use_tools=use_tools,
                tools=tools,
                tool_call_id=tool_call_id,
                tool_result=tool_result,
            )
        )

    # --- Batches -----------------------------------------------------------------------------

    def fetch_conversations(
        self,
        ids: Iterable[ConversationId],
        *,
        concurrency: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress: Callable[[FetchProgress], object] | None = None,
    ) -> BatchIterator[Conversation[list[Message]]]:
        """:meth:`wemasy_async.Client.fetch_conversations` as a plain iterator.

        ``ids`` is consumed (lazily) and ``progress`` called in the client's loop thread.
        Close the iterator (``with``, or :meth:`BatchIterator.close`) to stop early.
        """
        loop, client = self._running()

        async def start() -> BatchFetch[Conversation[list[Message]]]:
            return client.fetch_conversations(
                ids, concurrency=concurrency, max_concurrency=max_concurrency, progress=progress
            )

        return BatchIterator(loop, loop.call(start))

    def fetch_messages(
        self,
        ids: Iterable[ConversationId],
        *,
        concurrency: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress: Callable[[FetchProgress], object] | None = None,
    ) -> BatchIterator[list[Message]]:
        """:meth:`wemasy_async.Client.fetch_messages` as a plain iterator."""
        loop, client = self._running()

        async def start() -> BatchFetch[list[Message]]:
            return client.fetch_messages(
                ids, concurrency=concurrency, max_concurrency=max_concurrency, progress=progress
            )

        return BatchIterator(loop, loop.call(start))


def _blocking(
    operation: Callable[Concatenate[AsyncRawResponses, P], Awaitable[RawResponse[T]]],
) -> Callable[Concatenate[RawResponses, P], RawResponse[T]]:
    """``operation`` (of the async client's raw responses) run in the client's loop."""

    @functools.wraps(operation)
    def blocking(self: RawResponses, /, *args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        return self._client._call(
            lambda client: operation(client.with_raw_response, *args, **kwargs)
        )

    return blocking


class RawResponses(ClientBound["Client"]):
    """``client.with_raw_response`` of the blocking client; see
    :class:`wemasy_async.client.RawResponses` (the same operations, without ``await``)."""

    __slots__ = ()

    get_conversation = _blocking(AsyncRawResponses.get_conversation)
    list_messages = _blocking(AsyncRawResponses.list_messages)
    list_conversations = _blocking(AsyncRawResponses.list_conversations)
    chat = _blocking(AsyncRawResponses.chat)


class BatchIterator(Generic[T]):
    """A batch fetch, blocking: an iterator of :class:`~wemasy_async.batch.FetchResult`.

    The workers start with the first ``next()``; :meth:`close` (or leaving ``with``, or
    exhausting it) stops them and waits until they have.
    """

    def __init__(self, loop: _Loop, batch: BatchFetch[T]) -> None:
        self._loop = loop
        self._batch = batch
        self._entered = False
        self._done = False

    def __iter__(self) -> BatchIterator[T]:
        return self

    def __next__(self) -> FetchResult[T]:
        if self._done:
            raise StopIteration
        if not self._entered:
            self._loop.call(self._batch.__aenter__)
            self._entered = True
        try:
            return self._loop.call(self._batch.__anext__)
        except StopAsyncIteration:
            self.close()
            raise StopIteration from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BatchIterator[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def progress(self) -> FetchProgress:
        """Counts so far."""
        return self._batch.progress

    def close(self) -> None:
        """Stop the workers and wait until they have stopped. Idempotent."""
        if self._done:
            return
        self._done = True
        if self._entered:
            self._loop.call(functools.partial(self._batch.__aexit__, None, None, None))


def _blocking_iterator(loop: _Loop, items: AsyncIterator[T]) -> Iterator[T]:
    try:
        while True:
            try:
                yield loop.call(items.__anext__)
            except StopAsyncIteration:
                return
    finally:
        close = getattr(items, "aclose", None)
        if close is not None and loop.alive:
            loop.call(close)
