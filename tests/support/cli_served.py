"""A fake served in its own process for the CLI tests, which run ``main`` or the console
script with their own event loop: start it, read its URL, ask its counters, stop it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit


def serve(*extra: str, conversations: int, token: str) -> subprocess.Popen[str]:
    """Start ``python -m wemasy_async.testing serve`` with ``extra`` options."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wemasy_async.testing",
            "serve",
            "--conversations",
            str(conversations),
            "--token",
            token,
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def url(process: subprocess.Popen[str]) -> str:
    """The base URL the server prints once it listens."""
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("URL "), line
    return line.removeprefix("URL ")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def accepted(base_url: str) -> int:
    """Requests the fake has answered so far (admin paths excluded)."""
    parts = urlsplit(base_url)
    with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/__fake__/stats") as response:
        return int(json.load(response)["accepted"])


@contextmanager
def running(*extra: str, conversations: int, token: str) -> Iterator[str]:
    """A served fake for the block: its base URL; stopped at the end."""
    process = serve(*extra, conversations=conversations, token=token)
    try:
        yield url(process)
    finally:
        stop(process)


def interrupt_once_written(
    command: Sequence[str], env: Mapping[str, str], out: Path
) -> tuple[int, str]:
    """Run ``command``, press Ctrl-C (SIGINT) once ``out`` has data (or after 20 s): its
    exit status and stderr.

    A child still running 20 s after the Ctrl-C fails the test with its Python stacks (it is
    aborted with faulthandler on), so that a hang says where it hung.
    """
    env = {**env, "PYTHONFAULTHANDLER": "1"}
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
        time.sleep(0.05)
    written = out.exists() and out.stat().st_size > 0
    child.send_signal(signal.SIGINT)
    try:
        _, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        _, err = child.communicate(timeout=20)
        raise AssertionError(
            f"still running 20 s after Ctrl-C (output written before it: {written});"
            f" its stderr:\n{err}"
        ) from None
    return child.returncode, err
