"""Provider names to adapters.

Built-in adapters are imported only when first asked for, so ``import wemasy_async`` stays
cheap however many providers exist.
"""

from __future__ import annotations

import importlib

from wemasy_async.errors import InvalidRequestError
from wemasy_async.providers.base import Provider

__all__ = ["get_provider", "provider_names"]

_BUILTIN: dict[str, str] = {
    "wemasy": "wemasy_async.providers.wemasy:WemasyProvider",
}


def provider_names() -> list[str]:
    """Return the names ``Client`` accepts, sorted."""
    return sorted(_BUILTIN)


def get_provider(name: object) -> Provider:
    """Return a new adapter for the provider called ``name``.

    Raises:
        InvalidRequestError: No provider has that name; the message lists the known ones.
    """
    target = _BUILTIN.get(name) if isinstance(name, str) else None
    if target is None:
        known = ", ".join(repr(n) for n in provider_names())
        raise InvalidRequestError(
            f"unknown provider {name!r}; known providers: {known}", argument="provider"
        )
    module_name, _, class_name = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls()
