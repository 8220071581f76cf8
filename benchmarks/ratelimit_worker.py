"""One process of the multi-process rate-limit scenarios (see :mod:`benchmarks.ratelimit`).

Protocol, one JSON document per line: the parent writes a ``LoadSpec`` to stdin; the worker
answers ``READY`` once everything is imported; the parent writes ``{"start_at": ...,
"deadline_at": ...}`` (wall clock); the worker runs the load and prints its ``Load`` as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import anyio

from benchmarks.ratelimit import LoadSpec, run_load


def main() -> None:
    spec = LoadSpec(**json.loads(sys.stdin.readline()))
    if spec.redis_url is not None:
        import wemasy_async.redis  # noqa: F401 - import before READY, not during the run
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    timing = json.loads(sys.stdin.readline())
    load = anyio.run(run_load, spec, timing["start_at"], timing["deadline_at"])
    sys.stdout.write(json.dumps(asdict(load)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
