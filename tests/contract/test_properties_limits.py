"""Property-based tests of the rate-limit header parser and the limiter's in-process store:
whatever header values a server sends, a sane hint or none, and a store that keeps its rules.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from multidict import CIMultiDict

from tests.support.properties import FEW, MAX_RETRY_AFTER, SOME, header_values, headers_strategy
from wemasy_async.headers import RateLimitInfo, parse_retry_after
from wemasy_async.ratelimit import LocalStore, Pacing, RateLimit, Ticket
from wemasy_async.schedule import Acquire, Release

# --- The rate-limit header parser ------------------------------------------------------------


def check_retry_after(value: float | None) -> None:
    assert value is None or (
        type(value) is float and math.isfinite(value) and 0 <= value <= MAX_RETRY_AFTER
    ), value


@SOME
@given(headers=headers_strategy)
def test_rate_limit_info_from_arbitrary_headers(headers: dict[str, str]) -> None:
    info = RateLimitInfo.from_headers(CIMultiDict(headers))
    for count in (info.limit, info.remaining):
        # Documented: a non-negative int, or None when missing or unreadable.
        assert count is None or (type(count) is int and 0 <= count < 10**18), count
    check_retry_after(info.retry_after)


@SOME
@given(value=header_values | st.none(), date=header_values | st.none())
def test_parse_retry_after_never_raises(value: str | None, date: str | None) -> None:
    check_retry_after(parse_retry_after(value, date=date))


def http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S %z")


offsets = st.integers(min_value=-1439, max_value=1439).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@SOME
@given(target=st.datetimes(timezones=st.timezones()), now=st.datetimes(timezones=st.timezones()))
def test_parse_retry_after_any_http_dates(target: datetime, now: datetime) -> None:
    # Any year (strftime writes year 5 as "5", which parsedate reads as 2005), any zone.
    check_retry_after(parse_retry_after(http_date(target), date=http_date(now)))


@SOME
@given(
    now=st.datetimes(min_value=datetime(1900, 1, 3), max_value=datetime(9999, 12, 29)),
    delta=st.floats(min_value=-2 * 86_400, max_value=2 * 86_400),
    now_zone=offsets,
    target_zone=offsets,
)
def test_parse_retry_after_reads_http_dates_against_date(
    now: datetime, delta: float, now_zone: timezone, target_zone: timezone
) -> None:
    now = now.replace(microsecond=0, tzinfo=now_zone)
    target = (now + timedelta(seconds=delta)).astimezone(target_zone)
    seconds = parse_retry_after(http_date(target), date=http_date(now))
    check_retry_after(seconds)
    # The dates are read to the second, against Date rather than the local clock.
    if delta <= 0:
        assert seconds == 0.0
    elif delta <= MAX_RETRY_AFTER:
        assert seconds == pytest.approx(delta, abs=1)
    elif delta > MAX_RETRY_AFTER + 1:
        assert seconds is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("86400", 86_400.0),
        ("86401", None),
        ("-1", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("Infinity", None),
        ("1e3", None),
        ("1_000", None),  # float() reads it; RFC 9110's delta-seconds is digits only
        ("١٢", None),  # Arabic-Indic digits: float() reads them too
        ("+5", None),
        ("0x10", None),
        ("", None),
        ("99999999999999999999999999999999", None),
    ],
)
def test_parse_retry_after_delta_seconds(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


# --- The limiter's in-process store ----------------------------------------------------------


counts = st.none() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
infos = st.none() | st.builds(
    RateLimitInfo,
    limit=counts,
    remaining=counts,
    retry_after=st.none() | st.floats(),
)
configs = st.builds(
    RateLimit,
    window=st.floats(min_value=0.001, max_value=86_400),
    margin=st.none() | st.floats(min_value=0, max_value=60),
    ceiling=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.floats(min_value=0, max_value=1e6)),
        st.tuples(
            st.just("observe"),
            st.floats(min_value=0, max_value=1e6),
            infos,
            st.booleans(),
            st.floats(),  # paused: whatever arrives must not break the schedule
        ),
    ),
    max_size=30,
)


@SOME
@given(config=configs, script=steps)
def test_local_store_waits_are_never_negative_or_nan(
    config: RateLimit, script: list[tuple[Any, ...]]
) -> None:
    now = [1000.0]
    store = LocalStore(clock=lambda: now[0])
    pacing = Pacing(config.window, config.pacing_margin, config.ceiling)
    held: list[Ticket] = []
    for step in script:
        now[0] += step[1]
        if step[0] == "acquire":
            decision = store.apply_now("key", pacing, Acquire())
            if decision.ticket is not None:
                held.append(decision.ticket)
        else:
            _, _, info, sent, paused = step
            ticket = held.pop() if held and sent else None
            decision = store.apply_now("key", pacing, Release(ticket, True, info, paused))
        for wait in decision.delay, decision.paused:
            assert type(wait) is float, decision
            assert math.isfinite(wait), decision
            assert wait >= 0, decision


@FEW
@given(headers=headers_strategy, config=configs)
def test_local_store_learns_from_any_parsed_headers(
    headers: dict[str, str], config: RateLimit
) -> None:
    # The path the engine takes: headers -> RateLimitInfo -> store, then the next acquire.
    now = [5.0]
    store = LocalStore(clock=lambda: now[0])
    pacing = Pacing(config.window, config.pacing_margin, config.ceiling)
    info = RateLimitInfo.from_headers(CIMultiDict(headers))
    assume(info != RateLimitInfo() or headers)
    probe = store.apply_now("key", pacing, Acquire())
    store.apply_now("key", pacing, Release(probe.ticket, True, info, info.retry_after or 0.0))
    for _ in range(3):
        decision = store.apply_now("key", pacing, Acquire())
        wait = decision.delay
        assert math.isfinite(wait), wait
        assert wait >= 0, wait
        if decision.ticket is not None:
            store.apply_now("key", pacing, Release(decision.ticket, True, RateLimitInfo()))
        now[0] += wait
