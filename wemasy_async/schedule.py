"""The rate-limit schedule: one key's state and its transitions, as pure functions of ``now``.

This is the whole algorithm. It does no I/O and knows no event loop: every store applies
these transitions to its copy of the state (:class:`~wemasy_async.ratelimit.LocalStore` in
memory, :class:`~wemasy_async.redis.RedisStore` to a copy in Redis under compare-and-set),
so two stores cannot disagree about what to do.

The rules, for an effective limit ``L`` (the server's ``X-RateLimit-Limit``, capped by the
configured ceiling), window ``W`` and margin ``m``:

- **A sliding log of our sends** (in flight included; until the server's windows are placed,
  below, these are the pacing rules). A send may go at ``t`` only if, with
  it, no span of length ``W`` ending at ``t`` holds more than ``L - 1`` of our sends and no
  span of ``W + m`` more than ``L``. However a server's fixed window is aligned, it then
  sees at most ``L - 1`` of ours (one request of slack, so our own traffic never drives
  ``X-RateLimit-Remaining`` to zero), and still at most ``L`` when network jitter moves
  sends by up to ``m``. Far from the limit this allows a burst of whatever fits; when it
  binds, the sustained rate is ``min((L - 1) / W, L / (W + m))``. Sends are logged in
  buckets of ``W / 64``, each counted at the time of its latest send: conservative by
  construction, and the state stays small whatever the rate.
- **Reservations.** :func:`acquire` reserves the earliest send the log allows, never before
  one already reserved (first come, first served), so each waiter holds exactly its own
  slot. A waiter that is cancelled gives that slot back (:class:`Release` with
  ``sent=False``); one that slept until its time :class:`Confirm`\\ s it, which fails when a
  429 pause or a lower limit arrived in the meantime.
- **Late sends move.** A waiter woken late (a busy event loop, a slow store) would send
  later than the log says, and the sends reserved after it were placed by the log's times:
  late by more than the margin, a window span could see more than ``L``. So a
  :class:`Confirm` more than half the margin after the reserved time moves the send to
  ``now`` when the log has room there (in every span around ``now``, counting the
  reservations ahead); if it has none, the send still goes while it is at most a margin
  late (the ``W + m`` rule keeps every window span at ``L``: a slot is not wasted for that),
  and the confirmation fails beyond (the waiter gives it back and reserves anew). Every send
  then goes at most a margin after the time the log holds for it.
- **Grants.** Far from the limit (no reservation ahead, no pause, a known limit or none, and
  room for at least four times as many in every span and in the credit), :func:`grant`
  reserves several sends at ``now`` in one transition: the state is exactly that of as many
  acquires at ``now``. The holder sends them within a small share of the margin (so
  that most of it is left for the event loop's lag, as after a confirmation) and gives back
  those it did not send (``Release(count=...)``). So a key
  far from its limit pays one transition for many requests, and the log stays exact.
- **Leases.** A send counts as in flight until it is released, or until its bucket leaves
  the log ``W + m`` after it: a release that never happens expires.
- **The probe.** Until a limit is known (from a response or a ceiling) one request goes out
  at a time; a response without rate-limit headers means "not paced" (no information is
  not zero), although its sends are still logged (for the in-flight count).
- **Credit.** ``X-RateLimit-Remaining`` less our sends still unanswered is what may be sent
  before a window has passed. Once it is spent nothing is reserved: a waiter looks again
  shortly while sends are unanswered (their answers will likely refresh it), else when the
  window has passed.
- **Pauses.** A 429 holds the whole key until its ``Retry-After``; nothing is reserved
  during a pause. Then one request goes first, as a probe: the others follow once it is
  answered other than 429, so a server still refusing (a 429 storm) meets one request per
  pause, not every waiter.

**Aligned windows.** The sliding rules assume nothing of where the server's windows begin,
and pay for it: once the limit binds, ``L / (W + m)`` a window (97.6% of it at the default
margin), less the latency the credit's reset takes to show. A fixed-window server tells
where it resets, though: ``Remaining`` only falls within a window, so an answer showing more
than the lowest one since, to a send made after that lowest was answered, brackets a reset
between the lowest's send and this answer (the server counted the one, then the other).

- **Placing.** A bracket wider than ``W / 4`` is not used. The first is the reference; each
  later one is moved by the whole number of windows between them and intersected with it
  (widened by a drift of ``10^-4`` a window, for two clocks' rates): the reset then lies in
  that narrower bracket. An empty intersection means the server's windows are not ``W``
  long, or not fixed (a sliding log's ``Remaining`` rises whenever a send leaves it): the
  key keeps the sliding rules for the state's life. After :data:`ALIGNED_AFTER` resets seen
  a window apart (a server window of ``2 W`` is never counted) the windows are placed.
- **Pacing, once placed.** A send logged at ``t`` reaches the server by ``t + m``, so the
  sends that server window ``j`` (from reset ``j`` to reset ``j + 1``, each anywhere in its
  bracket ``[lo, hi]``) may count were logged in ``[lo_j - m, hi_{j+1}]``. A send goes only
  when every such range that holds it has fewer than ``L - 1``; it is the whole rule then
  (the sliding ones are off), so each server window gets ``L - 1``, however the sends
  crowd its ends, and a window's sends go in the part of it that cannot be another's.
  A late send's look and a grant's room count the same ranges.
- **Credit, once placed,** lasts until the end of the server window its send may have
  landed in (the first ``hi`` after it), not a window from its answer. That is the other
  half of the gain: a window whose credit ran out starts again at its reset.
- **Another client** on the same budget (outside this store) would find the credit ended
  early. One answer in :data:`FOREIGN_EVERY` compares what the server counted with our
  sends of the last ``W + m``: more than ours and one means another client, and the credit
  lasts a window again (the pacing stays).
- **Forgetting.** A 429 (misplaced, or someone else's doing) or a clock that steps back
  forgets the placement; resets place it again. Once a reset is seen, the log is kept for
  ``W + m + W / 4`` (a window's range), not ``W + m``. Placing needs a round trip of under
  ``W / 8`` (a bracket spans the lowest answer's send and the rise's answer): at the
  documented 60 s window, any; at 2 s, up to about 250 ms.

A clock that jumps forward expires what it passed; one that jumps back by more than a few
windows (a Redis failover to a host with another clock) drops the log instead of stalling.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import attrgetter

import msgspec

from wemasy_async.headers import RateLimitInfo
from wemasy_async.validation import MAX_INT64

__all__ = [
    "Acquire",
    "Bucket",
    "Confirm",
    "Decision",
    "Event",
    "Pacing",
    "Release",
    "State",
    "Ticket",
    "acquire",
    "allowed_rate",
    "apply",
    "effective_limit",
    "grant",
    "new_state",
    "release",
]

# The small structs hold no cycles: gc=False keeps them out of the collector, which at high
# concurrency otherwise scans them on every young-generation pass.
BUCKETS_PER_WINDOW = 64
# How long another request waits for a probe's answer before probing itself; and how often
# a waiter looks again meanwhile (a probe's answer usually comes within a round trip).
PROBE_LEASE = 10.0
PROBE_POLL = 0.05
# Aligned windows: resets seen one window apart before the schedule paces by them; the widest
# bracket of a reset worth using (a share of the window); how far apart two clocks may drift
# a window (100 ppm, far above a quartz clock's); how many windows a placement is trusted
# for without a reset seen; one answer in how many is checked for another client's sends.
ALIGNED_AFTER = 3
BRACKET_SHARE = 4
DRIFT = 1e-4
TRUSTED_WINDOWS = 1000
FOREIGN_EVERY = 8


class Pacing(msgspec.Struct, frozen=True, gc=False):
    """What the schedule needs of a :class:`~wemasy_async.ratelimit.RateLimit`.

    Attributes:
        window: Seconds in the server's window.
        margin: Seconds of jitter allowance.
        ceiling: Requests per window never to exceed, or ``None``.
    """

    window: float
    margin: float
    ceiling: int | None


class Bucket(msgspec.Struct, array_like=True, gc=False):
    """Our sends logged in one ``window / 64`` of time."""

    index: int  # floor(time / width)
    sent: int
    in_flight: int
    latest: float  # the latest send in the bucket: every send in it counts as made then


class State(msgspec.Struct, array_like=True):
    """One key's state. Mutable: transitions update it in place."""

    learned: bool = False
    limit: int | None = None  # the server's, as last told
    resuming: bool = False  # after a 429: probe before the others go
    probe_until: float = 0.0
    paused_until: float = 0.0
    credit: int | None = None
    credit_until: float = 0.0
    sent: int = 0  # sum over the buckets
    in_flight: int = 0  # sum over the buckets
    buckets: list[Bucket] = msgspec.field(default_factory=list)
    # Aligned windows (see the module docstring). The lowest Remaining answered since the
    # last rise, when its send went and when its answer came:
    low_remaining: int | None = None
    low_sent: float = 0.0
    low_answered: float = 0.0
    # Resets seen one window apart (0: none; -1: refuted for the state's life), and where
    # the latest of them lies: in (reset_lo, reset_hi] on the store's clock.
    resets: int = 0
    reset_lo: float = 0.0
    reset_hi: float = 0.0
    foreign: bool = False  # another client spends the same budget: credit as unplaced
    checks: int = 0  # answers seen while placed (one in FOREIGN_EVERY is checked)


class Ticket(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A reserved send: what :class:`Release` and :class:`Confirm` need to find it again.

    Attributes:
        bucket: The bucket it was logged in.
        probe: Whether it is the probe of a key whose limit is unknown.
        limit: The effective limit it was reserved under (``None``: not paced).
        source: Which copy of the state issued it (a store with a fallback tags its
            fallback's tickets); the schedule itself ignores it.
        at: When the send is due, on the store's clock.
        count: How many sends it holds: 1, or more for a :func:`grant`.
    """

    bucket: int
    probe: bool = False
    limit: int | None = None
    source: int = 0
    at: float = 0.0
    count: int = 1


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What a transition decided.

    Attributes:
        ticket: The send reserved, or ``None`` when nothing was (look again after ``delay``).
        delay: Seconds until the reserved send may go, or until it is worth looking again.
        paused: Seconds left of a 429 pause of the key (``0.0`` when none).
        limit: The effective limit in force (``None``: unknown or not paced).
    """

    ticket: Ticket | None
    delay: float
    paused: float = 0.0
    limit: int | None = None


class Acquire(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Reserve the next send."""


class Confirm(msgspec.Struct, frozen=True, tag=True, gc=False):
    """A reservation's time has come: is it still good? (``ticket`` is ``None`` if not.)"""

    ticket: Ticket


class Release(msgspec.Struct, frozen=True, tag=True, gc=False):
    """A request ended, or a reservation is given back.

    Attributes:
        ticket: What :func:`acquire` reserved, or ``None`` to learn from headers only.
        sent: Whether the request went out; ``False`` gives the reservation back entirely.
        info: The response's rate-limit headers, or ``None`` when no response came.
        paused: Seconds to pause the whole key for (a 429), ``0.0`` for none.
        count: How many of the ticket's sends this releases (of a grant: several).
    """

    ticket: Ticket | None
    sent: bool = True
    info: RateLimitInfo | None = None
    paused: float = 0.0
    count: int = 1


Event = Acquire | Confirm | Release


def new_state(pacing: Pacing) -> State:
    """The state of a key nothing is known about; a configured ceiling paces from the start."""
    return State(learned=pacing.ceiling is not None)


def effective_limit(state: State, pacing: Pacing) -> int | None:
    """The server's limit capped by the ceiling; ``None`` when neither is known."""
    if pacing.ceiling is None:
        return state.limit
    return pacing.ceiling if state.limit is None else min(state.limit, pacing.ceiling)


def allowed_rate(limit: int | None, pacing: Pacing) -> float | None:
    """The sustained sends per second the log allows under ``limit`` (``None``: unpaced)."""
    if limit is None:
        return None
    short, long = _caps(limit)
    return min(short / pacing.window, long / (pacing.window + pacing.margin))


def apply(state: State | None, pacing: Pacing, event: Event, now: float) -> tuple[State, Decision]:
    """Apply ``event`` at time ``now`` (seconds on the store's clock).

    Returns:
        The state (``state`` itself, updated, unless it was ``None``) and the decision; for
        a :class:`Release` the decision only reports the pause and the limit.
    """
    if state is None:
        state = new_state(pacing)
    if isinstance(event, Acquire):
        return state, acquire(state, pacing, now)
    if isinstance(event, Release):
        return state, release(state, pacing, event, now)
    _expire(state, pacing, now)
    return state, _confirm(state, pacing, event.ticket, now)


def expiry(state: State, pacing: Pacing, now: float) -> float:
    """Seconds after which a store may forget ``state``: nothing in it matters any more."""
    latest = state.buckets[-1].latest if state.buckets else now
    until = max(latest + pacing.window + pacing.margin, state.paused_until, state.credit_until)
    until = max(until, state.probe_until)
    # Learned limits are worth keeping for a while after the last send.
    return max(until - now, 2 * pacing.window)


# --- Transitions ---------------------------------------------------------------------------


def _caps(limit: int) -> tuple[int, int]:
    """Most of our sends in any span of ``W``, and of ``W + m``."""
    return max(limit - 1, 1), limit


def _paused(state: State, now: float) -> float:
    return max(0.0, state.paused_until - now)


def _expire(state: State, pacing: Pacing, now: float) -> None:
    buckets = state.buckets
    span = pacing.window + pacing.margin
    # Once a reset is seen, a server window's sends may have been logged from a bracket's
    # width before it: the log keeps them.
    retained = span + pacing.window / BRACKET_SHARE if state.resets > 0 else span
    if buckets and (buckets[0].latest <= now - retained or buckets[-1].latest > now + span):
        if buckets[-1].latest > now + span and buckets[-1].latest > now + _reach(state, pacing):
            # Further ahead than any reservation can be: the clock went back.
            buckets.clear()
            state.sent = state.in_flight = 0
            state.probe_until = min(state.probe_until, now + PROBE_LEASE)
            _forget_windows(state)
        else:
            horizon = now - retained
            if buckets[0].latest <= horizon:  # else only ahead by less than a reach
                drop = 0
                while drop < len(buckets) and buckets[drop].latest <= horizon:
                    state.sent -= buckets[drop].sent
                    state.in_flight -= buckets[drop].in_flight
                    drop += 1
                del buckets[:drop]
    if state.credit_until > now + 86_400.0 or state.paused_until > now + 86_400.0:
        # The clock went back by more than a day: a pause is at most a day (headers.py),
        # a credit lasts a window (at most a day) or a pause.
        if state.paused_until > now + 86_400.0:
            state.paused_until = now
        if state.credit_until > now + 2 * 86_400.0:
            state.credit, state.credit_until = None, 0.0


# --- Aligned windows -----------------------------------------------------------------------


def _placed(state: State) -> bool:
    return state.resets >= ALIGNED_AFTER


def _forget_windows(state: State) -> None:
    """Forget where the server's windows lie (a refutation is kept)."""
    if state.resets > 0:
        state.resets = 0
    state.low_remaining = None


def _observe(state: State, pacing: Pacing, remaining: int, sent: float, now: float) -> None:
    """Learn from one answer's ``Remaining``: a rise over the lowest since the last rise,
    in the answer to a send made after that lowest was answered, brackets a reset."""
    low = state.low_remaining
    if low is None or remaining < low:
        state.low_remaining, state.low_sent, state.low_answered = remaining, sent, now
        return
    if remaining > low and sent >= state.low_answered:
        # The server counted the low one, then (later: sent after its answer came) this
        # one, and between them its count went back up: a reset lies in (low_sent, now].
        _place(state, pacing, state.low_sent, now)
        state.low_remaining, state.low_sent, state.low_answered = remaining, sent, now


def _place(state: State, pacing: Pacing, lo: float, hi: float) -> None:
    """Fold a reset bracketed in ``(lo, hi]`` into the placement (module docstring)."""
    window = pacing.window
    if hi - lo > window / BRACKET_SHARE or state.resets < 0:
        return  # too wide to pace by, or refuted
    if state.resets == 0:
        state.resets, state.reset_lo, state.reset_hi = 1, lo, hi
        return
    windows = round(((lo + hi) - (state.reset_lo + state.reset_hi)) / (2 * window))
    if abs(windows) > TRUSTED_WINDOWS:
        state.resets, state.reset_lo, state.reset_hi = 1, lo, hi  # too old to hold
        return
    drift = abs(windows) * window * DRIFT
    shift = windows * window
    new_lo = max(state.reset_lo - drift + shift, lo)
    new_hi = min(state.reset_hi + drift + shift, hi)
    if new_lo >= new_hi:
        # Not a whole number of windows from the last: the server's windows are not ours
        # (another length, or no fixed windows at all). Pace by the sliding rules for good.
        state.resets = -1
        return
    state.reset_lo, state.reset_hi = new_lo, new_hi
    if windows == 1:  # a server window of 2 W would otherwise place itself a window off
        state.resets += 1


def _bounds(state: State, pacing: Pacing, windows: int) -> tuple[float, float]:
    """Where the reset ``windows`` windows after the latest placed one may lie."""
    drift = abs(windows) * pacing.window * DRIFT
    shift = windows * pacing.window
    return state.reset_lo + shift - drift, state.reset_hi + shift + drift


def _sends_between(state: State, start: float, end: float, width: float) -> int:
    """Logged sends that may lie in ``[start, end]`` (a bucket counts whole if it may)."""
    # The sum less the buckets outside, from either end of the log (in time order): the
    # range is most of it, and this runs on every acquire while the limit binds.
    buckets = state.buckets
    count = state.sent
    for bucket in buckets:
        if bucket.latest >= start:
            break
        count -= bucket.sent
    for bucket in reversed(buckets):
        if bucket.index * width <= end:
            break
        count -= bucket.sent
    return count


def _window_counts(state: State, pacing: Pacing, at: float) -> tuple[int, float]:
    """The most of our sends counted in a server window that a send at ``at`` may land
    in, and the end of the last of those windows that is full (``0.0`` if none is).

    A send logged at ``t`` reaches the server within a margin, so the sends that window
    ``j`` (from reset ``j`` to reset ``j + 1``) may hold were logged in
    ``[lo_j - m, hi_{j+1}]``.
    """
    # _bounds inlined: this runs on every acquire while the limit binds.
    window, margin = pacing.window, pacing.margin
    width = window / BUCKETS_PER_WINDOW
    drift = window * DRIFT
    limit = effective_limit(state, pacing)
    short = _caps(limit)[0] if limit is not None else MAX_INT64
    reset_lo, reset_hi = state.reset_lo, state.reset_hi
    first = math.floor((at - reset_hi) / window)
    most, full = 0, 0.0
    for windows in (first - 1, first, first + 1):
        lo = reset_lo + windows * window - abs(windows) * drift - margin
        if at < lo:
            continue
        hi = reset_hi + (windows + 1) * window + abs(windows + 1) * drift
        if at > hi:
            continue
        count = _sends_between(state, lo, hi, width)
        if count > most:
            most = count
        if count >= short:
            full = hi
    return most, full


def _window_room(state: State, pacing: Pacing, at: float) -> float:
    """The earliest time at or after ``at`` at which every server window that a send may
    land in holds fewer than ``L - 1`` of ours."""
    for _ in range(8):  # each look moves past a whole window
        full = _window_counts(state, pacing, at)[1]
        if full == 0.0:
            return at
        at = max(at, math.nextafter(full, math.inf))
    return at


def _credit_until(state: State, pacing: Pacing, sent: float, now: float) -> float:
    """Until when an answer's ``Remaining`` holds: the end of the server window that its
    send (at ``sent``) may have landed in, once placed; else a window from now."""
    if not _placed(state) or state.foreign:
        return now + pacing.window
    windows = math.floor((sent - state.reset_hi) / pacing.window) + 1
    end = _bounds(state, pacing, windows)[1]
    if abs(windows) > TRUSTED_WINDOWS or end > now + pacing.window:
        return now + pacing.window
    return end


def _check_foreign(
    state: State, pacing: Pacing, info_limit: int, remaining: int, now: float
) -> None:
    """Mark the key ``foreign`` if the server counted more than our own sends could be."""
    state.checks += 1
    if state.checks % FOREIGN_EVERY:
        return
    # Any server window holding ``now`` began at most a window (and a margin) ago; our
    # sends in it were logged since then.
    ours = _sends_between(
        state,
        now - pacing.window - pacing.margin,
        now,
        pacing.window / BUCKETS_PER_WINDOW,
    )
    if info_limit - remaining > ours + 1:
        state.foreign = True


def _reach(state: State, pacing: Pacing) -> float:
    """How far ahead of now a reservation can lie: a span per ``L - 1`` logged, and a window."""
    limit = effective_limit(state, pacing)
    span = pacing.window + pacing.margin
    windows = 2.0 if limit is None else state.sent / _caps(limit)[0] + 2.0
    return windows * span + pacing.window


def _earliest(state: State, limit: int, pacing: Pacing, start: float) -> float:
    """The earliest time at or after ``start`` that the log allows one more send."""
    short, long = _caps(limit)
    if state.sent < short:  # far from the limit: whatever span, there is room
        return start
    at = start
    seen = 0
    if _placed(state):
        # Placed: room in every server window the send may land in is the whole rule.
        return _window_room(state, pacing, at)
    for bucket in reversed(state.buckets):
        before = seen
        seen += bucket.sent
        if before < short <= seen:
            at = max(at, bucket.latest + pacing.window)
        if before < long <= seen:
            return max(at, bucket.latest + pacing.window + pacing.margin)
    return at


def acquire(state: State, pacing: Pacing, now: float) -> Decision:
    """:func:`apply` of :class:`Acquire` to a state that exists (the per-request path)."""
    # Every request comes this way: the helpers are inlined where it is cheap.
    _expire(state, pacing, now)
    limit = state.limit if pacing.ceiling is None else effective_limit(state, pacing)
    if state.paused_until > now:
        paused = state.paused_until - now
        return Decision(None, paused, paused, limit)
    probing = not state.learned or state.resuming
    if probing and state.probe_until > now:
        return Decision(None, min(state.probe_until - now, PROBE_POLL), 0.0, limit)
    if not state.learned:
        state.probe_until = now + min(pacing.window, PROBE_LEASE)
        return Decision(_log(state, pacing, now, probe=True, limit=None), 0.0)
    at = now
    if state.buckets and state.buckets[-1].latest > now:
        at = state.buckets[-1].latest
    if limit is not None and state.sent >= limit - 1:  # else far from it: room in any span
        at = _earliest(state, limit, pacing, at)
    if state.credit is not None and state.credit_until > at:
        if state.credit <= 0:
            # Spent. A send still unanswered will likely refresh it (its answer also wakes
            # this process's waiters): look again shortly; else when the window has passed.
            wait = state.credit_until - now
            if _unanswered(state, now) > 0:
                wait = min(wait, PROBE_POLL)
            return Decision(None, wait, 0.0, limit)
        state.credit -= 1
    if probing:
        state.probe_until = at + min(pacing.window, PROBE_LEASE)
    return Decision(_log(state, pacing, at, probe=probing, limit=limit), at - now, 0.0, limit)


#: A grant reserves at most this share of the room left (in the spans and the credit).
GRANT_SHARE = 4


def grant(state: State, pacing: Pacing, now: float, most: int, least: int = 2) -> Ticket | None:
    """Reserve ``least`` to ``most`` sends at ``now`` in one transition, far from the limit.

    The state afterwards is exactly that of as many :func:`acquire` calls at ``now`` (each
    of which would have been due at once). A grant is made only when no reservation lies
    ahead, the key is neither paused nor probing, and the room left (``L - 1`` less the
    logged sends, and the credit) is at least :data:`GRANT_SHARE` times the sends granted.

    Returns:
        A ticket holding ``count >= max(least, 2)`` sends, or ``None``: acquire one at a
        time.
    """
    _expire(state, pacing, now)
    if not state.learned or state.resuming or state.paused_until > now or most < 2:
        return None
    buckets = state.buckets
    if buckets and buckets[-1].latest > now:
        return None  # reservations ahead: the limit binds
    limit = state.limit if pacing.ceiling is None else effective_limit(state, pacing)
    if limit is None:
        room = most * GRANT_SHARE
    elif _placed(state) and state.sent >= _caps(limit)[0] - most * GRANT_SHARE:
        # Placed, the log holds the window before as well: the room is in the server
        # windows a send now may land in.
        room = _caps(limit)[0] - _window_counts(state, pacing, now)[0]
    else:
        room = _caps(limit)[0] - state.sent
    credited = state.credit is not None and state.credit_until > now
    if credited and state.credit is not None and state.credit < room:
        room = state.credit
    count = min(most, room // GRANT_SHARE)
    if count < 2 or count < least:
        return None
    if credited and state.credit is not None:
        state.credit -= count
    return _log(state, pacing, now, probe=False, limit=limit, count=count)


def _log(
    state: State, pacing: Pacing, at: float, *, probe: bool, limit: int | None, count: int = 1
) -> Ticket:
    index = math.floor(at * BUCKETS_PER_WINDOW / pacing.window)
    buckets = state.buckets
    if buckets and buckets[-1].index >= index:
        # The same bucket, or an earlier time than the latest after a clock step back:
        # counting it with the latest is the conservative choice.
        last = buckets[-1]
        last.sent += count
        last.in_flight += count
        if at > last.latest:
            last.latest = at
        index = last.index
    else:
        buckets.append(Bucket(index, count, count, at))
    state.sent += count
    state.in_flight += count
    return Ticket(index, probe, limit, 0, at, count)


def _log_at(state: State, pacing: Pacing, at: float, ticket: Ticket) -> Ticket:
    """Log ``ticket``'s send again at ``at``, which may lie before reservations ahead."""
    index = math.floor(at * BUCKETS_PER_WINDOW / pacing.window)
    buckets = state.buckets
    position = len(buckets)
    while position > 0 and buckets[position - 1].index > index:
        position -= 1
    if position > 0 and buckets[position - 1].index == index:
        bucket = buckets[position - 1]
        bucket.sent += 1
        bucket.in_flight += 1
        bucket.latest = max(bucket.latest, at)
    else:
        buckets.insert(position, Bucket(index, 1, 1, at))
    state.sent += 1
    state.in_flight += 1
    return Ticket(index, ticket.probe, ticket.limit, at=at)


_LATEST = attrgetter("latest")
_SENT = attrgetter("sent")


def _most_around(buckets: list[Bucket], at: float, span: float) -> int:
    """The most logged sends in any span of length ``span`` that holds ``at``."""
    # The count only rises at a send's time, so the spans ending there (and at ``at``) do:
    # a span ending at ``end`` holds the buckets whose latest is in ``(end - span, end]``.
    latests: list[float] = list(map(_LATEST, buckets))
    if latests != sorted(latests):
        # The transitions keep the log in time order (a bucket's latest lies within its own
        # width, buckets in index order); a state decoded from a shared store is put in it.
        buckets = sorted(buckets, key=_LATEST)
        latests.sort()
    # The buckets near ``at`` by bisection, their sends summed once (prefix sums), each
    # span's count two look-ups: no Python loop over the whole log.
    low, high = bisect_right(latests, at - span), bisect_left(latests, at + span)
    near = latests[low:high]
    sums: list[int] = list(accumulate(map(_SENT, buckets[low:high]), initial=0))
    first = bisect_right(near, at)
    most = sums[first]  # the span ending at ``at``: every near bucket up to it
    for position in range(first, len(near)):
        end = near[position]
        most = max(most, sums[position + 1] - sums[bisect_right(near, end - span)])
    return most


def _restamp(state: State, pacing: Pacing, ticket: Ticket, limit: int, now: float) -> Ticket | None:
    """Move a late send to ``now`` if the log has room there; ``None`` (unchanged) if not."""
    bucket = _find(state, ticket.bucket)
    if bucket is None or bucket.in_flight <= 0 or bucket.sent <= 0:
        return ticket
    bucket.sent -= 1
    bucket.in_flight -= 1
    state.sent -= 1
    state.in_flight -= 1
    short, long = _caps(limit)
    buckets = state.buckets
    if (
        _window_counts(state, pacing, now)[0] < short
        if _placed(state)
        else _most_around(buckets, now, pacing.window) < short
        and _most_around(buckets, now, pacing.window + pacing.margin) < long
    ):
        if bucket.sent == 0 and bucket.in_flight == 0:
            del buckets[next(i for i, b in enumerate(buckets) if b is bucket)]
        return _log_at(state, pacing, now, ticket)
    bucket.sent += 1
    bucket.in_flight += 1
    state.sent += 1
    state.in_flight += 1
    return None


def _find(state: State, index: int) -> Bucket | None:
    for bucket in reversed(state.buckets):  # tickets are mostly recent
        if bucket.index == index:
            return bucket
        if bucket.index < index:
            return None
    return None


def _confirm(state: State, pacing: Pacing, ticket: Ticket, now: float) -> Decision:
    limit = effective_limit(state, pacing)
    paused = _paused(state, now)
    lowered = limit is not None and (ticket.limit is None or limit < ticket.limit)
    if paused > 0 or lowered or _find(state, ticket.bucket) is None:
        return Decision(None, 0.0, paused, limit)
    late = now - ticket.at
    if limit is not None and late > pacing.margin / 2:
        moved = _restamp(state, pacing, ticket, limit, now)
        if moved is None and late <= pacing.margin:
            # No room at now, but within the margin the W + m rule still keeps any window
            # span at L: better sent a little late than its slot wasted.
            moved = ticket
        return Decision(moved, 0.0, 0.0, limit)
    return Decision(ticket, 0.0, 0.0, limit)


def _unanswered(state: State, now: float) -> int:
    """Sends in flight that have gone out (reservations for later have not)."""
    unanswered = state.in_flight
    for bucket in reversed(state.buckets):
        if bucket.latest <= now:
            break
        unanswered -= bucket.in_flight
    return unanswered


def release(state: State, pacing: Pacing, event: Release, now: float) -> Decision:
    """:func:`apply` of a :class:`Release` to a state that exists (the per-request path).

    The decision only reports the pause and the limit.
    """
    _expire(state, pacing, now)
    ticket = event.ticket
    if ticket is not None:
        buckets = state.buckets
        if buckets and buckets[-1].index == ticket.bucket:  # mostly: answered within a bucket
            bucket: Bucket | None = buckets[-1]
        else:
            bucket = _find(state, ticket.bucket)
        if bucket is not None and bucket.in_flight > 0:
            count = event.count
            if count > bucket.in_flight:  # a lease that expired and was logged anew
                count = bucket.in_flight
            bucket.in_flight -= count
            state.in_flight -= count
            if not event.sent:
                bucket.sent -= count
                state.sent -= count
        if ticket.probe and state.probe_until <= ticket.at + min(pacing.window, PROBE_LEASE):
            # The current probe (one whose lease expired may answer after a newer one went:
            # that one's lease and turn stay).
            state.probe_until = 0.0
            if event.info is not None and not event.paused > 0:
                state.resuming = False  # answered, and not with a 429: everyone may go
    info = event.info
    if info is not None:
        state.learned = True
        limit = info.limit
        if limit is not None and limit > 0:
            limit = limit if limit <= MAX_INT64 else MAX_INT64
            if limit != state.limit:
                state.low_remaining = None  # a rise in Remaining would say nothing
            state.limit = limit
        remaining = info.remaining
        if remaining is not None:
            # Sends not yet answered may not be counted in this figure; reservations for
            # later were made by the log, which already keeps within the limit.
            if remaining > MAX_INT64:
                remaining = MAX_INT64
            sent_at = now
            if ticket is not None and event.sent and not event.paused > 0:
                sent_at = ticket.at
                if state.resets >= 0:
                    _observe(state, pacing, remaining, sent_at, now)
                if _placed(state) and not state.foreign and state.limit:
                    _check_foreign(state, pacing, state.limit, remaining, now)
            buckets = state.buckets
            if buckets and buckets[-1].latest > now:  # reservations ahead
                remaining -= _unanswered(state, now)
            else:
                remaining -= state.in_flight
            state.credit = remaining
            state.credit_until = _credit_until(state, pacing, sent_at, now)
    paused = event.paused
    if paused > 0 and math.isfinite(paused):  # an endless pause would stall the key
        until = now + min(paused, 86_400.0)
        state.paused_until = max(state.paused_until, until)
        state.resuming = True
        # The windows were misplaced, or another client spends the budget: pace by the
        # sliding rules until resets place them again.
        _forget_windows(state)
        # Whatever the server said remains, it holds nothing until the pause ends.
        state.credit, state.credit_until = 0, state.paused_until
    limit = state.limit if pacing.ceiling is None else effective_limit(state, pacing)
    paused = state.paused_until - now
    return Decision(None, 0.0, paused if paused > 0.0 else 0.0, limit)
