"""Run a fake provider server in a separate OS process, so it does not share our event loop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fake_server(provider: str = "wemasy", **options: object) -> Iterator[str]:
    """Start ``python -m wemasy_async.testing serve`` and yield its base URL.

    Keyword options become command-line flags (``rate_limit=5`` -> ``--rate-limit 5``).
    The process is terminated, and waited for, on exit.
    """
    command = [sys.executable, "-m", "wemasy_async.testing", "serve", "--provider", provider]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    with server_process(command) as url:
        yield url


@contextmanager
def server_process(command: list[str]) -> Iterator[str]:
    """Run ``command``, a server that prints ``URL <base url>`` first; yield that URL.

    The process is terminated, and waited for, on exit.
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("URL "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.removeprefix("URL ")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
