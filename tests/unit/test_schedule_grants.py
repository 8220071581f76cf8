"""Grants (wemasy_async.schedule.grant): several sends in one transition, far from the limit.

The contract (the schedule's module docstring): a grant leaves the state exactly as that many
acquires at the same time would, is made only when the room left is at least
``GRANT_SHARE`` times what it holds, and a release of ``count`` sends is that many releases.
"""

from __future__ import annotations

import copy

import msgspec
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.support.schedule import ACQUIRE, PACING, T0, Key, info
from wemasy_async import schedule
from wemasy_async.schedule import GRANT_SHARE, Pacing, Release, State, Ticket


def encoded(state: State | None) -> bytes:
    return msgspec.json.encode(state)


def learned(limit: int | None, remaining: int | None = None, now: float = T0) -> Key:
    key = Key(now=now)
    key.learn(limit, remaining)
    return key


def test_a_grant_far_from_the_limit_holds_the_sends_asked_for() -> None:
    key = learned(1_000)
    assert key.state is not None
    ticket = schedule.grant(key.state, PACING, key.now, 64)
    assert ticket is not None
    assert ticket.count == 64
    assert ticket.at == key.now
    assert ticket.limit == 1_000
    assert not ticket.probe
    assert key.in_flight == 64
    assert key.state.sent == 65  # and the probe's


def test_a_grant_takes_at_most_a_share_of_the_room() -> None:
    key = learned(101)  # L - 1 = 100 in a window; the probe took one: 99 left
    assert key.state is not None
    ticket = schedule.grant(key.state, PACING, key.now, 64)
    assert ticket is not None
    assert ticket.count == 99 // GRANT_SHARE


def test_a_grant_takes_at_most_a_share_of_the_credit() -> None:
    key = learned(1_000_000, remaining=41)
    assert key.state is not None
    ticket = schedule.grant(key.state, PACING, key.now, 64)
    assert ticket is not None
    assert ticket.count == 41 // GRANT_SHARE
    assert key.state.credit == 41 - ticket.count


def test_no_grant_near_the_limit() -> None:
    key = learned(9)  # room 7 after the probe: a quarter is 1
    assert key.state is not None
    assert schedule.grant(key.state, PACING, key.now, 64) is None
    assert key.in_flight == 0  # nothing reserved


def test_no_grant_of_fewer_than_least() -> None:
    key = learned(101)  # a quarter of the room is 24
    assert key.state is not None
    assert schedule.grant(key.state, PACING, key.now, 64, least=25) is None
    assert key.in_flight == 0
    ticket = schedule.grant(key.state, PACING, key.now, 64, least=24)
    assert ticket is not None
    assert ticket.count == 24


def test_no_grant_before_the_limit_is_known() -> None:
    key = Key()
    state = schedule.new_state(PACING)
    assert schedule.grant(state, PACING, key.now, 64) is None
    assert state.in_flight == 0


def test_no_grant_while_paused_or_probing_after_a_pause() -> None:
    key = learned(1_000)
    decision = key.acquire()
    assert decision.ticket is not None
    key.release(decision.ticket, info(1_000, 900), paused=2.0)
    assert key.state is not None
    assert schedule.grant(key.state, PACING, key.now, 64) is None
    key.now += 2.5  # the pause is over, but a probe goes first
    assert schedule.grant(key.state, PACING, key.now, 64) is None


def test_no_grant_with_reservations_ahead() -> None:
    key = learned(11)
    key.reserve(12)  # the last ones are due a window later
    assert key.state is not None
    assert key.state.buckets[-1].latest > key.now
    assert schedule.grant(key.state, PACING, key.now, 64) is None


def test_an_unpaced_key_grants_what_is_asked() -> None:
    key = learned(None)  # answered without rate-limit headers
    assert key.state is not None
    ticket = schedule.grant(key.state, PACING, key.now, 64)
    assert ticket is not None
    assert ticket.count == 64
    assert ticket.limit is None


def test_a_ceiling_bounds_the_room() -> None:
    pacing = Pacing(window=10.0, margin=0.25, ceiling=21)
    state = schedule.new_state(pacing)
    ticket = schedule.grant(state, pacing, T0, 64)
    assert ticket is not None
    assert ticket.count == 20 // GRANT_SHARE
    assert ticket.limit == 21


def test_a_grant_given_back_unsent_frees_its_sends() -> None:
    key = learned(1_000)
    assert key.state is not None
    before = encoded(key.state)
    ticket = schedule.grant(key.state, PACING, key.now, 64)
    assert ticket is not None
    key.apply(Release(ticket, sent=False, count=ticket.count))
    assert encoded(key.state) == before


def test_a_release_of_more_than_is_in_flight_stops_at_zero() -> None:
    key = learned(1_000)
    assert key.state is not None
    ticket = schedule.grant(key.state, PACING, key.now, 8)
    assert ticket is not None
    key.apply(Release(ticket, count=ticket.count + 5))
    assert key.in_flight == 0
    assert key.state.sent == 9  # sent stays logged


events = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "answer", "late", "back", "wait"]),
        st.integers(min_value=0, max_value=10**6),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
    ceiling=st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
    before=events,
    most=st.integers(min_value=2, max_value=80),
    sent=st.integers(min_value=0, max_value=80),
)
def test_a_grant_is_as_many_acquires_and_its_release_as_many_releases(
    limit: int | None, ceiling: int | None, before: list[tuple[str, int]], most: int, sent: int
) -> None:
    """From any state reached by random traffic: grant(k) == k acquires at the same time, and
    releasing ``sent`` of them (count) and the rest unsent == one release per send."""
    pacing = Pacing(window=10.0, margin=0.25, ceiling=ceiling)
    key = Key(pacing)
    first = key.acquire()  # the probe, or (with a ceiling) a first send
    assert first.ticket is not None
    key.release(first.ticket, info(limit, None))
    held: list[Ticket] = []
    for kind, value in before:
        if kind == "acquire":
            decision = key.acquire()
            if decision.ticket is not None:
                held.append(decision.ticket)
        elif kind == "answer" and held:
            remaining = None if limit is None else value % (limit + 1)
            key.release(held.pop(value % len(held)), info(limit, remaining))
        elif kind == "back" and held:
            key.release(held.pop(value % len(held)), sent=False)
        elif kind == "late":
            key.now += (value % 1000) / 1000 * pacing.margin
        else:
            key.now += (value % 1000) / 100 * pacing.window / 10
    assert key.state is not None
    granted, one_by_one = copy.deepcopy(key.state), copy.deepcopy(key.state)
    ticket = schedule.grant(granted, pacing, key.now, most)
    event("granted" if ticket is not None else "not granted")
    if ticket is None:
        # Nothing reserved: the state is as after expiry alone (a release of nothing).
        schedule.release(one_by_one, pacing, Release(None), key.now)
        assert encoded(granted) == encoded(one_by_one)
        return
    assert 2 <= ticket.count <= most
    tickets = []
    for _ in range(ticket.count):
        decision = schedule.acquire(one_by_one, pacing, key.now)
        assert decision.ticket is not None, decision
        assert decision.delay == 0.0, decision
        tickets.append(decision.ticket)
    assert encoded(granted) == encoded(one_by_one)
    assert {(t.bucket, t.limit, t.at) for t in tickets} == {
        (ticket.bucket, ticket.limit, ticket.at)
    }
    # And one more acquire after either is the same decision.
    assert (
        schedule.apply(copy.deepcopy(granted), pacing, ACQUIRE, key.now)[1]
        == schedule.apply(copy.deepcopy(one_by_one), pacing, ACQUIRE, key.now)[1]
    )
    went = min(sent, ticket.count)
    later = key.now + 0.1
    answer = info(limit, None if limit is None else limit // 2)
    schedule.release(granted, pacing, Release(ticket, False, None, 0.0, ticket.count - went), later)
    if went:
        schedule.release(granted, pacing, Release(ticket, True, answer, 0.0, went), later)
    for position, one in enumerate(tickets):
        if position < ticket.count - went:
            schedule.release(one_by_one, pacing, Release(one, sent=False), later)
        else:
            said = answer if position == ticket.count - 1 else None
            schedule.release(one_by_one, pacing, Release(one, True, said), later)
    assert encoded(granted) == encoded(one_by_one)
