"""Bearer-token authentication, as the fakes check it."""

from __future__ import annotations

__all__ = ["bearer_accepted"]


def bearer_accepted(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value passes.

    It must be ``Bearer <credentials>`` (scheme case-insensitive, credentials non-empty
    after trimming); with ``token`` None any credentials pass, else they must equal it.
    """
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return False
    return token is None or credentials == token
