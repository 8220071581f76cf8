"""Client-side rate limiting, learned from the servers' headers.

One :class:`Limiter` per key ``(provider, base URL, digest of the token)`` and store: every
``Client`` in a process with the same key and store shares it, and with a shared
:class:`LimiterStore` (Redis, see :mod:`wemasy_async.redis`) every process on every host
shares its state too.

The algorithm lives once, in :mod:`wemasy_async.schedule` (pure transitions over an injected
clock); a store only keeps a key's state and applies them atomically. In short: a sliding
log of our sends keeps at most ``limit - 1`` of them in any span of one window (and
``limit`` in a window plus the margin), so a burst goes out at once while the limit is far
away and the sustained rate is exact when it binds; until a response has told the limit,
one request (the probe) goes out at a time; ``X-RateLimit-Remaining`` is a credit; a 429
pauses the whole key until its ``Retry-After``, and then one request probes before the rest
go (a 429 storm meets one request per pause). Waiters holding a reservation wake when a 429
arrives, so a pause longer than the caller's ``max_pause`` fails them at once.

How a request waits, and why a cancellation cannot break it:

- :meth:`Limiter.acquire` reserves the request's own send. When the send is due now (the
  usual case far from the limit) it returns without suspending: no event-loop round trip
  with the in-process store. Otherwise it sleeps until the reserved time (less one store
  round trip, a running average, so that a shared store's answer is back when it is due),
  then confirms the reservation: a 429 or a lower limit that arrived meanwhile voids it (it
  is given back and a new one taken), and one confirmed late is moved to now if the log has
  room there, kept when at most a margin late, else voided too (see
  :mod:`wemasy_async.schedule`). Nobody hands a send to anybody else, so there is no queue
  to corrupt: a waiter cancelled at any point gives back exactly the reservation it holds.
- **Far from the limit, a grant.** With the in-process store, a reservation that finds
  room for several times more takes a grant: up to :data:`GRANT_MOST` sends reserved in one
  transition (:func:`wemasy_async.schedule.grant`), handed out one per request without
  touching the state until spent or :data:`GRANT_LIFE` of a margin old (then what it did
  not send goes back). Their answers are held back and released together (:meth:`Limiter.answered`
  takes one from the engine with one look at the headers) unless one could change a
  decision: a 429, another limit, a Remaining that fell low, or a response without the
  headers; those are released at once, and the store releases everything held before it
  applies or reports anything of the key. So a limit that does not bind costs a few
  attribute reads per request, and one that binds sees every answer as before.
- Each send is a lease: it counts as in flight until :meth:`Limiter.release`, or until it
  leaves the log a window (plus margin) later, so a release that never happens expires.
- With a store that awaits, every store call runs in a task of its own that the caller
  awaits through :func:`asyncio.shield`: ``Task.cancel()``, ``asyncio.timeout``,
  ``wait_for`` and task groups cancel the caller at once, while the store call completes
  (and whatever it reserved is given back). A client library that swallows a cancellation
  (redis-py does, mid-command) therefore cannot swallow ours. A store whose calls complete
  by themselves (:func:`completes_when_cancelled`; :class:`~wemasy_async.redis.RedisStore`
  queues each transition for a runner task of its own and only awaits the hand-over) is
  awaited directly: the same guarantees without a task and a shield per call; it may also
  take the engine's reports without being awaited (``submit``), so a request waits for one
  store round trip, not two (772k instructions a request through Redis, was 1,012k,
  measured). Nothing here needs
  Python 3.11's ``Task.cancelling()``: it works the same on 3.10.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from wemasy_async import schedule
from wemasy_async.errors import InvalidRequestError
from wemasy_async.exchange import NotSent
from wemasy_async.headers import RateLimitInfo, still_at_least
from wemasy_async.latency import Latency
from wemasy_async.schedule import Acquire, Confirm, Decision, Event, Pacing, Release, Ticket
from wemasy_async.validation import MAX_INT64, MAX_SECONDS, is_positive_number, short_repr
from wemasy_async.window_check import WindowCheck

logger = logging.getLogger("wemasy_async")

__all__ = [
    "Limiter",
    "LimiterStore",
    "LocalStore",
    "Pacing",
    "PauseTooLong",
    "RateLimit",
    "Sending",
    "Ticket",
    "completes_when_cancelled",
    "limiter_key",
    "shared_limiter",
]

_ACQUIRE = Acquire()
#: The most sends one grant holds (see Limiter.reserve).
GRANT_MOST = 64
#: The fewest a grant is worth (near the limit, one at a time is as cheap and exact).
GRANT_LEAST = 8
#: How long a grant lasts, as a share of the margin: its sends may go that much after the
#: time logged for them, which leaves the rest of the margin for the event loop's lag.
GRANT_LIFE = 0.125
#: The most answers a window that the short-window check reads (see Limiter._release).
WINDOW_SAMPLES = 256


class LimiterStore(Protocol):
    """Where limiter state lives: one :class:`~wemasy_async.schedule.State` per key.

    A store holds no rate-limit logic of its own: it applies
    :func:`wemasy_async.schedule.apply` to a key's state, atomically (no other transition of
    that key may interleave), at the time of its own clock, and keeps the result.

    Optional members the limiter looks for: ``completes_when_cancelled`` (see
    :func:`completes_when_cancelled`); with it, ``submit(key, pacing, release)``, which
    queues a release and returns a future of its decision (or ``None`` to be awaited
    through ``apply`` instead); and ``async settled()``, which waits until what is queued
    has been committed (``Limiter.settled`` and ``Client.aclose`` call it).
    """

    async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
        """Apply ``event`` to the state of ``key`` and return the decision."""
        ...


def completes_when_cancelled(store: LimiterStore) -> bool:
    """Whether ``store`` says that its calls complete though their caller is cancelled.

    A store may declare ``completes_when_cancelled = True`` when a call that its caller
    stops awaiting still takes effect, and a send it reserves for a caller that is gone
    goes back, as does the send a confirmation was about (as
    :class:`~wemasy_async.redis.RedisStore`'s queued commits do). The limiter
    then awaits its calls directly; any other store's calls run in a task of their own that
    the caller awaits through :func:`asyncio.shield` (a task and a shield per call, which at
    thousands of calls a second is a tenth of a core).
    """
    return getattr(store, "completes_when_cancelled", False) is True


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
                "store must be a LimiterStore (with an async apply method),"
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
    """Whether ``value`` looks like a :class:`LimiterStore` (an ``apply`` method)."""
    return callable(getattr(value, "apply", None))


def _zero(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def limiter_key(provider: str, base_url: str, token: str) -> str:
    """The key clients share a limiter under; holds a digest of the token, never the token."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:24]
    return f"{provider}|{base_url}|{digest}"


# --- In-process state ------------------------------------------------------------------------


class LocalStore:
    """Limiter state in this process; the default store, one per limiter.

    Safe within one event loop: :meth:`apply_now` runs without awaiting.

    Args:
        clock: Seconds, monotonic; the event loop's clock by default (asyncio's
            ``loop.time()`` is ``time.monotonic()``). Tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._states: dict[str, schedule.State] = {}
        self._clock = clock
        self._holders: dict[str, weakref.WeakMethod[Callable[[], None]]] = {}

    def hold(self, key: str, settle: Callable[[], None]) -> None:
        """Say that a limiter may hold back releases of ``key`` (the answers to a grant's
        sends, released in a batch; see :meth:`Limiter.reserve`): ``settle`` (a bound
        method, held weakly) releases them, and this store calls it before it applies or
        reports anything of ``key``, so nobody sees the state without them."""
        self._holders[key] = weakref.WeakMethod(settle)

    def _settle(self, key: str) -> None:
        holder = self._holders.get(key)
        settle = None if holder is None else holder()
        if settle is not None:
            settle()

    def apply_now(self, key: str, pacing: Pacing, event: Event) -> Decision:
        """:meth:`apply`, synchronously (what :class:`Limiter` calls: it never suspends)."""
        self._settle(key)
        state = self._states.get(key)
        new, decision = schedule.apply(state, pacing, event, self._clock())
        if new is not state:
            self._states[key] = new
        return decision

    def state(self, key: str, pacing: Pacing) -> schedule.State:
        """The live state of ``key`` (made if new): transitions update it in place, and
        this store never replaces it, so a limiter may apply them to it directly (the
        per-request path: no lookup, no dispatch)."""
        self._settle(key)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = schedule.new_state(pacing)
        return state

    @property
    def clock(self) -> Callable[[], float]:
        """The clock transitions are applied at."""
        return self._clock

    completes_when_cancelled = True  # apply never suspends

    async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
        """Apply ``event`` to the state of ``key``; see :class:`LimiterStore`."""
        return self.apply_now(key, pacing, event)

    def in_flight(self, key: str) -> int:
        """Sends of ``key`` reserved and not yet released or expired (diagnostics, tests)."""
        self._settle(key)
        state = self._states.get(key)
        return 0 if state is None else state.in_flight


# --- The front: one limiter per key in this process --------------------------------------------


class PauseTooLong(Exception):
    """The key is paused (after a 429) for longer than the caller will wait.

    Attributes:
        seconds: How long the pause still lasts.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paused for another {seconds:.1f} s")
        self.seconds = seconds


class Sending(msgspec.Struct, gc=False):
    """A paced request on its way: the ticket it holds, looked at again once it has its
    connection (:data:`wemasy_async.exchange.BEFORE_SEND`, which the engine sets to it).
    A Struct: one is made per request, without running Python code.

    Attributes:
        limiter: The limiter that issued the ticket.
        ticket: The send it holds (moved to now if it came late; see :meth:`connected`).
        given_back: Whether the limiter took the send back (the request then was not sent
            and is not reported).
    """

    limiter: Limiter
    ticket: Ticket
    given_back: bool = False

    def connected(self) -> Coroutine[Any, Any, None] | None:
        """The request has a connection: unless its send is later than half a margin after
        the time logged for it (the usual case, one clock read), see
        :meth:`Limiter.late_send`. With a shared store, a send more than a margin late by
        the store's clock is confirmed there, a round trip: a coroutine to await then
        (``None`` when on time; see :meth:`Limiter.late_shared`).

        Raises:
            NotSent: Too late, with no room now: the send was given back.
        """
        limiter = self.limiter
        if limiter._clock() - self.ticket.at > limiter._late:
            limiter.late_send(self)
        elif limiter._store_now is not None:
            return limiter.late_shared(self)
        return None


class Limiter:
    """Paces the requests of one key in this process; see the module docstring.

    Args:
        key: The limiter key (see :func:`limiter_key`).
        config: The settings.
        store: Where the state lives.
    """

    def __init__(self, key: str, config: RateLimit, store: LimiterStore) -> None:
        self.key = key
        self.config = config
        self.store = store
        self._pacing = Pacing(config.window, config.pacing_margin, config.ceiling)
        # Called synchronously: it never suspends (a subclass may, so it goes the async way).
        self._local = store if type(store) is LocalStore else None
        self._state: schedule.State | None = None  # the local store's, once it has one
        # The store's clock, which tickets' times are on (known only for the in-process one).
        self._clock = time.monotonic if self._local is None else self._local.clock
        # How late after its time a send may find its connection before it is looked at
        # again (see late_send); only with the in-process store, whose clock is known.
        self._late = self._pacing.margin / 2 if self._local is not None else math.inf
        # A shared store that can tell the time on its clock (RedisStore.now_for) gets the
        # same look, by a round trip to it when a send is late.
        now_for = getattr(store, "now_for", None) if self._local is None else None
        self._store_now: Callable[[Ticket], float | None] | None = (
            now_for if callable(now_for) else None
        )
        self._direct = completes_when_cancelled(store)
        submit = getattr(store, "submit", None) if self._direct else None
        self._submit: Callable[[str, Pacing, Release], asyncio.Future[Decision] | None] | None = (
            submit if callable(submit) else None
        )
        self._limit: int | None = config.ceiling
        self._paused_until = 0.0  # the latest 429 pause this process saw (monotonic clock)
        self._waiting = 0
        self._granted = 0  # sends a shared store granted (see sends_granted)
        self._changed: asyncio.Future[None] | None = None  # set by the next release
        self._paused: asyncio.Future[None] | None = None  # set by the next 429
        self._background: set[asyncio.Task[Decision]] = set()
        self.round_trips = Latency()  # of calls to a store that is not in process
        self._logged_limit: int | None = None
        # Tickets' times are on the store's clock: only the in-process store's is known here.
        self._window_check = WindowCheck(config.window) if self._local is not None else None
        self._window_next = -math.inf  # the store's clock: when the check takes an answer
        if self._local is not None:
            self._local.hold(key, self._settle_held)
        # Grants (in-process store only; see reserve): the current one, what is left of it
        # and until when (the store's clock), and the answers to grants' sends not yet
        # released into the state (a count per ticket, and the latest headers).
        self._grant: Ticket | None = None
        # Grants are sent within a share of the margin: with none, there are none.
        self._grant_most = GRANT_MOST if self._pacing.margin > 0 else 0
        self._grant_left = 0
        self._grant_until = 0.0
        self._grant_limit: int | None = None  # the server's limit when granted
        self._grant_limits: list[str] = []  # the same, as its header reads
        self._grant_floor = 0  # an answer with less Remaining is released at once
        self._grant_floor_text = "0"  # the same, as still_at_least takes it
        self._answered: dict[Ticket, int] = {}
        # The answers held back for the current grant's own sends, counted apart from
        # _answered: most answers are to it, and a count costs no ticket hashing.
        self._grant_answered = 0
        self._latest: RateLimitInfo | Mapping[str, str] | None = None  # headers, or read
        # The ticket of the send those headers answered: the schedule learns from when it
        # went out (a rise in Remaining brackets a server window's reset).
        self._latest_ticket: Ticket | None = None

    @property
    def shared(self) -> bool:
        """Whether the state lives in a store other processes may share (not in process)."""
        return self._local is None

    @property
    def waiting(self) -> int:
        """Requests of this process waiting for their send now (diagnostics and tests)."""
        return self._waiting

    @property
    def allowed_rate(self) -> float | None:
        """Sends per second this key may make now (learned limit, ceiling and window), or None
        while no limit is known or the key is not paced."""
        return schedule.allowed_rate(self._limit, self._pacing)

    def paused_for(self) -> float:
        """Seconds left of the latest 429 pause this process saw (``0`` when none)."""
        return max(0.0, self._paused_until - time.monotonic())

    def _check_pause(self, max_pause: float, paused: float = 0.0) -> None:
        pause = max(paused, self.paused_for()) if self._paused_until else paused
        if pause > max_pause:
            raise PauseTooLong(pause)

    async def acquire(self, max_pause: float = math.inf) -> Ticket:
        """Wait until this request may be sent; the send is reserved for it alone.

        Args:
            max_pause: The longest 429 pause worth waiting out; a longer one raises
                :class:`PauseTooLong`, before waiting or while waiting.

        Returns:
            The reservation: pass it to :meth:`release` once the request has ended.

        Cancelled at any point, it gives back whatever it had reserved.
        """
        reserved = self.reserve(max_pause)
        return reserved if isinstance(reserved, Ticket) else await reserved

    def reserve(self, max_pause: float = math.inf) -> Ticket | Coroutine[Any, Any, Ticket]:
        """:meth:`acquire` without a coroutine when it need not wait: the engine's path.

        Returns:
            The ticket, when the in-process store has a send due now; else a coroutine that
            must be awaited at once (it holds what was reserved, and gives it back when
            cancelled).

        Raises:
            PauseTooLong: As :meth:`acquire`.
        """
        if self._paused_until:
            self._check_pause(max_pause)
        if self._local is None:
            return self._acquire_from_store(max_pause)
        if self._grant_left and self._clock() < self._grant_until:
            # Far from the limit, sends come from a grant: one transition for many requests.
            self._grant_left -= 1
            return self._grant  # type: ignore[return-value]  # set with _grant_left
        state = self._state or self._local_state()
        now = self._clock()
        if self._grant is not None or self._answered:
            self._settle(state, now)
        ticket = schedule.grant(state, self._pacing, now, self._grant_most, GRANT_LEAST)
        if ticket is not None:
            self._grant = ticket
            self._grant_left = ticket.count - 1
            # Sent within GRANT_LIFE of the margin after the time logged (see there).
            self._grant_until = now + self._pacing.margin * GRANT_LIFE
            self._grant_limit = state.limit
            # (None: no answer is taken as is; an unpaced key's are read one by one.)
            self._grant_limits = [] if state.limit is None else [str(state.limit)]
            # An answer with at least this Remaining leaves room for what the grant holds
            # whatever is in flight: its release may wait for the next grant.
            self._grant_floor = 2 * ticket.count + state.in_flight
            self._grant_floor_text = str(self._grant_floor)
            self._limit = ticket.limit
            return ticket
        decision = schedule.acquire(state, self._pacing, now)
        self._limit = decision.limit
        if decision.ticket is not None and decision.delay <= 0.0:
            return decision.ticket
        return self._wait(decision, max_pause)

    def late_send(self, sending: Sending) -> None:
        """A send found its connection later than half a margin after its time (a busy event
        loop: a burst of sends logged at once goes out one after another); none of its
        bytes are written yet. As a confirmation so late: moved to now if the log has room
        there, kept while at most a margin late, else given back (see
        :mod:`wemasy_async.schedule`). So every send goes within a margin of the time the
        log holds for it, also when the event loop lags after the limiter let it go.

        Raises:
            NotSent: Given back: the engine reserves anew and sends it then.
        """
        local = self._local
        if local is None:
            return
        ticket = sending.ticket
        decision = local.apply_now(self.key, self._pacing, Confirm(ticket))
        if decision.ticket is not None:
            sending.ticket = decision.ticket
            return
        local.apply_now(self.key, self._pacing, Release(ticket, sent=False))
        sending.given_back = True
        raise NotSent

    def late_shared(self, sending: Sending) -> Coroutine[Any, Any, None] | None:
        """:meth:`late_send` with a shared store: ``None`` when the send is at most a margin
        late by the store's clock (or that is not known), else a coroutine that confirms it
        there."""
        assert self._store_now is not None  # only called with one
        ticket = sending.ticket
        now = self._store_now(ticket)
        # Beyond a margin, not half of one as in the process: within it the W + m rule
        # keeps every window span at L, and each look costs a round trip when the machine
        # (or the store) is busiest.
        if now is None or now - ticket.at <= self._pacing.margin:
            return None
        return self._confirm_late(sending)

    async def _confirm_late(self, sending: Sending) -> None:
        ticket = sending.ticket
        # Until the answer is in, the send is the store call's: cancelled in it, the call
        # gives back whatever it holds then (confirmed, moved or voided), so the request
        # must not report it as well.
        sending.given_back = True
        try:
            decision = await self._apply(Confirm(ticket))
        except Exception:
            sending.given_back = False  # a store that failed: the request reports it
            raise
        if decision.ticket is not None:
            sending.ticket = decision.ticket
            sending.given_back = False
            return
        await self._apply(Release(ticket, sent=False))  # completes even if cancelled
        raise NotSent

    def _settle_held(self) -> None:
        """Release what is held back (the store asks before it applies or reports)."""
        if self._grant is not None or self._answered:
            self._settle(self._state or self._local_state(), self._clock())

    def _settle(self, state: schedule.State, now: float, *, keep_grant: bool = False) -> None:
        """Give back what the current grant did not send (unless ``keep_grant``); release
        the answers held back."""
        grant = self._grant
        if self._grant_answered:
            assert grant is not None  # counted only for it
            self._answered[grant] = self._answered.get(grant, 0) + self._grant_answered
            self._grant_answered = 0
        if grant is not None and not keep_grant:
            self._grant = None
            if self._grant_left:
                left, self._grant_left = self._grant_left, 0
                schedule.release(state, self._pacing, Release(grant, False, None, 0.0, left), now)
        if self._answered:
            answered, self._answered = self._answered, {}
            latest, self._latest = self._latest, None
            latest_ticket, self._latest_ticket = self._latest_ticket, None
            info = (
                latest
                if latest is None or isinstance(latest, RateLimitInfo)
                else RateLimitInfo.from_headers(latest)
            )
            pacing = self._pacing
            for ticket, count in answered.items():
                schedule.release(state, pacing, Release(ticket, True, None, 0.0, count), now)
            # The latest headers once, after every count: as if released one by one (each
            # answer's credit replaces the one before; the limit is the same), with the
            # ticket they answered (none of its count: released above).
            said = Release(latest_ticket if info is not None else None, True, info, 0.0, 0)
            self._reported(schedule.release(state, pacing, said, now), 0.0)

    def _local_state(self) -> schedule.State:
        assert self._local is not None  # only called with one
        self._state = self._local.state(self.key, self._pacing)
        return self._state

    async def _acquire_from_store(self, max_pause: float) -> Ticket:
        decision = await self._apply(_ACQUIRE)
        self._limit = decision.limit
        if decision.ticket is not None and decision.delay <= 0.0:
            ticket = decision.ticket
        else:
            ticket = await self._wait(decision, max_pause)
        self._granted += 1
        return ticket

    def sends_granted(self) -> int:
        """Sends a store other than the in-process one has granted callers in this process
        so far (a running count): what this process gets of a shared key's rate, which a
        self-tuning batch sizes its pool for. Not counted with the in-process store."""
        return self._granted

    async def _wait(self, decision: Decision, max_pause: float) -> Ticket:
        self._waiting += 1
        held: Ticket | None = None  # the reservation this waiter owns and must give back
        try:
            while True:
                self._limit = decision.limit
                held = decision.ticket
                if held is None:
                    self._check_pause(max_pause, decision.paused)
                    await self._look_again(decision.delay)
                    decision = await self._apply(_ACQUIRE)
                    continue
                if decision.delay > 0.0:
                    loop = asyncio.get_running_loop()
                    due = loop.time() + decision.delay
                    # Woken a store round trip early, the confirmation is back when it is due
                    # (a late send is moved, which costs the slot it leaves).
                    lead = self.round_trips.seconds or 0.0
                    paused = await self._sleep_unless_paused(decision.delay - lead)
                    # Cancelled in the confirmation, the store call gives back the send,
                    # whether it was confirmed, moved or voided (this waiter cannot know).
                    confirming, held = held, None
                    try:
                        decision = await self._apply(Confirm(confirming))
                    except Exception:
                        held = confirming  # a store that failed: given back below
                        raise
                    if decision.ticket is None:  # a pause, a lower limit, or late with no room
                        void = confirming
                        await self._apply(Release(void, sent=False))
                        self._check_pause(max_pause, decision.paused)
                        decision = await self._apply(_ACQUIRE)
                        continue
                    held = decision.ticket  # moved, if it was late
                    early = due - loop.time()
                    if early > 0.0 and (paused or await self._sleep_unless_paused(early)):
                        # Woken by a pause that has not voided it (a shared store's view, or
                        # one that came since): confirm again when it is due.
                        decision = msgspec.structs.replace(
                            decision, delay=max(due - loop.time(), 1e-6)
                        )
                        continue
                ticket, held = held, None  # the caller owns it now
                return ticket
        except BaseException:
            if held is not None:
                await self._give_back(held)
            raise
        finally:
            self._waiting -= 1

    async def release(
        self, ticket: Ticket, info: RateLimitInfo | None, *, paused: float = 0.0
    ) -> None:
        """Report how the request ended: its headers (``None`` if no response) and any pause.

        The store is updated even if the caller is cancelled meanwhile.
        """
        if self._local is not None:
            self.report(ticket, info, paused=paused)
            return
        await self._report_to_store(self._release(ticket, info, paused), paused)

    def report(
        self, ticket: Ticket, info: RateLimitInfo | None, *, paused: float = 0.0
    ) -> Coroutine[Any, Any, None] | None:
        """:meth:`release` for the engine's path: without a coroutine with the in-process
        store, and without waiting for a store that takes releases in the background
        (:attr:`reports_in_background`), which commits it at once on its own.

        Returns:
            ``None`` when done (or handed over), else a coroutine that must be awaited at once.
        """
        if self._local is not None:
            if ticket.count > 1 and not paused and self._held_back(ticket, info):
                return None
            state = self._state or self._local_state()
            event = self._release(ticket, info, paused)
            now = self._clock()
            if self._grant is not None and (paused or not self._changes_nothing(info)):
                # A pause, another limit, little remaining: the grant ends here.
                self._settle(state, now)
            elif self._answered or self._grant_answered:
                # Earlier answers first (the newest headers count last); the grant stays.
                self._settle(state, now, keep_grant=True)
            self._reported(schedule.release(state, self._pacing, event, now), paused)
            return None
        event = self._release(ticket, info, paused)
        if self._submit is not None:
            future = self._submit(self.key, self._pacing, event)
            if future is not None:
                started = time.monotonic()
                future.add_done_callback(lambda done: self._committed(done, started, paused))
                return None
        return self._report_to_store(event, paused)

    def answered(self, ticket: Ticket, headers: Mapping[str, str]) -> bool:
        """Take the answer to a grant's send (``ticket.count > 1``) if it can be held back
        (the engine's path, before reading the headers): answered other than 429, with the
        same limit and enough remaining. ``False``: read the headers and :meth:`report` it.

        One look at the headers for many answers' release (see :meth:`_held_back`).
        """
        if still_at_least(headers, self._grant_limits, self._grant_floor_text):
            self._latest = headers
            self._latest_ticket = ticket
            if ticket is self._grant:
                self._grant_answered += 1
            else:
                answered = self._answered
                answered[ticket] = answered.get(ticket, 0) + 1
            if self._window_check is not None:
                now = self._clock()
                if now >= self._window_next:
                    self._sample(ticket, RateLimitInfo.from_headers(headers), now)
            return True
        return False

    def _held_back(self, ticket: Ticket, info: RateLimitInfo | None) -> bool:
        """Hold back the answer to a grant's send, to be released with others (:meth:`_settle`);
        ``False`` when it must be released now: the limit changed, or Remaining fell low.

        Released later, the answers held back change the state exactly as one by one: each
        answer's credit replaces the one before, and with the limit unchanged and at least
        the grant's floor remaining, none of them could have held a send back meanwhile.
        """
        if info is not None:
            if not self._changes_nothing(info):
                return False
            self._latest = info
            self._latest_ticket = ticket
            if self._window_check is not None:
                self._sample(ticket, info, self._clock())
        answered = self._answered
        answered[ticket] = answered.get(ticket, 0) + 1
        return True

    def _changes_nothing(self, info: RateLimitInfo | None) -> bool:
        """Whether an answer saying ``info`` leaves the current grant's decisions as they
        are: the same limit, and at least the grant's floor remaining (or no response)."""
        if info is None:
            return True
        remaining = info.remaining
        return (
            remaining is not None
            and remaining >= self._grant_floor
            and info.limit == self._grant_limit
        )

    @property
    def reports_in_background(self) -> bool:
        """Whether :meth:`report` hands releases to the store without waiting (so a request
        spends one store round trip, reserving, not two)."""
        return self._submit is not None

    def _release(self, ticket: Ticket, info: RateLimitInfo | None, paused: float) -> Release:
        if paused > 0:
            self._paused_until = max(self._paused_until, time.monotonic() + paused)
        if info is not None and info.limit is not None and self._window_check is not None:
            self._sample(ticket, info, self._clock())
        return Release(ticket, True, info, paused)

    def _sample(self, ticket: Ticket, info: RateLimitInfo, now: float) -> None:
        """Show the short-window check an answer, at most WINDOW_SAMPLES a window."""
        check = self._window_check
        if check is None or info.limit is None or now < self._window_next:
            return
        # At most WINDOW_SAMPLES answers a window go to the check: a subset of the answers
        # is evidence all the same (the window holding more of its sends bounds their
        # Remaining as well), and a key far from its limit, answered thousands of times a
        # second, then pays a clock read a response, not a check (which was a tenth of the
        # limiter's per-request cost).
        self._window_next = now + self.config.window / WINDOW_SAMPLES
        # Sent no earlier than its ticket's time (less a margin, for a loop clock that lags
        # the store's), answered by now.
        found = check.observe(ticket.at - self._pacing.margin, now, info.remaining, info.limit)
        if found is not None:
            self._window_check = None  # once per key
            logger.warning("%s: %s", self.key.rsplit("|", 1)[0], found)

    def _committed(self, done: asyncio.Future[Decision], started: float, paused: float) -> None:
        if done.cancelled():  # the event loop is shutting down: the lease expires in the store
            return
        error = done.exception()
        if error is not None:
            logger.warning("a release was not recorded (its lease expires): %r", error)
            return
        self.round_trips.observe(time.monotonic() - started)
        self._reported(done.result(), paused)

    async def _report_to_store(self, event: Release, paused: float) -> None:
        self._reported(await self._apply(event), paused)

    def _reported(self, decision: Decision, paused: float) -> None:
        if decision.limit != self._logged_limit and decision.limit is not None:
            self._log_pace(decision.limit)
        self._limit = decision.limit
        if paused > 0:
            # Waiters holding reservations look again now: a long pause fails them at once.
            _wake(self._paused)
            self._paused = None
        if self._changed is not None:
            # Waiters looking again (a probe's answer, a credit) need not wait out the poll.
            _wake(self._changed)
            self._changed = None

    def _log_pace(self, limit: int) -> None:
        # Once when learned and once per change: the window is assumed, not told, so the
        # pace a client keeps should be visible to whoever wonders why it is slow.
        self._logged_limit = limit
        rate = schedule.allowed_rate(limit, self._pacing)
        logger.info(
            "pacing %s at %d requests per %g s window (%.3g/s)",
            self.key.rsplit("|", 1)[0],  # provider and base URL: no digest of the token
            limit,
            self.config.window,
            rate if rate is not None else 0.0,
        )

    async def _sleep_unless_paused(self, delay: float) -> bool:
        """Sleep ``delay`` seconds, or less if a 429 pause comes: whether one did."""
        paused = self._paused
        if paused is None:
            paused = self._paused = asyncio.get_running_loop().create_future()
        if delay > 0.0:
            await asyncio.wait((paused,), timeout=delay)
        return paused.done()

    async def _look_again(self, delay: float) -> None:
        changed = self._changed
        if changed is None:
            changed = self._changed = asyncio.get_running_loop().create_future()
        await asyncio.wait((changed,), timeout=delay)

    async def _apply(self, event: Event) -> Decision:
        """One store call, completed whatever happens to the caller."""
        local = self._local
        if local is not None:
            return local.apply_now(self.key, self._pacing, event)  # settles what is held
        if self._direct:
            started = time.monotonic()
            decision = await self.store.apply(self.key, self._pacing, event)
            self.round_trips.observe(time.monotonic() - started)
            return decision
        task = asyncio.ensure_future(self.store.apply(self.key, self._pacing, event))
        started = time.monotonic()
        try:
            decision = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The call goes on; a send it reserves for a caller that is gone goes back.
            self._keep(task)
            if isinstance(event, Acquire):
                task.add_done_callback(self._undo)
            elif isinstance(event, Confirm):
                # The caller cannot know whether it was confirmed, moved or voided: the
                # send it was about goes back from here, whichever it is now.
                original = event.ticket
                task.add_done_callback(lambda done: self._undo(done, original))
            raise
        self.round_trips.observe(time.monotonic() - started)
        return decision

    def _undo(self, task: asyncio.Future[Decision], confirmed: Ticket | None = None) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        ticket = task.result().ticket
        if ticket is None:
            ticket = confirmed  # a voided confirmation leaves the send it was about
        if ticket is not None:
            release = self.store.apply(self.key, self._pacing, Release(ticket, sent=False))
            self._keep(asyncio.ensure_future(release))

    def _keep(self, task: asyncio.Task[Decision]) -> None:
        # Referenced until done (the loop holds tasks weakly); its outcome is retrieved.
        self._background.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Decision]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()

    async def _give_back(self, ticket: Ticket) -> None:
        """Give ``ticket`` back, also while being cancelled (again)."""
        local = self._local
        if local is not None:
            local.apply_now(self.key, self._pacing, Release(ticket, sent=False))
            return
        task = asyncio.ensure_future(
            self.store.apply(self.key, self._pacing, Release(ticket, sent=False))
        )
        self._keep(task)
        # Also if cancelled again: the exception that got us here is what propagates.
        with contextlib.suppress(BaseException):
            await asyncio.shield(task)

    async def settled(self) -> None:
        """Wait for store calls still finishing for cancelled callers (tests, shutdown),
        and for the store's own queued commits when it has a ``settled()`` coroutine."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        settle = getattr(self.store, "settled", None)
        if settle is not None:
            await settle()


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class LimiterRegistry:
    """Limiters by key and store, so that clients with the same key share one.

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
        elif limiter.config != config:
            raise InvalidRequestError(
                f"rate_limit differs from the one another client uses for the same provider,"
                f" base URL, token and store ({limiter.config!r}); clients sharing a key must"
                " share its settings",
                argument="rate_limit",
            )
        return limiter


_REGISTRY = LimiterRegistry()


def shared_limiter(key: str, config: RateLimit) -> Limiter:
    """The limiter every client of this process with ``key`` and ``config.store`` shares.

    Raises:
        InvalidRequestError: A client already uses ``key`` with ``config.store`` under a
            different :class:`RateLimit` (another window, margin, ceiling or pause). One
            server has one limit: two settings for it are a mistake, and silently keeping
            either would pace by the wrong one.
    """
    return _REGISTRY.get(key, config)
