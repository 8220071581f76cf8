"""The package's public surface: ``__all__``, ``py.typed`` and a cheap import."""

from __future__ import annotations

import importlib
import inspect
import json
import pathlib
import subprocess
import sys

import pytest

import wemasy_async

PUBLIC_MODULES = [
    "wemasy_async.errors",
    "wemasy_async.models",
    "wemasy_async.protocols",
    "wemasy_async.client",
    "wemasy_async.headers",
    "wemasy_async.hooks",
    "wemasy_async.raw",
]


def test_every_name_in_all_resolves() -> None:
    assert len(wemasy_async.__all__) == len(set(wemasy_async.__all__))
    for name in wemasy_async.__all__:
        assert hasattr(wemasy_async, name), name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from wemasy_async import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(wemasy_async.__all__)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_module_exports_are_reexported(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            continue  # helpers such as status_error stay in their module
        assert name in wemasy_async.__all__, f"{module_name}.{name} is not exported"
        assert getattr(wemasy_async, name) is obj


def test_every_error_and_model_class_is_exported() -> None:
    import wemasy_async.errors
    import wemasy_async.models

    for module in (wemasy_async.errors, wemasy_async.models):
        classes = [n for n in module.__all__ if inspect.isclass(getattr(module, n))]
        assert classes
        for name in classes:
            assert name in wemasy_async.__all__
            assert getattr(wemasy_async, name) is getattr(module, name)
    # Role is a type alias, not a class, and exported all the same.
    assert "Role" in wemasy_async.__all__


def test_exported_exception_classes_are_the_whole_error_tree() -> None:
    exported = {
        getattr(wemasy_async, n)
        for n in wemasy_async.__all__
        if inspect.isclass(getattr(wemasy_async, n))
        and issubclass(getattr(wemasy_async, n), BaseException)
    }
    assert all(issubclass(cls, wemasy_async.WemasyAsyncError) for cls in exported)
    tree = {
        getattr(wemasy_async.errors, n)
        for n in wemasy_async.errors.__all__
        if inspect.isclass(getattr(wemasy_async.errors, n))
    }
    assert exported == tree


def test_http_values_are_still_where_adapters_found_them() -> None:
    import wemasy_async.exchange
    import wemasy_async.providers
    import wemasy_async.providers.base

    for name in ("Request", "Response"):
        moved = getattr(wemasy_async.exchange, name)
        assert getattr(wemasy_async.providers.base, name) is moved
        assert getattr(wemasy_async.providers, name) is moved
        assert name in wemasy_async.providers.base.__all__


def test_version_is_a_string() -> None:
    assert isinstance(wemasy_async.__version__, str)
    assert wemasy_async.__version__[0].isdigit()


def test_py_typed_ships() -> None:
    package_dir = pathlib.Path(wemasy_async.__file__).parent
    assert (package_dir / "py.typed").is_file()


def test_import_is_cheap() -> None:
    code = "import json, sys\nimport wemasy_async\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(json.loads(result.stdout))
    assert "wemasy_async" in modules
    for unwanted in (
        "aiohttp.web",
        "wemasy_async.testing",
        "wemasy_async.cli",
        "wemasy_async.providers.wemasy",
    ):
        assert unwanted not in modules, f"import wemasy_async imported {unwanted}"
    assert not any(m.startswith("aiohttp.web") for m in modules)
    assert not any(m.startswith("wemasy_async.testing") for m in modules)
