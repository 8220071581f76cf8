"""Client-side rate limiting, learned from the servers' headers.

One :class:`Limiter` per key ``(provider, base URL, digest of the token)``: every ``Client``
in a process with the same key shares it, and with a shared :class:`LimiterStore` (Redis,
see :mod:`wemasy_async.redis`) every process on every host does too.

How it paces:

- The rate comes from ``X-RateLimit-Limit`` (requests per ``window``, a minute by default as
  the providers document). Sends are spaced ``max((window + margin) / limit,
  window / (limit - 1))`` apart, a GCRA schedule with no burst allowance: however a server's
  fixed window is aligned, no window of that length sees more than ``limit - 1`` of our
  sends (one request of slack for jitter), at start-up (the probe counts) or after idling.
  A send that goes out late absorbs up to half the margin without pushing back the ones
  after it, so timer and network delays do not drift the rate down.
- Until the first response has told the limit, one request at a time goes out (a probe);
  a server that sends no rate-limit headers is then not paced (no information is not zero).
- ``X-RateLimit-Remaining`` is a credit: counting the requests still in flight, the limiter
  never sends more than it says remain, until a full window has passed. Our own pacing never
  spends it to zero; when it is spent while a response is in flight, the limiter looks
  again one interval later, since that response will likely refresh it.
- A 429 pauses the whole key until its ``Retry-After``; then waiting requests go out one
  by one at the paced rate, not all together. A pause longer than the retry policy's
  ``max_retry_after`` fails this process's requests (queued or new) at once instead.
- Waiters queue in FIFO order per process. Only the head of the queue consults the state; it
  sleeps exactly until the next send is due and then takes it atomically. Nothing is
  reserved while waiting, so a cancelled waiter leaks no capacity and nothing is spent twice,
  and a pause that arrives during the wait is honoured.
"""

from __future__ import annotations

import hashlib
import math
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from wemasy_async.errors import InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.validation import MAX_INT64, MAX_SECONDS, is_positive_number, short_repr

__all__ = [
    "Limiter",
    "LimiterStore",
    "LocalStore",
    "Pacing",
    "PauseTooLong",
    "RateLimit",
    "limiter_key",
    "shared_limiter",
]


@dataclass(frozen=True)
class Pacing:
    """What a store needs of a :class:`RateLimit`: window, margin and ceiling."""

    window: float
    margin: float
    ceiling: int | None


class LimiterStore(Protocol):
    """Where limiter state lives. Each method is atomic for a key.

    ``acquire`` and ``observe`` are the whole protocol: a store holds, per key, the learned
    limit, the theoretical arrival time of the next send, a pause deadline, the credit from
    ``X-RateLimit-Remaining`` and the number of requests in flight.
    """

    async def acquire(self, key: str, pacing: Pacing) -> float | None:
        """Take the next send if it is due.

        Returns:
            ``0.0`` when the send was taken (counted in flight), the seconds until it is due
            otherwise, or ``None`` when no limit has been learned yet (the caller probes).
        """
        ...

    async def observe(
        self, key: str, pacing: Pacing, info: RateLimitInfo | None, *, sent: bool, paused: float
    ) -> None:
        """Learn from a finished request.

        Args:
            key: The limiter key.
            pacing: The configuration.
            info: The response's rate-limit headers, or ``None`` when no response came.
            sent: Whether the request was counted in flight by :meth:`acquire` (a probe
                sent while the limit was unknown was not).
            paused: Seconds to pause the whole key for (a 429), ``0`` for none.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """How a client paces its requests.

    Args:
        window: Seconds in the servers' rate-limit window (the docs say per minute); more
            than 0, at most a day.
        margin: Seconds added to the window when pacing, to absorb clock and network
            jitter, from 0 to a day; ``None`` means 2.5% of the window.
        ceiling: Requests per window never to exceed, below what the server allows
            (1 to ``2**63 - 1``).
        store: Shared state, e.g. :class:`wemasy_async.redis.RedisStore`; ``None`` keeps it
            in this process.
        pause_without_hint: Seconds to pause after a 429 that says no ``Retry-After``;
            more than 0, at most a day.

    Raises:
        InvalidRequestError: An argument is out of range or of the wrong type (``argument``
            names it).
    """

    window: float = 60.0
    margin: float | None = None
    ceiling: int | None = None
    store: LimiterStore | None = None
    pause_without_hint: float = 1.0
    _margin: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Bounded above so that the pacing arithmetic stays finite: a window, margin or
        # pause of 1e308 seconds would make the interval infinite and stall every request.
        if not is_positive_number(self.window) or self.window > MAX_SECONDS:
            raise InvalidRequestError(
                f"window must be a positive number of seconds, at most {MAX_SECONDS:g}"
                f" (a day), got {short_repr(self.window)}",
                argument="window",
            )
        if self.margin is not None and not (
            (is_positive_number(self.margin) or _zero(self.margin)) and self.margin <= MAX_SECONDS
        ):
            raise InvalidRequestError(
                f"margin must be a number of seconds from 0 to {MAX_SECONDS:g},"
                f" got {short_repr(self.margin)}",
                argument="margin",
            )
        if self.ceiling is not None and not _whole(self.ceiling):
            raise InvalidRequestError(
                f"ceiling must be an integer from 1 to 2**63 - 1, got {short_repr(self.ceiling)}",
                argument="ceiling",
            )
        if self.store is not None and not is_store(self.store):
            raise InvalidRequestError(
                "store must be a LimiterStore (with async acquire and observe methods),"
                f" e.g. a RedisStore, got {type(self.store).__name__}",
                argument="store",
            )
        if not is_positive_number(self.pause_without_hint) or self.pause_without_hint > MAX_SECONDS:
            raise InvalidRequestError(
                f"pause_without_hint must be a positive number of seconds, at most"
                f" {MAX_SECONDS:g}, got {short_repr(self.pause_without_hint)}",
                argument="pause_without_hint",
            )
        object.__setattr__(
            self, "_margin", self.window * 0.025 if self.margin is None else float(self.margin)
        )

    @property
    def pacing_margin(self) -> float:
        """The margin in effect, in seconds."""
        return self._margin


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_INT64


def is_store(value: object) -> bool:
    """Whether ``value`` looks like a :class:`LimiterStore` (``acquire`` and ``observe``)."""
    return callable(getattr(value, "acquire", None)) and callable(getattr(value, "observe", None))


def _zero(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def limiter_key(provider: str, base_url: str, token: str) -> str:
    """The key clients share a limiter under; holds a digest of the token, never the token."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:24]
    return f"{provider}|{base_url}|{digest}"


# --- In-process state ------------------------------------------------------------------------


@dataclass
class _State:
    learned: bool = False
    limit: int | None = None
    tat: float = 0.0  # when the next send is due (GCRA's theoretical arrival time)
    paused_until: float = 0.0
    credit: int | None = None
    credit_until: float = 0.0
    in_flight: int = 0


def _slack(interval: float, pacing: Pacing) -> float:
    """How late a send may go out without pushing back the ones after it.

    Timers fire late (and a Redis round trip takes time); restarting the schedule from
    every late wake-up would drift below the allowed rate. Half the margin (or interval) of
    lateness is absorbed: any ``limit + 1`` sends still span more than a window.
    """
    return min(pacing.margin, interval) / 2


def _interval(limit: int | None, pacing: Pacing) -> float:
    """Seconds between sends: at most ``limit - 1`` of ours fall in any window.

    Spacing ``window / (limit - 1)`` keeps one request of slack for jitter, and our own
    traffic never drives ``X-RateLimit-Remaining`` to zero (which would stall a window); the
    margin widens it further when it is the larger.
    """
    if limit is None:
        return 0.0
    if pacing.ceiling is not None:
        limit = min(limit, pacing.ceiling)
    spacing = (pacing.window + pacing.margin) / limit
    if limit >= 2:
        spacing = max(spacing, pacing.window / (limit - 1))
    return spacing


class LocalStore:
    """Limiter state in this process; the default store, one per limiter.

    Safe within one event loop (each method runs without awaiting).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._states: dict[str, _State] = {}
        # The event loop's clock (asyncio's loop.time() is time.monotonic()).
        self._clock = clock

    def _state(self, key: str, pacing: Pacing) -> _State:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
            if pacing.ceiling is not None:
                # A configured ceiling is enough to pace by before any header arrives.
                state.learned, state.limit = True, pacing.ceiling
        return state

    def in_flight(self, key: str) -> int:
        """Sends of ``key`` taken and not yet observed as finished (for diagnostics and tests)."""
        state = self._states.get(key)
        return 0 if state is None else state.in_flight

    async def acquire(self, key: str, pacing: Pacing) -> float | None:
        state = self._state(key, pacing)
        if not state.learned:
            return None
        now = self._clock()
        interval = _interval(state.limit, pacing)
        due = max(state.tat, state.paused_until)
        if state.credit is not None and state.credit_until > now and state.credit <= 0:
            # Spent by our own sends, a response still in flight will likely refresh the
            # credit: look again one interval on instead of sitting out the whole window.
            recheck = now + interval if state.in_flight > 0 and interval > 0 else math.inf
            due = max(due, min(state.credit_until, recheck))
        if due > now:
            return due - now
        state.tat = max(state.tat, now - _slack(interval, pacing)) + interval
        if state.credit is not None and state.credit_until > now:
            state.credit -= 1
        state.in_flight += 1
        return 0.0

    async def observe(
        self, key: str, pacing: Pacing, info: RateLimitInfo | None, *, sent: bool, paused: float
    ) -> None:
        state = self._state(key, pacing)
        now = self._clock()
        if sent:
            state.in_flight = max(0, state.in_flight - 1)
        if info is not None:
            state.learned = True
            if info.limit is not None and info.limit > 0:
                # Bounded: a limit beyond 2**63 would not convert to a float for the interval.
                limit = min(info.limit, MAX_INT64)
                state.limit = limit if pacing.ceiling is None else min(limit, pacing.ceiling)
            if not sent:
                # The probe went out unscheduled: the first paced send keeps its distance.
                state.tat = max(state.tat, now + _interval(state.limit, pacing))
            if info.remaining is not None:
                # Requests still in flight may not be counted in this figure yet.
                state.credit = min(info.remaining, MAX_INT64) - state.in_flight
                state.credit_until = now + pacing.window
        if paused > 0 and math.isfinite(paused):  # an endless pause would stall the key
            until = now + paused
            state.paused_until = max(state.paused_until, until)
            # Waiters resume one interval apart after the pause, not all at once.
            state.tat = max(state.tat, until)
            state.credit, state.credit_until = 0, until


# --- The front: FIFO queue per process -------------------------------------------------------


class PauseTooLong(Exception):
    """The key is paused (after a 429) for longer than the caller will wait.

    Attributes:
        seconds: How long the pause still lasts.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paused for another {seconds:.1f} s")
        self.seconds = seconds


class _Turn:
    """A waiter's place in the queue."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False  # its send was taken for it by the head of the queue


class Limiter:
    """Paces the requests of one key in this process; see the module docstring."""

    def __init__(self, key: str, config: RateLimit, store: LimiterStore) -> None:
        self.key = key
        self.config = config
        self.store = store
        self._pacing = Pacing(config.window, config.pacing_margin, config.ceiling)
        self._queue: deque[_Turn] = deque()
        self._probing = False
        self._probe_done: anyio.Event | None = None
        self._paused_until = 0.0  # the latest 429 pause this process saw (monotonic clock)

    @property
    def waiting(self) -> int:
        """Requests of this process queued for their turn now (for diagnostics and tests)."""
        return len(self._queue)

    def paused_for(self) -> float:
        """Seconds left of the latest 429 pause this process saw (``0`` when none)."""
        return max(0.0, self._paused_until - time.monotonic())

    def _check_pause(self, max_pause: float) -> None:
        pause = self.paused_for()
        if pause > max_pause:
            raise PauseTooLong(pause)

    async def acquire(self, max_pause: float = math.inf) -> bool:
        """Wait for this request's turn to be sent.

        Args:
            max_pause: The longest 429 pause worth waiting out; a longer one this process
                knows of raises :class:`PauseTooLong`, before queueing or while queued.

        Returns:
            Whether the send was counted in flight (pass it to :meth:`release`).
        """
        self._check_pause(max_pause)
        if not self._queue:
            # Nobody waiting: ask at once, and queue (suspend) only if the send is not due.
            delay = await self.store.acquire(self.key, self._pacing)
            if delay == 0.0:
                return True
            if delay is None and not self._probing:
                # The store's answer stands: a shared store has just given this process the
                # probe, and asking again would find the probe taken (by us) and wait.
                self._probing = True
                self._probe_done = anyio.Event()
                return False
        turn = _Turn()
        self._queue.append(turn)
        taken = False  # a send was taken for this request (by itself, or granted by the head)
        handed = False  # ... and handed to the caller, who releases it
        try:
            if self._queue[0] is not turn:
                await turn.event.wait()
                if turn.granted:
                    taken = handed = True
                    return True
            while True:
                self._check_pause(max_pause)
                delay = await self.store.acquire(self.key, self._pacing)
                if delay == 0.0:
                    taken = True
                    # May suspend (a shared store's round trip), so it may be cancelled: the
                    # send taken above is then given back in the finally clause, not leaked.
                    await self._grant_followers(turn)
                    handed = True
                    return True
                if delay is None:
                    if not self._probing:
                        self._probing = True
                        self._probe_done = anyio.Event()
                        return False
                    assert self._probe_done is not None
                    await self._probe_done.wait()
                else:
                    await anyio.sleep(delay)
        finally:
            if (taken or turn.granted) and not handed:
                # Taken (or granted by the head), then cancelled before the caller got it:
                # the request will not be sent, so give the send back.
                with anyio.CancelScope(shield=True):
                    await self.store.observe(self.key, self._pacing, None, sent=True, paused=0.0)
            # Hand the head of the queue on, whether this waiter sends or was cancelled.
            if self._queue and self._queue[0] is turn:
                self._queue.popleft()
                if self._queue:
                    self._queue[0].event.set()
            elif turn in self._queue:
                self._queue.remove(turn)

    async def _grant_followers(self, head: _Turn) -> None:
        """Let waiters behind ``head`` go at once while the store says their send is due.

        Without this a queue, once formed, drains one waiter per event-loop pass even when
        nothing needs to wait.
        """
        while len(self._queue) > 1 and self._queue[0] is head:
            follower = self._queue[1]
            if await self.store.acquire(self.key, self._pacing) != 0.0:
                return
            del self._queue[1]
            follower.granted = True
            follower.event.set()

    async def release(
        self, counted: bool, info: RateLimitInfo | None, *, paused: float = 0.0
    ) -> None:
        """Report how the request ended: its headers (``None`` if no response) and any pause."""
        if paused > 0:
            self._paused_until = max(self._paused_until, time.monotonic() + paused)
        with anyio.CancelScope(shield=True):  # the state must be updated even when cancelled
            await self.store.observe(self.key, self._pacing, info, sent=counted, paused=paused)
        if not counted and self._probe_done is not None:
            self._probing = False
            self._probe_done.set()
            self._probe_done = None

    # interface shared with the limiter rewrite
    @property
    def allowed_rate(self) -> float | None:
        """Sends per second this key may make now (learned limit, ceiling and window), or
        None while no limit is known or the key is not paced."""
        store: object = self.store
        share = 1.0
        if not isinstance(store, LocalStore):
            # A RedisStore's fallback learns every response, scaled by its share.
            share = getattr(store, "fallback_share", 1.0)
            store = getattr(store, "fallback", None)
            if not isinstance(store, LocalStore):
                return None
        state = store._states.get(self.key)
        if state is None or state.limit is None:
            return None
        interval = _interval(max(1, round(state.limit / share)), self._pacing)
        return 1.0 / interval if interval > 0 else None


class LimiterRegistry:
    """Limiters by key, so that clients with the same key share one.

    Held weakly: a limiter, and with the default in-process store its state, lives exactly
    as long as a client uses it, so nothing accumulates and a later server on a reused
    address starts afresh.
    """

    def __init__(self) -> None:
        self._limiters: weakref.WeakValueDictionary[tuple[str, int], Limiter] = (
            weakref.WeakValueDictionary()
        )

    def get(self, key: str, config: RateLimit) -> Limiter:
        registry_key = (key, 0 if config.store is None else id(config.store))
        limiter = self._limiters.get(registry_key)
        if limiter is None:
            store = config.store if config.store is not None else LocalStore()
            limiter = Limiter(key, config, store)
            self._limiters[registry_key] = limiter
        return limiter


_REGISTRY = LimiterRegistry()


def shared_limiter(key: str, config: RateLimit) -> Limiter:
    """The limiter every client of this process with ``key`` and ``config.store`` shares.

    The first client to ask for a key fixes its settings; later ones share them.
    """
    return _REGISTRY.get(key, config)
