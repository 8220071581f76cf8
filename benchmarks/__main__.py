"""``python -m benchmarks [all|e2e|ratelimit]`` (or ``nox -s bench``): run benchmarks, print tables.

``e2e`` compares ``Client.get_conversation`` with a bare aiohttp + msgspec loop; ``ratelimit``
measures how much of a server's rate limit each client uses and how many 429s it gets
(see :mod:`benchmarks.ratelimit`; about 2.5 minutes). ``all`` (the default) runs both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from benchmarks import e2e, ratelimit
from benchmarks.fake_process import fake_server

CONVERSATIONS = 2000


def run_e2e(args: argparse.Namespace) -> list[dict[str, object]]:
    with fake_server(conversations=args.requests, rate_limit=10_000_000) as url:
        rows = e2e.run(
            url, requests=args.requests, concurrencies=tuple(args.concurrency), rounds=args.rounds
        )
    print(
        f"\nEnd-to-end get_conversation, {args.requests} requests, best of {args.rounds} rounds,"
        " fake Wemasy server in a separate process"
    )
    print(f"{'concurrency':>11} | {'bare aiohttp+msgspec':>20} | {'wemasy-async':>12} | ratio")
    print(f"{'-' * 11}-+-{'-' * 20}-+-{'-' * 12}-+------")
    for row in rows:
        print(
            f"{row['concurrency']:>11} | {row['bare_rps']:>14,.0f} req/s | "
            f"{row['sdk_rps']:>6,.0f} req/s | {row['ratio']:.2f}x"
        )
    return rows


def run_ratelimit(args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = ratelimit.Settings(
        limit=args.limit,
        window=args.window,
        windows=args.windows,
        tasks=args.tasks,
        processes=args.processes,
        offset=args.offset,
    )
    print(
        f"\nRate limiting: {settings.limit} requests per {settings.window:g} s window, "
        f"{settings.tasks} tasks, {settings.windows} windows per scenario "
        f"(seed {args.seed}); each scenario takes about "
        f"{settings.windows * settings.window + settings.window / 2 + 1.5:.0f} s",
        flush=True,
    )

    def progress(row: dict[str, Any]) -> None:
        if "skipped" in row:
            print(f"  {row['scenario']}, {row['client']}: not run ({row['skipped']})", flush=True)
        else:
            print(
                f"  {row['scenario']}, {row['client']}: {row['utilisation']:.1%}, "
                f"{row['rate_limited']} 429s (offset {row['offset']:.2f} s)",
                flush=True,
            )

    rows = ratelimit.run(
        settings,
        seed=args.seed,
        clients=args.clients,
        process_counts=args.process_counts,
        progress=progress,
    )
    print()
    print(ratelimit.format_table(rows, settings))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("benchmark", nargs="?", choices=("all", "e2e", "ratelimit"), default="all")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    e2e_options = parser.add_argument_group("e2e")
    e2e_options.add_argument("--requests", type=int, default=CONVERSATIONS)
    e2e_options.add_argument("--rounds", type=int, default=3)
    e2e_options.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    rl = parser.add_argument_group("ratelimit")
    rl.add_argument("--limit", type=int, default=50, help="requests per window (default 50)")
    rl.add_argument("--window", type=float, default=2.0, help="window in seconds (default 2)")
    rl.add_argument("--windows", type=int, default=11, help="windows per scenario (default 11)")
    rl.add_argument("--tasks", type=int, default=200, help="concurrent tasks in all")
    rl.add_argument("--processes", type=int, default=4, help="processes of the shared scenarios")
    rl.add_argument(
        "--process-counts",
        type=int,
        nargs="+",
        default=None,
        help="which process counts to run (default: 1 and --processes)",
    )
    rl.add_argument("--clients", nargs="+", choices=ratelimit.CLIENTS, default=ratelimit.CLIENTS)
    rl.add_argument("--seed", type=int, default=None, help="seed of the window offsets")
    rl.add_argument(
        "--offset", type=float, default=None, help="start this many seconds into a window"
    )
    args = parser.parse_args()

    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    results: dict[str, object] = {}
    if args.benchmark in ("all", "e2e"):
        results["e2e"] = run_e2e(args)
    if args.benchmark in ("all", "ratelimit"):
        results["ratelimit"] = run_ratelimit(args)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
