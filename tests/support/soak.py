"""The soak: many requests through ``fetch_conversations`` with random faults, in numbers.

``run_soak`` starts a fake provider on 127.0.0.1 that answers a fraction of requests with a
random fault from :data:`wemasy_async.testing.FAULT_KINDS` (resets before and in the middle
of a body, truncated JSON, proxy HTML pages, empty and mislabelled bodies, bodies that never
end, keep-alive connections closed under the client, 5xx, 429, processed-then-dropped
requests and endless bodies), fetches every id once and accounts for each of them:

- every id comes back exactly once, as a result or a typed error, and every result is the
  conversation that was asked for (a connection mix-up would show as a mismatch);
- nothing else escapes (a non-``WemasyAsyncError`` would end the batch);
- open file descriptors and asyncio tasks are back to their starting counts;
- no warning (``Unclosed client session``, ``Unclosed connection``, ...) and no error
  reported to the event loop's exception handler.

``tests/contract/test_soak.py`` runs it for every provider and asserts the above; run it by hand to
see the figures (``python -m tests.support.soak --provider wemasy``, or ``nox -s soak`` for all).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.support.cases import CASES, NAMES
from wemasy_async import Client, RetryPolicy, no_backoff
from wemasy_async.testing import FAULT_KINDS

PROVIDERS = NAMES
TOKEN = "soak-token"


@dataclass
class SoakReport:
    """What one soak run saw. ``clean`` says whether every guarantee held."""

    provider: str
    ids: int
    fault_rate: float
    concurrency: int
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unaccounted: int = 0
    duplicates: int = 0
    mismatched: int = 0
    server_requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    fds_before: int = -1
    fds_after: int = -1
    tasks_before: int = 0
    tasks_after: int = 0
    warnings: list[str] = field(default_factory=list)
    loop_errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every id exactly once, no mix-up, nothing leaked, nothing warned."""
        return (
            self.ok + sum(self.errors.values()) == self.ids
            and not self.unaccounted
            and not self.duplicates
            and not self.mismatched
            and self.fds_after == self.fds_before
            and self.tasks_after == self.tasks_before
            and not self.warnings
            and not self.loop_errors
        )

    def lines(self) -> list[str]:
        """The figures, one per line, for a terminal or the README."""
        faults = sum(self.faults.values())
        errors = ", ".join(f"{name} {count}" for name, count in self.errors.most_common())
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
        return [
            f"soak {self.provider}: {self.ids:,} ids, concurrency {self.concurrency}, "
            f"{self.fault_rate:.0%} fault rate, {self.seconds:.1f} s",
            f"  server saw {self.server_requests:,} requests, {faults:,} of them faults "
            f"({faults / max(1, self.server_requests):.1%}): {kinds}",
            f"  results {self.ok:,}, typed errors {sum(self.errors.values()):,}"
            + (f" ({errors})" if errors else ""),
            f"  ids unaccounted {self.unaccounted}, twice {self.duplicates}, "
            f"wrong conversation {self.mismatched}",
            f"  open fds {self.fds_before} -> {self.fds_after}, "
            f"tasks {self.tasks_before} -> {self.tasks_after}, "
            f"warnings {len(self.warnings)}, loop errors {len(self.loop_errors)}",
        ]


def _open_fds() -> int:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory))
        except OSError:
            continue
    return -1


async def run_soak(
    provider: str,
    *,
    ids: int = 20_000,
    fault_rate: float = 0.1,
    kinds: Sequence[str] = FAULT_KINDS,
    concurrency: int = 64,
    timeout: float = 1.0,
    seed: int = 0,
) -> SoakReport:
    """Fetch ``ids`` distinct conversations through a faulty fake; return the figures.

    Must run in a fresh event loop (it compares the loop's task count before and after).
    """
    report = SoakReport(provider, ids, fault_rate, concurrency)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(
        lambda _loop, context: report.loop_errors.append(str(context.get("message")))
    )
    case = next(case for case in CASES if case.name == provider)
    # A generous server limit: the soak is about faults, not pacing (the limiter stays on).
    fake = case.start(conversations=ids, rate_limit=10_000_000, record_requests=False)
    wanted = case.ids(fake)
    gc.collect()
    report.fds_before = _open_fds()
    report.tasks_before = len(asyncio.all_tasks())
    seen: Counter[str] = Counter()
    try:
        # no_backoff: retry waits (backoffs, and hints such as SiteAssist's documented 503
        # "retryAfter": 30) are skipped; the soak counts outcomes, it does not wait them out.
        with warnings.catch_warnings(record=True) as caught, no_backoff():
            warnings.simplefilter("always")
            started = time.perf_counter()
            async with fake:
                fake.inject_faults(fault_rate, kinds, seed=seed)
                # Every 429 pauses the whole key for its Retry-After (as it must); with ~150
                # of them a 1 s hint would make the soak a test of patience.
                fake.fault_retry_after = 0
                async with Client(
                    provider,
                    token=TOKEN,
                    base_url=fake.url,
                    timeout=timeout,
                    retry=RetryPolicy(),
                    # Far above any seeded conversation, far below an endless body.
                    max_response_bytes=1024 * 1024,
                ) as client:
                    batch = client.fetch_conversations(wanted, concurrency=concurrency)
                    async with batch as results:
                        async for result in results:
                            key = str(result.id)
                            seen[key] += 1
                            if result.value is not None:
                                report.ok += 1
                                if result.value.id != key:
                                    report.mismatched += 1
                            else:
                                report.errors[type(result.error).__name__] += 1
                report.server_requests = fake.stats.requests_total
                report.faults = dict(fake.stats.fault_counts)
            report.seconds = time.perf_counter() - started
            # Let aiohttp's closed transports finish, then collect: a leaked session or
            # connection warns from its finaliser.
            await asyncio.sleep(0.05)
            gc.collect()
        report.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    finally:
        loop.set_exception_handler(previous_handler)
    report.fds_after = _open_fds()
    report.tasks_after = len(asyncio.all_tasks())
    report.unaccounted = sum(1 for key in wanted if key not in seen)
    report.duplicates = sum(1 for count in seen.values() if count > 1)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--provider", choices=(*PROVIDERS, "all"), default="all")
    parser.add_argument("--ids", type=int, default=20_000)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clean = True
    for provider in PROVIDERS if args.provider == "all" else (args.provider,):
        report = asyncio.run(
            run_soak(
                provider,
                ids=args.ids,
                fault_rate=args.fault_rate,
                concurrency=args.concurrency,
                seed=args.seed,
            )
        )
        print("\n".join(report.lines()), flush=True)
        clean = clean and report.clean
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
