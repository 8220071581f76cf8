"""Developer tasks. ``python3 -m nox`` runs the default sessions: tests, lint, typecheck."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# uv makes fresh environments in seconds; plain virtualenv still works where uv is missing.
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = None  # the interpreter nox runs on; CI pins nothing else


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (Redis tests start their own redis-server)."""
    session.install("-e", ".[test,redis]")
    session.run("pytest", *session.posargs)


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def compat(session: nox.Session) -> None:
    """Run the tests on every supported Python that is installed (not part of the default)."""
    session.install("-e", ".[test,redis]")
    session.run("pytest", "-q", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the package (and the tests' typing examples) with mypy --strict."""
    session.install("-e", ".[test,redis]", "mypy")
    session.run("mypy", "--strict", "wemasy_async", "tests/typing")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run the offline demo against the bundled fake servers."""
    session.install("-e", ".")
    session.run("wemasy-async", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print their table (needs redis-server on PATH)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Print the soak figures: 20,000 fetches per provider through 10% random faults."""
    session.install("-e", ".[test]")
    session.run("python", "tests/soak.py", *session.posargs)
