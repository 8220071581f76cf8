"""Batch fetching: many ids through a pool of workers, results as they complete.

:meth:`Client.fetch_conversations <wemasy_async.Client.fetch_conversations>` and
``fetch_messages`` return a :class:`BatchFetch`: an async iterator of :class:`FetchResult`,
one per id, each holding the value or the typed error, so one bad id never fails the batch.

- The ids (any iterable or async iterable) are consumed lazily by the workers, and at most
  as many finished results as there may be workers wait for the consumer: memory stays flat
  for a million ids, and a slow consumer slows the fetching down instead of piling results up.
- Every request goes through the client's engine, so the rate limiter and retries apply.
- ``concurrency=N`` runs exactly ``N`` workers. Without it the pool tunes itself (see
  :class:`Tuner`): by Little's law, the requests in flight that the key's allowed rate needs
  at the observed latency, plus headroom; with no limit known, as many as still raise the
  throughput. Never more than ``max_concurrency`` nor the session's connection pool.
- Stopping early (``break``, an exception, cancellation of the consumer) stops the workers
  promptly: use ``async with`` (or call :meth:`BatchFetch.aclose`) to wait until they have
  stopped; dropping the iterator cancels them too. Nothing the caller owns is closed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, Literal, NoReturn, TypeAlias, TypeVar, Union

import msgspec

from wemasy_async.errors import InvalidRequestError, WemasyAsyncError
from wemasy_async.protocols import ConversationId
from wemasy_async.validation import short_repr

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "MAX_CONCURRENCY",
    "BatchFetch",
    "FetchFailed",
    "FetchProgress",
    "FetchResult",
    "Fetched",
    "Tuner",
]

T = TypeVar("T")

MAX_CONCURRENCY = 1000
"""The most workers a batch may run, whether fixed or tuned."""

DEFAULT_MAX_CONCURRENCY = 512
"""The most workers a self-tuning batch runs unless told otherwise: what 2,000 requests a
second at 200 ms need (400 in flight), with room to spare."""


class Fetched(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """A :data:`FetchResult` that succeeded.

    Attributes:
        id: The id as it was given.
        value: The fetched object.
        error: Always ``None``.
    """

    id: Any
    value: T
    error: None = None

    @property
    def ok(self) -> Literal[True]:
        """Whether the fetch succeeded: it did."""
        return True

    def unwrap(self) -> T:
        """The value."""
        return self.value


class FetchFailed(msgspec.Struct, frozen=True, kw_only=True):
    """A :data:`FetchResult` that failed.

    Attributes:
        id: The id as it was given.
        error: The typed error (``NotFoundError``, ``InvalidRequestError`` for a malformed
            id, ...).
        value: Always ``None``.
    """

    id: Any
    error: WemasyAsyncError
    value: None = None

    @property
    def ok(self) -> Literal[False]:
        """Whether the fetch succeeded: it did not."""
        return False

    def unwrap(self) -> NoReturn:
        """Raise the error."""
        raise self.error


FetchResult: TypeAlias = Union[Fetched[T], FetchFailed]  # noqa: UP007 - subscripted at run time
"""The outcome for one id: :class:`Fetched` (``value``) or :class:`FetchFailed` (``error``).

Both have ``id``, ``value``, ``error``, ``ok`` and ``unwrap()``; type checkers narrow on
``if result.ok:`` and on ``if result.error is None:``, so ``result.value`` is then the value's
type, not ``... | None``.
"""


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


class Tuner:
    """How many workers a self-tuning batch runs: a pure computation over the ``now`` passed in.

    The batch calls :meth:`due` after every finished fetch (cheap) and, when it says so,
    :meth:`update` with the key's allowed rate and the observed latency of one exchange.
    Each decision ends a period: at least ``PERIOD`` seconds, and with no rate known, at least
    twice as many completions as workers, so that it measures a steady state.

    - A rate ``R`` is known (the limiter has learned a limit): ``ceil(min(R, REACH x
      throughput) x latency x HEADROOM) + SPARE`` workers, Little's law with room for the
      spread of latencies. The latency includes the limiter's calls to a shared store (each
      worker spends them per request; at their calm mean, see ``client._with_store``). With a
      ``shared`` store (other processes may use the key's rate) the rate is at most ``REACH``
      times what this process gets: each sized for all of it would keep ``N`` times the
      requests in flight (and a busier event loop sends later than the schedule says); alone,
      such a pool reaches ``R`` in a few periods, growing by ``REACH x HEADROOM`` each. What
      it gets is read from the sends the store granted it (``granted``), not from answers:
      the larger of their rate in the period (a growth shows at once, not a latency later;
      at 200 ms the answers of a 0.1 s period are a wave or almost none) and over the last
      ``window`` (a binding key grants in pulses, and a period with none is not a share of
      nothing; at most the last ``GRANTED_KEPT`` periods). Without ``granted``, the period's
      completions stand in. In process (the key's rate is all this process's),
      ``min(R, ...)`` is ``R`` at once: a ramp costs utilisation (85.7% against 99.9% at
      500/s and 200 ms, measured). It follows a lower rate or latency in one period. More
      workers than the rate needs only wait in the limiter, so erring high costs little;
      erring low leaves rate unused.
      One guard: a second growth in a row is made only if the first raised the throughput
      by ``GAIN``, since on a saturated machine (or server) the latency rises with every
      request in flight and Little's law would chase it, near the rate as well as far
      from it. A legitimate growth loses nothing: the first of a streak is always made, and
      it sizes for the new latency in one step.
    - No rate is known (no limit learned yet, an unpaced server, or no limiter): a hill climb
      on the measured throughput. From ``INITIAL`` workers, double while a doubling raises the
      throughput by at least ``GAIN``; when one does not, go back to the best count and hold.
      Every ``PROBE_EVERY`` periods of holding, probe once: alternately 1.5x the workers (a
      gain resumes the doubling) and 0.75x (kept if the throughput stays within ``GAIN``), so
      the pool follows a server that got faster or slower.

    The first period after the start only learns whether a rate is known; it decides nothing.
    """

    INITIAL = 4
    HEADROOM = 1.5
    REACH = 2.0
    SPARE = 4
    PERIOD = 0.1
    GAIN = 1.1
    PROBE_EVERY = 4
    GRANTED_KEPT = 1024  # periods of grant counts kept: a window's, or about 100 s at most

    def __init__(
        self,
        cap: int,
        now: float,
        *,
        shared: bool = False,
        window: float = 60.0,
        granted: int | None = None,
    ) -> None:
        self.cap = cap
        self.shared = shared
        self.window = window  # the key's: the span over which what this process gets counts
        # (time, granted) at the start and the ends of periods, the oldest the last before
        # the window; at most GRANTED_KEPT (a day's window would keep 864,000 periods)
        self._granted: deque[tuple[float, int]] = deque(maxlen=self.GRANTED_KEPT)
        if granted is not None:
            self._granted.append((now, granted))
        self.workers = min(cap, self.INITIAL)
        self._start = now
        self._done = 0  # completions this period
        self._need = 1  # completions that end a period
        self._grown_at: float | None = None  # the throughput before the last paced growth
        self._warm = False  # the first period is over
        self._best = 0.0  # hill climb: the best throughput, at _best_workers
        self._best_workers = self.workers
        self._growing = True
        self._holds = 0
        self._probe: str | None = None  # "up" or "down" while a probe is measured
        self._probe_up = True

    def due(self, now: float) -> bool:
        """Count one completion; whether the period is over (then call :meth:`update`)."""
        self._done += 1
        return self._done >= self._need and now - self._start >= self.PERIOD

    def update(
        self,
        now: float,
        rate: float | None,
        latency: float | None,
        granted: int | None = None,
    ) -> int:
        """End the period; the workers to run from now on.

        Args:
            now: The clock (seconds, monotonic).
            rate: Sends per second the key may make, or ``None`` when no limit is known.
            latency: Seconds one request takes, the exchange and the store calls (at their
                calm means, capped: see ``client._with_store``), or ``None`` if unknown.
            granted: With a shared store, the sends it has granted this process so far (a
                running count; only differences count), or ``None``.
        """
        throughput = self._done / max(now - self._start, 1e-9)
        self._start, self._done = now, 0
        gets = throughput if granted is None else self._gets(now, granted, throughput)
        if rate is not None and latency is not None:
            self._restart_climb()  # should the limit vanish, climb from here
            workers = self._paced(rate, latency, gets)
            self._need = 1
        elif not self._warm:
            workers = self.workers
        else:
            workers = self._climb(throughput)
        self._warm = True
        self.workers = max(1, min(self.cap, workers))
        if rate is None or latency is None:
            self._need = 2 * self.workers
        return self.workers

    def _gets(self, now: float, granted: int, throughput: float) -> float:
        """Sends a second this process gets: the larger of the period's and the window's
        rate of ``granted`` (``throughput`` until there are two counts)."""
        history = self._granted
        history.append((now, granted))
        while len(history) > 2 and history[1][0] <= now - self.window:
            history.popleft()
        if len(history) < 2:
            return throughput
        (first, first_granted), (last, last_granted) = history[0], history[-2]
        period = (granted - last_granted) / max(now - last, 1e-9)
        return max(period, (granted - first_granted) / max(now - first, 1e-9))

    def _paced(self, rate: float, latency: float, throughput: float) -> int:
        if self.shared:
            # Other processes share the key's rate: this one needs only what it gets, and
            # may grow towards the whole rate by REACH a period.
            rate = min(rate, throughput * self.REACH)
        workers = math.ceil(rate * latency * self.HEADROOM) + self.SPARE
        if workers <= self.workers:
            self._grown_at = None
            return workers
        grown_at = self._grown_at
        if grown_at is not None and throughput < grown_at * self.GAIN:
            # The last growth bought no throughput: the bottleneck is elsewhere (CPU, the
            # server), and the latency grows with every request queued there. More workers
            # would only grow it further. This holds near the rate too: a machine serving
            # 1,950/s of 2,000/s queues every extra worker in its own event loop (measured:
            # the pool ran away to 512 there when growth within GAIN of the rate was exempt).
            return self.workers
        self._grown_at = throughput
        return workers

    def _restart_climb(self) -> None:
        self._best, self._growing, self._probe, self._holds = 0.0, True, None, 0

    def _climb(self, throughput: float) -> int:
        workers = self.workers
        probe, self._probe = self._probe, None
        if probe == "up" and throughput >= self._best * self.GAIN:
            self._growing = True  # the server takes more now: resume doubling
        elif probe == "down" and throughput * self.GAIN >= self._best:
            self._best, self._best_workers = throughput, workers  # as fast with fewer
            return workers
        elif probe is not None:
            return self._best_workers  # the probe lost throughput: back
        if self._growing:
            if throughput >= self._best * self.GAIN:
                self._best, self._best_workers = throughput, workers
                if workers < self.cap:
                    return workers * 2
            self._growing, self._holds = False, 0
            return self._best_workers
        self._best = throughput  # holding: measure the present, the server may have changed
        self._holds += 1
        if self._holds < self.PROBE_EVERY:
            return workers
        self._holds = 0
        up, self._probe_up = self._probe_up, not self._probe_up
        if up and workers < self.cap:
            self._probe = "up"
            return math.ceil(workers * 1.5)
        if not up and workers > 1:
            self._probe = "down"
            return max(1, math.floor(workers * 0.75))
        return workers


class _End:
    """Marks the end of the ids (put once, by the last worker to stop)."""


_END = _End()


def _no_rate() -> float | None:
    return None


class _Shared(Generic[T]):
    """What the workers use. They hold this, never the :class:`BatchFetch`, so that a batch
    the consumer drops is freed (and its workers cancelled) at once, not in a later cycle
    collection that would find the workers pending."""

    def __init__(
        self,
        fetch: Callable[[ConversationId], Awaitable[T]],
        sync_ids: Iterator[ConversationId] | None,
        async_ids: AsyncIterator[ConversationId] | None,
        progress: Callable[[FetchProgress], object] | None,
        *,
        workers: int,
        queue_size: int,
        tuner: Tuner | None,
        rate: Callable[[], float | None],
        latency: Callable[[], float | None],
        granted: Callable[[], int] | None = None,
        report: Callable[[FetchProgress, int, bool], Awaitable[object]] | None = None,
    ) -> None:
        self.fetch = fetch
        self.sync_ids = sync_ids
        self.async_ids = async_ids
        self.progress = progress
        # Bounded: a slow consumer makes the workers wait, so memory stays flat.
        self.results: asyncio.Queue[FetchResult[T] | _End | Exception] = asyncio.Queue(
            maxsize=queue_size
        )
        self.ids_lock = asyncio.Lock()
        self.started_at = 0.0
        self.succeeded = 0
        self.failed = 0
        self.target = workers  # workers wanted; a surplus one stops after its fetch
        self.active = 0  # workers running
        self.exhausted = False
        self.tasks: list[asyncio.Task[None]] = []
        self.tuner = tuner
        self.rate = rate
        self.latency = latency
        self.granted = granted
        self.report = report
        self.taken = 0  # ids read so far

    def snapshot(self) -> FetchProgress:
        return FetchProgress(
            done=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            elapsed=time.monotonic() - self.started_at if self.started_at else 0.0,
        )

    def spawn(self) -> None:
        """Start workers up to the target."""
        if self.active >= self.target or self.exhausted:
            return
        self.tasks = [task for task in self.tasks if not task.done()]
        while self.active < self.target:
            self.active += 1
            # Plain tasks, not a task group: the workers run between the consumer's awaits
            # of __anext__, which no task group's block can span; BatchFetch cancels and
            # awaits them itself (aclose, __aexit__, or when dropped).
            self.tasks.append(asyncio.create_task(_work(self)))

    def tune(self) -> None:
        tuner = self.tuner
        assert tuner is not None
        now = time.monotonic()
        if tuner.due(now):
            granted = None if self.granted is None else self.granted()
            self.target = tuner.update(now, self.rate(), self.latency(), granted)
            self.spawn()

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
        while shared.active <= shared.target:  # a surplus worker stops here
            conversation_id = await shared.next_id()
            if isinstance(conversation_id, _End):
                shared.exhausted = True
                break
            shared.taken += 1
            try:
                value = await shared.fetch(conversation_id)
            except WemasyAsyncError as error:
                shared.failed += 1
                result: FetchResult[T] = FetchFailed(id=conversation_id, error=error)
            else:
                shared.succeeded += 1
                result = Fetched(id=conversation_id, value=value)
            if shared.tuner is not None:
                shared.tune()
            if shared.progress is not None:
                shared.progress(shared.snapshot())
            if shared.report is not None:
                await shared.report(shared.snapshot(), shared.taken, shared.exhausted)
            await shared.results.put(result)
    except Exception as bug:  # a bug, not a fetch failure: handed to the consumer, raised there
        await shared.results.put(bug)
        return
    shared.active -= 1
    if shared.active == 0 and shared.exhausted:
        await shared.results.put(_END)


def _check_workers(value: object, argument: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidRequestError(
            f"{argument} must be an integer from 1 to {MAX_CONCURRENCY}, got {short_repr(value)}",
            argument=argument,
        )
    return value


class BatchFetch(Generic[T]):
    """Fetches ``ids`` with a pool of workers; iterate it for results as they complete.

    Created by the client's ``fetch_*`` methods; see the module docstring. Order of results
    is completion order, not the order of the ids.

    Args:
        fetch: Fetches one id.
        ids: The ids.
        concurrency: Workers to run, fixed; ``None`` tunes them (see :class:`Tuner`).
        max_concurrency: The most workers a tuned pool runs.
        pool: The connection pool's size, another bound of a tuned pool (``None``: unlimited).
        rate: The key's allowed rate now (sends per second), ``None`` when not known.
        latency: Seconds one exchange takes now (a running average), ``None`` when not known.
        granted: With a store other processes may share, the sends it has granted this
            process so far (a running count): what this process gets of the key's rate (see
            :class:`Tuner`); ``None``: the key's rate is all this process's.
        window: The key's rate-limit window in seconds (what it gets counts over one).
        progress: Called with a :class:`FetchProgress` after every result.
        report: Awaited after every result with the counters, the ids read so far and
            whether all have been read (the client's hooks' batch progress events).
    """

    def __init__(
        self,
        fetch: Callable[[ConversationId], Awaitable[T]],
        ids: Iterable[ConversationId] | AsyncIterable[ConversationId],
        *,
        concurrency: int | None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        pool: int | None = None,
        rate: Callable[[], float | None] = _no_rate,
        latency: Callable[[], float | None] = _no_rate,
        granted: Callable[[], int] | None = None,
        window: float = 60.0,
        progress: Callable[[FetchProgress], object] | None,
        report: Callable[[FetchProgress, int, bool], Awaitable[object]] | None = None,
    ) -> None:
        cap = _check_workers(max_concurrency, "max_concurrency")
        if concurrency is not None:
            cap = _check_workers(concurrency, "concurrency")
        elif pool is not None:
            cap = max(1, min(cap, pool))
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
        tuner = (
            None
            if concurrency is not None
            else Tuner(
                cap,
                time.monotonic(),
                shared=granted is not None,
                window=window,
                granted=None if granted is None else granted(),
            )
        )
        self._shared: _Shared[T] = _Shared(
            fetch,
            sync_ids,
            async_ids,
            progress,
            workers=cap if tuner is None else tuner.workers,
            queue_size=cap,
            tuner=tuner,
            rate=rate,
            latency=latency,
            granted=granted,
            report=report,
        )
        self._started = False
        self._closed = False

    @property
    def progress(self) -> FetchProgress:
        """The counters so far."""
        return self._shared.snapshot()

    @property
    def workers(self) -> int:
        """Workers running now (for diagnostics and tests); fixed unless the pool is tuned."""
        return self._shared.active

    @property
    def _workers(self) -> list[asyncio.Task[None]]:
        return self._shared.tasks

    # --- Iteration ------------------------------------------------------------------------

    def __aiter__(self) -> BatchFetch[T]:
        return self

    async def __anext__(self) -> FetchResult[T]:
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            self._started = True
            self._shared.started_at = time.monotonic()
            self._shared.spawn()
        try:
            item = await self._shared.results.get()
            if isinstance(item, Exception):
                raise item  # a bug, not a fetch failure: stop the batch
        except BaseException:
            self._cancel()  # cancelled consumer or a worker's bug: stop everything now
            raise
        if isinstance(item, _End):
            self._closed = True
            raise StopAsyncIteration
        return item

    # --- Closing --------------------------------------------------------------------------

    def _cancel(self) -> None:
        self._closed = True
        for task in self._shared.tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Stop the workers and wait until they have stopped. Idempotent."""
        self._cancel()
        if self._shared.tasks:
            await asyncio.gather(*self._shared.tasks, return_exceptions=True)

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
        shared = getattr(self, "_shared", None)
        for task in shared.tasks if shared is not None else ():
            if not task.done():
                task.cancel()
