"""Settings of the aiohttp session a client creates: pool size, proxy, TLS, the environment.

Checked when the client is made, so a bad value never reaches the network; a session the
caller gives keeps its own settings (passing any of these with ``session=`` is an error
rather than silently ignored). Decisions, each with its reason:

- ``connection_limit`` defaults to :data:`~wemasy_async.batch.MAX_CONCURRENCY` (1,000): as
  many connections as a batch may keep in flight, since aiohttp's default of 100 would cap
  a batch that wants more. A smaller pool also bounds a self-tuning batch.
- ``proxy`` is an ``http://`` or ``https://`` URL; credentials in it
  (``http://user:pass@host:3128``) go to the proxy as ``Proxy-Authorization`` and appear in
  no repr, log record or error message (messages never quote the URL).
- ``trust_env=True`` reads the proxy for the base URL's scheme from ``$HTTPS_PROXY`` /
  ``$HTTP_PROXY`` (then ``$ALL_PROXY``; ``http://`` when the value names no scheme),
  honouring ``$NO_PROXY``, and a CA bundle from ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR``,
  once, when the client is made; an explicit ``proxy`` or ``ssl`` wins. Unlike aiohttp's own
  ``trust_env``, ``~/.netrc`` is not read: a netrc entry for the API host would replace the
  token as the request's authentication (aiohttp then refuses every request), and aiohttp
  would look the environment up again in a thread for every request.
- ``ssl`` takes an :class:`ssl.SSLContext` (e.g. ``ssl.create_default_context(cafile=...)``
  for a private CA), never ``False``: turning verification off would hand the token to
  whoever answers. A context built with verification off is still accepted, since building
  one is a deliberate act.
"""

from __future__ import annotations

import os
import ssl as ssl_module
import urllib.request

from yarl import URL

from wemasy_async.errors import InvalidRequestError
from wemasy_async.redaction import REDACTED
from wemasy_async.validation import check_bool, check_int

__all__ = ["SessionSettings", "check_session_settings", "shown_url"]

# The CA variables OpenSSL itself knows; trust_env=True loads them explicitly.
_CA_FILE = "SSL_CERT_FILE"
_CA_DIR = "SSL_CERT_DIR"


class SessionSettings:
    """What the client's own session is built with; its repr hides proxy credentials.

    Attributes:
        connection_limit: The most connections the pool holds open at once.
        proxy: The proxy to send every request through (credentials included), or ``None``.
        ssl: The TLS context, or ``True`` for aiohttp's default verification.
    """

    __slots__ = ("connection_limit", "proxy", "ssl")

    def __init__(
        self,
        *,
        connection_limit: int,
        proxy: URL | None = None,
        ssl: ssl_module.SSLContext | bool = True,
    ) -> None:
        self.connection_limit = connection_limit
        self.proxy = proxy
        self.ssl = ssl

    def __repr__(self) -> str:
        proxy = None if self.proxy is None else shown_url(self.proxy)
        return (
            f"<SessionSettings connection_limit={self.connection_limit}"
            f" proxy={proxy!r} ssl={'default' if self.ssl is True else 'context'}>"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("session settings may hold proxy credentials and cannot be pickled")


def shown_url(url: URL) -> str:
    """``url`` as it may be shown: user and password replaced by ``[REDACTED]``."""
    if url.raw_user is None and url.raw_password is None:
        return str(url)
    return str(url.with_user(None)).replace("://", f"://{REDACTED}@", 1)


def check_session_settings(
    *,
    base_url: str,
    session_given: bool,
    connection_limit: object,
    trust_env: object,
    proxy: object,
    ssl: object,
    default_limit: int,
) -> SessionSettings:
    """The checked settings of the client's own session.

    Raises:
        InvalidRequestError: A value is invalid, a variable ``trust_env`` reads is, or a
            setting is given together with a caller's session (which keeps its own).
    """
    trust = check_bool(trust_env, "trust_env")
    if session_given:
        given = [
            name
            for name, value in (
                ("connection_limit", connection_limit),
                ("proxy", proxy),
                ("ssl", ssl),
            )
            if value is not None
        ] + (["trust_env"] if trust else [])
        if given:
            raise InvalidRequestError(
                f"{', '.join(given)} configure the session the client creates; a session you"
                " give keeps its own settings: set them on it (aiohttp.TCPConnector(limit=...,"
                " ssl=...), ClientSession(proxy=..., trust_env=...))",
                argument=given[0],
            )
    limit = (
        default_limit
        if connection_limit is None
        else check_int(connection_limit, "connection_limit", minimum=1, maximum=100_000)
    )
    if proxy is not None:
        proxy_url: URL | None = _check_proxy(proxy, "proxy")
    else:
        proxy_url = _env_proxy(base_url) if trust else None
    return SessionSettings(
        connection_limit=limit, proxy=proxy_url, ssl=_check_ssl(ssl, trust=trust)
    )


def _check_proxy(value: object, argument: str) -> URL:
    # Messages never quote the value: it may hold the proxy's password.
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"{argument} must be a URL string, got {type(value).__name__}", argument=argument
        )
    if any(not c.isprintable() or c.isspace() for c in value):
        raise InvalidRequestError(
            f"{argument} must not contain spaces or control characters", argument=argument
        )
    try:
        url = URL(value)
        port = url.port
    except (ValueError, TypeError):
        raise InvalidRequestError(f"{argument} is not a valid URL", argument=argument) from None
    if url.scheme not in ("http", "https") or not url.host or not port:
        raise InvalidRequestError(
            f"{argument} must be an http:// or https:// URL with a host, e.g."
            " http://proxy.internal:3128",
            argument=argument,
        )
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise InvalidRequestError(
            f"{argument} must not have a path, a query or a fragment", argument=argument
        )
    return url


def _env_proxy(base_url: str) -> URL | None:
    """The proxy the environment names for ``base_url``, or ``None`` (also when bypassed)."""
    proxies = urllib.request.getproxies_environment()
    target = URL(base_url)
    variable, value = next(
        ((f"${k.upper()}_PROXY", proxies[k]) for k in (target.scheme, "all") if k in proxies),
        (None, None),
    )
    if value is None or variable is None:
        return None
    # NO_PROXY as urllib (and aiohttp, and requests) read it; not in typeshed's stubs.
    if urllib.request.proxy_bypass_environment(target.host or "", proxies):  # type: ignore[attr-defined]
        return None
    # "proxy.internal:3128" without a scheme is common in these variables; curl and
    # requests read it as http://.
    return _check_proxy(value if "://" in value else f"http://{value}", variable)


def _check_ssl(value: object, *, trust: bool) -> ssl_module.SSLContext | bool:
    if isinstance(value, ssl_module.SSLContext):
        return value
    if value is not None:
        raise InvalidRequestError(
            f"ssl must be an ssl.SSLContext or None, got {type(value).__name__}: certificate"
            " verification cannot be turned off with a flag (the token would go to whoever"
            " answers); for a private CA pass ssl.create_default_context(cafile=...)",
            argument="ssl",
        )
    if not trust:
        return True
    cafile, capath = os.environ.get(_CA_FILE) or None, os.environ.get(_CA_DIR) or None
    if cafile is None and capath is None:
        return True
    try:
        return ssl_module.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl_module.SSLError) as exc:
        names = " and ".join(f"${n}" for n, v in ((_CA_FILE, cafile), (_CA_DIR, capath)) if v)
        raise InvalidRequestError(
            f"trust_env=True: the CA bundle {names} names cannot be loaded"
            f" ({type(exc).__name__}: {exc.strerror or getattr(exc, 'reason', None) or '?'})",
            argument="trust_env",
        ) from None
