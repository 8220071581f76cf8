"""``Client``: one provider bound to the engine, implementing the neutral protocols."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import traceback
import warnings
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import aiohttp

from wemasy_async.batch import (
    DEFAULT_MAX_CONCURRENCY,
    BatchFetch,
    FetchProgress,
)
from wemasy_async.config import UNSET, ClientConfig, Unset
from wemasy_async.engine import Engine
from wemasy_async.errors import (
    AsyncioRequiredError,
    ClientClosedError,
    PaginationError,
    UnsupportedOperationError,
)
from wemasy_async.headers import RateLimitInfo
from wemasy_async.hooks import Hook, batch_reporter
from wemasy_async.logs import configure_from_env
from wemasy_async.models import ChatReply, Conversation, Message, Page
from wemasy_async.protocols import ChatService, ConversationId, ToolSpec
from wemasy_async.providers.base import (
    Call,
    ChatParams,
    ListConversationsParams,
    Operation,
    Provider,
)
from wemasy_async.ratelimit import Limiter, RateLimit
from wemasy_async.raw import ClientBound, RawResponse, Recorder, redacted_headers
from wemasy_async.retry import RetryPolicy
from wemasy_async.transport import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport, Transport

__all__ = ["DEFAULT_TIMEOUT", "Client", "RawResponses"]

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_TIMEOUT = 60.0
"""Seconds one request may take, connecting and reading included, unless told otherwise."""


class Client:
    """An async client for one provider; implements ``ConversationStore`` and ``ChatService``.

    Use it as an async context manager, or call :meth:`aclose` when done::

        async with Client("wemasy", token="...") as client:
            conversation = await client.get_conversation(27)

    Creating a client does no I/O and needs no running event loop. It runs on asyncio only
    (under anyio, the asyncio backend); elsewhere, e.g. under trio, every call raises
    :class:`AsyncioRequiredError`. A client belongs to the event loop it is first used in,
    as aiohttp sessions do: from another loop (a second ``asyncio.run()``) a call raises
    :class:`ClientClosedError`; create the client, or enter it, inside the loop that uses it.
    Any call may be cancelled at any await point; the connection pool and the rate limiter
    stay consistent, and the client stays usable.

    Args:
        provider: A provider name (``"wemasy"``) or a :class:`Provider` adapter instance.
        token: The API token. Defaults to the provider's environment variable
            (``$WEMASY_API_TOKEN`` for Wemasy). Never shown in reprs, logs or errors.
        base_url: The API base URL; defaults to the provider's documented one.
        session: An ``aiohttp.ClientSession`` owned by the caller. The client uses it and
            never closes it. It must not carry ``auth=`` (the token is the client's
            authentication), and it must belong to the running event loop. Without one,
            the client creates its own on first use, inside the running event loop, and
            closes it in :meth:`aclose`, built with the four settings below (a session you
            give keeps its own: passing any of them with it is an error).
        timeout: Total seconds per attempt (connect, send, wait, read); ``None`` for none.
            Time spent waiting for the rate limiter does not count.
        rate_limit: How to pace requests (:class:`RateLimit`); ``True`` for the defaults,
            ``False`` to send without pacing. Clients with the same provider, base URL and
            token share one limiter in a process (and across processes with a shared store).
        retry: How to retry failures (:class:`RetryPolicy`); ``True`` for the defaults,
            ``False`` to send every request once.
        max_response_bytes: The largest response body the client reads (64 MiB by default);
            a larger one raises :class:`ResponseTooLargeError` instead of filling memory.
        allow_http: Allow a plain ``http://`` base URL on a non-loopback host. Off by
            default, because the token would cross the network in clear text; loopback
            hosts (``127.0.0.1``, ``::1``, ``localhost``) are always allowed.
        hooks: Callables (sync or async) told about each request, response, retry and
            429 pause, as the typed events of :mod:`wemasy_async.hooks` (and of operations,
            limiter waits and batch progress if they ask; e.g.
            :class:`wemasy_async.otel.OpenTelemetryHook`). One that raises is logged and
            never fails the call.
        default_headers: Headers sent with every request, e.g. a tracing header. They
            replace the client's ``Accept`` or ``User-Agent`` if they name them; a JSON
            body keeps its ``Content-Type``. Their values never appear in reprs or logs.
        user_agent: A suffix for the ``User-Agent`` header, for libraries that embed the
            SDK: ``"mylib/2.1"`` sends ``wemasy-async/<version> mylib/2.1``.
        connection_limit: The most connections the client's session holds open (1 to
            100,000). ``None`` (the default): 1,000, as many as a batch may keep in flight;
            a smaller pool also bounds a self-tuning batch's workers, and requests beyond
            it wait for a free connection (within their ``timeout``).
        trust_env: Read the proxy (``$HTTPS_PROXY``, ``$HTTP_PROXY``, ``$ALL_PROXY``,
            honouring ``$NO_PROXY``) and a CA bundle (``$SSL_CERT_FILE``,
            ``$SSL_CERT_DIR``) from the environment, now. Off by default; ``~/.netrc`` is
            never read (see :mod:`wemasy_async.session_settings`).
        proxy: An ``http://`` or ``https://`` proxy URL for every request; credentials in
            it (``http://user:pass@host:3128``) are sent to the proxy and never shown in
            reprs, logs or errors. It wins over ``trust_env``'s.
        ssl: An :class:`ssl.SSLContext` for TLS, e.g.
            ``ssl.create_default_context(cafile="private-ca.pem")``; ``None`` for the
            default verification. Verification cannot be switched off with ``False``.
        transport: Send through this :class:`~wemasy_async.transport.Transport` instead of
            aiohttp, e.g. a :class:`wemasy_async.testing.MockTransport` in a unit test.
            Everything above it is the same (auth, headers, limiter, retries, decoding); it
            is the caller's and never closed by the client. It replaces the session, so
            ``session`` and the session settings (and ``max_response_bytes``, the aiohttp
            transport's bound) cannot be given with it.

    Raises:
        InvalidRequestError: An argument is invalid, or no token was given or found; a
            header sets ``Authorization``, ``Host``, ``Content-Length`` or
            ``Transfer-Encoding`` (the client's own), or has a CR, LF or other control
            character in its value; a session setting is invalid (also a proxy or CA
            bundle ``trust_env`` reads) or is given with ``session=``.
    """

    __slots__ = ("__weakref__", "_closed", "_config", "_engine", "_transport")

    def __init__(
        self,
        provider: str | Provider,
        *,
        token: str | None = None,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
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
        transport: Transport | None = None,
    ) -> None:
        configure_from_env()  # WEMASY_ASYNC_LOG: read here, never at import
        try:
            config = ClientConfig.build(
                provider,
                token=token,
                base_url=base_url,
                session=session,
                timeout=timeout,
                rate_limit=rate_limit,
                retry=retry,
                max_response_bytes=max_response_bytes,
                allow_http=allow_http,
                hooks=hooks,
                default_headers=default_headers,
                user_agent=user_agent,
                connection_limit=connection_limit,
                trust_env=trust_env,
                proxy=proxy,
                ssl=ssl,
                transport=transport,
            )
        except BaseException as refused:
            # Rendered with its frames' locals (traceback.TracebackException(capture_locals=
            # True), pytest --showlocals, error trackers), the traceback would show the token,
            # secret headers and a proxy's password: as this frame's arguments and as the
            # checks' locals. The checks' frames are done: clear them; forget ours.
            traceback.clear_frames(refused.__traceback__)
            token = default_headers = proxy = None
            raise
        token = default_headers = proxy = None  # the config holds them now, hidden
        transport, own = config.transport, None
        if transport is None:
            settings = config.session_settings
            transport = own = AiohttpTransport(
                provider=config.provider.name,
                session=config.session,
                max_connections=settings.connection_limit,
                max_response_bytes=config.max_response_bytes,
                proxy=settings.proxy,
                ssl=settings.ssl,
            )
        self._bind(Engine(config, transport), own=own, closed=False)

    def _bind(self, engine: Engine, *, own: AiohttpTransport | None, closed: bool) -> None:
        """Set every attribute: the one initialiser of a client and of its copies.

        Args:
            engine: What sends, with the client's configuration as its ``options``.
            own: The transport the client made and closes; ``None`` for one it borrows
                (the caller's, or a copy's original's).
            closed: Whether the client is closed already.
        """
        self._config = engine.options
        self._engine = engine
        self._transport = own
        self._closed = closed

    def with_options(
        self,
        *,
        timeout: float | Unset | None = UNSET,
        retry: RetryPolicy | bool | Unset = UNSET,
        hooks: Sequence[Hook] | Unset | None = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Client:
        """A client for the same provider, session and limiter, with other settings.

        Cheap (no new session); use it per call, e.g.
        ``await client.with_options(timeout=5, retry=False).chat("hi")``. The copy does not
        own the session: close the original, not the copy. ``hooks`` replaces the
        client's hooks (``None`` or ``[]`` for none); ``extra_headers`` are added to the
        client's headers (and replace those of the same name), checked as
        ``default_headers`` are. The session's settings (``connection_limit``,
        ``trust_env``, ``proxy``, ``ssl``) are not here: a copy shares the session, whose
        settings are fixed when it is made; create another client for others.

        Raises:
            InvalidRequestError: An argument is invalid.
        """
        config = self._config.replace(
            timeout=timeout, retry=retry, hooks=hooks, extra_headers=extra_headers
        )
        return self._copy(config, self._engine.transport, closed=False)

    @property
    def with_raw_response(self) -> RawResponses:
        """The operations returning a :class:`~wemasy_async.raw.RawResponse` of their value.

        ``(await client.with_raw_response.get_conversation(27)).headers`` are the response's
        (redacted); ``.status``, ``.rate_limit``, ``.attempts`` and ``.elapsed`` tell the
        rest. Also on :meth:`with_options` copies. Calls made without it cost nothing more
        for its existence. The batches and ``iter_conversations`` are not offered; see
        :class:`RawResponses`.
        """
        return RawResponses(self)

    def _copy(self, config: ClientConfig, transport: Transport, *, closed: bool) -> Client:
        """A client with ``config`` sending through ``transport``: it borrows this one's
        session (closing or collecting the copy leaves it alone) and shares its latency
        record, so a batch of either is sized by the exchanges of both.

        Made without :meth:`__init__`, whose arguments are the caller's to check (``config``
        is checked already); :meth:`_bind` sets every attribute, as it does there.
        """
        copy = object.__new__(Client)
        engine = Engine(config, transport, latency=self._engine.latency)
        copy._bind(engine, own=None, closed=closed)
        return copy

    def _recording(self, transport: Transport) -> Client:
        """A copy sending through ``transport`` (a raw call's recorder) and closed when this
        client is; same settings otherwise."""
        return self._copy(self._config, transport, closed=self._closed)

    @property
    def base_url(self) -> str:
        """The base URL requests go to, as given (without a trailing slash)."""
        return self._config.base_url

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``"wemasy"``."""
        return self._config.provider.name

    @property
    def capabilities(self) -> frozenset[Operation]:
        """The operations this client's provider supports."""
        return self._config.provider.capabilities

    @property
    def limiter(self) -> Limiter | None:
        """The rate limiter this client's requests go through, ``None`` with
        ``rate_limit=False``.

        Clients of the same provider, base URL, token and store share one (and its pace).
        For diagnostics and progress displays: :attr:`Limiter.allowed_rate` (``None``
        until the server has told its limit), :meth:`Limiter.paused_for`,
        :attr:`Limiter.waiting`, :attr:`Limiter.shared`.
        """
        return self._config.limiter

    def __repr__(self) -> str:
        if not hasattr(self, "_config"):
            # __init__ raised; a traceback that shows its frames' locals shows its self.
            return "<Client (not made: an argument was refused)>"
        state = " closed" if self._closed else ""
        return f"<Client provider={self.provider!r} base_url={self.base_url!r}{state}>"

    async def __aenter__(self) -> Client:
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's own session; a caller's session is left open. Idempotent.

        With a store that takes reports in the background (Redis), waits until those still
        on their way are committed: other processes would otherwise count this client's
        finished requests as in flight until their leases expire (a window later).
        """
        self._closed = True
        limiter = self._engine.options.limiter
        if limiter is not None and limiter.reports_in_background:
            await limiter.settled()
        if self._transport is not None:
            await self._transport.aclose()

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None and transport.owns_open_session:
            warnings.warn(
                f"unclosed {self!r}; use 'async with Client(...)' or 'await client.aclose()'",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    def _send(self, call: Call[T], operation: Operation) -> Awaitable[T]:
        """The engine's coroutine sending ``call``, once the client may send at all.

        A plain function, not a coroutine: every call awaits it at once, and each coroutine
        frame in the chain costs CPU on every suspension of every request.
        """
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        _require_asyncio()
        return self._engine.send(call, operation)

    # --- ConversationStore ---------------------------------------------------------------

    async def get_conversation(
        self, conversation_id: ConversationId
    ) -> Conversation[list[Message]]:
        """Fetch one conversation, with its messages (always a list; see :class:`Conversation`).

        Raises:
            InvalidRequestError: The id is not valid for this provider (before any I/O).
            NotFoundError: No such conversation.
            APIError: Any other failure; see :mod:`wemasy_async.errors`.
        """
        return await self._send(
            self._config.provider.get_conversation(conversation_id), "get_conversation"
        )

    async def list_messages(
        self, conversation_id: ConversationId, *, limit: int | None = None
    ) -> list[Message]:
        """Fetch the messages of one conversation, in the provider's order (oldest first).

        Args:
            conversation_id: The conversation.
            limit: Return at most this many (the first ones); ``None`` for all of them.

        Raises:
            InvalidRequestError: The id or limit is not valid (before any I/O).
            NotFoundError: No such conversation.
        """
        return await self._send(
            self._config.provider.list_messages(conversation_id, limit), "list_messages"
        )

    async def list_conversations(
        self,
        *,
        agent_id: str | None = None,
        search: str | None = None,
        per_page: int = 20,
        page: int = 1,
    ) -> Page[Conversation]:
        """Fetch one page of conversations (without their messages).

        Args:
            agent_id: Only conversations of this agent.
            search: Only conversations matching this text.
            per_page: Conversations per page (1 to 100 for Wemasy).
            page: The page number, from 1.

        Raises:
            InvalidRequestError: An argument is out of range (before any I/O).
            UnsupportedOperationError: The provider cannot list conversations.
        """
        params = ListConversationsParams(
            agent_id=agent_id, search=search, per_page=per_page, page=page
        )
        return await self._send(
            self._config.provider.list_conversations(params), "list_conversations"
        )

    def iter_conversations(
        self,
        *,
        agent_id: str | None = None,
        search: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[Conversation]:
        """Iterate over every matching conversation, fetching page after page.

        Arguments are checked now, before the first request. Pages are fetched one at a
        time as the iteration reaches them; a conversation created while iterating may shift
        the pages, so one may be seen twice or not at all, as with any offset pagination.

        Raises:
            InvalidRequestError: An argument is out of range (at call time).
            UnsupportedOperationError: The provider cannot list conversations (at call time).
            PaginationError: The server answered another page than the one asked for, or
                the same conversations as the page before (while iterating): it would
                otherwise never end.
        """
        if "iter_conversations" not in self._config.provider.capabilities:
            raise UnsupportedOperationError(self.provider, "iter_conversations")
        params = ListConversationsParams(agent_id=agent_id, search=search, per_page=per_page)
        first = self._config.provider.list_conversations(params)
        return self._pages(params, first)

    async def _pages(
        self, params: ListConversationsParams, call: Call[Page[Conversation]]
    ) -> AsyncIterator[Conversation]:
        # A server that ignores "page" (answering page 1 again and again) or serves a page
        # twice would make this loop forever, yielding duplicates: each page with items must
        # be the one asked for, and hold other conversations than the page before it. (An
        # empty page ends the iteration whatever its number: the docs' own example is an
        # empty "current_page": 0.)
        wanted = params.page
        previous: list[str] | None = None
        while True:
            page = await self._send(call, "iter_conversations")
            ids = [conversation.id for conversation in page.items]
            if ids and page.page != wanted:
                raise PaginationError(
                    provider=self.provider,
                    page=wanted,
                    received=page.page,
                    reason=f"the server answered page {page.page} (of {page.last_page});"
                    " it does not page through the list as asked",
                )
            if ids and ids == previous:
                raise PaginationError(
                    provider=self.provider,
                    page=wanted,
                    received=page.page,
                    reason=f"page {wanted} holds the same conversations as page {wanted - 1}",
                )
            for conversation in page.items:
                yield conversation
            if not page.items or not page.has_next:
                return
            previous = ids
            wanted = page.page + 1
            params = ListConversationsParams(
                agent_id=params.agent_id,
                search=params.search,
                per_page=params.per_page,
                page=wanted,
            )
            call = self._config.provider.list_conversations(params)

    # --- Batches -------------------------------------------------------------------------

    def fetch_conversations(
        self,
        ids: Iterable[ConversationId] | AsyncIterable[ConversationId],
        *,
        concurrency: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress: Callable[[FetchProgress], object] | None = None,
    ) -> BatchFetch[Conversation[list[Message]]]:
        """Fetch many conversations; iterate the result for each one as it completes.

        ::

            async with client.fetch_conversations(ids) as results:
                async for result in results:
                    if result.ok:
                        save(result.value)
                    else:
                        log(result.id, result.error)

        Args:
            ids: Any iterable or async iterable of ids, consumed lazily (a generator over a
                million ids is fine).
            concurrency: Workers, i.e. requests in flight at most (1 to 1000), fixed. The
                rate limiter still paces them. ``None`` (the default) tunes them: as many
                as the allowed rate needs at the latency observed (Little's law), plus
                headroom; with no limit known, as many as still raise the throughput.
            max_concurrency: The most workers a tuned pool runs (1 to 1000, default 512),
                also bounded by the connection pool of a session you gave the client.
            progress: Called with a :class:`FetchProgress` after every result.

        Returns:
            A :class:`BatchFetch` of :class:`FetchResult` objects, one per id, in completion
            order; a failed id holds its typed error instead of failing the batch.

        Raises:
            InvalidRequestError: ``concurrency``, ``max_concurrency``, ``ids`` or
                ``progress`` is invalid (now).
            UnsupportedOperationError: The provider cannot get conversations (now).
        """
        return self._batch(
            "get_conversation", self.get_conversation, ids, concurrency, max_concurrency, progress
        )

    def fetch_messages(
        self,
        ids: Iterable[ConversationId] | AsyncIterable[ConversationId],
        *,
        concurrency: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress: Callable[[FetchProgress], object] | None = None,
    ) -> BatchFetch[list[Message]]:
        """Fetch the messages of many conversations; like :meth:`fetch_conversations`."""
        return self._batch(
            "list_messages", self.list_messages, ids, concurrency, max_concurrency, progress
        )

    def _batch(
        self,
        operation: Operation,
        fetch: Callable[[ConversationId], Awaitable[T]],
        ids: Iterable[ConversationId] | AsyncIterable[ConversationId],
        concurrency: int | None,
        max_concurrency: int,
        progress: Callable[[FetchProgress], object] | None,
    ) -> BatchFetch[T]:
        if operation not in self._config.provider.capabilities:
            raise UnsupportedOperationError(self.provider, operation)
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        _require_asyncio()
        engine = self._engine
        limiter = engine.options.limiter
        pool: int | None = getattr(engine.transport, "pool_size", None)
        hooks = engine.options.hooks
        return BatchFetch(
            fetch,
            ids,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            pool=pool,
            rate=(lambda: None) if limiter is None else (lambda: limiter.allowed_rate),
            # Without a limiter no rate is known: the pool climbs on throughput alone.
            latency=(lambda: None) if limiter is None else _with_store(engine, limiter),
            granted=None if limiter is None or not limiter.shared else limiter.sends_granted,
            window=60.0 if limiter is None else limiter.config.window,
            progress=progress,
            report=None if hooks is None else batch_reporter(hooks, self.provider, operation),
        )

    # --- ChatService ---------------------------------------------------------------------

    def chat_service(self) -> ChatService:
        """This client as a :class:`~wemasy_async.protocols.ChatService`, checked now.

        Every client has a ``chat`` method (so ``isinstance(client, ChatService)`` is true
        even for a provider that cannot chat, whose ``chat`` raises); code typed against
        ``ChatService`` should be handed ``client.chat_service()``, which fails here, at
        wiring time, rather than at the first message.

        Raises:
            UnsupportedOperationError: The provider cannot chat (Loop, SiteAssist).
        """
        if "chat" not in self._config.provider.capabilities:
            raise UnsupportedOperationError(self.provider, "chat")
        return self

    async def chat(
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
        """Send a message, or the result of a tool call, and return the assistant's reply.

        Without ``conversation_id`` a new conversation starts; its id is in the reply. To
        answer a tool call, pass the reply's ``conversation_id`` with
        ``tool_call_id=call.id`` and ``tool_result``.

        Args:
            message: The user's message.
            conversation_id: The conversation to continue.
            connection_id: The provider connection (model account) to use.
            model: The model name, e.g. ``"gpt-4o"``.
            temperature: Sampling temperature, 0 to 2.
            max_tokens: The most tokens to generate, at least 1.
            use_tools: Whether the assistant may call tools.
            tools: OpenAI-style function definitions the assistant may call.
            tool_call_id: The id of the tool call being answered.
            tool_result: The tool's output, as text.

        Raises:
            InvalidRequestError: Missing or invalid arguments (before any I/O).
            UnsupportedOperationError: The provider has no chat.
            NotFoundError: ``conversation_id`` does not exist.
            UnprocessableEntityError: The provider rejected the arguments.
        """
        params = ChatParams(
            message=message,
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
        return await self._send(self._config.provider.chat(params), "chat")


def _require_asyncio() -> None:
    # aiohttp and the limiter need an asyncio loop; under trio (directly or through anyio)
    # they would fail deep inside with an unrelated RuntimeError or hang.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise AsyncioRequiredError(_async_library()) from None


def _async_library() -> str:
    try:
        import sniffio  # optional (trio and anyio bring it); only for the message

        return sniffio.current_async_library()
    except Exception:
        return "no asyncio event loop"


#: A batch counts an exchange at most this many times the least one of the last ten seconds
#: or more (see ``_with_store``).
QUEUED_MOST = 6.0


def _with_store(engine: Engine, limiter: Limiter) -> Callable[[], float | None]:
    """A request's time, for a batch's Little's law: the exchange, and the store calls
    around it (reserving, and reporting back unless the store takes reports in the
    background: a shared store's round trips are part of what each worker spends per
    request).

    Both count at their calm mean (the least period mean of recent periods,
    :meth:`~wemasy_async.latency.Latency.calm`), not their floor: a typical call waits for a
    core (several processes and a redis-server share the machine; in one process, the
    client's own decoding and the event loop's other work), and the one lucky call that did
    not is no measure of it. Measured at 2,000/s through Redis, 4 processes, 0 ms: 54-78%
    utilisation with both at their floor (about 10 workers a process), 86-93% with the
    store's calls at their calm mean, 93-98.5% with the exchanges' too; in one process at
    2,000/s, 0 ms, 8 paired runs: 84.7-100% (mean 96.3%, 10-21 in flight) at the floor,
    90.7-100% (mean 98.3%, 17-27) at the capped calm mean (a fixed 32 made 100%).

    The exchanges' calm mean counts at most ``QUEUED_MOST`` times the least exchange of the
    last ten seconds or more (:meth:`~wemasy_async.latency.Latency.least`): on a machine
    the processes saturate, every period's mean grows with the pools (the server's queue;
    7 ms to 550 ms at 2,000/s, 0 ms, 4 processes), and Little's law on it chases itself
    until each pool is at ``max_concurrency`` (512). 9 paired runs there: 71-95%
    utilisation (mean 83%) with 1,300-2,048 in flight uncapped, 76-96% (mean 89%) with
    240-580 capped (at 3 times: mean 89%, but fewer workers than the rate needed whenever
    nothing ran away). A server that really got slower is followed once its old, fast
    exchanges have aged out of :meth:`~wemasy_async.latency.Latency.least`."""

    calls = 1 if limiter.reports_in_background else 2  # reserving (and reporting back)

    def latency() -> float | None:
        exchanges, round_trips = engine.latency, limiter.round_trips
        exchanges.end_period()
        round_trips.end_period()
        exchange, least = exchanges.calm(), exchanges.least()
        if exchange is None or least is None:
            return None
        return min(exchange, QUEUED_MOST * least) + calls * (round_trips.calm() or 0.0)

    return latency


def _raw(
    operation: Callable[Concatenate[Client, P], Awaitable[T]],
) -> Callable[Concatenate[RawResponses, P], Awaitable[RawResponse[T]]]:
    """``operation`` (a :class:`Client` method) returning a :class:`RawResponse` instead."""

    @functools.wraps(operation)
    async def raw(self: RawResponses, /, *args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        started = time.perf_counter()
        client = self._client
        recorder = Recorder(client._engine.transport)
        value = await operation(client._recording(recorder), *args, **kwargs)
        elapsed = time.perf_counter() - started
        response = recorder.response
        assert response is not None  # a value was read from one
        return RawResponse(
            value=value,
            status=response.status,
            headers=redacted_headers(response.headers, client._config.redactor),
            rate_limit=RateLimitInfo.from_headers(response.headers),
            attempts=recorder.attempts,
            elapsed=elapsed,
        )

    raw.__doc__ = (
        f"Like :meth:`Client.{operation.__name__}`, returning a :class:`RawResponse` of its"
        " value; the same errors are raised."
    )
    return raw


class RawResponses(ClientBound[Client]):
    """``client.with_raw_response``: the client's operations, each returning a
    :class:`RawResponse` of what the operation returns.

    ``get_conversation``, ``list_messages``, ``list_conversations`` and ``chat`` take the
    same arguments as on the client and raise the same errors (an error holds its own
    ``status`` and ``headers``). ``iter_conversations`` and the batches
    (``fetch_conversations``, ``fetch_messages``) are not here: they make many requests,
    and a result per request does not fit their shape; page through ``list_conversations``
    here instead, or see :mod:`wemasy_async.hooks` for every response of a batch.
    """

    __slots__ = ()

    get_conversation = _raw(Client.get_conversation)
    list_messages = _raw(Client.list_messages)
    list_conversations = _raw(Client.list_conversations)
    chat = _raw(Client.chat)
