"""Rate-limiter state in Redis, shared by every process and host using the same token.

Install the extra: ``pip install 'wemasy-async[redis]'``. Then::

    from wemasy_async import Client
    from wemasy_async.ratelimit import RateLimit
    from wemasy_async.redis import RedisStore

    async with RedisStore("redis://localhost:6379/0") as store:
        async with Client("wemasy", rate_limit=RateLimit(store=store)) as client:
            ...

:class:`RedisStore` does exactly what :class:`~wemasy_async.ratelimit.LocalStore` does, in
two Lua scripts that Redis runs atomically, so the pacing holds for the sum of all processes.
Each key's state is one hash, ``{prefix}:{limiter key}``; the limiter key holds a digest of
the token, never the token. Times come from Redis's own clock (``TIME``), so hosts with
skewed clocks still share one schedule.

When Redis cannot be reached the clients keep working: each process paces on its own, at
``fallback_share`` of the limit (other processes may be sending with the same token), logs
one warning per outage, and goes back to Redis once it answers again.

Needs asyncio (redis-py's client is asyncio-only) and Redis 4.0 or later (tested with 7.0);
a single ``redis.asyncio.Redis``, not a cluster client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from types import TracebackType
from typing import Any, Literal, cast

import anyio

from wemasy_async.errors import InvalidRequestError
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import LimiterStore, LocalStore, Pacing, is_store
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

# --- Lua ----------------------------------------------------------------------------------------
#
# The scripts mirror LocalStore line by line. Lua numbers are doubles, and Redis turns a Lua
# number reply into an integer (truncating it), so times are stored and returned as strings
# of floats formatted with %.17g, which round-trips a double exactly. Absent fields mean
# None (limit, credit) or 0 (times). ``in_flight`` is kept per store instance
# (``in_flight:<id>``, with ``seen:<id>``, the last time that instance wrote): each instance
# writes its own exact count rather than +1/-1, so a lost reply is corrected by its next
# write, and a killed process stops counting after a lease of window + margin.

_PRELUDE = """
-- Redis < 5 replicates scripts verbatim, which forbids writes after TIME; on 5+ this is a
-- no-op (effects replication is the default, and Redis 7.0 keeps the call for compatibility).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function num(x) return string.format('%.17g', x) end

local key = KEYS[1]
local window, margin = tonumber(ARGV[1]), tonumber(ARGV[2])
local ceiling = tonumber(ARGV[3])  -- nil when not configured
local me, mine = ARGV[4], tonumber(ARGV[5])

-- As ratelimit._interval: at most limit - 1 of ours in any window, or the margin if wider.
local function interval(limit)
  if limit == nil then return 0 end
  if ceiling ~= nil and ceiling < limit then limit = ceiling end
  local spacing = (window + margin) / limit
  if limit >= 2 then spacing = math.max(spacing, window / (limit - 1)) end
  return spacing
end

-- Write the state and give it an expiry so that abandoned state disappears.
local function save(s)
  local fields = {'learned', s.learned, 'tat', num(s.tat), 'paused_until', num(s.paused_until),
                  'credit_until', num(s.credit_until)}
  if s.limit ~= nil then table.insert(fields, 'limit'); table.insert(fields, num(s.limit)) end
  if s.credit ~= nil then table.insert(fields, 'credit'); table.insert(fields, num(s.credit)) end
  if mine > 0 then
    table.insert(fields, 'in_flight:' .. me); table.insert(fields, num(mine))
    table.insert(fields, 'seen:' .. me); table.insert(fields, num(now))
  else
    redis.call('HDEL', key, 'in_flight:' .. me, 'seen:' .. me)
  end
  redis.call('HSET', key, unpack(fields))
  local ttl = math.max(2 * window, s.paused_until - now + window, s.tat - now + window)
  redis.call('PEXPIRE', key, math.ceil(ttl * 1000))
end

-- A new state is learned from a configured ceiling, as in LocalStore._state.
local function load(h)
  local s = {learned = h['learned'], limit = tonumber(h['limit']), tat = tonumber(h['tat']) or 0,
             paused_until = tonumber(h['paused_until']) or 0, credit = tonumber(h['credit']),
             credit_until = tonumber(h['credit_until']) or 0}
  if s.learned == nil then
    if ceiling ~= nil then s.learned, s.limit = '1', ceiling else s.learned = '0' end
  end
  return s
end
"""

# ARGV: window, margin, ceiling, instance id, this instance's count in flight.
# Returns nil (not learned: probe), '0' (taken) or the seconds until due, as a string.
_ACQUIRE = (
    _PRELUDE
    + """
local v = redis.call('HMGET', key, 'learned', 'limit', 'tat', 'paused_until', 'credit',
                     'credit_until')
local s = load({learned = v[1] or nil, limit = v[2] or nil, tat = v[3] or nil,
                paused_until = v[4] or nil, credit = v[5] or nil, credit_until = v[6] or nil})
if s.learned ~= '1' then
  -- One probe for all processes: the first claims it, the others look again shortly.
  local probe_until = tonumber(redis.call('HGET', key, 'probe_until')) or 0
  if probe_until > now then return num(math.min(probe_until - now, 0.05)) end
  redis.call('HSET', key, 'probe_until', num(now + math.min(window, 10)))
  redis.call('PEXPIRE', key, math.ceil(2 * window * 1000))
  return nil
end
local gap = interval(s.limit)
local due = math.max(s.tat, s.paused_until)
if s.credit ~= nil and s.credit_until > now and s.credit <= 0 then
  -- As LocalStore: a response in flight will likely refresh the credit, so look again one
  -- interval on (in-flight counts live in observe; polling at the paced rate is cheap).
  local recheck = s.credit_until
  if gap > 0 then recheck = math.min(s.credit_until, now + gap) end
  due = math.max(due, recheck)
end
if due > now then return num(due - now) end
-- Lateness up to half the margin (or gap) does not push back later sends: see _slack.
s.tat = math.max(s.tat, now - math.min(margin, gap) / 2) + gap
if s.credit ~= nil and s.credit_until > now then s.credit = s.credit - 1 end
mine = mine + 1
save(s)
return '0'
"""
)

# ARGV: window, margin, ceiling, instance id, this instance's count in flight (after this
# release), has info ('1'/'0'), info limit ('' = none), info remaining ('' = none), pause,
# probe ('1' when the request was sent unscheduled while the limit was unknown).
_OBSERVE = (
    _PRELUDE
    + """
local has_info = ARGV[6] == '1'
local info_limit, info_remaining = tonumber(ARGV[7]), tonumber(ARGV[8])
local paused = tonumber(ARGV[9])
local probe = ARGV[10] == '1'  -- sent unscheduled, while the limit was unknown
local flat = redis.call('HGETALL', key)
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
local s = load(h)

-- Everyone's requests in flight; an instance silent for longer than the lease sent its last
-- request over a window ago, which no longer matters for the credit (or it died).
local in_flight, stale = mine, {}
for field, value in pairs(h) do
  local id = string.match(field, '^in_flight:(.+)$')
  if id ~= nil and id ~= me then
    if now - (tonumber(h['seen:' .. id]) or 0) > window + margin then
      table.insert(stale, field); table.insert(stale, 'seen:' .. id)
    else
      in_flight = in_flight + tonumber(value)
    end
  end
end
if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end

if has_info then
  s.learned = '1'
  if info_limit ~= nil and info_limit > 0 then
    s.limit = info_limit
    if ceiling ~= nil and ceiling < info_limit then s.limit = ceiling end
  end
  if info_remaining ~= nil then
    -- Requests still in flight may not be counted in this figure yet.
    s.credit = info_remaining - in_flight
    s.credit_until = now + window
  end
  if probe then
    -- The probe went out unscheduled: the first paced send keeps its distance.
    s.tat = math.max(s.tat, now + interval(s.limit))
  end
end
if probe then redis.call('HDEL', key, 'probe_until') end
if paused > 0 then
  local till = now + paused
  s.paused_until = math.max(s.paused_until, till)
  -- Waiters resume one interval apart after the pause, not all at once.
  s.tat = math.max(s.tat, till)
  s.credit, s.credit_until = 0, till
end
save(s)
return 0
"""
)


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


class RedisStore:
    """A :class:`~wemasy_async.ratelimit.LimiterStore` in Redis, shared across processes.

    Each call is one atomic Lua script (``EVALSHA``, reloaded automatically when Redis has
    forgotten it): a request costs two round trips, one to take its send and one to report
    its response, plus one per extra wait of the queue's head.

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
                "fallback must be a LimiterStore (with async acquire and observe methods),"
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
        # Names this store's requests in flight in the shared state.
        self._id = uuid.uuid4().hex[:16]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._down = False
        self._retry_at = 0.0
        # This instance's requests in flight per key, counted in Redis or in the fallback.
        self._in_redis: dict[str, int] = {}
        self._in_fallback: dict[str, int] = {}
        # Serialises this instance's scripts per key, so that its counts arrive in order.
        self._locks: dict[str, asyncio.Lock] = {}

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
        """Close the client this store created from a URL; a given client stays open."""
        if self._url is not None and self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.aclose()

    @property
    def on_fallback(self) -> bool:
        """Whether the last Redis call failed, so that this process paces on the fallback."""
        return self._down

    def redis_key(self, key: str) -> str:
        """The Redis key holding the state of limiter ``key``."""
        return f"{self.prefix}:{key}"

    # --- LimiterStore ---------------------------------------------------------------------

    async def acquire(self, key: str, pacing: Pacing) -> float | None:
        """Take the next send if it is due; see :meth:`LimiterStore.acquire`."""
        self._bind_loop()
        if self._redis_usable():
            async with self._lock(key):
                if self._redis_usable():
                    mine = self._in_redis.get(key, 0)
                    answered, reply = await self._run("acquire", key, pacing, mine)
                    if answered:
                        if reply is None:
                            return None
                        seconds = float(reply)
                        if seconds == 0.0:
                            self._in_redis[key] = mine + 1
                        return seconds
        delay = await self.fallback.acquire(key, self._share(pacing))
        if delay == 0.0:
            self._in_fallback[key] = self._in_fallback.get(key, 0) + 1
        return delay

    async def observe(
        self, key: str, pacing: Pacing, info: RateLimitInfo | None, *, sent: bool, paused: float
    ) -> None:
        """Learn from a finished request; see :meth:`LimiterStore.observe`."""
        self._bind_loop()
        by_fallback = False
        if self._redis_usable():
            async with self._lock(key):
                by_fallback = self._release(key, sent)
                if self._redis_usable():
                    extra = (
                        "0" if info is None else "1",
                        _optional(None if info is None else info.limit),
                        _optional(None if info is None else info.remaining),
                        repr(float(paused)),
                        "0" if sent else "1",
                    )
                    await self._run("observe", key, pacing, self._in_redis.get(key, 0), *extra)
        else:
            by_fallback = self._release(key, sent)
        await self.fallback.observe(
            key, self._share(pacing), self._share_info(info), sent=by_fallback, paused=paused
        )

    # --- Redis calls and failures -----------------------------------------------------------

    async def _run(
        self,
        script: Literal["acquire", "observe"],
        key: str,
        pacing: Pacing,
        mine: int,
        *extra: str,
    ) -> tuple[bool, Any]:
        """Run a script for ``key``: ``(answered, reply)``; a failure switches to the fallback."""
        args = (
            repr(float(pacing.window)),
            repr(float(pacing.margin)),
            _optional(pacing.ceiling),
            self._id,
            str(mine),
            *extra,
        )
        try:
            # The socket timeouts of a given client are not ours to set; this bounds
            # connecting, a script reload and the reply together.
            with anyio.fail_after(self.timeout):
                reply = await self._script(script)(keys=[self.redis_key(key)], args=args)
        # OSError includes the builtin TimeoutError, which asyncio's is not before 3.11.
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._went_down(exc)
            return False, None
        if self._down:
            self._down = False
            logger.info("the rate-limit state in Redis is reachable again; sharing it")
        return True, reply

    def _bind_loop(self) -> None:
        # Locks and connections belong to one event loop: a new loop gets new ones.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._locks = loop, {}
            if self._url is not None:
                self._client = None

    def _script(self, name: str) -> AsyncScript:
        if self._client is None:
            assert self._url is not None  # only a client the store owns is ever dropped
            self._scripts = {}
            self._client = Redis.from_url(
                self._url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                # One quick retry for a pooled connection that Redis closed; no backoff,
                # since pacing falls back to local state rather than wait for Redis.
                retry=Retry(NoBackoff(), 1),
            )
        script = self._scripts.get(name)
        if script is None:
            lua = _ACQUIRE if name == "acquire" else _OBSERVE
            script = self._scripts[name] = self._client.register_script(lua)
        return script

    def _redis_usable(self) -> bool:
        return not self._down or time.monotonic() >= self._retry_at

    def _went_down(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.reconnect_interval
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

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _release(self, key: str, sent: bool) -> bool:
        """Count a counted request as finished; return whether the fallback counted it."""
        if not sent:
            return False
        # Which store counted this very request is not known: take it from the one in use,
        # since the totals are what matter and each comes right once its requests finish.
        in_use, other = self._in_redis, self._in_fallback
        if self._down:
            in_use, other = other, in_use
        for counts in (in_use, other):
            count = counts.get(key, 0)
            if count > 0:
                if count == 1:
                    del counts[key]
                else:
                    counts[key] = count - 1
                return counts is self._in_fallback
        return False

    # --- The fallback's share -----------------------------------------------------------------

    def _share(self, pacing: Pacing) -> Pacing:
        if pacing.ceiling is None or self.fallback_share == 1.0:
            return pacing
        return Pacing(pacing.window, pacing.margin, self._scaled(pacing.ceiling))

    def _share_info(self, info: RateLimitInfo | None) -> RateLimitInfo | None:
        if info is None or self.fallback_share == 1.0:
            return info
        return RateLimitInfo(
            limit=info.limit if not info.limit else self._scaled(info.limit),
            remaining=(
                None if info.remaining is None else math.floor(info.remaining * self.fallback_share)
            ),
            retry_after=info.retry_after,
        )

    def _scaled(self, limit: int) -> int:
        return max(1, math.floor(limit * self.fallback_share))


def _fraction(value: object) -> bool:
    return is_positive_number(value) and cast(float, value) <= 1
