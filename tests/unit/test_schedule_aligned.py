"""Aligned windows (wemasy_async.schedule): where the server's fixed windows reset is
learned from rises in ``Remaining``, and once placed the schedule paces per server window.

The contract is the module docstring's "Aligned windows" section. Times are simulated.
"""

from __future__ import annotations

import math

import pytest

from tests.support import fixed_window
from tests.support.schedule import Key, info
from wemasy_async import schedule
from wemasy_async.schedule import Pacing, Ticket

LIMIT = 100
WINDOW = 2.0
PACING = Pacing(window=WINDOW, margin=0.05, ceiling=None)
T0 = fixed_window.T0


def answer(key: Key, sent: float, answered: float, remaining: int) -> None:
    """The answer, at ``answered``, to a send made at ``sent`` (logged nowhere)."""
    key.now = answered
    key.release(Ticket(-1, at=sent), info(LIMIT, remaining))


def reset_at(key: Key, at: float, width: float = 0.04) -> None:
    """Answers that bracket a reset at ``at`` within ``width``: a low one, then a rise in
    the answer to a send made after the low one was answered."""
    answer(key, at - width / 2, at - width / 2 + 0.001, 3)
    answer(key, at - width / 2 + 0.002, at + width / 2, LIMIT - 1)


def fresh_key() -> Key:
    """A key that has learned the limit and nothing of the server's windows."""
    key = Key(PACING, now=T0)
    key.learn(LIMIT, LIMIT - 1)
    return key


def resets(key: Key) -> int:
    assert key.state is not None
    return key.state.resets


def placed_key(phase: float = 0.3) -> Key:
    key = fresh_key()
    for n in range(schedule.ALIGNED_AFTER):
        reset_at(key, T0 + phase + n * WINDOW)
    assert key.state is not None
    assert key.state.resets == schedule.ALIGNED_AFTER
    return key


# --- Learning where the windows reset ----------------------------------------------------------


def test_resets_one_window_apart_place_the_windows() -> None:
    key = fresh_key()
    assert key.state is not None
    for n in range(schedule.ALIGNED_AFTER):
        assert key.state.resets == n
        reset_at(key, T0 + 0.7 + n * WINDOW)
    assert key.state.resets == schedule.ALIGNED_AFTER
    # The placement lies in every bracket, moved to the latest reset.
    latest = T0 + 0.7 + (schedule.ALIGNED_AFTER - 1) * WINDOW
    assert key.state.reset_lo < latest <= key.state.reset_hi
    assert key.state.reset_hi - key.state.reset_lo <= 0.04


def test_a_rise_answering_a_send_made_before_the_low_was_answered_says_nothing() -> None:
    # Both in one window, answered out of order: the server counted the "rise" first.
    key = fresh_key()
    for n in range(5):
        at = T0 + 0.7 + n * WINDOW
        answer(key, at, at + 0.02, 10)
        answer(key, at + 0.01, at + 0.03, 11)  # sent before the low one's answer came
    assert resets(key) == 0


def test_a_bracket_wider_than_a_quarter_window_is_not_used() -> None:
    key = fresh_key()
    for n in range(5):
        reset_at(key, T0 + 0.7 + n * WINDOW, width=WINDOW / schedule.BRACKET_SHARE + 0.01)
    assert resets(key) == 0


def test_a_server_window_twice_ours_never_places() -> None:
    key = fresh_key()
    for n in range(8):
        reset_at(key, T0 + 0.7 + n * 2 * WINDOW)
    assert resets(key) == 1  # consistent (no refutation), but never one window apart


@pytest.mark.parametrize("every", [WINDOW / 2, 1.5 * WINDOW, 1.01 * WINDOW])
def test_resets_that_are_not_whole_windows_apart_refute_for_good(every: float) -> None:
    key = fresh_key()
    for n in range(12):
        reset_at(key, T0 + 0.7 + n * every)
    assert resets(key) == -1
    for n in range(1, 6):  # even resets a window apart later do not place it again
        reset_at(key, T0 + 100.7 + n * WINDOW)
    assert key.state.resets == -1


def test_a_429_forgets_the_placement() -> None:
    key = placed_key()
    key.now += 0.5
    key.release(Ticket(-1, at=key.now - 0.1), info(LIMIT, 0, 1.0), paused=1.0)
    assert resets(key) == 0


def test_a_clock_that_steps_back_forgets_the_placement() -> None:
    key = placed_key()
    key.now += 0.5
    key.reserve(10)
    key.now -= 1000.0
    key.acquire()
    assert resets(key) == 0


# --- Pacing once placed ------------------------------------------------------------------------


def test_once_placed_each_server_window_gets_l_minus_1_and_no_more() -> None:
    phase = 0.3
    key = placed_key(phase)
    key.now = T0 + 10 * WINDOW + 0.9  # mid-window, nothing logged for a while
    times = key.reserve(5 * (LIMIT - 1))
    assert key.state is not None
    lo, hi = key.state.reset_lo, key.state.reset_hi
    for start in range(10, 16):
        # Server window from a reset anywhere in its bracket, sends a margin late at most.
        opens, closes = lo + (start - 2) * WINDOW, hi + (start - 1) * WINDOW
        may_land = [t for t in times if opens - PACING.margin <= t <= closes]
        assert len(may_land) <= LIMIT - 1
    # ... and the sliding rules' cap, L / (W + m) a window, is beaten: 5 windows' worth
    # go within 5 windows and a bracket.
    assert max(times) - key.now <= 4 * WINDOW + (hi - lo) + PACING.margin


def test_once_placed_a_spent_credit_holds_until_the_window_ends_not_a_window() -> None:
    phase = 0.3
    key = placed_key(phase)
    mid = T0 + 10 * WINDOW + phase + WINDOW / 2
    answer(key, mid - 0.1, mid, 0)  # the server's window has nothing left
    decision = key.acquire()
    assert decision.ticket is None
    assert key.state is not None
    reset = T0 + 11 * WINDOW + phase
    # Nothing is reserved before the reset's bracket ends, and nothing a window later.
    assert reset - mid <= decision.delay <= reset - mid + 0.05


def test_unplaced_a_spent_credit_holds_a_window() -> None:
    key = fresh_key()
    answer(key, T0 + 0.9, T0 + 1.0, 0)
    decision = key.acquire()
    assert decision.ticket is None
    assert decision.delay == pytest.approx(WINDOW)


def test_another_clients_sends_make_the_credit_hold_a_window_again() -> None:
    key = placed_key()
    key.now = T0 + 20 * WINDOW + 0.5
    for n in range(schedule.FOREIGN_EVERY):
        # We sent nothing lately, yet the server counted 50 in its window.
        answer(key, key.now, key.now + 0.01, LIMIT - 50 - n)
    assert key.state is not None
    assert key.state.foreign
    answer(key, key.now, key.now + 0.01, 0)
    decision = key.acquire()
    assert decision.ticket is None
    assert decision.delay == pytest.approx(WINDOW)


# --- Against a fixed-window server -------------------------------------------------------------


@pytest.mark.parametrize("latency", [0.02, 0.2])
@pytest.mark.parametrize("offset", [0.05, 0.9, 1.95])
def test_a_fixed_window_server_gets_l_minus_1_a_window_once_placed(
    latency: float, offset: float
) -> None:
    run = fixed_window.run(
        latency=latency, offset=offset, jitter=0.02, lag=0.02, windows=60, seed=7
    )
    assert run.refused == 0
    assert max(run.counts) <= LIMIT
    assert run.state.resets >= schedule.ALIGNED_AFTER
    late = run.counts[-10:]
    # The sliding rules alone settle at L / (W + m) = 97.6% of the limit.
    assert sum(late) / len(late) >= 0.985 * LIMIT


def test_a_server_window_half_ours_gets_no_429_placed_or_not() -> None:
    # The server's windows are W / 2 long, with the same limit: the client paces L - 1 a
    # window of its own. The resets it brackets may be every other one of the server's
    # (one window apart: placed), and a window of ours then holds two of the server's.
    run = fixed_window.run(server_window=WINDOW / 2, latency=0.02, offset=0.4, windows=40)
    assert run.refused == 0
    assert max(run.counts) <= LIMIT


@pytest.mark.parametrize("latency", [0.02, 0.2])
def test_a_sliding_window_server_refutes_the_placement_and_gets_no_429(latency: float) -> None:
    # Its Remaining rises whenever a send leaves its span: never whole windows apart.
    run = fixed_window.run(sliding=True, latency=latency, offset=0.4, windows=30)
    assert run.state.resets == -1
    assert run.refused == 0


def test_without_resets_in_reach_the_sliding_rules_hold() -> None:
    # A round trip too long to bracket a reset within a quarter window: never placed, and
    # the sliding rules' pace.
    run = fixed_window.run(latency=0.3, offset=0.9, windows=30)
    assert run.state.resets <= 0
    assert run.refused == 0
    late = run.counts[-10:]
    assert math.isclose(sum(late) / len(late), LIMIT * WINDOW / (WINDOW + 0.05), rel_tol=0.03)
