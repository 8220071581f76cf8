"""Run a fake provider server in its own process.

``python -m wemasy_async.testing serve [--provider wemasy] [--host 127.0.0.1] [--port 0]
[--seed 0] [--conversations N] [--rate-limit N] [--window S] [--window-offset S]
[--token T] [--latency S] [--fault-rate P [--fault-seed N] [--fault-kinds K,K,...]]
[--request-log N]``

Prints exactly one line, ``URL <base url>``, to stdout once the server is listening, then
serves until SIGTERM or SIGINT and exits 0 after a clean shutdown. ``--fault-rate`` breaks
that share of requests at random (`FakeServer.inject_faults`; ``--fault-kinds`` picks the
kinds, all of ``FAULT_KINDS`` by default). ``GET <origin>/__fake__/stats`` returns the
counters. The request log is off unless ``--request-log N`` keeps the last ``N`` requests;
``GET <origin>/__fake__/requests`` then lists them (method, raw path, status, arrival time
on the server's clock, connection number; never headers, queries or bodies).

The fakes generate their conversations on demand, so any ``--conversations`` starts at once
in bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

from wemasy_async.testing._server import FAULT_KINDS

#: Provider name -> "module:class". Provider fakes accept the keyword arguments below.
PROVIDERS: dict[str, str] = {
    "wemasy": "wemasy_async.testing.wemasy:FakeWemasy",
    "siteassist": "wemasy_async.testing.siteassist:FakeSiteAssist",
    "loop": "wemasy_async.testing.loop:FakeLoop",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wemasy_async.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a fake provider server")
    serve.add_argument("--provider", choices=sorted(PROVIDERS), default="wemasy")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--conversations", type=int, default=200)
    serve.add_argument(
        "--rate-limit", type=int, default=100_000, help="requests per window; 0 disables"
    )
    serve.add_argument("--window", type=float, default=60.0, help="window length in seconds")
    serve.add_argument(
        "--window-offset", type=float, default=0.0, help="shift of the windows' alignment, s"
    )
    serve.add_argument("--token", default=None, help="required bearer token (default: any)")
    serve.add_argument(
        "--latency", type=float, default=0.0, help="seconds each admitted request waits"
    )
    serve.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of requests to break (0 to 1)"
    )
    serve.add_argument("--fault-seed", type=int, default=None, help="seed of the fault draws")
    serve.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help="comma-separated fault kinds to draw from (default: all)",
    )
    serve.add_argument(
        "--request-log",
        type=_count,
        default=0,
        help="keep the last N requests, listed on GET /__fake__/requests (default 0: off)",
    )
    return parser


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


async def _serve(args: argparse.Namespace) -> None:
    module_name, _, class_name = PROVIDERS[args.provider].partition(":")
    server_class: Any = getattr(importlib.import_module(module_name), class_name)
    server = server_class(
        seed=args.seed,
        conversations=args.conversations,
        rate_limit=args.rate_limit if args.rate_limit > 0 else None,
        window=args.window,
        window_offset=args.window_offset,
        token=args.token,
        host=args.host,
        port=args.port,
        request_log=args.request_log,
        latency=args.latency,
    )
    if args.fault_rate > 0:
        server.inject_faults(args.fault_rate, args.fault_kinds.split(","), seed=args.fault_seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Windows has no add_signal_handler; Ctrl+C then surfaces as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        sys.stdout.write(f"URL {server.url}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
