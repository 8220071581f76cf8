"""The caller's own request headers (``default_headers``, ``extra_headers``, ``user_agent``).

Checked when the client (or a ``with_options`` copy) is made, so a bad header never reaches
the network. The headers the client must control stay its own: ``Authorization`` (the
token), and ``Host``, ``Content-Length`` and ``Transfer-Encoding`` (aiohttp derives them
from the URL and the body; another value would send a request that lies about itself). A
value with CR or LF would split the header into two, or into a second request, so no
control character is accepted (tab excepted, as RFC 9110 allows it). Messages name the
header, never its value: it may be a secret (an ``X-Api-Key``), and
:class:`~wemasy_async.redaction.SecretHeaders` likewise shows only the values it knows
to be harmless.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from wemasy_async.errors import InvalidRequestError

__all__ = ["PROTECTED_HEADERS", "check_headers", "check_user_agent"]

PROTECTED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})
"""Header names (lower case) a caller may not set: the client owns them."""

# RFC 9110 field-name: a token of tchar.
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII and obs-text, space and tab; no other control character, no DEL.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_headers(headers: object, argument: str) -> dict[str, str]:
    """``headers`` as a plain dict of caller headers (``None`` gives an empty one).

    Raises:
        InvalidRequestError: Not a mapping of strings to strings, a name that is not an
            HTTP token, a header the client owns, a name given twice (in any case), or a
            value with a control character (CR, LF, NUL, ...).
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidRequestError(
            f"{argument} must be a mapping of header names to values, got {type(headers).__name__}",
            argument=argument,
        )
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            shown = repr(name) if isinstance(name, str) and len(name) <= 60 else "a name"
            raise InvalidRequestError(
                f"{argument} has {shown}, which is not a valid header name",
                argument=argument,
            )
        lower = name.lower()
        if lower in PROTECTED_HEADERS:
            raise InvalidRequestError(
                f"{argument} may not set {name!r}: the client sets it itself"
                + (" (pass token=... instead)" if lower == "authorization" else ""),
                argument=argument,
            )
        if lower in seen:
            raise InvalidRequestError(
                f"{argument} sets {name!r} twice (header names ignore case)", argument=argument
            )
        seen.add(lower)
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"{argument}[{name!r}] must be a string, got {type(value).__name__}",
                argument=argument,
            )
        if _BAD_VALUE.search(value):
            raise InvalidRequestError(
                f"{argument}[{name!r}] must not contain CR, LF or other control characters",
                argument=argument,
            )
        checked[name] = value
    return checked


def check_user_agent(suffix: object) -> str | None:
    """The user-agent suffix of a library embedding the SDK (``"mylib/2.1"``), or ``None``.

    Raises:
        InvalidRequestError: Not a non-empty string of printable ASCII.
    """
    if suffix is None:
        return None
    if (
        not isinstance(suffix, str)
        or not suffix.strip()
        or not suffix.isascii()
        or not suffix.isprintable()
    ):
        raise InvalidRequestError(
            "user_agent must be a non-empty string of printable ASCII characters"
            " (no CR or LF), e.g. 'mylib/2.1'",
            argument="user_agent",
        )
    return suffix.strip()
