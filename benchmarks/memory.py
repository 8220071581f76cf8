"""Memory: peak RSS of a fresh process fetching 100k conversations vs 1k.

Each measurement is a fresh ``python -m benchmarks.memory URL N`` process that fetches ``N``
conversations through ``Client.fetch_conversations(ids, concurrency=64)`` from a fake Wemasy
server in another process, and prints its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The ids come from a generator
(``i % conversations + 1``, so they cycle over the fake's 2,000 seeded conversations of 2 to
8 messages each) and every result is dropped as soon as it arrives. A batch whose memory
grows with the number of ids (ids materialised, results or tasks kept) shows as a ratio
above 1; a flat one stays near 1.0x. The process's RSS right after importing (before any
request) is reported too, so the fetching's own share can be read off.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio

CONVERSATIONS = 2000
CONCURRENCY = 64


def _ids(count: int) -> Iterator[int]:
    return (i % CONVERSATIONS + 1 for i in range(count))


def _rss_kib() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes; this benchmark targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _fetch(url: str, count: int) -> tuple[int, int]:
    from wemasy_async import Client

    ok = failed = 0
    async with Client("wemasy", base_url=url, token="bench") as client:
        async for result in client.fetch_conversations(_ids(count), concurrency=CONCURRENCY):
            if result.ok:
                ok += 1
            else:
                failed += 1
    return ok, failed


def child(url: str, count: int) -> None:
    """Run in the fresh process: fetch, then print one JSON line of measurements."""
    import msgspec

    import wemasy_async  # noqa: F401  # measured as part of the baseline

    baseline = _rss_kib()
    started = time.perf_counter()
    ok, failed = anyio.run(_fetch, url, count)
    elapsed = time.perf_counter() - started
    line = msgspec.json.encode(
        {
            "count": count,
            "ok": ok,
            "failed": failed,
            "baseline_kib": baseline,
            "peak_kib": _rss_kib(),
            "seconds": elapsed,
        }
    )
    sys.stdout.write(line.decode() + "\n")


def _measure(url: str, count: int) -> dict[str, Any]:
    import msgspec

    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", url, str(count)],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = msgspec.json.decode(output.stdout.strip().splitlines()[-1])
    if result["failed"] or result["ok"] != count:
        raise RuntimeError(f"memory benchmark: {result['failed']} of {count} fetches failed")
    return result


def run(url: str, small: int = 1_000, large: int = 100_000) -> dict[str, Any]:
    """Peak RSS of fresh processes fetching ``small`` and ``large`` conversations."""
    low = _measure(url, small)
    high = _measure(url, large)
    return {
        "small": low,
        "large": high,
        "ratio": high["peak_kib"] / low["peak_kib"],
        "growth_ratio": (high["peak_kib"] - high["baseline_kib"])
        / max(1, low["peak_kib"] - low["baseline_kib"]),
    }


def format_table(result: dict[str, Any]) -> str:
    mark = "(met)" if result["ratio"] <= 1.2 else "(MISSED)"
    lines = [
        "| conversations fetched | RSS after import | peak RSS | time | rate |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key in ("small", "large"):
        row = result[key]
        lines.append(
            f"| {row['count']:,} | {row['baseline_kib'] / 1024:.1f} MiB "
            f"| {row['peak_kib'] / 1024:.1f} MiB | {row['seconds']:.1f} s "
            f"| {row['count'] / row['seconds']:,.0f} /s |"
        )
    lines += [
        "",
        f"Peak RSS, {result['large']['count']:,} vs {result['small']['count']:,}: "
        f"**{result['ratio']:.2f}x** {mark} (target <= 1.2x); growth above the RSS after "
        f"import: {result['growth_ratio']:.2f}x. `fetch_conversations(concurrency="
        f"{CONCURRENCY})`, ids from a generator, results dropped.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]))
