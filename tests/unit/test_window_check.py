"""WindowCheck: finds a window shorter than the assumed one, and never under the model.

Traces come from a simulated fixed-window server (:func:`serve`): the documented model the
check relies on. An injected clock only: the check takes times, it reads none.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wemasy_async import Client, RateLimit
from wemasy_async.headers import RateLimitInfo
from wemasy_async.ratelimit import WINDOW_SAMPLES, Limiter, LocalStore, limiter_key
from wemasy_async.schedule import Ticket
from wemasy_async.testing import FakeWemasy
from wemasy_async.window_check import BUCKETS, MIN_SENDS, ShortWindow, WindowCheck


@dataclass(frozen=True)
class Answer:
    sent: float
    answered: float
    remaining: int
    limit: int


def serve(
    ours: list[tuple[float, float, float]],
    *,
    window: float,
    limit: int,
    offset: float = 0.0,
    others: tuple[float, ...] = (),
    counts_after: bool = True,
) -> list[Answer]:
    """Our requests ``(sent, to the server, back)`` through a fixed-window server.

    Windows of ``window`` seconds start at ``offset``; ``others`` are arrivals of other
    clients of the same token. Remaining is ``limit`` less the requests counted in the
    window (this one included, unless ``counts_after`` is false: a server that reports the
    count before it counts the request), never negative; a request over the limit gets a
    429, answered with Remaining 0. Answers come back in the order they arrive at the client.
    """
    arrivals = [(sent + there, index) for index, (sent, there, _) in enumerate(ours)]
    arrivals += [(at, -1) for at in others]
    counts: dict[int, int] = {}
    remaining: dict[int, int] = {}
    for at, index in sorted(arrivals):
        key = math.floor((at - offset) / window)
        before = counts.get(key, 0)
        counts[key] = before + 1
        if index >= 0:
            counted = before + 1 if counts_after else before
            remaining[index] = 0 if before >= limit else max(limit - counted, 0)
    answers = [
        Answer(sent, sent + there + back, remaining[index], limit)
        for index, (sent, there, back) in enumerate(ours)
    ]
    return sorted(answers, key=lambda a: a.answered)


def findings(check: WindowCheck, answers: list[Answer]) -> list[ShortWindow]:
    found = []
    for a in answers:
        result = check.observe(a.sent, a.answered, a.remaining, a.limit)
        if result is not None:
            found.append(result)
    return found


def every(
    seconds: float, count: int, *, start: float = 0.0, rtt: float = 0.05
) -> list[tuple[float, float, float]]:
    return [(start + i * seconds, rtt / 2, rtt / 2) for i in range(count)]


# --- It finds what it should ----------------------------------------------------------------


def test_a_3_s_window_is_found_under_an_assumed_60_s_one() -> None:
    # One request a second, as a caller that works between requests: the server's 3 s
    # windows hold 3 of them each, so Remaining never drops below 57 of 60.
    answers = serve(every(1.0, 60), window=3.0, limit=60)
    check = WindowCheck(60.0)
    fed = next(i for i, a in enumerate(answers) if findings(check, [a]))
    assert fed < 20  # found within the first 20 s
    found = findings(WindowCheck(60.0), answers)[0]
    assert found.window == 60.0
    assert found.limit == 60
    assert found.least_remaining >= 57
    assert found.sends >= MIN_SENDS
    assert found.least_remaining > found.most_remaining + 1
    assert found.span < 60.0
    text = str(found)
    assert "shorter than the 60 s assumed" in text
    assert f"{found.sends} requests" in text
    assert "RateLimit(window=" in text


def test_the_issue_s_trace_a_default_client_sequential_against_a_3_s_window() -> None:
    # Twelve calls over 180 s, one every 15 s: a 60 s span holds four, too few to tell.
    assert findings(WindowCheck(60.0), serve(every(15.0, 12), window=3.0, limit=5)) == []
    # Spread closer (a call every 2 s), the same server is found out.
    assert findings(WindowCheck(60.0), serve(every(2.0, 30), window=3.0, limit=30))


def test_a_finding_rests_on_at_least_min_sends() -> None:
    # Remaining stays at L - 1 (each request alone in its window): the strongest evidence,
    # yet not enough below MIN_SENDS.
    check = WindowCheck(60.0)
    few = [Answer(i * 1.0, i * 1.0 + 0.1, 59, 60) for i in range(MIN_SENDS - 1)]
    assert findings(check, few) == []
    more = [Answer(i * 1.0, i * 1.0 + 0.1, 59, 60) for i in range(MIN_SENDS - 1, 40)]
    assert findings(check, more)


def test_what_it_cannot_see_one_burst_per_window() -> None:
    # The whole allowance at once, once a window: each burst fits one 3 s window as it fits
    # one 60 s window, and the answers are the same (documented in the README).
    ours = [(w * 60.0 + i * 0.01, 0.02, 0.02) for w in range(5) for i in range(59)]
    assert findings(WindowCheck(60.0), serve(ours, window=3.0, limit=60)) == []


def test_answers_without_headers_or_on_no_clock_are_no_evidence() -> None:
    check = WindowCheck(10.0)
    for i in range(100):
        t = i * 0.5
        assert check.observe(t, t + 0.1, None, 60) is None
        assert check.observe(t, t + 0.1, 59, None) is None
        assert check.observe(t, t + 0.1, 59, 0) is None
        assert check.observe(t + 1.0, t, 59, 60) is None  # answered before it was sent
        assert check.observe(math.nan, t, 59, 60) is None
        assert check.observe(t, math.inf, 59, 60) is None
    assert check._buckets == []


def test_memory_stays_bounded() -> None:
    check = WindowCheck(1.0)
    for i in range(20_000):
        t = i * 0.001
        check.observe(t, t + 0.5, 0, 1000)
        assert len(check._buckets) <= BUCKETS + 1
    # Answers far out of order are filed or dropped, never kept beyond the bound.
    for i in range(1000):
        check.observe(20.0 - i * 0.01, 20.5, 0, 1000)
        assert len(check._buckets) <= BUCKETS + 1


def test_out_of_order_answers_are_filed_by_send_time() -> None:
    # Concurrent requests answer out of order; the evidence is the same.
    ours = [(i * 1.0, 0.05, 3.0 if i % 2 else 0.05) for i in range(60)]
    assert findings(WindowCheck(60.0), serve(ours, window=3.0, limit=60))


# --- And never under the model --------------------------------------------------------------

WINDOW = 10.0

# Bursts, steady streams and pauses of up to more than a window between sends; latencies up
# to a third of a window each way.
gap = st.one_of(
    st.just(0.0), st.floats(0.0, 0.05), st.floats(0.0, WINDOW / 5), st.floats(0.0, WINDOW * 1.5)
)
delay = st.floats(0.0, WINDOW / 3)


@settings(max_examples=250, deadline=None)
@given(
    schedule=st.lists(st.tuples(gap, delay, delay), min_size=1, max_size=120),
    limit=st.one_of(st.integers(1, 4), st.integers(1, 80)),
    offset=st.floats(0.0, WINDOW, exclude_max=True),
    others=st.lists(st.floats(0.0, 200.0), max_size=60),
    counts_after=st.booleans(),
)
def test_no_finding_when_the_server_s_window_is_the_assumed_one(
    schedule: list[tuple[float, float, float]],
    limit: int,
    offset: float,
    others: list[float],
    counts_after: bool,
) -> None:
    sends, t = [], 0.0
    for gap_, there, back in schedule:
        t += gap_
        sends.append((t, there, back))
    answers = serve(
        sends,
        window=WINDOW,
        limit=limit,
        offset=offset,
        others=tuple(others),
        counts_after=counts_after,
    )
    assert findings(WindowCheck(WINDOW), answers) == []


def test_no_finding_when_sends_go_over_the_limit() -> None:
    # Refused requests say 0, never less: the bound cannot go below it.
    for limit in (1, 2, 5):
        for counts_after in (True, False):
            answers = serve(every(0.01, 40), window=WINDOW, limit=limit, counts_after=counts_after)
            assert findings(WindowCheck(WINDOW), answers) == []


def test_no_finding_for_sends_split_evenly_across_one_boundary() -> None:
    # The case the bound is tight for: half the sends just before a boundary, half after.
    for counts_after in (True, False):
        for n in range(MIN_SENDS, 40, 2):
            ours = [(10.001 + (i - n // 2) * 0.05, 0.0, 0.01) for i in range(n)]
            answers = serve(ours, window=WINDOW, limit=50, counts_after=counts_after)
            assert min(a.remaining for a in answers) == 50 - n // 2 + (not counts_after)
            assert findings(WindowCheck(WINDOW), answers) == []


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(0.5, 3.0),
    offset=st.floats(0.0, 60.0, exclude_max=True),
    count=st.integers(40, 120),
)
def test_no_finding_for_sequential_callers_against_a_60_s_window(
    rate: float, offset: float, count: int
) -> None:
    # The shape that finds a 3 s window, against the assumed 60 s one at any alignment.
    answers = serve(every(1.0 / rate, count), window=60.0, limit=200, offset=offset)
    assert findings(WindowCheck(60.0), answers) == []


# --- Through the client ---------------------------------------------------------------------

TOKEN = "window-check-token"


async def warnings_from(caplog: pytest.LogCaptureFixture, **fake: float) -> list[str]:
    """Twenty sequential gets, a little apart, by a client assuming a 4 s window."""
    caplog.set_level("WARNING", logger="wemasy_async")
    async with FakeWemasy(conversations=20, token=TOKEN, rate_limit=50, **fake) as server:
        config = RateLimit(window=4.0)
        async with Client("wemasy", base_url=server.url, token=TOKEN, rate_limit=config) as c:
            for i in range(20):
                await c.get_conversation(i + 1)
                await anyio.sleep(0.04)
        assert server.stats.rate_limited == 0
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


async def test_the_client_warns_once_when_the_server_s_window_is_shorter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 0.1 s windows: each holds two or three of the sends, so Remaining stays near 50.
    (warning,) = await warnings_from(caplog, window=0.1)
    assert warning.startswith("wemasy|http://127.0.0.1:")
    assert "looks shorter than the 4 s assumed" in warning
    assert "rate_limit=RateLimit(window=<seconds>)" in warning
    digest = limiter_key("wemasy", "", TOKEN).rsplit("|", 1)[1]
    assert digest not in caplog.text
    assert TOKEN not in caplog.text


async def test_the_client_does_not_warn_when_the_window_is_the_assumed_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The same traffic against 4 s windows, a boundary in the middle of it (the tight case).
    assert await warnings_from(caplog, window=4.0, window_offset=0.5) == []


def test_the_limiter_reads_at_most_window_samples_answers_a_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A key far from its limit is answered thousands of times a second: the check reads a
    # sample (a subset is evidence all the same), so the per-request path pays a clock read.
    now = [1000.0]
    store = LocalStore(clock=lambda: now[0])
    limiter = Limiter("k", RateLimit(window=60.0), store)
    seen: list[float] = []
    original = WindowCheck.observe

    def spy(
        self: WindowCheck, sent: float, answered: float, remaining: int | None, limit: int | None
    ) -> ShortWindow | None:
        seen.append(answered)
        return original(self, sent, answered, remaining, limit)

    monkeypatch.setattr(WindowCheck, "observe", spy)
    info = RateLimitInfo(limit=10_000_000, remaining=9_000_000)
    gap = 60.0 / WINDOW_SAMPLES
    for _ in range(3 * WINDOW_SAMPLES):
        for _ in range(20):  # 20 answers in each sampling gap
            ticket = limiter.reserve()
            assert isinstance(ticket, Ticket)
            assert limiter.report(ticket, info) is None
        now[0] += gap
    assert len(seen) == 3 * WINDOW_SAMPLES
    assert all(b - a >= gap * 0.999 for a, b in itertools.pairwise(seen))
