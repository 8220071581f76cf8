"""The package's import graph: downward through the rows CONTRIBUTING.md draws, no cycles.

Read from the source (``ast``), not by importing, so a lazy import inside a function counts
too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wemasy_async

PACKAGE = Path(wemasy_async.__file__).parent

# Top to bottom, as in CONTRIBUTING.md: a module imports from the rows below its own, and
# within its row only along ARROWS (a package's modules import each other freely). "" is
# the package's __init__; a package's name stands for every module in it.
ROWS: list[set[str]] = [
    {"cli", "__main__"},
    {"", "sync", "otel"},
    {"client"},
    {"engine", "raw"},
    {"config"},
    {"redis", "ratelimit", "schedule", "latency", "window_check", "retry", "hooks"}
    | {"request_headers", "batch", "progress"},
    {"transport", "providers", "session_settings", "logs"},
    {"exchange", "redaction"},
    {"headers", "validation", "protocols"},
    {"errors", "models", "_version"},
]
ARROWS = {
    ("__main__", "cli"),
    ("redis", "ratelimit"),
    ("redis", "schedule"),
    ("ratelimit", "schedule"),
    ("ratelimit", "latency"),
    ("ratelimit", "window_check"),
    ("headers", "validation"),
}
# The adapters' whole world: the neutral types, the HTTP values and pure helpers.
SANS_IO = {"exchange", "headers", "validation", "protocols", "errors", "models"}
# The fakes stand beside the library: they import nothing else of it, so an adapter and its
# fake cannot share a misreading of the provider's documentation.
FAKES = "testing"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (names relative to the package; the
    package itself is ``""``)."""
    names = {_module_name(path) for path in PACKAGE.rglob("*.py")}

    def resolve(dotted: str) -> str:
        return dotted.removeprefix("wemasy_async").removeprefix(".")

    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {resolve(a.name) for a in node.names if a.name.startswith("wemasy_")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wemasy_"):
                base = resolve(node.module or "")
                # `from package import module` imports the module, not just the package.
                subs = {f"{base}.{a.name}".lstrip(".") for a in node.names}
                imported |= (subs & names) or {base}
        graph[_module_name(path)] = imported - {_module_name(path)}
    return graph


GRAPH = _graph()


def _layer(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_graph_is_read() -> None:
    assert GRAPH["transport"] >= {"errors", "exchange"}
    assert "cli.export" in GRAPH["cli.commands"]


def test_there_are_no_cycles() -> None:
    path: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        assert module not in path, " -> ".join(
            f"wemasy_async.{m}".rstrip(".") for m in [*path, module]
        )
        if module in done:
            return
        path.append(module)
        for target in sorted(GRAPH[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)


def _row(module: str) -> int:
    for number, row in enumerate(ROWS):
        if module in row or _layer(module) in row - {""}:
            return number
    raise AssertionError(f"wemasy_async.{module} has no row in ROWS (and CONTRIBUTING.md)")


LIBRARY = sorted(m for m in GRAPH if _layer(m) != FAKES)


def _allowed(module: str, target: str) -> bool:
    if _layer(target) == FAKES:
        # The demo starts the fakes: the one import of them, made where the demo runs.
        return module == "cli.demo"
    if _layer(target) == _layer(module):
        return True
    below = _row(target) > _row(module)
    return below or (_layer(module), _layer(target)) in ARROWS


@pytest.mark.parametrize("module", LIBRARY)
def test_imports_go_down(module: str) -> None:
    wrong = sorted(m for m in GRAPH[module] if not _allowed(module, m))
    assert not wrong, f"wemasy_async.{module} imports {wrong}: not below it"


@pytest.mark.parametrize("module", sorted(m for m in LIBRARY if _layer(m) == "providers"))
def test_adapters_are_sans_io(module: str) -> None:
    outside = {m for m in GRAPH[module] if _layer(m) != "providers"} - SANS_IO
    assert not outside, f"wemasy_async.{module} imports {sorted(outside)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) == FAKES))
def test_the_fakes_import_nothing_else_of_the_package(module: str) -> None:
    # MockTransport is a transport, not a fake server: it returns the HTTP value types, and
    # knows nothing of any provider.
    allowed = {FAKES, "exchange"} if module == "testing._mock" else {FAKES}
    assert {_layer(m) for m in GRAPH[module]} <= allowed, module
