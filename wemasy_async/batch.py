"""Batch fetching: many ids through a fixed pool of workers, results as they complete.

:meth:`Client.fetch_conversations <wemasy_async.Client.fetch_conversations>` and
``fetch_messages`` return a :class:`BatchFetch`: an async iterator of :class:`FetchResult`,
one per id, each holding the value or the typed error, so one bad id never fails the batch.

- The ids (any iterable or async iterable) are consumed lazily by ``concurrency`` workers,
  and at most ``concurrency`` finished results wait for the consumer: memory stays flat for a
  million ids, and a slow consumer slows the fetching down instead of piling results up.
- Every request goes through the client's engine, so the rate limiter and retries apply.
- Stopping early (``break``, an exception, cancellation of the consumer) stops the workers
  promptly: use ``async with`` (or call :meth:`BatchFetch.aclose`) to wait until they have
  stopped; dropping the iterator cancels them too. Nothing the caller owns is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import msgspec

from wemasy_async.errors import InvalidRequestError, WemasyAsyncError
from wemasy_async.protocols import ConversationId
from wemasy_async.validation import short_repr

__all__ = ["MAX_CONCURRENCY", "BatchFetch", "FetchProgress", "FetchResult"]

T = TypeVar("T")

MAX_CONCURRENCY = 1000


class FetchResult(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """The outcome for one id: ``value`` when it succeeded, ``error`` when it did not.

    Attributes:
        id: The id as it was given.
        value: The fetched object, or ``None`` on failure.
        error: The typed error (``NotFoundError``, ``InvalidRequestError`` for a malformed
            id, ...), or ``None`` on success.
    """

    id: Any
    value: T | None = None
    error: WemasyAsyncError | None = None

    @property
    def ok(self) -> bool:
        """Whether the fetch succeeded."""
        return self.error is None

    def unwrap(self) -> T:
        """The value; raises the error when the fetch failed."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set whenever error is None


class FetchProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a batch, as passed to the progress hook after every result.

    Attributes:
        done: Results produced so far (``succeeded + failed``).
        succeeded: Results holding a value.
        failed: Results holding an error.
        elapsed: Seconds since the batch started.
    """

    done: int
    succeeded: int
    failed: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Results per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


class _End:
    """Marks a worker that ran out of ids."""


_END = _End()


class _Shared(Generic[T]):
    """What the workers use. They hold this, never the :class:`BatchFetch`, so that a batch
    the consumer drops is freed (and its workers cancelled) at once, not in a later cycle
    collection that would find the workers pending."""

    def __init__(
        self,
        fetch: Callable[[ConversationId], Awaitable[T]],
        sync_ids: Iterator[ConversationId] | None,
        async_ids: AsyncIterator[ConversationId] | None,
        concurrency: int,
        progress: Callable[[FetchProgress], object] | None,
    ) -> None:
        self.fetch = fetch
        self.sync_ids = sync_ids
        self.async_ids = async_ids
        self.progress = progress
        # Bounded: a slow consumer makes the workers wait, so memory stays flat.
        self.results: asyncio.Queue[FetchResult[T] | _End | Exception] = asyncio.Queue(
            maxsize=concurrency
        )
        self.ids_lock = asyncio.Lock()
        self.started_at = 0.0
        self.succeeded = 0
        self.failed = 0

    def snapshot(self) -> FetchProgress:
        return FetchProgress(
            done=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            elapsed=time.monotonic() - self.started_at if self.started_at else 0.0,
        )

    async def next_id(self) -> ConversationId | _End:
        if self.sync_ids is not None:
            return next(self.sync_ids, _END)
        assert self.async_ids is not None
        # Async iterators (generators above all) do not allow concurrent __anext__ calls.
        async with self.ids_lock:
            try:
                return await anext(self.async_ids)
            except StopAsyncIteration:
                return _END


async def _work(shared: _Shared[T]) -> None:
    try:
        while True:
            conversation_id = await shared.next_id()
            if isinstance(conversation_id, _End):
                break
            try:
                value = await shared.fetch(conversation_id)
            except WemasyAsyncError as error:
                shared.failed += 1
                result: FetchResult[T] = FetchResult(id=conversation_id, error=error)
            else:
                shared.succeeded += 1
                result = FetchResult(id=conversation_id, value=value)
            if shared.progress is not None:
                shared.progress(shared.snapshot())
            await shared.results.put(result)
    except Exception as bug:  # a bug, not a fetch failure: handed to the consumer, raised there
        await shared.results.put(bug)
        return
    await shared.results.put(_END)


class BatchFetch(Generic[T]):
    """Fetches ``ids`` with a fixed pool of workers; iterate it for results as they complete.

    Created by the client's ``fetch_*`` methods; see the module docstring. Order of results
    is completion order, not the order of the ids.
    """

    def __init__(
        self,
        fetch: Callable[[ConversationId], Awaitable[T]],
        ids: Iterable[ConversationId] | AsyncIterable[ConversationId],
        *,
        concurrency: int,
        progress: Callable[[FetchProgress], object] | None,
    ) -> None:
        workers: object = concurrency  # checked at run time too: callers may ignore types
        if (
            not isinstance(workers, int)
            or isinstance(workers, bool)
            or not 1 <= workers <= MAX_CONCURRENCY
        ):
            raise InvalidRequestError(
                f"concurrency must be an integer from 1 to {MAX_CONCURRENCY},"
                f" got {short_repr(workers)}",
                argument="concurrency",
            )
        if progress is not None and not callable(progress):
            raise InvalidRequestError("progress must be callable", argument="progress")
        sync_ids: Iterator[ConversationId] | None = None
        async_ids: AsyncIterator[ConversationId] | None = None
        source: object = ids
        if isinstance(source, AsyncIterable):
            async_ids = aiter(source)
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
            sync_ids = iter(source)
        else:
            raise InvalidRequestError(
                f"ids must be an iterable or async iterable of ids, got {type(ids).__name__}",
                argument="ids",
            )
        self._shared: _Shared[T] = _Shared(fetch, sync_ids, async_ids, concurrency, progress)
        self._concurrency = concurrency
        self._workers: list[asyncio.Task[None]] = []
        self._running = 0
        self._closed = False

    @property
    def progress(self) -> FetchProgress:
        """The counters so far."""
        return self._shared.snapshot()

    # --- Iteration ------------------------------------------------------------------------

    def __aiter__(self) -> BatchFetch[T]:
        return self

    async def __anext__(self) -> FetchResult[T]:
        if self._closed:
            raise StopAsyncIteration
        if not self._workers:
            self._start()
        try:
            while self._running:
                item = await self._shared.results.get()
                if isinstance(item, _End):
                    self._running -= 1
                    continue
                if isinstance(item, Exception):
                    raise item  # a bug, not a fetch failure: stop the batch
                return item
        except BaseException:
            self._cancel()  # cancelled consumer or a worker's bug: stop everything now
            raise
        self._closed = True
        raise StopAsyncIteration

    def _start(self) -> None:
        self._shared.started_at = time.monotonic()
        self._running = self._concurrency
        self._workers = [asyncio.create_task(_work(self._shared)) for _ in range(self._concurrency)]

    # --- Closing --------------------------------------------------------------------------

    def _cancel(self) -> None:
        self._closed = True
        for task in self._workers:
            task.cancel()

    async def aclose(self) -> None:
        """Stop the workers and wait until they have stopped. Idempotent."""
        self._cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def __aenter__(self) -> BatchFetch[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped while workers run (a `break` without aclose): stop them at their next await.
        for task in getattr(self, "_workers", ()):
            if not task.done():
                task.cancel()
