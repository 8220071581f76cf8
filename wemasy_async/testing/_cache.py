"""A bounded cache of encoded responses, shared by the provider fakes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, TypeVar

__all__ = ["CACHED_ENCODINGS", "BoundedCache"]

#: Encodings a fake keeps for reuse (a long run must not keep them all).
CACHED_ENCODINGS: Final = 1024

_K = TypeVar("_K")
_V = TypeVar("_V")


class BoundedCache(OrderedDict[_K, _V]):
    """A dict that `keep` bounds to ``limit`` entries, dropping the oldest stored first.

    Args:
        limit: Entries kept.
    """

    def __init__(self, limit: int = CACHED_ENCODINGS) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: _K, value: _V) -> _V:
        """Store ``value`` under ``key`` and return it; beyond the limit, drop the oldest."""
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)
        return value
