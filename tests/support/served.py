"""``python -m wemasy_async.testing serve`` in a subprocess, for the tests of that command."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def served(*args: str, prefix: str = "") -> AsyncIterator[str]:
    """Run ``serve *args`` and yield the base URL it prints (ending in ``prefix``).

    On exit the server is terminated; it must have printed exactly that one line and (off
    Windows, where terminate is a kill) exit cleanly.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wemasy_async.testing",
        "serve",
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        match = re.fullmatch(rf"URL (http://127\.0\.0\.1:\d+{re.escape(prefix)})\n", line)
        assert match, line
        yield match.group(1)
    finally:
        if process.returncode is None:
            process.terminate()
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert stdout == b"", "exactly one line is printed"
    if sys.platform != "win32":
        assert process.returncode == 0, stderr.decode()
