"""Grants in the limiter: far from the limit, one transition for many requests.

The contract is :meth:`wemasy_async.ratelimit.Limiter.reserve` and the schedule's "Grants"
rule: a key far from its limit hands out sends from a grant (a ticket holding several),
holds the answers back and releases them together; anything that could change a decision
(a 429, another limit, little remaining, the grant's time running out) is released at once,
and whoever reads the state through the store sees every answer released. LocalStore with
an injected clock; one test through the real client and fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from multidict import CIMultiDict

from tests.support.limiter import KEY, TOKEN, Clock, info, limiter_of
from wemasy_async import Client, schedule
from wemasy_async.headers import RateLimitInfo, still_at_least
from wemasy_async.ratelimit import (
    GRANT_LIFE,
    GRANT_MOST,
    Limiter,
    LocalStore,
    Pacing,
    PauseTooLong,
    RateLimit,
    Ticket,
)
from wemasy_async.testing import FakeWemasy

LIMIT = 1_000_000
CONFIG = RateLimit(window=60.0)  # margin 1.5 s: a grant lasts 0.75 s
PACING = Pacing(60.0, CONFIG.pacing_margin, None)


def far(config: RateLimit = CONFIG, limit: int = LIMIT) -> tuple[Limiter, LocalStore, Clock]:
    """A limiter whose probe was answered with ``limit``, by default far above what the
    tests send."""
    clock = Clock()
    store = LocalStore(clock=clock)
    limiter = Limiter(KEY, config, store)
    probe = limiter.reserve()
    assert isinstance(probe, Ticket)
    assert probe.probe
    assert limiter.report(probe, info(limit, limit - 1)) is None
    return limiter, store, clock


def take(limiter: Limiter, count: int) -> list[Ticket]:
    tickets = []
    for _ in range(count):
        ticket = limiter.reserve()
        assert isinstance(ticket, Ticket), ticket
        tickets.append(ticket)
    return tickets


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of the schedule transition ``name``."""
    calls = [0]
    original: Callable[..., Any] = getattr(schedule, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(schedule, name, counted)
    return calls


def test_one_grant_serves_many_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter, _, _ = far()
    grants, acquires = counting(monkeypatch, "grant"), counting(monkeypatch, "acquire")
    tickets = take(limiter, GRANT_MOST)
    assert all(ticket is tickets[0] for ticket in tickets)
    assert tickets[0].count == GRANT_MOST
    assert grants == [1]
    assert acquires == [0]
    assert take(limiter, 1)[0] is not tickets[0]  # spent: the next grant
    assert grants == [2]


def test_the_store_sees_every_answer_released(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter, store, _ = far()
    tickets = take(limiter, GRANT_MOST)
    releases = counting(monkeypatch, "release")
    for number, ticket in enumerate(tickets[:30]):
        assert limiter.report(ticket, info(LIMIT, LIMIT - 2 - number)) is None
    assert releases == [0]  # held back
    assert store.in_flight(KEY) == GRANT_MOST - 30
    state = store.state(KEY, PACING)
    assert state.sent == 1 + GRANT_MOST  # the probe and every send, none twice
    # The newest answer's credit, less what is still unanswered.
    assert state.credit == LIMIT - 2 - 29 - (GRANT_MOST - 30)


def test_what_a_grant_did_not_send_goes_back() -> None:
    limiter, store, _ = far()
    tickets = take(limiter, 10)
    assert store.in_flight(KEY) == 10  # not GRANT_MOST: the store read settles the grant
    assert store.state(KEY, PACING).sent == 11
    for ticket in tickets:
        limiter.report(ticket, info(LIMIT, LIMIT - 20))
    assert store.in_flight(KEY) == 0
    assert store.state(KEY, PACING).sent == 11


def test_a_grant_lasts_a_share_of_the_margin() -> None:
    limiter, store, clock = far()
    first = take(limiter, 1)[0]
    life = CONFIG.pacing_margin * GRANT_LIFE
    clock.advance(life - 0.001)
    assert take(limiter, 1)[0] is first
    clock.advance(0.002)
    later = take(limiter, 1)[0]
    assert later is not first  # it would go later after its time than a grant may: a new one
    assert later.at == clock.now
    assert store.in_flight(KEY) == 3


def test_no_grant_of_fewer_than_grant_least() -> None:
    # L - 1 = 40 per window, the probe took one: a quarter of the room is 9, then 7,
    # fewer than GRANT_LEAST.
    limiter, _, _ = far(limit=41)
    first = take(limiter, 9)
    assert first[0].count == 9
    assert all(ticket is first[0] for ticket in first)
    single = take(limiter, 1)[0]
    assert single.count == 1


def test_little_remaining_is_released_at_once() -> None:
    limiter, _, _ = far()
    first, second = take(limiter, 2)
    limiter.report(first, info(LIMIT, 0))  # another client drained the server
    # The grant is over: with no credit left, the next request waits.
    waiting = limiter.reserve()
    assert not isinstance(waiting, Ticket)
    waiting.close()
    assert second is first


def test_another_limit_is_released_at_once() -> None:
    limiter, _, _ = far()
    first, _ = take(limiter, 2)
    limiter.report(first, info(500, 499))
    assert take(limiter, 1)[0].limit == 500
    assert limiter.allowed_rate == schedule.allowed_rate(500, PACING)


def test_a_429_ends_the_grant_and_pauses_the_key() -> None:
    limiter, store, _ = far()
    first, _ = take(limiter, 2)
    limiter.report(first, info(LIMIT, LIMIT - 3), paused=30.0)
    with pytest.raises(PauseTooLong):
        limiter.reserve(max_pause=10.0)
    assert store.in_flight(KEY) == 1  # the other one; the grant's unsent went back


def test_no_grants_without_a_margin() -> None:
    limiter, _, _ = far(RateLimit(window=60.0, margin=0))
    first, second = take(limiter, 2)
    assert first.count == second.count == 1
    assert first is not second


def test_answers_with_no_response_are_released_with_the_others() -> None:
    limiter, store, _ = far()
    tickets = take(limiter, 5)
    for ticket in tickets:
        limiter.report(ticket, None)  # a timeout, a cancellation: sent, no headers
    assert store.in_flight(KEY) == 0
    assert store.state(KEY, PACING).sent == 6


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


@pytest.mark.parametrize(
    ("answer", "taken"),
    [
        (headers(("X-RateLimit-Limit", "1000000"), ("X-RateLimit-Remaining", "900000")), True),
        # The stricter of two limits wins, so the answer must be read.
        (
            headers(
                ("X-RateLimit-Limit", "1000000"),
                ("X-RateLimit-Limit", "5"),
                ("X-RateLimit-Remaining", "900000"),
            ),
            False,
        ),
        (headers(("X-RateLimit-Limit", "500"), ("X-RateLimit-Remaining", "400")), False),
        (headers(("X-RateLimit-Limit", "1000000"), ("X-RateLimit-Remaining", "3")), False),
        (headers(("X-RateLimit-Limit", "1000000")), False),
        (
            headers(
                ("X-RateLimit-Limit", "1000000"),
                ("X-RateLimit-Remaining", "900000"),
                ("Retry-After", "5"),
            ),
            False,
        ),
        (headers(("X-RateLimit-Limit", "1000000"), ("X-RateLimit-Remaining", "٩٠٠٠٠٠")), False),
        (headers(), False),
    ],
)
def test_the_engine_hands_over_only_answers_that_change_nothing(
    answer: CIMultiDict[str], taken: bool
) -> None:
    limiter, _, _ = far()
    ticket = take(limiter, 1)[0]
    assert limiter.answered(ticket, answer) is taken


_values = st.one_of(
    st.integers(min_value=0, max_value=10**20).map(str),
    st.sampled_from(["", " 12", "12 ", "0012", "1,2", "-1", "１２", "12.0", "1_000"]),
)


@given(
    limit=st.integers(min_value=1, max_value=10**18),
    limits=st.lists(_values, max_size=2),
    same=st.booleans(),
    remainings=st.lists(_values, max_size=2),
    enough=st.one_of(st.none(), st.integers(min_value=-3, max_value=10**12)),
    retry_after=st.booleans(),
    floor=st.integers(min_value=0, max_value=10**6),
)
def test_what_is_handed_over_reads_as_the_same_limit_and_enough_remaining(
    limit: int,
    limits: list[str],
    same: bool,
    remainings: list[str],
    enough: int | None,
    retry_after: bool,
    floor: int,
) -> None:
    """still_at_least is True only when the full reading says the same limit (the state's,
    a positive integer), no pause and at least the floor remaining (False only costs the
    full reading)."""
    if same:
        limits = [str(limit), *limits[1:]]
    if enough is not None:  # about the floor, often
        remainings = [str(max(floor + enough, 0)), *remainings[1:]]
    answer = headers(
        *[("X-RateLimit-Limit", v) for v in limits],
        *[("X-RateLimit-Remaining", v) for v in remainings],
        *([("Retry-After", "1")] if retry_after else []),
    )
    taken = still_at_least(answer, [str(limit)], str(floor))
    event(f"taken: {taken}")
    if taken:
        read = RateLimitInfo.from_headers(answer)
        assert read.limit == limit
        assert read.remaining is not None
        assert read.remaining >= floor
        assert read.retry_after is None


def answer(limit: int, remaining: int | str) -> CIMultiDict[str]:
    return headers(("X-RateLimit-Limit", str(limit)), ("X-RateLimit-Remaining", str(remaining)))


@given(
    remaining=st.one_of(
        st.integers(min_value=0, max_value=10**18 - 1), st.integers(min_value=0, max_value=999)
    ),
    floor=st.one_of(
        st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=999)
    ),
)
def test_remaining_is_compared_with_the_floor_as_a_number(remaining: int, floor: int) -> None:
    """Read as text, an answer in plain digits is taken exactly when its number reaches the
    floor (equal lengths, longer and shorter ones alike)."""
    taken = still_at_least(answer(LIMIT, remaining), [str(LIMIT)], str(floor))
    event(f"digits {'=' if len(str(remaining)) == len(str(floor)) else '!='}")
    assert taken is (remaining >= floor)


@pytest.mark.parametrize(
    ("remaining", "floor", "taken"),
    [
        ("40", "40", True),
        ("39", "40", False),
        ("100", "99", True),
        ("99", "100", False),
        ("0", "0", True),
        ("0100", "40", False),  # a leading zero: read properly, not guessed
        ("040", "40", False),
        ("4" * 18, "40", True),
        ("4" * 19, "40", False),  # longer than from_headers reads
    ],
)
def test_remaining_in_other_spellings_is_read_properly(
    remaining: str, floor: str, taken: bool
) -> None:
    assert still_at_least(answer(LIMIT, remaining), [str(LIMIT)], floor) is taken


def test_answers_to_the_current_and_an_earlier_grant_are_released_alike() -> None:
    """Answers held back for the current grant (counted apart) and for an earlier one (by
    ticket) reach the state together: every send counted once, none left in flight but the
    unanswered, the credit the newest answer's."""
    limiter, store, clock = far()
    old = take(limiter, 10)
    clock.advance(CONFIG.pacing_margin * GRANT_LIFE + 0.001)  # the grant's time is over
    new = take(limiter, 10)
    assert new[0] is not old[0]
    remaining = LIMIT - 2
    for number, ticket in enumerate([*old[:6], *new[:4], *old[6:8]]):
        assert limiter.answered(ticket, answer(LIMIT, remaining - number)) is True
    newest = remaining - 11
    assert store.in_flight(KEY) == 8  # old[8:], new[4:]
    state = store.state(KEY, PACING)
    assert state.sent == 21
    assert state.credit == newest - 8
    for ticket in [*old[8:], *new[4:]]:
        assert limiter.answered(ticket, answer(LIMIT, newest)) is True
    assert store.in_flight(KEY) == 0
    assert store.state(KEY, PACING).credit == newest


async def test_a_batch_through_the_client_counts_every_send_once() -> None:
    """Far from the limit, through the engine's path: the server saw exactly the sends the
    log holds, none is still counted in flight, and the credit is the newest answer's."""
    fake = FakeWemasy(conversations=50, token=TOKEN, rate_limit=LIMIT, window=60.0)
    async with fake, Client("wemasy", base_url=fake.url, token=TOKEN) as client:
        limiter = limiter_of(client)
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for worker in range(16):

                    async def fetch(worker: int = worker) -> None:
                        for i in range(20):
                            await client.get_conversation(1 + (worker * 20 + i) % 50)

                    tg.start_soon(fetch)
        store = limiter.store
        assert isinstance(store, LocalStore)
        assert store.in_flight(limiter.key) == 0
        state = store.state(limiter.key, PACING)
        assert state.sent == len(fake.requests) == 320
        assert state.credit == LIMIT - 320
        assert fake.stats.rate_limited == 0


def test_answers_held_back_are_learned_from_with_the_send_their_headers_answered() -> None:
    """The newest headers reach the schedule with the ticket they answered: its send time
    is what brackets a server window's reset (the schedule's "Aligned windows")."""
    limiter, store, clock = far()
    old = take(limiter, 10)
    clock.advance(CONFIG.pacing_margin * GRANT_LIFE + 0.001)  # the grant's time is over
    new = take(limiter, 10)
    assert new[0] is not old[0]
    assert new[0].at > old[0].at
    for number, ticket in enumerate([*new[:4], old[0]]):
        # The last answer, to the older grant's send, is the newest headers.
        assert limiter.answered(ticket, answer(LIMIT, LIMIT - 10 - number)) is True
    state = store.state(KEY, PACING)  # a read settles what is held back
    assert state.low_remaining == LIMIT - 14
    assert state.low_sent == old[0].at
