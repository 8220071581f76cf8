"""Import time: ``python -c "import wemasy_async"`` vs ``python -c "import aiohttp"``.

Whole processes, so interpreter start-up is included in both (it is what a CLI user waits
for). The commands run alternately (``pass``, aiohttp, wemasy_async, ...) ``runs`` times
each after one untimed warm-up round (which fills the OS page cache and writes any missing
``.pyc`` files); the figure is the median wall time per command. ``python -c pass`` is
reported so the import cost proper (time minus bare start-up) can be read off too, and
``import aiohttp, msgspec, anyio`` (our runtime dependencies, the floor of our stack) so the
package's own share can be told from its dependencies'.

Each process's CPU time (user + system, from ``getrusage(RUSAGE_CHILDREN)``) is reported
too: on a machine shared with other work, waiting for a core inflates wall time but not CPU
time.

Target (issue 13): ``import wemasy_async`` <= 1.1x ``import aiohttp``.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

COMMANDS: dict[str, str] = {
    "python": "pass",
    "aiohttp": "import aiohttp",
    "dependencies": "import aiohttp, msgspec, anyio",
    "wemasy_async": "import wemasy_async",
}
TARGET = 1.1


# Without PYTHONDONTWRITEBYTECODE, so that the warm-up round can write the .pyc files.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _once(code: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one process running ``code``."""
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_ENV)
    return time.perf_counter() - started, _children_cpu() - cpu


def run(runs: int = 15) -> dict[str, Any]:
    """Median seconds per command, and the ratio wemasy_async / aiohttp."""
    for code in COMMANDS.values():
        _once(code)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, code in COMMANDS.items():
            wall, used = _once(code)
            times[name].append(wall)
            cpu[name].append(used)
    median = {name: statistics.median(values) for name, values in times.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    base = median["python"]
    return {
        "runs": runs,
        "median_ms": {name: value * 1000 for name, value in median.items()},
        "median_cpu_ms": {name: value * 1000 for name, value in median_cpu.items()},
        "cpu_ratio": median_cpu["wemasy_async"] / median_cpu["aiohttp"],
        "ratio": median["wemasy_async"] / median["aiohttp"],
        "import_only_ratio": (median["wemasy_async"] - base) / (median["aiohttp"] - base),
        "vs_dependencies": median["wemasy_async"] / median["dependencies"],
        "modules": _modules(),
    }


def _modules() -> dict[str, int]:
    """How many modules each import loads (beyond bare start-up)."""
    counts = {}
    for name in ("aiohttp", "dependencies", "wemasy_async"):
        code = (
            "import sys; before = len(sys.modules); "
            f"{COMMANDS[name]}; print(len(sys.modules) - before)"
        )
        output = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, env=_ENV
        )
        counts[name] = int(output.stdout)
    return counts


def format_table(result: dict[str, Any]) -> str:
    ms = result["median_ms"]
    cpu = result["median_cpu_ms"]
    mark = "(met)" if result["ratio"] <= TARGET else "(MISSED)"
    return "\n".join(
        [
            "| process | median wall time | median CPU time | modules imported |",
            "|---|---:|---:|---:|",
            f"| `python -c pass` | {ms['python']:.1f} ms | {cpu['python']:.1f} ms | - |",
            *(
                f'| `python -c "{COMMANDS[name]}"` | {ms[name]:.1f} ms | {cpu[name]:.1f} ms '
                f"| {result['modules'][name]} |"
                for name in ("aiohttp", "dependencies", "wemasy_async")
            ),
            "",
            f"wemasy_async / aiohttp, whole process: **{result['ratio']:.2f}x** {mark} "
            f"(target <= {TARGET}x); import only (start-up subtracted): "
            f"{result['import_only_ratio']:.2f}x; wemasy_async / its dependencies: "
            f"{result['vs_dependencies']:.2f}x; CPU time, wemasy_async / aiohttp: "
            f"{result['cpu_ratio']:.2f}x. Median of {result['runs']} alternating runs.",
        ]
    )


if __name__ == "__main__":
    print(format_table(run()))
