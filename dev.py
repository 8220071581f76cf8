"""Run the project's tasks on a machine that has nothing but Python 3.10+.

    python3 dev.py demo        # the demo against the bundled fake servers
    python3 dev.py test        # the whole test suite: tests, lint, typecheck (what CI runs)
    python3 dev.py lock        # refresh uv.lock and requirements/bootstrap.txt
    python3 dev.py -s bench    # any other nox arguments are passed on as they are

Nothing is installed into the interpreter that runs this file: it may be the distribution's
own, "externally managed" one (PEP 668), where ``pip install`` is refused. Instead this
script keeps a virtual environment of its own, ``.venv-bootstrap/``, made with the standard
library's ``venv``, holding exactly the nox and uv pinned in ``requirements/bootstrap.txt``,
and runs nox from it. nox's sessions then install the project's environments from the
committed ``uv.lock``, so every machine, on any day, tests with the same versions.

Standard library only, and kept runnable by old Pythons so that they get a clear message.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements" / "bootstrap.txt"
BOOTSTRAP = ROOT / ".venv-bootstrap"
# Written last, so that an interrupted set-up is redone rather than half used.
STAMP = BOOTSTRAP / "requirements.sha256"

TASKS = {
    "demo": ["-s", "demo"],
    "test": [],  # nox's default sessions: tests, lint, typecheck
    "lock": ["-s", "lock"],
}


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036  (an old python3 gets a clear message)
        sys.stderr.write(
            f"wemasy-async needs Python 3.10 or later; this is {sys.version.split()[0]}\n"
        )
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0 if argv else 2
    task, rest = argv[0], argv[1:]
    nox_args = [*TASKS[task], *rest] if task in TASKS else argv
    python = bootstrap()
    env = dict(os.environ)
    # The pinned uv (and nox) come first on PATH, whatever else the machine has installed.
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    # uv may otherwise download a Python build it cannot find; only the installed ones count.
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.pop("VIRTUAL_ENV", None)  # an activated venv of the user's must not redirect uv
    return subprocess.call([str(python), "-m", "nox", *nox_args], cwd=ROOT, env=env)


def bootstrap() -> Path:
    """The bootstrap environment's interpreter, made (or remade) to match the requirements."""
    python = BOOTSTRAP / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    sys.stderr.write(f"dev.py: setting up {BOOTSTRAP.name}/ (nox and uv, pinned)\n")
    try:
        venv.EnvBuilder(clear=True, with_pip=True).create(BOOTSTRAP)
    except subprocess.CalledProcessError as exc:  # ensurepip failed inside the new venv
        raise SystemExit(_no_venv(exc)) from None
    if not python.exists():
        raise SystemExit(_no_venv(None))
    subprocess.check_call(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",  # the file pins the whole closure
            "--requirement",
            str(REQUIREMENTS),
        ]
    )
    STAMP.write_text(wanted + "\n")
    return python


def _no_venv(exc: BaseException | None) -> str:
    detail = f" ({exc})" if exc is not None else ""
    return (
        f"dev.py: could not make a virtual environment with {sys.executable}{detail}.\n"
        "On Debian and Ubuntu the venv module is a package of its own:"
        " apt-get install python3-venv"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
