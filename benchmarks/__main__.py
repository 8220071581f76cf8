"""``python -m benchmarks [all|decode|e2e|cpu|import|memory|overhead|ratelimit|hooks|fakes]``.

Also ``nox -s bench``. Every figure is a ratio against a baseline measured in the same run;
fake servers run in a separate process.

- ``decode``: each provider's 100-message response through ``Call.parse`` vs bare msgspec,
  pydantic v2 and ``json.loads`` (:mod:`benchmarks.decode`).
- ``e2e``: ``Client.get_conversation`` vs a bare aiohttp + msgspec loop and an httpx +
  pydantic client at several concurrencies, req/s and client CPU per request
  (:mod:`benchmarks.e2e`).
- ``cpu``: the client process's CPU time per request with 20- and 100-message
  conversations vs bare aiohttp + msgspec, and the top of a profile of the request path
  (:mod:`benchmarks.cpu`).
- ``import``: ``python -c "import wemasy_async"`` vs ``import aiohttp`` (:mod:`benchmarks.startup`).
- ``memory``: peak RSS fetching 100k vs 1k conversations (:mod:`benchmarks.memory`).
- ``overhead``: the rate limiter's cost per request when it never waits
  (:mod:`benchmarks.overhead`).
- ``ratelimit``: how much of a server's rate limit each client uses and how many 429s it
  gets, over a grid of rates, latencies and process counts, with the machine's ceiling,
  three long runs (the steady state) and the non-binding row (:mod:`benchmarks.ratelimit`;
  about 13 minutes, ``--quick`` about 3, without the long runs).
- ``hooks``: CPU per call with no hooks, a no-op hook and the OpenTelemetry hook, through a
  MockTransport (:mod:`benchmarks.hooks`).
- ``fakes``: start time and RSS of ``serve --conversations`` at 1,000 and 1,000,000 for each
  fake (:mod:`benchmarks.fake_scale`; about 2 minutes).

``all`` (the default) runs everything and writes ``benchmarks/results.md``; one benchmark
alone replaces its own section there (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import (
    cpu,
    decode,
    e2e,
    fake_scale,
    hooks,
    memory,
    overhead,
    ratelimit,
    startup,
)
from benchmarks.fake_process import fake_server

CONVERSATIONS = 5000
RESULTS = Path(__file__).resolve().parent / "results.md"
PACKAGES = ("wemasy-async", "aiohttp", "msgspec", "anyio", "httpx", "pydantic", "pydantic-core")


def machine() -> list[str]:
    """A description of this machine: CPU, cores, RAM, Python, OS, package versions."""
    cpu = platform.processor() or "unknown CPU"
    ram = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.partition(":")[2].strip()
                    break
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal"):
                    ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- RAM: {ram}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- OS: {platform.platform()}",
        f"- Packages: {', '.join(versions)}",
    ]


def run_decode(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    print("\nDecode: 100-message responses, min of repeats, µs per decode", flush=True)
    rows = decode.run(repeat=args.repeat)
    table = decode.format_table(rows)
    print(table)
    return rows, table


def run_e2e(args: argparse.Namespace) -> tuple[list[dict[str, object]], str]:
    print(
        f"\nEnd-to-end get_conversation, {args.rounds} paired rounds of {args.round_requests}"
        f" requests each ({args.requests_c1} at concurrency 1), "
        "fake Wemasy server in a separate process",
        flush=True,
    )
    with fake_server(conversations=args.round_requests, rate_limit=10_000_000) as url:
        rows = e2e.run(
            url,
            requests=args.round_requests,
            concurrencies=tuple(args.concurrency),
            rounds=args.rounds,
            requests_c1=args.requests_c1,
        )
    table = e2e.format_table(rows)
    print(table)
    return rows, table


def run_cpu(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    print(
        f"\nClient CPU per request, {args.cpu_requests} requests by {cpu.CONCURRENCY} workers,"
        f" least of {args.cpu_rounds} rounds, 20 and 100 messages per conversation",
        flush=True,
    )
    rows = cpu.run(requests=args.cpu_requests, rounds=args.cpu_rounds)
    table = cpu.format_table(rows, cpu.profile(requests=args.cpu_requests))
    print(table)
    return rows, table


def run_import(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    print(f"\nImport time, median of {args.import_runs} alternating processes", flush=True)
    result = startup.run(runs=args.import_runs)
    table = startup.format_table(result)
    print(table)
    return result, table


def run_fakes(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    print("\nFake servers at scale: serve --conversations 1,000 and 1,000,000", flush=True)
    rows = fake_scale.run(
        ["wemasy", "loop", "siteassist"],
        [1_000, 1_000_000],
        rounds=1 if args.quick else 2,
        source=fake_scale.ROOT,
        requests=10_000,
    )
    table = fake_scale.format_table(rows) + (
        "\n\nA fresh `python -m wemasy_async.testing serve --provider P --conversations N` per"
        " row: start = spawn to its URL line (best of the rounds); RSS after = after the first,"
        " a middle and the last conversation, then 10,000 requests in order (see"
        " `benchmarks/fake_scale.py`)."
    )
    print(table)
    return rows, table


def run_hooks(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    print("\nHooks: CPU per call through a MockTransport, no hooks vs hooks", flush=True)
    result = hooks.run(rounds=2 if args.quick else 5)
    table = hooks.format_table(result)
    print(table)
    return result, table


def run_memory(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    print(
        f"\nMemory: peak RSS fetching {args.memory_large:,} vs {args.memory_small:,} conversations",
        flush=True,
    )
    with fake_server(conversations=memory.CONVERSATIONS, rate_limit=10_000_000) as url:
        result = memory.run(url, small=args.memory_small, large=args.memory_large)
    table = memory.format_table(result)
    print(table)
    return result, table


def run_overhead(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    print("\nRate-limiter overhead per request (limit never reached)", flush=True)
    with fake_server(conversations=args.requests, rate_limit=10_000_000) as url:
        rows = overhead.run(url, requests=args.requests, rounds=args.overhead_rounds)
    table = overhead.format_table(rows)
    print(table)
    return rows, table


def run_ratelimit(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    points = ratelimit.grid(
        quick=args.quick,
        rates=args.rates,
        latencies=[ms / 1000 for ms in args.latencies],
        process_counts=args.process_counts,
        windows=args.windows,
    )
    seconds = sum(
        (p.windows * p.window + p.window / 2 + p.latency + 1.5) * len(args.clients) for p in points
    )
    print(
        f"\nRate limiting: {len(points)} grid points x {len(args.clients)} clients"
        f"{' (quick)' if args.quick else ''}, seed {args.seed}; about {seconds / 60:.0f} min",
        flush=True,
    )

    def progress(row: dict[str, Any]) -> None:
        where = (
            f"  {row['rate']}/s, {row['latency'] * 1000:.0f} ms, {row['processes']} process(es),"
            f" {row['client']}"
        )
        if "skipped" in row:
            print(f"{where}: not run ({row['skipped']})", flush=True)
        else:
            print(
                f"{where}: {row['utilisation']:.1%}, {row['rate_limited']} 429s, "
                f"any span {row['max_sent_any_span']}/{row['limit']}, "
                f"peak in flight {row['peak_in_flight']}",
                flush=True,
            )

    rows = ratelimit.run_grid(points, clients=args.clients, seed=args.seed, progress=progress)
    ceilings: list[dict[str, Any]] = []
    unbound: list[dict[str, Any]] = []
    long: list[dict[str, Any]] = []
    if not args.grid_only and args.long_windows and not args.quick:
        print(
            f"  long runs: {len(ratelimit.LONG_RUNS)} points x {args.long_windows} windows,"
            f" about {len(ratelimit.LONG_RUNS) * (args.long_windows * 2 + 3) / 60:.0f} min",
            flush=True,
        )
        long = ratelimit.long_runs(args.long_windows, seed=args.seed, progress=progress)
    if not args.grid_only:
        print("  ceiling: bare aiohttp, no limit, 1 and 4 processes", flush=True)
        ceilings = ratelimit.ceiling()
        print("  non-binding: limiter on / off / bare at concurrency 1, 16, 64", flush=True)
        unbound = ratelimit.non_binding(
            requests=200 if args.quick else 400, rounds=3 if args.quick else 101
        )
    table = ratelimit.format_table(rows, ceilings=ceilings, unbound=unbound, quick=args.quick)
    if long:
        table += "\n\n" + ratelimit.format_long_runs(long)
    print()
    print(table)
    return {"grid": rows, "ceiling": ceilings, "non_binding": unbound, "long": long}, table


RUNNERS = {
    "decode": run_decode,
    "e2e": run_e2e,
    "cpu": run_cpu,
    "import": run_import,
    "memory": run_memory,
    "overhead": run_overhead,
    "ratelimit": run_ratelimit,
    "hooks": run_hooks,
    "fakes": run_fakes,
}

TITLES = {
    "decode": "Decode (100-message responses)",
    "e2e": "End-to-end get_conversation",
    "cpu": "Client CPU per request and the request path's profile",
    "import": "Import time",
    "memory": "Memory (fetch_conversations)",
    "overhead": "Rate-limiter overhead",
    "ratelimit": "Rate limiting",
    "hooks": "Hooks (cost per call, no network)",
    "fakes": "Fake servers at scale (serve --conversations)",
}


def write_results(tables: dict[str, str], elapsed: float) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks all`; every figure is a ratio against a baseline",
        "measured in the same run, with fake servers in a separate process. See the module",
        "docstrings in `benchmarks/` for exact definitions.",
        "",
        "## Machine",
        "",
        *machine(),
        f"- Total run time: {elapsed / 60:.1f} min",
    ]
    for name, table in tables.items():
        lines += ["", f"## {TITLES[name]}", "", table]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"\nWrote {RESULTS}")


def update_section(name: str, table: str) -> None:
    """Replace the section of ``name`` in ``results.md`` (appended if it has none)."""
    heading = f"## {TITLES[name]}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    before, found, rest = text.partition(heading + "\n")
    after = rest[rest.find("\n## ") + 1 :] if found and "\n## " in rest else ""
    if not found:
        before = text.rstrip("\n") + "\n\n"
    section = f"{heading}\n\n{table}\n"
    RESULTS.write_text(before + section + ("\n" + after if after else ""))
    print(f"\nUpdated the {TITLES[name]!r} section of {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("benchmark", nargs="?", choices=("all", *RUNNERS), default="all")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    e2e_options = parser.add_argument_group("e2e")
    e2e_options.add_argument("--requests", type=int, default=CONVERSATIONS)
    e2e_options.add_argument(
        "--round-requests", type=int, default=400, help="e2e: each contender's per round"
    )
    e2e_options.add_argument("--rounds", type=int, default=61)
    e2e_options.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    e2e_options.add_argument(
        "--requests-c1", type=int, default=100, help="the same at concurrency 1"
    )
    cpu_options = parser.add_argument_group("cpu")
    cpu_options.add_argument("--cpu-requests", type=int, default=3000)
    cpu_options.add_argument("--cpu-rounds", type=int, default=5)
    other = parser.add_argument_group("decode, import, memory, overhead")
    other.add_argument("--repeat", type=int, default=5, help="decode: timing samples")
    other.add_argument("--import-runs", type=int, default=15)
    other.add_argument("--memory-small", type=int, default=1_000)
    other.add_argument("--memory-large", type=int, default=100_000)
    other.add_argument("--overhead-rounds", type=int, default=5)
    rl = parser.add_argument_group("ratelimit")
    rl.add_argument(
        "--quick", action="store_true", help="short windows, 2 per point (for development)"
    )
    rl.add_argument(
        "--rates", type=int, nargs="+", choices=ratelimit.RATES, default=ratelimit.RATES
    )
    rl.add_argument(
        "--latencies", type=int, nargs="+", default=[0, 200], help="server latencies, in ms"
    )
    rl.add_argument("--process-counts", type=int, nargs="+", default=list(ratelimit.PROCESS_COUNTS))
    rl.add_argument("--windows", type=int, default=None, help="windows per point")
    rl.add_argument("--clients", nargs="+", choices=ratelimit.CLIENTS, default=ratelimit.CLIENTS)
    rl.add_argument("--seed", type=int, default=None, help="seed of the window offsets")
    rl.add_argument(
        "--long-windows",
        type=int,
        default=ratelimit.LONG_WINDOWS,
        help="windows of each long run (0: none; none with --quick)",
    )
    rl.add_argument(
        "--grid-only",
        action="store_true",
        help="skip the long runs, the ceiling and the non-binding row",
    )
    args = parser.parse_args()

    print("\n".join(machine()))
    started = time.perf_counter()
    results: dict[str, object] = {}
    tables: dict[str, str] = {}
    for name, runner in RUNNERS.items():
        if args.benchmark in ("all", name):
            results[name], tables[name] = runner(args)
    if args.benchmark == "all":
        write_results(tables, time.perf_counter() - started)
    elif not args.quick:
        update_section(args.benchmark, tables[args.benchmark])
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
