"""Developer tasks, run through ``python3 dev.py`` (which brings the pinned nox and uv).

``python3 dev.py test`` runs the default sessions: tests, lint, typecheck. Every session but
``lowest`` and ``newest`` installs exactly what ``uv.lock`` pins, so CI on any day tests with
the versions that were tested when the lock was written; ``python3 dev.py lock`` refreshes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = False

# uv may otherwise download a Python build it cannot find; only the installed ones count.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
"""The Pythons the package supports (``requires-python`` and the classifiers say the same)."""

TEST_EXTRAS = ("test", "redis", "otel")


def _sync(
    session: nox.Session,
    *,
    extras: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    into: str | None = None,
    compile_bytecode: bool = False,
) -> None:
    """Install the project (editable) and exactly the locked versions of what it needs.

    Into the session's environment, or the one at ``into``; ``compile_bytecode`` for the
    environments that run the suite.
    """
    args = ["uv", "sync", "--frozen", "--no-default-groups"]
    if compile_bytecode:
        # Bytecode compiled at install: the suite starts many Python processes, and where
        # PYTHONDONTWRITEBYTECODE is set (as on our machines) each would compile aiohttp again.
        args.append("--compile-bytecode")
    args += [f"--extra={extra}" for extra in extras]
    args += [f"--group={group}" for group in groups]
    # uv sync installs into the project's environment: point it at the session's.
    location = into if into is not None else session.virtualenv.location
    session.run_install(*args, env={"UV_PROJECT_ENVIRONMENT": location})


def _pytest_args(session: nox.Session) -> list[str]:
    # Many tests wait on timers and sockets rather than the CPU, so twice as many workers as
    # cores finish sooner (measured on 2 cores: 114 s with 2 workers, 89 s with 4). Work
    # stealing keeps the long soak tests from ending up last on one worker.
    workers = min(16, 2 * (os.cpu_count() or 1))
    return ["-n", str(workers), "--dist", "worksteal", *session.posargs]


@nox.session(python=None)
def tests(session: nox.Session) -> None:
    """Run the whole test suite in parallel (Redis tests start their own redis-server)."""
    _sync(session, extras=TEST_EXTRAS, compile_bytecode=True)
    _run_pytest(session, "pytest")


def _run_pytest(session: nox.Session, pytest: str) -> None:
    # Where PYTHONDONTWRITEBYTECODE is set (as on our machines), every xdist worker, and
    # every Python process a test starts, compiles and assertion-rewrites the suite afresh:
    # collection took 7.8 s per worker instead of 2.1 s. Allow the caches, and fill them
    # once before the workers start.
    env: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": None}
    session.run(pytest, "--collect-only", "-q", "-p", "no:xdist", env=env, silent=True)
    session.run(pytest, *_pytest_args(session), env=env)


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """Check style and formatting with the locked ruff."""
    _sync(session, groups=("lint",))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """Type-check the package (and the tests' typing examples) with the locked mypy --strict."""
    _sync(session, extras=TEST_EXTRAS, groups=("typecheck",))
    session.run("mypy", "--strict", "wemasy_async", "tests/typing")


@nox.session(python=None)
def demo(session: nox.Session) -> None:
    """Run the offline demo against the bundled fake servers."""
    _sync(session)
    session.run("wemasy-async", "demo", *session.posargs)


@nox.session(python=None)
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print their table (needs redis-server on PATH)."""
    _sync(session, extras=("bench", "otel"))
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=None)
def soak(session: nox.Session) -> None:
    """Print the soak figures: 20,000 fetches per provider through 10% random faults."""
    _sync(session, extras=("test",))
    session.run("python", "-m", "tests.support.soak", *session.posargs)


@nox.session(python=None, venv_backend="none")
def compat(session: nox.Session) -> None:
    """Run the tests, from the lock, on every supported Python that is installed here.

    Looks for ``python3.X`` on PATH, then in pyenv's and the system's usual places; a version
    that is not installed is reported and skipped, and at least one must be found.
    """
    ran = []
    for version in SUPPORTED:
        interpreter = _find_python(version)
        if interpreter is None:
            session.log(f"Python {version}: not installed here, skipped")
            continue
        env_dir = Path(".nox", f"compat-{version}").resolve()
        session.run(
            "uv", "venv", "--quiet", "--allow-existing", f"--python={interpreter}", str(env_dir)
        )
        _sync(session, extras=TEST_EXTRAS, into=str(env_dir), compile_bytecode=True)
        _run_pytest(session, str(env_dir / "bin" / "pytest"))
        ran.append(version)
    if not ran:
        session.error(f"none of Python {', '.join(SUPPORTED)} is installed here")
    session.log(f"tested on Python {', '.join(ran)}")


def _find_python(version: str) -> str | None:
    """An interpreter of ``version`` that really runs (pyenv's shims exist for every name)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions")
    candidates += sorted(str(p) for p in pyenv.glob(f"{version}.*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in candidates:
        if candidate is None or not Path(candidate).exists():
            continue
        found = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip() == version:
            return candidate
    return None


@nox.session(python=None)
def lowest(session: nox.Session) -> None:
    """The tests with the lowest versions ``pyproject.toml`` allows (proves its lower bounds).

    Not from the lock: uv resolves every direct dependency, and each test tool, to the lowest
    version its bound admits.
    """
    session.install("--resolution=lowest-direct", "-e", f".[{','.join(TEST_EXTRAS)}]")
    session.run("uv", "pip", "list", silent=False)
    _run_pytest(session, "pytest")


@nox.session(python=None)
def newest(session: nox.Session) -> None:
    """The tests with the newest versions released today (what a new user installs)."""
    session.install("--upgrade", "--resolution=highest", "-e", f".[{','.join(TEST_EXTRAS)}]")
    session.run("uv", "pip", "list", silent=False)
    _run_pytest(session, "pytest")


@nox.session(python=None, venv_backend="none")
def lock(session: nox.Session) -> None:
    """Refresh uv.lock and the bootstrap pins to today's newest versions within the bounds."""
    session.run("uv", "lock", "--upgrade")
    session.run(
        "uv",
        "pip",
        "compile",
        "--upgrade",
        "--universal",
        "--python-version=3.10",
        "--quiet",
        "requirements/bootstrap.in",
        "--output-file=requirements/bootstrap.txt",
    )
    session.log("now run `python3 dev.py test` with the new pins, and commit both files")
