"""Rate-limit headers: missing or unreadable means "no information", never zero."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from wemasy_async.headers import RateLimitInfo, parse_retry_after

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


# --- parse_retry_after -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("60", 60.0),
        ("0", 0.0),
        ("1", 1.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),
        ("86400", 86400.0),  # a day is the most we believe
    ],
)
def test_delta_seconds(value: str, seconds: float) -> None:
    result = parse_retry_after(value)
    assert result == seconds
    assert isinstance(result, float)


def test_missing_is_none_not_zero() -> None:
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "soon",
        "60s",
        "sixty",
        "1,5",
        "-1",
        "-0.5",
        "86401",  # more than a day: a server bug or an attack
        "99999999999999999999",
        "1e308",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Someday, 21 Oct 2015",
    ],
)
def test_unreadable_is_none(value: str) -> None:
    assert parse_retry_after(value) is None
    assert parse_retry_after(value, date=DATE) is None


def test_http_date_relative_to_the_date_header() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", date=DATE) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 08:28:00 GMT", date=DATE) == 3600.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date=DATE) == 0.0


def test_http_date_before_the_date_header_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", date=DATE) == 0.0


def test_http_date_in_the_past_by_the_local_clock_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


def test_http_date_more_than_a_day_ahead_is_unreadable() -> None:
    assert parse_retry_after("Fri, 23 Oct 2015 07:28:00 GMT", date=DATE) is None
    assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT") is None


def test_http_date_in_the_near_future_by_the_local_clock() -> None:
    # No Date header: the local clock is "now". The date has whole seconds, so a little
    # under 120 s remain; bounds are generous so a slow machine cannot fail this.
    value = email.utils.formatdate(time.time() + 120, usegmt=True)
    seconds = parse_retry_after(value)
    assert seconds is not None
    assert 60.0 < seconds <= 120.0


def test_unreadable_date_header_falls_back_to_the_local_clock() -> None:
    # Judged against the local clock, 2015 is in the past.
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", date="garbage") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", date="") == 0.0


def test_date_header_skew_does_not_stretch_the_wait() -> None:
    # The server's clock is what counts: the same Retry-After is 10 s against one Date
    # header and 0 s against a later one, whatever the local clock says.
    retry = "Sun, 06 Nov 1994 08:49:47 GMT"
    assert parse_retry_after(retry, date="Sun, 06 Nov 1994 08:49:37 GMT") == 10.0
    assert parse_retry_after(retry, date="Sun, 06 Nov 1994 08:59:37 GMT") == 0.0


# --- RateLimitInfo.from_headers --------------------------------------------------------------


def test_reads_documented_headers() -> None:
    headers = CIMultiDict(
        {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "57", "Retry-After": "60"}
    )
    info = RateLimitInfo.from_headers(headers)
    assert info == RateLimitInfo(limit=60, remaining=57, retry_after=60.0)
    assert isinstance(info.limit, int)
    assert isinstance(info.remaining, int)


def test_missing_headers_are_none_not_zero() -> None:
    info = RateLimitInfo.from_headers(CIMultiDict())
    assert info.limit is None
    assert info.remaining is None
    assert info.retry_after is None
    assert info == RateLimitInfo()


def test_zero_remaining_is_zero() -> None:
    info = RateLimitInfo.from_headers(CIMultiDict({"X-RateLimit-Remaining": "0"}))
    assert info.remaining == 0
    assert info.limit is None


def test_lookup_is_case_insensitive() -> None:
    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "x-ratelimit-limit": "120",
                "X-RATELIMIT-REMAINING": "3",
                "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT",
                "date": DATE,
            }
        )
    )
    assert RateLimitInfo.from_headers(headers) == RateLimitInfo(
        limit=120, remaining=3, retry_after=30.0
    )


def test_first_of_repeated_headers_wins() -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("X-RateLimit-Limit", "60")
    headers.add("X-RateLimit-Limit", "1000")
    assert RateLimitInfo.from_headers(headers).limit == 60


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "abc",
        "60s",
        "6e1",
        "60.0",
        "-1",
        "+5",
        "0x3c",
        "١٢",  # ARABIC-INDIC digits: isdigit(), but not a number a header may hold
        "9" * 19,  # more digits than any real limit
        "nan",
        "inf",
    ],
)
def test_unreadable_counts_are_none(value: str) -> None:
    headers = CIMultiDict({"X-RateLimit-Limit": value, "X-RateLimit-Remaining": value})
    info = RateLimitInfo.from_headers(headers)
    assert info.limit is None
    assert info.remaining is None


@pytest.mark.parametrize(("value", "number"), [(" 57 ", 57), ("007", 7), ("9" * 18, int("9" * 18))])
def test_readable_counts(value: str, number: int) -> None:
    assert RateLimitInfo.from_headers(CIMultiDict({"X-RateLimit-Remaining": value})).remaining == (
        number
    )


def test_retry_after_is_read_against_the_date_header() -> None:
    headers = CIMultiDict({"Retry-After": "Wed, 21 Oct 2015 07:30:00 GMT", "Date": DATE})
    assert RateLimitInfo.from_headers(headers).retry_after == 120.0


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "100000", "garbage"])
def test_unreadable_retry_after_is_none(value: str) -> None:
    assert RateLimitInfo.from_headers(CIMultiDict({"Retry-After": value})).retry_after is None


def test_rate_limit_info_is_frozen_and_hashable() -> None:
    info = RateLimitInfo(limit=1, remaining=0, retry_after=1.0)
    with pytest.raises(AttributeError):
        info.limit = 2  # type: ignore[misc]
    assert hash(info) == hash(RateLimitInfo(limit=1, remaining=0, retry_after=1.0))


# --- Duplicate and conflicting headers: the stricter wins --------------------------------------


def _multi(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_two_limits_the_lower_wins() -> None:
    # Once the looser won, and a 5/s server answered 429.
    headers = _multi(("X-RateLimit-Limit", "500"), ("x-ratelimit-limit", "5"))
    assert RateLimitInfo.from_headers(headers).limit == 5
    headers = _multi(("X-RateLimit-Limit", "5"), ("X-RateLimit-Limit", "500"))
    assert RateLimitInfo.from_headers(headers).limit == 5


@pytest.mark.parametrize("value", ["500, 5", "5,500", " 500 ,5 "])
def test_a_folded_list_the_lower_wins(value: str) -> None:
    # A proxy may fold repeated headers into one, comma-separated (RFC 9110, 5.3).
    assert RateLimitInfo.from_headers({"X-RateLimit-Limit": value}).limit == 5
    assert RateLimitInfo.from_headers(_multi(("X-RateLimit-Remaining", value))).remaining == 5


def test_two_remainings_the_lower_wins() -> None:
    headers = _multi(("X-RateLimit-Remaining", "0"), ("X-RateLimit-Remaining", "499"))
    assert RateLimitInfo.from_headers(headers).remaining == 0


def test_two_retry_afters_the_longer_wins() -> None:
    headers = _multi(("Retry-After", "1"), ("Retry-After", "30"), ("Retry-After", "soon"))
    assert RateLimitInfo.from_headers(headers).retry_after == 30.0


def test_unreadable_values_among_readable_ones_are_ignored() -> None:
    headers = _multi(("X-RateLimit-Limit", "lots"), ("X-RateLimit-Limit", "50"))
    assert RateLimitInfo.from_headers(headers).limit == 50
    assert RateLimitInfo.from_headers({"X-RateLimit-Limit": "lots, -1"}).limit is None


_COUNT_TEXT = st.one_of(
    st.integers(min_value=0, max_value=10**19).map(str),
    st.text(alphabet="0123456789 ,+-_.x١٢²", max_size=20),
)


@settings(max_examples=400, deadline=None)
@given(limit=_COUNT_TEXT, remaining=_COUNT_TEXT)
def test_both_counts_read_together_as_each_alone(limit: str, remaining: str) -> None:
    # A response with one value of each count takes a quicker path: it must read them
    # exactly as the general one does, which each count alone takes.
    both = CIMultiDictProxy(
        CIMultiDict({"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining})
    )
    alone_limit = CIMultiDictProxy(CIMultiDict({"X-RateLimit-Limit": limit}))
    alone_remaining = CIMultiDictProxy(CIMultiDict({"X-RateLimit-Remaining": remaining}))
    info = RateLimitInfo.from_headers(both)
    assert info.limit == RateLimitInfo.from_headers(alone_limit).limit
    assert info.remaining == RateLimitInfo.from_headers(alone_remaining).remaining
    assert info.retry_after is None
