"""``python -m benchmarks`` (or ``nox -s bench``): run the benchmarks and print the table."""

from __future__ import annotations

import argparse
import os
import platform

from benchmarks import e2e
from benchmarks.fake_process import fake_server

CONVERSATIONS = 2000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--requests", type=int, default=CONVERSATIONS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()

    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
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


if __name__ == "__main__":
    main()
