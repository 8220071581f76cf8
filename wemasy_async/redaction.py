"""Keeping the API token out of everything an error or a traceback can show.

Two tools, used by the engine and the transport:

- :class:`Redactor` blanks one secret out of text and bytes, with the one rule of the
  package: a token of at least 16 characters is blanked wherever it occurs; a shorter one (a
  test's ``"t"``) only where it stands alone, so that ``"Not found"`` keeps its letters.
- :class:`SecretHeaders` is the request-header mapping the engine hands to the transport. It
  reads like a plain mapping (aiohttp copies it into its own headers), but its ``repr`` shows
  ``[REDACTED]`` for every value but those known to be harmless (``Accept``, ``Content-Type``,
  ``User-Agent``), hiding the token and any secret a caller's own headers carry
  (``X-Api-Key``): traceback renderers that print frame locals
  (``traceback.TracebackException(capture_locals=True)``, ``pytest --showlocals``, Sentry,
  rich) see the frames of ``send``, whose ``headers`` argument it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

__all__ = ["REDACTED", "Redactor", "SecretHeaders", "credential_of"]

REDACTED = "[REDACTED]"
"""What stands in for a secret in messages, bodies and headers."""

# A token this long cannot occur in ordinary text by accident; a shorter one is redacted only
# where it stands alone.
_DISTINCTIVE = 16
# The only request-header values a repr shows: the SDK's own, which hold no secret.
_PLAIN_HEADERS = frozenset({"accept", "content-type", "user-agent"})


class Redactor:
    """Blanks one secret out of text and bytes.

    Its ``repr`` does not show the secret, and it refuses to be pickled: nothing that holds
    one can carry the secret into a log or another process.
    """

    __slots__ = ("_bytes", "_secret", "_text")

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        if len(secret) < _DISTINCTIVE:
            alone = f"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"
            self._text = re.compile(alone)
            self._bytes = re.compile(alone.encode())

    def __repr__(self) -> str:
        return "<Redactor>"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Redactor holds a secret and cannot be pickled")

    def text(self, text: str) -> str:
        """``text`` with the secret replaced by ``[REDACTED]``."""
        secret = self._secret
        if not secret or secret not in text:
            return text
        if self._text is None:
            return text.replace(secret, REDACTED)
        return self._text.sub(REDACTED, text)

    def bytes(self, data: bytes) -> bytes:
        """``data`` with the secret (UTF-8) replaced by ``[REDACTED]``."""
        secret = self._secret.encode()
        if not secret or secret not in data:
            return data
        if self._bytes is None:
            return data.replace(secret, REDACTED.encode())
        return self._bytes.sub(REDACTED.encode(), data)


def credential_of(headers: Mapping[str, str]) -> str | None:
    """The credential of an ``Authorization`` header: what follows its scheme, or all of it."""
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, credential = value.partition(" ")
    return credential.strip() or scheme


class SecretHeaders(Mapping[str, str]):
    """Request headers whose ``repr`` hides credentials; otherwise a read-only mapping.

    Deliberately not a ``dict``: tools that walk dicts on their own (rather than calling
    ``repr``) must not find the token either.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, name: str) -> str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        shown = {
            name: value if name.lower() in _PLAIN_HEADERS else REDACTED
            for name, value in self._items.items()
        }
        return f"SecretHeaders({shown!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("request headers hold the token and cannot be pickled")

    def merged(self, extra: Mapping[str, str]) -> SecretHeaders:
        """A copy with ``extra`` added, replacing headers of the same name in any case."""
        replaced = {name.lower() for name in extra}
        kept = {k: v for k, v in self._items.items() if k.lower() not in replaced}
        return SecretHeaders({**kept, **extra})
