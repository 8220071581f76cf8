"""How the fake servers scale: start time and RSS of ``serve --conversations N``.

``python -m benchmarks.fake_scale [--providers wemasy loop siteassist] [--sizes 1000 1000000]
[--rounds 3] [--source DIR]``

Each measurement is a fresh ``python -m wemasy_async.testing serve --provider P
--conversations N`` process (run from ``--source``, the repository root by default, so an
older checkout can be measured the same way). Reported per provider and size:

- *start*: wall time from spawning the process to its ``URL`` line (interpreter start-up
  and imports included), best of ``--rounds``;
- *RSS at start*: the server's resident set size (``VmRSS``) right after that line;
- *RSS after*: after a request for the first, a middle and the last seeded conversation,
  which makes an on-demand fake generate what it needs to answer them (a walk of the whole
  data set, for the last one), then ``--requests`` more requests for the ids in order from
  the first (more than the fakes' caches of built and encoded conversations hold): what a
  long run holds. ``VmHWM`` (the peak) is reported too.

Targets (issue 14): start under 1 s and RSS under 100 MB at any size; the ratio of the
largest size to the smallest, measured in the same run, shows what grows with the size.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
TARGET_START = 1.0
TARGET_RSS_MB = 100.0


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def _ids(provider: str, size: int, requests: int) -> list[Any]:
    """The first, a middle and the last seeded id, then ``requests`` ids in order from the
    first (cycling), computed without building the data set."""
    picks = [*sorted({0, size // 2, size - 1}), *(i % size for i in range(requests))]
    if provider == "wemasy":
        return [index + 1 for index in picks]
    from wemasy_async.testing import FakeLoop, FakeSiteAssist

    maker = FakeLoop if provider == "loop" else FakeSiteAssist
    seeded = maker(seed=0, conversations=size).conversations
    return [seeded.id_at(index) for index in picks]


async def _request(session: aiohttp.ClientSession, url: str, provider: str, key: Any) -> int:
    headers = {"Authorization": "Bearer bench"}
    if provider == "wemasy":
        call = session.post(
            f"{url}/services/ai/v1/conversations/get",
            json={"conversation_id": key},
            headers=headers,
        )
    elif provider == "loop":
        call = session.get(f"{url}/v1/conversations/{key}/messages", headers=headers)
    else:
        call = session.get(f"{url}/conversations/{key}", headers=headers)
    async with call as response:
        await response.read()
        return response.status


async def _drive(url: str, provider: str, keys: list[Any]) -> list[int]:
    async with aiohttp.ClientSession() as session:
        return [await _request(session, url, provider, key) for key in keys]


def measure(
    provider: str, size: int, source: Path, requests: int, extra: list[str]
) -> dict[str, Any]:
    """Start one server, time it, read its RSS before and after the requests."""
    command = [sys.executable, "-m", "wemasy_async.testing", "serve", "--provider", provider]
    command += ["--conversations", str(size), "--rate-limit", "0", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=source)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        start = time.perf_counter() - started
        if not line.startswith("URL "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        rss_start = _status_kib(process.pid, "VmRSS")
        keys = _ids(provider, size, requests)
        statuses = asyncio.run(_drive(line.removeprefix("URL "), provider, keys))
        if set(statuses) != {200}:
            raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
        return {
            "provider": provider,
            "size": size,
            "start": start,
            "rss_start_mb": rss_start / 1024,
            "rss_after_mb": _status_kib(process.pid, "VmRSS") / 1024,
            "peak_mb": _status_kib(process.pid, "VmHWM") / 1024,
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def run(
    providers: list[str],
    sizes: list[int],
    rounds: int,
    source: Path,
    requests: int,
    extra: list[str] = [],  # noqa: B006 - never changed
) -> list[dict[str, Any]]:
    """Best start time of ``rounds`` (sizes interleaved), the RSS of the last round."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for _ in range(rounds):
        for provider in providers:
            for size in sizes:
                row = measure(provider, size, source, requests, extra)
                best = rows.get((provider, size))
                if best is not None:
                    row["start"] = min(row["start"], best["start"])
                rows[provider, size] = row
                print(format_row(row), flush=True)
    return list(rows.values())


def format_row(row: dict[str, Any]) -> str:
    return (
        f"| {row['provider']} | {row['size']:,} | {row['start']:.2f} s "
        f"| {row['rss_start_mb']:.0f} MB | {row['rss_after_mb']:.0f} MB | {row['peak_mb']:.0f} MB |"
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| provider | conversations | start | RSS at start | RSS after | peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
        *(format_row(row) for row in rows),
        "",
    ]
    for provider in dict.fromkeys(row["provider"] for row in rows):
        mine = sorted((r for r in rows if r["provider"] == provider), key=lambda r: r["size"])
        small, large = mine[0], mine[-1]
        met = large["start"] < TARGET_START and large["peak_mb"] < TARGET_RSS_MB
        lines.append(
            f"{provider}: {large['size']:,} vs {small['size']:,} conversations, start "
            f"{large['start'] / small['start']:.2f}x, peak RSS "
            f"{large['peak_mb'] / small['peak_mb']:.2f}x; "
            f"**{'met' if met else 'MISSED'}** (start < {TARGET_START:.0f} s, "
            f"peak < {TARGET_RSS_MB:.0f} MB)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fake_scale")
    parser.add_argument(
        "--providers", nargs="+", default=["wemasy", "loop", "siteassist"], help="fakes to run"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10_000, help="requests after the three")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run the fakes of")
    parser.add_argument(
        "--request-log", type=int, default=None, help="passed to serve (default: its own)"
    )
    args = parser.parse_args()
    extra = [] if args.request_log is None else ["--request-log", str(args.request_log)]
    rows = run(args.providers, args.sizes, args.rounds, args.source, args.requests, extra)
    print()
    print(format_table(rows))


if __name__ == "__main__":
    main()
