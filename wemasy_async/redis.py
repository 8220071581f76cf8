"""Rate-limiter state in Redis, shared by every process and host using the same token.

Install the extra: ``pip install 'wemasy-async[redis]'``. Then::

    from wemasy_async import Client
    from wemasy_async.ratelimit import RateLimit
    from wemasy_async.redis import RedisStore

    async with RedisStore("redis://localhost:6379/0") as store:
        async with Client("wemasy", rate_limit=RateLimit(store=store)) as client:
            ...

:class:`RedisStore` holds no rate-limit logic: it keeps each key's
:class:`~wemasy_async.schedule.State`, encoded (JSON), in one Redis string
``{prefix}:{limiter key}`` (the limiter key holds a digest of the token, never the token),
and applies :mod:`wemasy_async.schedule`'s transitions to it in Python with an optimistic
compare-and-set: one tiny generic Lua script sets the new value only if the stored one is
still the one the transition started from, and answers with Redis's clock (``TIME``) and,
on a conflict, the current value to try again with. So the in-process and the Redis store
run the very same code, and a test drives both through the same events. Times come from
Redis's clock (estimated between replies from the local monotonic clock), so hosts with
skewed clocks share one schedule.

Transitions of one key from one process are committed together: while a compare-and-set
is on its way, the next ones queue and go in the next, as one. A request waits for one
round trip, to reserve its send; its response is reported in the background (committed at
once, with whatever else is queued), so a batch of requests one after another costs about
one commit each, and far less than that under load.

When Redis cannot be reached, or answers something that is not what the script returns
(not Redis at all, say), the clients keep working: each process paces on its own, at
``fallback_share`` of the limit (other processes may be sending with the same token), logs
one warning per outage, and goes back to Redis once it answers again. Sends reserved in
Redis before an outage expire there a window later.

Needs asyncio (redis-py's client is asyncio-only) and Redis 4.0 or later (tested with 7.0);
a single ``redis.asyncio.Redis``, not a cluster client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

import anyio
import msgspec

from wemasy_async import schedule
from wemasy_async.errors import InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import LimiterStore, LocalStore, completes_when_cancelled, is_store
from wemasy_async.schedule import Acquire, Confirm, Decision, Event, Pacing, Release, Ticket
from wemasy_async.validation import MAX_SECONDS, is_positive_number, short_repr

try:
    from redis.asyncio import Redis
    from redis.asyncio.connection import parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import RedisError
except ImportError:  # the optional extra is missing: RedisStore() says how to install it
    _HAVE_REDIS = False
else:
    _HAVE_REDIS = True

__all__ = ["RedisStore"]

logger = logging.getLogger("wemasy_async")

# Compare-and-set with the time: ARGV = expected value ('' for none), new value ('' to only
# read), expiry in ms. Returns {seconds, microseconds, 1} when set, else
# {seconds, microseconds, 0, current value or nil}. It knows nothing about rate limits.
_CAS = """
-- Redis < 5 replicates scripts verbatim, which forbids writes after TIME; on 5+ this is a
-- no-op (effects replication is the default, and Redis 7.0 keeps the call for compatibility).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local current = redis.call('GET', KEYS[1])
if ARGV[2] ~= '' and ((current == false and ARGV[1] == '') or current == ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return {t[1], t[2], 1}
end
return {t[1], t[2], 0, current}
"""

# A batch that lost this many races in a row goes to the fallback rather than spin.
_MAX_ATTEMPTS = 64
_FALLBACK = 1  # Ticket.source of the fallback's tickets
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(schedule.State)


class _BadReply(Exception):
    """Redis (or whatever answered) replied something the script never returns."""


class _Pending:
    __slots__ = ("event", "future", "pacing")

    def __init__(self, pacing: Pacing, event: Event, future: asyncio.Future[Decision]) -> None:
        self.pacing, self.event, self.future = pacing, event, future


class RedisStore:
    """A :class:`~wemasy_async.ratelimit.LimiterStore` in Redis, shared across processes.

    Args:
        redis: A Redis URL (``redis://host:6379/0``, options in the query string override
            the timeouts), for which the store creates its own client on first use inside
            the running event loop and closes it in :meth:`aclose`; or a
            ``redis.asyncio.Redis`` client, which is used and never closed.
        prefix: Prefix of the keys, ``{prefix}:{limiter key}``.
        fallback: Where to keep state while Redis is unreachable; a fresh
            :class:`~wemasy_async.ratelimit.LocalStore` by default. It is told about every
            response, so it knows the limit when it takes over.
        fallback_share: The share of the server's limit (and of its remaining credit) this
            process uses while on the fallback, since other processes may be sending with
            the same token. The default ``0.25`` suits up to four processes; use ``1 / n``
            for ``n``, or ``1.0`` if this is the only one.
        timeout: Seconds any one Redis call may take (connecting included) before the
            store gives up on it and uses the fallback.
        reconnect_interval: Seconds between attempts to reach Redis again after a failure;
            requests in between go to the fallback without waiting for Redis.
        clock: For tests: seconds on a clock every store sharing the keys reads (e.g. a
            fake one), used instead of Redis's ``TIME``.

    Raises:
        InvalidRequestError: The ``redis`` package is not installed, or an argument is
            invalid.

    The owned client is bound to the event loop that first uses the store: :meth:`aclose`
    it in that loop (after which the store may be used again, in any loop).
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "wemasy_async:ratelimit",
        fallback: LimiterStore | None = None,
        fallback_share: float = 0.25,
        timeout: float = 1.0,
        reconnect_interval: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not _HAVE_REDIS:
            raise InvalidRequestError(
                "RedisStore needs the redis package: pip install 'wemasy-async[redis]'",
                argument="redis",
            )
        if isinstance(redis, str):
            # Checked now rather than at the first request, where it would only be logged.
            try:
                parse_url(redis)
            except (ValueError, TypeError) as exc:
                raise InvalidRequestError(
                    f"redis is not a valid Redis URL: {exc}", argument="redis"
                ) from exc
            self._url: str | None = redis
            self._client: Redis | None = None
        elif isinstance(redis, Redis):
            self._url, self._client = None, redis
        else:
            raise InvalidRequestError(
                f"redis must be a URL or a redis.asyncio.Redis, got {type(redis).__name__}",
                argument="redis",
            )
        given_prefix: object = prefix  # checked at run time too: callers may ignore types
        if not isinstance(given_prefix, str) or not given_prefix:
            raise InvalidRequestError(
                f"prefix must be a non-empty string, got {short_repr(prefix)}", argument="prefix"
            )
        if fallback is not None and not is_store(fallback):
            raise InvalidRequestError(
                "fallback must be a LimiterStore (with an async apply method),"
                f" got {type(fallback).__name__}",
                argument="fallback",
            )
        if not _fraction(fallback_share):
            raise InvalidRequestError(
                f"fallback_share must be a number in (0, 1], got {short_repr(fallback_share)}",
                argument="fallback_share",
            )
        for name, value in (("timeout", timeout), ("reconnect_interval", reconnect_interval)):
            # At most a day: socket timeouts beyond what a C timeval holds raise
            # OverflowError deep in the connection code, and longer ones are hangs anyway.
            if not is_positive_number(value) or value > MAX_SECONDS:
                raise InvalidRequestError(
                    f"{name} must be a positive number of seconds, at most {MAX_SECONDS:g},"
                    f" got {short_repr(value)}",
                    argument=name,
                )
        self.prefix = prefix
        self.fallback: LimiterStore = LocalStore() if fallback is None else fallback
        self.fallback_share = float(fallback_share)
        self.timeout = float(timeout)
        self.reconnect_interval = float(reconnect_interval)
        self._clock = clock
        self._offset: float | None = None  # Redis's clock minus time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._script: AsyncScript | None = None
        self._down = False
        self._retry_at = 0.0
        self._values: dict[str, str | None] = {}  # the last value seen of each key
        self._pending: dict[str, list[_Pending]] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        # Transitions queued and resolved so far, per key (what settled() waits for).
        self._queued: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._progress: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "down" if self._down else "up"
        return f"<RedisStore prefix={self.prefix!r} {state}>"

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish the calls under way; close the client this store created from a URL.

        A given client stays open.
        """
        if self._runners and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*self._runners.values(), return_exceptions=True)
        if self._url is not None and self._client is not None:
            client, self._client, self._loop, self._script = self._client, None, None, None
            await client.aclose()

    @property
    def on_fallback(self) -> bool:
        """Whether the last Redis call failed, so that this process paces on the fallback."""
        return self._down

    @property
    def completes_when_cancelled(self) -> bool:
        """Whether a call completes though its caller is cancelled: true with a fallback that
        does (the default :class:`~wemasy_async.ratelimit.LocalStore`).

        A call queues its transition for the key's runner task, which commits it to Redis and
        hands the decision over, or, when the caller has gone, gives back the send it
        reserved; the caller only awaits that hand-over. So the limiter needs no task and
        shield of its own per call (see
        :func:`~wemasy_async.ratelimit.completes_when_cancelled`). Calls to the fallback run in
        the caller, so it must say the same of itself.
        """
        return completes_when_cancelled(self.fallback)

    def now_for(self, ticket: Ticket) -> float | None:
        """The time now on the clock ``ticket``'s time is on: Redis's (estimated from the
        last reply and the local monotonic clock), or the fallback's for its own tickets;
        ``None`` when that is not known. The limiter looks again at a send that finds its
        connection more than a margin after its time (see
        ``wemasy_async.ratelimit.Sending``)."""
        if ticket.source == _FALLBACK:
            clock = getattr(self.fallback, "clock", None)
            return clock() if callable(clock) else None
        if self._clock is not None:
            return self._clock()
        if self._offset is None:
            return None
        return time.monotonic() + self._offset

    def redis_key(self, key: str) -> str:
        """The Redis key holding the state of limiter ``key``."""
        return f"{self.prefix}:{key}"

    # --- LimiterStore ---------------------------------------------------------------------

    async def apply(self, key: str, pacing: Pacing, event: Event) -> Decision:
        """Apply ``event`` to the state of ``key``; see :class:`LimiterStore`."""
        loop = self._bind_loop()
        ticket = _ticket_of(event)
        if ticket is not None and ticket.source == _FALLBACK:
            # Reserved by the fallback: it is the one to confirm or release it.
            decision = await self._on_fallback(key, pacing, event)
            if isinstance(event, Release):
                await self._share_headers(key, pacing, event)
            return decision
        if not self._redis_usable():
            return await self._on_fallback(key, pacing, event)
        future = self._queue(loop, key, pacing, event)
        try:
            return await future
        except asyncio.CancelledError:
            # Handed over, but the caller was cancelled before it could take it (the runner
            # gives back what it reserves for a caller gone before the hand-over).
            if not future.cancelled() and future.exception() is None:
                self._give_back(key, pacing, event, future.result())
            raise

    def submit(self, key: str, pacing: Pacing, event: Release) -> asyncio.Future[Decision] | None:
        """Queue a release for the next commit without waiting for it: its decision, once
        committed, or ``None`` when it must go through :meth:`apply` (a fallback's ticket,
        or Redis is down).

        The limiter reports a response this way, so that a request is not held for a round
        trip to Redis once it has been answered (the commit follows at once, in the key's
        runner; a release only lowers the in-flight count and tells what the headers said,
        so a few milliseconds late it is late on the safe side).
        """
        ticket = event.ticket
        if (ticket is not None and ticket.source == _FALLBACK) or not self._redis_usable():
            return None
        return self._queue(self._bind_loop(), key, pacing, event)

    def _queue(
        self, loop: asyncio.AbstractEventLoop, key: str, pacing: Pacing, event: Event
    ) -> asyncio.Future[Decision]:
        """Queue ``event`` for the key's runner (started if none runs); its decision."""
        future: asyncio.Future[Decision] = loop.create_future()
        self._pending.setdefault(key, []).append(_Pending(pacing, event, future))
        self._queued[key] = self._queued.get(key, 0) + 1
        if key not in self._runners:
            self._runners[key] = loop.create_task(self._run(key))
        return future

    def _give_back(self, key: str, pacing: Pacing, event: Event, decision: Decision) -> None:
        """Queue the return of the send held for a caller that is gone: the one an
        :class:`Acquire` reserved, or the one a :class:`Confirm` was about (as it confirmed
        it, moved it, or left it voided: the caller cannot know which, so gives back none)."""
        if isinstance(event, Acquire):
            ticket = decision.ticket
        elif isinstance(event, Confirm):
            ticket = decision.ticket if decision.ticket is not None else event.ticket
        else:
            return
        if ticket is not None:
            assert self._loop is not None  # bound by the call that reserved it
            future = self._queue(self._loop, key, pacing, Release(ticket, sent=False))
            future.add_done_callback(_retrieved)  # nobody awaits it

    async def settled(self) -> None:
        """Wait until the transitions queued so far are committed, and the sends their
        commits give back (tests, a client's close). Not for what other callers queue
        meanwhile: a busy key keeps its runner going, and this must still return."""
        if self._loop is not asyncio.get_running_loop():
            return
        for _ in range(2):  # what is queued now; then what those commits gave back
            targets = dict(self._queued)
            while any(self._done.get(key, 0) < count for key, count in targets.items()):
                progress = self._progress
                if progress is None:
                    progress = self._progress = self._loop.create_future()
                await progress

    # --- Committing batches -----------------------------------------------------------------

    async def _run(self, key: str) -> None:
        """Commit what is queued for ``key``, batch after batch, until nothing is."""
        batch: list[_Pending] = []
        try:
            while batch := self._pending.pop(key, []):
                try:
                    decisions = await self._commit(key, batch)
                except (RedisError, OSError, asyncio.TimeoutError, _BadReply) as exc:
                    # OSError includes the builtin TimeoutError (asyncio's is not one < 3.11).
                    self._went_down(exc)
                    decisions = [
                        await self._on_fallback(key, item.pacing, item.event) for item in batch
                    ]
                else:
                    await self._teach_fallback(key, batch)
                for item, decision in zip(batch, decisions, strict=True):
                    self._deliver(key, item, decision)
                self._resolved(key, len(batch))
                batch = []
        except BaseException as exc:
            # Not lost: every caller still waiting hears of it (loop shutdown included).
            failed = [*batch, *self._pending.pop(key, [])]
            for item in failed:
                if item.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    item.future.cancel()
                else:
                    item.future.set_exception(exc)
            self._resolved(key, len(failed))
            raise
        finally:
            self._runners.pop(key, None)

    def _resolved(self, key: str, count: int) -> None:
        """``count`` more of the key's queued transitions are done: wake settled()."""
        self._done[key] = self._done.get(key, 0) + count
        progress, self._progress = self._progress, None
        if progress is not None and not progress.done():
            progress.set_result(None)

    def _deliver(self, key: str, item: _Pending, decision: Decision) -> None:
        if not item.future.done():
            item.future.set_result(decision)
            return
        # The caller is gone (cancelled): what was reserved for it goes back.
        self._give_back(key, item.pacing, item.event, decision)

    async def _commit(self, key: str, batch: list[_Pending]) -> list[Decision]:
        """Apply ``batch`` in order to the state in Redis, atomically, and return decisions."""
        if (self._offset is None and self._clock is None) or key not in self._values:
            await self._cas(key, "", "", 0)  # read the value and the time
        for _ in range(_MAX_ATTEMPTS):
            expected = self._values[key]
            state = _decode(expected)
            now = self._now()
            decisions = []
            pacing = batch[0].pacing
            for item in batch:
                state, decision = schedule.apply(state, item.pacing, item.event, now)
                decisions.append(decision)
            if state is None:  # pragma: no cover - apply always returns a state
                raise _BadReply("no state")
            value = _ENCODER.encode(state).decode()
            ttl = math.ceil(schedule.expiry(state, pacing, now) * 1000) + 1000
            if await self._cas(key, expected or "", value, ttl):
                self._values[key] = value
                return decisions
        raise _BadReply(f"{_MAX_ATTEMPTS} compare-and-set attempts lost in a row")

    async def _cas(self, key: str, expected: str, value: str, ttl_ms: int) -> bool:
        """Run the script; remember Redis's clock and the current value. True if set."""
        script = self._the_script()
        # The socket timeouts of a given client are not ours to set; this bounds
        # connecting, a script reload and the reply together. anyio's deadline, since
        # asyncio.timeout is 3.11+ and wait_for would run the round trip in another task.
        with anyio.fail_after(self.timeout):
            reply = await script(keys=[self.redis_key(key)], args=[expected, value, ttl_ms])
        received = time.monotonic()
        seconds, micros, done, current = _parse_reply(reply)
        self._offset = seconds + micros / 1_000_000 - received
        if self._down:
            self._down = False
            logger.info("the rate-limit state in Redis is reachable again; sharing it")
        if not done:
            self._values[key] = current
        return done

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        assert self._offset is not None  # set by the first reply
        return time.monotonic() + self._offset

    # --- The fallback -------------------------------------------------------------------------

    async def _on_fallback(self, key: str, pacing: Pacing, event: Event) -> Decision:
        ticket = _ticket_of(event)
        if ticket is not None and ticket.source != _FALLBACK:
            if isinstance(event, Confirm):
                # Reserved in Redis, now unreachable: void, so the caller reserves anew.
                return Decision(None, 0.0)
            # Its lease in Redis expires there; only the headers are news for the fallback.
            event = msgspec.structs.replace(cast(Release, event), ticket=None)
        elif ticket is not None:
            event = _with_ticket(event, msgspec.structs.replace(ticket, source=0))
        decision = await self.fallback.apply(key, self._share(pacing), self._share_event(event))
        if decision.ticket is not None:
            decision = msgspec.structs.replace(
                decision, ticket=msgspec.structs.replace(decision.ticket, source=_FALLBACK)
            )
        return decision

    async def _teach_fallback(self, key: str, batch: list[_Pending]) -> None:
        """Tell the fallback the headers of a committed batch's responses, so that it knows
        the limit if it takes over.

        The fallback ends as if told each answer in turn, in fewer transitions: a release
        without a ticket sets the limit and the credit an answer says (replacing the ones
        before) and keeps a pause, so when the last answer says both counts, the earlier
        ones are told only for a pause they carry.
        """
        answers = [
            (item.pacing, item.event)
            for item in batch
            if isinstance(item.event, Release) and item.event.info is not None
        ]
        if not answers:
            return
        last = answers[-1][1].info
        assert last is not None  # kept above
        if last.limit is not None and last.limit > 0 and last.remaining is not None:
            answers = [*(a for a in answers[:-1] if a[1].paused > 0), answers[-1]]
        for pacing, event in answers:
            learn = Release(None, True, event.info, event.paused)
            await self.fallback.apply(key, self._share(pacing), self._share_event(learn))

    async def _share_headers(self, key: str, pacing: Pacing, event: Event) -> None:
        """A fallback's response, once Redis is back: its headers are news for everyone."""
        if isinstance(event, Release) and event.info is not None and self._redis_usable():
            await self.apply(key, pacing, Release(None, True, event.info, event.paused))

    # --- Redis calls and failures -----------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        # Futures, tasks and connections belong to one event loop: a new loop gets new ones.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._pending, self._runners = loop, {}, {}
            self._queued, self._done, self._progress = {}, {}, None
            if self._url is not None:
                self._client, self._script = None, None
        return loop

    def _the_script(self) -> AsyncScript:
        if self._client is None:
            assert self._url is not None  # only a client the store owns is ever dropped
            self._client = Redis.from_url(
                self._url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                # One quick retry for a pooled connection that Redis closed; no backoff,
                # since pacing falls back to local state rather than wait for Redis.
                retry=Retry(NoBackoff(), 1),
            )
            self._script = None
        if self._script is None:
            self._script = self._client.register_script(_CAS)
        return self._script

    def _redis_usable(self) -> bool:
        return not self._down or time.monotonic() >= self._retry_at

    def _went_down(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.reconnect_interval
        self._values.clear()  # whatever Redis holds when it is back, read it afresh
        if self._down:
            logger.debug("Redis still unreachable: %s: %s", type(exc).__name__, exc)
            return
        self._down = True
        logger.warning(
            "the rate-limit state in Redis is unreachable (%s: %s); pacing this process "
            "alone at %g of the limit until Redis answers again",
            type(exc).__name__,
            exc,
            self.fallback_share,
        )

    # --- The fallback's share -----------------------------------------------------------------

    def _share(self, pacing: Pacing) -> Pacing:
        if pacing.ceiling is None or self.fallback_share == 1.0:
            return pacing
        return Pacing(pacing.window, pacing.margin, self._scaled(pacing.ceiling))

    def _share_event(self, event: Event) -> Event:
        if not isinstance(event, Release) or event.info is None or self.fallback_share == 1.0:
            return event
        info = event.info
        shared = RateLimitInfo(
            limit=info.limit if not info.limit else self._scaled(info.limit),
            remaining=(
                None if info.remaining is None else math.floor(info.remaining * self.fallback_share)
            ),
            retry_after=info.retry_after,
        )
        return msgspec.structs.replace(event, info=shared)

    def _scaled(self, limit: int) -> int:
        return max(1, math.floor(limit * self.fallback_share))


def _retrieved(future: asyncio.Future[Decision]) -> None:
    # A give-back's outcome is nobody's to handle; retrieved, so asyncio does not log it.
    if not future.cancelled():
        future.exception()


def _ticket_of(event: Event) -> Ticket | None:
    return event.ticket if isinstance(event, (Confirm, Release)) else None


def _with_ticket(event: Event, ticket: Ticket) -> Event:
    return msgspec.structs.replace(cast(Confirm | Release, event), ticket=ticket)


def _decode(value: str | None) -> schedule.State | None:
    """The stored state; one that does not decode (another version's, say) starts afresh."""
    if value is None:
        return None
    try:
        return _DECODER.decode(value)
    except msgspec.DecodeError:
        return None


def _parse_reply(reply: Any) -> tuple[int, int, bool, str | None]:
    """``(seconds, microseconds, set, current value)`` from the script's reply, checked."""
    try:
        seconds, micros, done, *rest = reply
        seconds, micros = int(seconds), int(micros)
        current = rest[0] if rest else None
        if isinstance(current, bytes):
            current = current.decode()
        if done not in (0, 1) or len(rest) > 1 or not isinstance(current, (str, type(None))):
            raise ValueError(done)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise _BadReply(f"unexpected reply {short_repr(reply)}") from exc
    if not (0 <= seconds < 2**40 and 0 <= micros < 1_000_000):
        raise _BadReply(f"unexpected time {seconds}.{micros}")
    return seconds, micros, bool(done), current


def _fraction(value: object) -> bool:
    return is_positive_number(value) and cast(float, value) <= 1
