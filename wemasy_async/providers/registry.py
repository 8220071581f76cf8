"""Provider names to adapters: the built-ins, then third parties' entry points.

A third-party package makes ``Client("acme", ...)`` work by declaring an entry point in the
group ``wemasy_async.providers`` whose name is the provider name and whose object is a
:class:`~wemasy_async.providers.base.Provider` subclass (or any callable returning a
``Provider`` instance)::

    [project.entry-points."wemasy_async.providers"]
    acme = "acme_wemasy.provider:AcmeProvider"

Built-in adapters are imported only when first asked for, and entry points are read only
when a name is not built in, so ``import wemasy_async`` stays cheap. A built-in name cannot be
taken over by an entry point.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from wemasy_async.errors import InvalidRequestError
from wemasy_async.providers.base import Provider

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUP", "get_provider", "provider_names"]

ENTRY_POINT_GROUP = "wemasy_async.providers"

_BUILTIN: dict[str, str] = {
    "wemasy": "wemasy_async.providers.wemasy:WemasyProvider",
    "siteassist": "wemasy_async.providers.siteassist:SiteAssistProvider",
    "loop": "wemasy_async.providers.loop:LoopProvider",
}


def _entry_points() -> dict[str, EntryPoint]:
    # Imported here: importlib.metadata (and the zipfile/csv it pulls in) costs import time
    # that only third-party provider names need.
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name in _BUILTIN:
        found.pop(name, None)
    return found


def provider_names() -> list[str]:
    """Return the names ``Client`` accepts, built-in and installed, sorted."""
    return sorted({*_BUILTIN, *_entry_points()})


def get_provider(name: object) -> Provider:
    """Return a new adapter for the provider called ``name``.

    Raises:
        InvalidRequestError: No provider has that name (the message lists the known ones),
            or an installed entry point does not load or does not give a ``Provider``.
    """
    if not isinstance(name, str):
        raise InvalidRequestError(
            f"provider must be a name or a Provider instance, got {type(name).__name__}",
            argument="provider",
        )
    target = _BUILTIN.get(name)
    if target is not None:
        module_name, _, class_name = target.partition(":")
        builtin: type[Provider] = getattr(importlib.import_module(module_name), class_name)
        return builtin()
    entry_point = _entry_points().get(name)
    if entry_point is None:
        known = ", ".join(repr(n) for n in provider_names())
        raise InvalidRequestError(
            f"unknown provider {name!r}; known providers: {known}", argument="provider"
        )
    try:
        provider = entry_point.load()()
    except Exception as exc:
        # A broken plug-in is the user's configuration problem: say which, chain the cause.
        raise InvalidRequestError(
            f"provider {name!r} ({entry_point.value}) failed to load: {exc}",
            argument="provider",
        ) from exc
    if not isinstance(provider, Provider):
        raise InvalidRequestError(
            f"provider {name!r} ({entry_point.value}) is not a wemasy_async Provider",
            argument="provider",
        )
    return provider
