"""The package's import graph: downward, without cycles, sans-I/O where it says so.

Read from the source (``ast``), not by importing, so a lazy import inside a function counts
too. CONTRIBUTING.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wemasy_async

PACKAGE = Path(wemasy_async.__file__).parent

# The adapters' whole world: the neutral types, the HTTP values and pure helpers.
SANS_IO = {"errors", "models", "protocols", "exchange", "headers", "validation"}
# What the library proper never reaches for: its command line and its fakes sit on top.
ON_TOP = ("cli", "testing")


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


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("providers.")))
def test_adapters_are_sans_io(module: str) -> None:
    outside = {m for m in GRAPH[module] if _layer(m) != "providers"} - SANS_IO
    assert not outside, f"{module} imports {sorted(outside)}"


def test_http_values_and_transport_sit_below_the_providers() -> None:
    assert GRAPH["exchange"] == set()
    assert not {m for m in GRAPH["transport"] if _layer(m) == "providers"}


# __main__ is ``python -m wemasy_async``: the command line by definition.
@pytest.mark.parametrize(
    "module", sorted(m for m in GRAPH if _layer(m) not in ON_TOP and m != "__main__")
)
def test_the_library_never_imports_its_cli_or_fakes(module: str) -> None:
    assert not {m for m in GRAPH[module] if _layer(m) in ON_TOP}, module
