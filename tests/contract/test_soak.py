"""The 20,000-request soak with 10% random faults, on every provider (``tests/support/soak.py``)."""

from __future__ import annotations

import pytest

from tests.support.soak import PROVIDERS, SoakReport, run_soak
from wemasy_async.testing import FAULT_KINDS

pytestmark = pytest.mark.slow


def _show(report: SoakReport, capsys: pytest.CaptureFixture[str]) -> None:
    # The issue asks for the figures on the terminal, also when the test passes.
    with capsys.disabled():
        print("\n" + "\n".join(report.lines()))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_soak_20k_requests_with_10_percent_faults(
    provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await run_soak(provider, ids=20_000, fault_rate=0.1, seed=6)
    _show(report, capsys)

    # Every id exactly once, as a result or a typed error, and never someone else's data.
    assert report.unaccounted == 0
    assert report.duplicates == 0
    assert report.ok + sum(report.errors.values()) == 20_000
    assert report.mismatched == 0
    # The faults really happened, every kind of them, at about the asked rate.
    assert set(report.faults) == set(FAULT_KINDS)
    faults = sum(report.faults.values())
    assert 0.08 < faults / report.server_requests < 0.12
    # Retries turn most faults into results. What is left is the faults that cannot be
    # retried (a 2xx body that is not JSON, an endless body) or ran out of attempts.
    assert report.ok > 20_000 * 0.95
    # Nothing leaked and nothing warned.
    assert report.fds_after == report.fds_before
    assert report.tasks_after == report.tasks_before
    assert report.warnings == []
    assert report.loop_errors == []
    assert report.clean


async def test_soak_without_faults_returns_every_conversation() -> None:
    # The control run: with no faults, every id is a result; a soak that reported errors
    # here would be measuring itself.
    report = await run_soak("wemasy", ids=2_000, fault_rate=0.0)
    assert report.ok == 2_000
    assert not report.errors
    assert report.faults == {} or sum(report.faults.values()) == 0
    assert report.clean
