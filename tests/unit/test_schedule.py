"""The pure schedule (wemasy_async.schedule): every rule with an injected clock, no I/O.

The contract is the module docstring of :mod:`wemasy_async.schedule`. Times are plain
floats handed in as ``now``; nothing sleeps.
"""

from __future__ import annotations

import heapq
import itertools

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.schedule import PACING, T0, Key, info, most_in_any_span
from wemasy_async import schedule
from wemasy_async.schedule import Confirm, Pacing, Ticket

# --- The probe ---------------------------------------------------------------------------------


def test_one_probe_until_a_response_tells() -> None:
    key = Key()
    probe = key.acquire()
    assert probe.ticket is not None
    assert (probe.ticket.probe, probe.delay) == (True, 0.0)
    other = key.acquire()  # the probe is out: look again shortly, nothing reserved
    assert other.ticket is None
    assert 0 < other.delay <= schedule.PROBE_POLL
    key.release(probe.ticket, None)  # no response came: the next one probes
    again = key.acquire()
    assert again.ticket is not None
    assert again.ticket.probe
    key.release(again.ticket, info(limit=5))
    paced = key.acquire()
    assert paced.ticket is not None
    assert not paced.ticket.probe
    assert paced.limit == 5


def test_a_probe_whose_release_never_comes_expires() -> None:
    key = Key(Pacing(window=60.0, margin=1.5, ceiling=None))
    assert key.acquire().ticket is not None  # the probe, never released
    key.now += schedule.PROBE_LEASE - 0.01
    assert key.acquire().ticket is None
    key.now += 0.02
    probe = key.acquire().ticket
    assert probe is not None
    assert probe.probe


def test_a_late_answer_to_an_expired_probe_leaves_the_newer_probe_alone() -> None:
    key = Key()
    old = key.acquire().ticket  # the probe, whose answer is slow
    assert old is not None
    key.now += schedule.PROBE_LEASE + 1  # its lease expired: the next request probes
    new = key.acquire().ticket
    assert new is not None
    assert new.probe
    key.now += 1
    key.release(old, None)  # the old one ends at last, with no answer
    waiting = key.acquire()  # the new probe is still out: nobody else goes yet
    assert waiting.ticket is None
    key.release(new, info(limit=10))
    assert key.acquire().ticket is not None


def test_a_cancelled_probe_gives_its_turn_back() -> None:
    key = Key()
    probe = key.acquire().ticket
    key.release(probe, None, sent=False)
    assert key.in_flight == 0
    assert key.acquire().ticket == probe  # the next request probes, at once


def test_a_ceiling_paces_from_the_start() -> None:
    key = Key(Pacing(window=10.0, margin=0.25, ceiling=3))
    times = key.reserve(4)
    # At most ceiling - 1 in any window, the first two at once.
    assert times[:2] == [T0, T0]
    assert times[2] == pytest.approx(T0 + 10.0)


def test_no_headers_means_learned_and_unpaced() -> None:
    key = Key()
    key.learn()
    assert key.reserve(1000) == [T0] * 1000
    assert schedule.allowed_rate(key.acquire().limit, PACING) is None


# --- The sliding log -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 10, 50, 4000])
def test_a_burst_goes_at_once_and_no_window_sees_more_than_limit_minus_one(limit: int) -> None:
    key = Key()
    key.learn(limit=limit)  # the probe is logged too
    times = [T0, *key.reserve(3 * limit + 5)]
    burst = max(limit - 1, 1)
    assert times[:burst] == [T0] * burst  # far from the limit: no waiting at all
    assert most_in_any_span(times, PACING.window) <= burst
    assert most_in_any_span(times, PACING.window + PACING.margin) <= limit


@pytest.mark.parametrize("limit", [2, 10, 50, 4000])
def test_the_sustained_rate_is_exact_when_it_binds(limit: int) -> None:
    key = Key(Pacing(window=2.0, margin=0.05, ceiling=None))
    key.learn(limit=limit)
    times = [T0, *key.reserve(20 * limit)]
    rate = (len(times) - 1) / (times[-1] - times[0])
    expected = schedule.allowed_rate(limit, key.pacing)
    assert expected is not None
    assert expected == min((limit - 1) / 2.0, limit / 2.05)
    assert rate == pytest.approx(expected, rel=0.06)
    assert rate <= expected * 1.06  # bursts at both ends, never more


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 40),
    steps=st.lists(
        st.tuples(st.floats(0, 3.0), st.integers(0, 12), st.booleans()), min_size=1, max_size=40
    ),
)
def test_any_arrival_pattern_keeps_the_log_rules(
    limit: int, steps: list[tuple[float, int, bool]]
) -> None:
    # Bursts at random moments, some reservations given back: whatever the pattern, no span
    # of a window holds more than limit - 1 (and of window + margin, limit) of the sends.
    pacing = Pacing(window=1.0, margin=0.025, ceiling=None)
    key = Key(pacing)
    key.learn(limit=limit)
    sent = [T0]
    for advance, count, give_back in steps:
        key.now += advance
        for _ in range(count):
            decision = key.acquire()
            assert decision.ticket is not None
            assert decision.delay >= 0
            if give_back:
                key.release(decision.ticket, None, sent=False)
            else:
                sent.append(key.now + decision.delay)
    assert most_in_any_span(sent, pacing.window) <= max(limit - 1, 1)
    assert most_in_any_span(sent, pacing.window + pacing.margin) <= limit


@settings(deadline=None)
@given(
    limit=st.integers(2, 30),
    steps=st.lists(
        st.tuples(st.floats(0, 1.5), st.integers(0, 10), st.floats(0, 0.12)),
        min_size=1,
        max_size=30,
    ),
)
def test_late_waiters_cannot_crowd_a_window(
    limit: int, steps: list[tuple[float, int, float]]
) -> None:
    # Waiters confirm up to three margins late (a busy loop) and send at once when confirmed;
    # voided ones give back and reserve anew. However late, no window span sees more than
    # the limit (a send goes at most a margin after the time the log holds for it).
    pacing = Pacing(window=1.0, margin=0.04, ceiling=None)
    key = Key(pacing)
    key.learn(limit=limit)
    sent = [T0]
    due: list[tuple[float, int, Ticket]] = []  # (confirmed at, order, ticket)
    order = itertools.count()

    def reserve(late: float) -> None:
        decision = key.acquire()
        assert decision.ticket is not None
        if decision.delay == 0:
            sent.append(key.now)
        else:
            heapq.heappush(due, (key.now + decision.delay + late, next(order), decision.ticket))

    def confirm_until(until: float, late: float) -> None:
        while due and due[0][0] <= until:
            at, _, ticket = heapq.heappop(due)
            key.now = max(key.now, at)
            confirmed = key.apply(Confirm(ticket))
            if confirmed.ticket is not None:
                sent.append(key.now)
            else:
                key.release(ticket, None, sent=False)
                reserve(late)

    for advance, count, late in steps:
        target = key.now + advance
        confirm_until(target, late)
        key.now = target
        for _ in range(count):
            reserve(late)
    confirm_until(float("inf"), 0.0)
    assert most_in_any_span(sent, pacing.window) <= limit


def test_a_late_confirm_moves_the_send_to_now() -> None:
    key = Key()
    key.learn(limit=50)
    ticket = key.acquire().ticket
    assert ticket is not None
    key.now += 1.0  # four margins late
    moved = key.apply(Confirm(ticket)).ticket
    assert moved is not None
    assert moved.at == key.now
    assert moved.bucket != ticket.bucket
    assert key.in_flight == 1
    assert key.state is not None
    # The probe's send stays where it went; the moved one is logged at now.
    assert [(b.latest, b.sent, b.in_flight) for b in key.state.buckets] == [
        (T0, 1, 0),
        (key.now, 1, 1),
    ]
    # A confirmation on time (within half a margin) keeps the ticket as it is.
    again = key.acquire().ticket
    assert again is not None
    key.now += PACING.margin / 4
    assert key.apply(Confirm(again)).ticket == again


def test_a_late_confirm_with_no_room_at_now_fails_and_keeps_the_log() -> None:
    key = Key()
    key.learn(limit=3)  # two in any window, three in window + margin
    decisions = [key.acquire() for _ in range(5)]  # T0, T0 + W, T0 + W + m, then 2 W on
    second = decisions[1].ticket
    assert second is not None
    assert second.at == T0 + PACING.window
    key.now = second.at + 0.5  # two margins late: at now, a window would also hold 2 others
    key.release(None)  # nothing but what expires by now
    assert key.state is not None
    logged = msgspec.json.encode(key.state)
    assert key.apply(Confirm(second)).ticket is None
    assert msgspec.json.encode(key.state) == logged  # unchanged: the waiter gives it back
    key.release(second, None, sent=False)
    assert key.in_flight == 3  # the three reserved behind it (the first has expired)


def test_a_confirm_late_within_the_margin_keeps_its_slot_when_now_has_no_room() -> None:
    key = Key()
    key.learn(limit=3)
    decisions = [key.acquire() for _ in range(5)]
    second = decisions[1].ticket
    assert second is not None
    key.now = second.at + PACING.margin * 0.75  # late, but within the margin
    assert key.apply(Confirm(second)).ticket == second


def test_reservations_are_first_come_first_served() -> None:
    key = Key()
    key.learn(limit=3)
    times = key.reserve(6)
    assert times == sorted(times)
    # A given-back reservation is not taken by an earlier time later on: the order holds.
    assert times[-1] > T0


def test_a_given_back_reservation_frees_its_slot() -> None:
    key = Key()
    key.learn(limit=3)  # the probe and one more fit in a window
    decision = key.acquire()
    assert decision.delay == 0.0
    assert key.in_flight == 1
    key.release(decision.ticket, None, sent=False)
    assert key.in_flight == 0
    assert key.acquire().delay == 0.0  # the slot is free again


def test_old_sends_leave_the_log() -> None:
    key = Key()
    key.learn(limit=3)
    key.reserve(1)
    key.now += PACING.window + PACING.margin
    assert key.reserve(2) == [key.now, key.now]
    assert key.state is not None
    assert len(key.state.buckets) == 1


def test_a_lower_limit_moves_reservations_made_under_a_higher_one() -> None:
    key = Key()
    key.learn(limit=500)
    ticket = key.acquire().ticket
    assert ticket is not None
    assert key.apply(Confirm(ticket)).ticket == ticket
    key.release(None, info(limit=5))  # another response: the server allows 5 after all
    assert key.apply(Confirm(ticket)).ticket is None
    assert key.acquire().limit == 5


def test_confirm_fails_during_a_pause() -> None:
    key = Key()
    key.learn(limit=5)
    ticket = key.acquire().ticket
    assert ticket is not None
    key.release(None, info(), paused=3.0)
    voided = key.apply(Confirm(ticket))
    assert voided.ticket is None
    assert voided.paused == pytest.approx(3.0)


# --- Leases --------------------------------------------------------------------------------------


def test_in_flight_follows_reservations_and_releases() -> None:
    key = Key()
    key.learn()
    tickets = [key.acquire().ticket for _ in range(4)]
    assert key.in_flight == 4
    for ticket in tickets:
        key.release(ticket, info())
    assert key.in_flight == 0
    key.release(tickets[0], info())  # released twice: never below zero
    assert key.in_flight == 0


def test_a_release_that_never_comes_expires_with_its_lease() -> None:
    key = Key()
    key.learn()
    key.reserve(3)  # never released: cancelled without cleanup, or a process died
    assert key.in_flight == 3
    key.now += PACING.window + PACING.margin
    key.acquire()
    assert key.in_flight == 1  # the new one only
    # And phantom sends no longer shrink the credit: 2 remain, 1 unanswered.
    key.release(None, info(remaining=2))
    assert key.acquire().delay == 0.0
    assert key.acquire().ticket is None


# --- Credit --------------------------------------------------------------------------------------


def test_remaining_is_a_credit_for_a_window() -> None:
    key = Key()
    key.learn(remaining=2)  # unpaced, so that only the credit holds sends back
    tickets = [key.acquire().ticket for _ in range(2)]
    # Spent, with sends unanswered: look again shortly, as their answers will refresh it.
    spent = key.acquire()
    assert (spent.ticket, spent.delay) == (None, schedule.PROBE_POLL)
    for ticket in tickets:
        key.release(ticket, info())  # answered without a new figure
    key.now += 1.0
    # Nothing unanswered: wait until the window that gave the credit has passed.
    spent = key.acquire()
    assert (spent.ticket, spent.delay) == (None, pytest.approx(9.0))
    key.now += 9.0
    assert key.reserve(5) == [key.now] * 5


def test_a_fresh_remaining_refreshes_a_spent_credit() -> None:
    # A 429 that pauses nothing (Retry-After: 0) but says 0 remain, while others are out.
    key = Key()
    key.learn(limit=10_000_000)
    tickets = [key.acquire().ticket for _ in range(5)]
    key.release(tickets[0], info(remaining=0))
    assert key.acquire().ticket is None
    key.release(tickets[1], info(remaining=9_000))  # the next answer
    assert key.acquire().delay == 0.0


def test_the_credit_counts_sends_still_unanswered() -> None:
    key = Key()
    key.learn()
    tickets = [key.acquire().ticket for _ in range(3)]
    # One comes back saying 3 remain; the 2 still out may not be counted in that yet.
    key.release(tickets[0], info(remaining=3))
    assert key.acquire().delay == 0.0
    assert key.acquire().ticket is None


def test_remaining_zero_waits_a_window() -> None:
    key = Key()
    key.learn(limit=1000, remaining=0)
    assert key.acquire().delay == pytest.approx(10.0)


# --- Pauses --------------------------------------------------------------------------------------


def test_a_pause_holds_the_key_and_nothing_is_reserved_meanwhile() -> None:
    key = Key()
    key.learn(limit=5)
    key.release(None, info(limit=5, remaining=0), paused=30.0)
    held = key.acquire()
    assert (held.ticket, held.delay, held.paused) == (None, pytest.approx(30.0), 30.0)
    key.now += 12.0
    assert key.acquire().paused == pytest.approx(18.0)
    key.now += 18.0
    # Then one goes first; the others follow once it is answered (not with a 429).
    first = key.acquire()
    assert first.ticket is not None
    assert (first.ticket.probe, first.delay) == (True, 0.0)
    assert key.acquire().ticket is None
    key.release(first.ticket, info(limit=5))
    assert key.reserve(3) == [key.now] * 3  # limit - 1 in the window, the first included


def test_a_429_storm_meets_one_request_per_pause() -> None:
    key = Key()
    key.learn(limit=1000)
    key.release(None, info(), paused=1.0)
    for _ in range(3):  # the server keeps refusing
        key.now += 1.0
        first = key.acquire()
        assert first.ticket is not None
        assert first.ticket.probe
        assert all(key.acquire().ticket is None for _ in range(10))
        key.release(first.ticket, info(), paused=1.0)
    key.now += 1.0
    first = key.acquire()
    key.release(first.ticket, None)  # no answer at all: the next one probes again
    second = key.acquire()
    assert second.ticket is not None
    assert second.ticket.probe
    key.release(second.ticket, info())
    assert len(key.reserve(50)) == 50


def test_a_shorter_pause_does_not_shorten_a_longer_one() -> None:
    key = Key()
    key.learn()
    key.release(None, info(), paused=20.0)
    key.release(None, info(), paused=1.0)
    assert key.acquire().paused == pytest.approx(20.0)
    key.release(None, info(), paused=float("inf"))  # an endless pause would stall the key
    assert key.acquire().paused == pytest.approx(20.0)


# --- Clocks --------------------------------------------------------------------------------------


def test_a_clock_that_jumps_forward_expires_what_it_passed() -> None:
    key = Key()
    key.learn(limit=3)
    key.reserve(5)
    key.now += 3600
    assert key.reserve(2) == [key.now, key.now]
    assert key.in_flight == 2


def test_a_clock_that_jumps_back_drops_the_log_instead_of_stalling() -> None:
    key = Key()
    key.learn(limit=3)
    key.reserve(5)
    key.now -= 600
    assert key.acquire().delay == 0.0


# --- Rates and encoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "rate"),
    [
        (None, None),
        (1, 1 / 10.25),  # one per window + margin
        (2, 1 / 10.0),  # min(1 / 10, 2 / 10.25)
        (50, 50 / 10.25),  # min(49 / 10 = 4.9, 50 / 10.25 = 4.878)
        (1000, 1000 / 10.25),  # min(999 / 10 = 99.9, 1000 / 10.25 = 97.56)
    ],
)
def test_allowed_rate(limit: int | None, rate: float | None) -> None:
    assert schedule.allowed_rate(limit, PACING) == (None if rate is None else pytest.approx(rate))


def test_the_state_stays_small_whatever_the_rate() -> None:
    key = Key(Pacing(window=1.0, margin=0.025, ceiling=None))
    key.learn(limit=100_000)
    for _ in range(200):
        key.now += 0.005
        key.reserve(100)
    assert key.state is not None
    assert len(key.state.buckets) <= schedule.BUCKETS_PER_WINDOW + 2
    assert key.state.sent == sum(b.sent for b in key.state.buckets)
    assert key.state.in_flight == sum(b.in_flight for b in key.state.buckets)


def test_buckets_are_ordered_and_disjoint() -> None:
    key = Key()
    key.learn(limit=7)
    key.reserve(40)
    assert key.state is not None
    indices = [b.index for b in key.state.buckets]
    assert indices == sorted(set(indices))
    assert all(a.latest < b.latest for a, b in itertools.pairwise(key.state.buckets))


# --- Counting the sends in a span around a time ------------------------------------------------


def _most_around_by_hand(buckets: list[schedule.Bucket], at: float, span: float) -> int:
    """Every span of ``span`` that holds ``at`` and ends at ``at`` or at a bucket's time."""
    ends = [at, *(b.latest for b in buckets if at < b.latest < at + span)]
    return max(sum(b.sent for b in buckets if end - span < b.latest <= end) for end in ends)


@settings(max_examples=300, deadline=None)
@given(
    # Times on a grid too, so that spans end exactly at bucket times (the bounds count).
    steps=st.lists(
        st.tuples(
            st.integers(1, 4),
            st.sampled_from([0.0, 0.5]) | st.floats(0, 0.999),
            st.integers(0, 9),
        ),
        max_size=50,
    ),
    at=st.integers(0, 240).map(lambda quarter: quarter / 4) | st.floats(0, 60),
    span=st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0]) | st.floats(0.01, 25),
    shuffled=st.none() | st.randoms(use_true_random=False),
)
# Sends at 1, 2 and 3 s, around 2 s in 1 s spans: only (1, 2] holds 2 s (3 s is a span away).
@example(steps=[(2, 0.0, 5), (2, 0.0, 3), (2, 0.0, 4)], at=2.0, span=1.0, shuffled=None)
def test_the_most_in_a_span_around_a_time_is_counted_exactly(
    steps: list[tuple[int, float, int]], at: float, span: float, shuffled: object
) -> None:
    # A log as the transitions keep it (buckets in index order, each one's latest within
    # its width), and the same out of order (a state from elsewhere): the count is exact.
    width, index = 0.5, 0
    buckets = []
    for step, within, sent in steps:
        index += step
        buckets.append(schedule.Bucket(index, sent, 0, (index + within) * width))
    if shuffled is not None:
        getattr(shuffled, "shuffle")(buckets)  # noqa: B009  # a hypothesis Random
    assert schedule._most_around(buckets, at, span) == _most_around_by_hand(buckets, at, span)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(2, 30),
    steps=st.lists(
        st.tuples(
            st.floats(-0.3, 1.5),  # the clock: forward, or a step back
            st.integers(0, 8),  # sends reserved then
            st.floats(0, 0.12),  # how late their confirmations come
            st.booleans(),  # give the first of them back
            st.integers(0, 40),  # a grant of this many, far from the limit
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_every_transition_keeps_the_log_in_time_order(
    limit: int, steps: list[tuple[float, int, float, bool, int]]
) -> None:
    # What the quick count of a span relies on: reservations, grants, late confirmations
    # (moved sends), releases, expiry and clock steps back leave the buckets in time order.
    pacing = Pacing(window=1.0, margin=0.04, ceiling=None)
    key = Key(pacing)
    key.learn(limit=limit * 10)
    due: list[tuple[float, int, Ticket]] = []
    order = itertools.count()
    for advance, count, late, give_back, granted in steps:
        key.now += advance
        while due and due[0][0] <= key.now:
            _, _, ticket = heapq.heappop(due)
            confirmed = key.apply(Confirm(ticket))
            if confirmed.ticket is None:
                key.release(ticket, None, sent=False)
        assert key.state is not None
        if granted >= 2:
            schedule.grant(key.state, pacing, key.now, granted)
        for n in range(count):
            decision = key.acquire()
            if decision.ticket is None:
                continue
            if give_back and n == 0:
                key.release(decision.ticket, None, sent=False)
            else:
                heapq.heappush(due, (key.now + decision.delay + late, next(order), decision.ticket))
        latests = [bucket.latest for bucket in key.state.buckets]
        assert latests == sorted(latests)
