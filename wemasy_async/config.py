"""``ClientConfig``: every setting of a client, checked once, immutable.

:meth:`ClientConfig.build` is the one place a client's arguments are checked, in one pass
that raises :class:`~wemasy_async.errors.InvalidRequestError` naming the first bad one,
before any I/O. A check that belongs to a value type living elsewhere stays with that type
and is called from here, where the client receives the value: the request headers
(:mod:`~wemasy_async.request_headers`), the hooks (:func:`~wemasy_async.hooks.check_hooks`),
the settings of the session the client creates (:mod:`~wemasy_async.session_settings`), and
a :class:`~wemasy_async.ratelimit.RateLimit` that contradicts the one another client already
paces the same key with (:func:`~wemasy_async.ratelimit.shared_limiter`).

The result is what the engine sends with (its ``options``) and what the client builds its
session from. :meth:`ClientConfig.replace` derives the configuration of a ``with_options``
copy, which shares the session and the limiter: it changes only the settings a copy may
change, and checks only those.

The token is held only where the engine uses it: in the request headers
(:class:`~wemasy_async.redaction.SecretHeaders`) and a
:class:`~wemasy_async.redaction.Redactor`, never as a plain attribute. So a configuration's
``repr`` and ``str`` show no secret, a traceback that prints the engine's locals (where a
configuration is ``options``) shows none either, and a configuration cannot be pickled.
"""

from __future__ import annotations

import ipaddress
import os
from enum import Enum
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
import msgspec

from wemasy_async._version import __version__
from wemasy_async.batch import MAX_CONCURRENCY
from wemasy_async.errors import InvalidRequestError
from wemasy_async.hooks import Hooks, check_hooks
from wemasy_async.providers.base import Provider
from wemasy_async.providers.registry import get_provider
from wemasy_async.ratelimit import Limiter, RateLimit, limiter_key, shared_limiter
from wemasy_async.redaction import Redactor, SecretHeaders
from wemasy_async.request_headers import check_headers, check_user_agent
from wemasy_async.retry import RetryPolicy
from wemasy_async.session_settings import SessionSettings, check_session_settings
from wemasy_async.transport import DEFAULT_MAX_RESPONSE_BYTES, Transport
from wemasy_async.validation import check_bool, check_int, is_positive_number, short_repr

__all__ = ["UNSET", "ClientConfig", "Unset"]

Setting = TypeVar("Setting", RateLimit, RetryPolicy)


class Unset(Enum):
    """The type of :data:`UNSET`: a ``with_options`` argument that was not given (``None``
    is a value there: no timeout, no hooks)."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A client's settings, checked (build one with :meth:`build`).

    Attributes:
        provider: The adapter.
        base_url: The checked base URL, without a trailing slash.
        timeout: Total seconds per attempt; ``None`` for no limit.
        retry: The retry policy; ``None`` sends every request once.
        limiter: The key's limiter, shared with every client of the same provider, base
            URL, token and store; ``None`` does not pace.
        hooks: What is told about operations, requests, responses, retries, waits and
            pauses; ``None`` for nothing, and then the engine builds no event at all.
        headers: Every request's headers: the token's ``Authorization``, ``Accept``,
            ``User-Agent`` and the caller's own.
        body_headers: The same with ``Content-Type: application/json``, for a request with
            a body. Both are made once and shared by ``with_options`` copies that add no
            headers (the transport keeps their aiohttp form by identity).
        redactor: Blanks the token out of what a server sends back.
        session: The caller's session, or ``None``.
        transport: The caller's transport, or ``None`` for the client's own aiohttp one.
        session_settings: What the client's own session is built with.
        max_response_bytes: The largest body the client's own transport reads.
    """

    provider: Provider
    base_url: str
    timeout: float | None
    retry: RetryPolicy | None
    limiter: Limiter | None
    hooks: Hooks | None
    headers: SecretHeaders
    body_headers: SecretHeaders
    redactor: Redactor
    session: aiohttp.ClientSession | None
    transport: Transport | None
    session_settings: SessionSettings
    max_response_bytes: int

    @classmethod
    def build(
        cls,
        provider: object,
        *,
        token: object,
        base_url: object,
        session: object,
        timeout: object,
        rate_limit: object,
        retry: object,
        max_response_bytes: object,
        allow_http: object,
        hooks: object,
        default_headers: object,
        user_agent: object,
        connection_limit: object,
        trust_env: object,
        proxy: object,
        ssl: object,
        transport: object,
    ) -> ClientConfig:
        """The checked configuration of :class:`~wemasy_async.Client` ``(provider, ...)``.

        The arguments are that constructor's (see its docstring for each), all given, and
        of any type: checking them is this method's work. ``token=None`` reads the
        provider's environment variable, ``base_url=None`` is the provider's documented URL.

        Raises:
            InvalidRequestError: An argument is invalid (the first one checked), as
                :class:`~wemasy_async.Client` documents; no token was given or found;
                ``rate_limit`` contradicts the one another client paces the same key with.
        """
        adapter = provider if isinstance(provider, Provider) else get_provider(provider)
        if token is None:
            token = os.environ.get(adapter.token_env)
        url = _check_base_url(
            adapter.default_base_url if base_url is None else base_url,
            check_bool(allow_http, "allow_http"),
        )
        caller_session = None if session is None else _check_session(session)
        token = _check_token(token, adapter.token_env)
        checked_hooks = check_hooks(hooks)
        caller_headers = check_headers(default_headers, "default_headers")
        agent = check_user_agent(user_agent)
        limit = _check_setting(rate_limit, RateLimit, "rate_limit")
        caller_transport = None
        if transport is not None:
            caller_transport = _check_transport(
                transport,
                session=session,
                max_response_bytes=max_response_bytes,
                connection_limit=connection_limit,
                trust_env=trust_env,
                proxy=proxy,
                ssl=ssl,
            )
        settings = check_session_settings(
            base_url=url,
            session_given=session is not None,
            connection_limit=connection_limit,
            trust_env=trust_env,
            proxy=proxy,
            ssl=ssl,
            # aiohttp's default of 100 would cap a batch that wants more in flight.
            default_limit=MAX_CONCURRENCY,
        )
        # Given with a transport it is the default (checked above), and unused.
        body_limit = (
            DEFAULT_MAX_RESPONSE_BYTES
            if caller_transport is not None
            else check_int(max_response_bytes, "max_response_bytes", minimum=1)
        )
        checked_timeout = _check_timeout(timeout)
        checked_retry = _check_setting(retry, RetryPolicy, "retry")
        sdk = f"wemasy-async/{__version__}"
        headers = SecretHeaders(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": sdk if agent is None else f"{sdk} {agent}",
            }
        ).merged(caller_headers)
        return cls(
            provider=adapter,
            base_url=url,
            timeout=checked_timeout,
            retry=checked_retry,
            limiter=(
                None
                if limit is None
                else shared_limiter(limiter_key(adapter.name, url, token), limit)
            ),
            hooks=checked_hooks,
            headers=headers,
            body_headers=_with_json_body(headers),
            redactor=Redactor(token),
            session=caller_session,
            transport=caller_transport,
            session_settings=settings,
            max_response_bytes=body_limit,
        )

    def replace(
        self,
        *,
        timeout: object = UNSET,
        retry: object = UNSET,
        hooks: object = UNSET,
        extra_headers: object = None,
    ) -> ClientConfig:
        """This configuration with other settings of those a ``with_options`` copy may
        change (it shares the session and the limiter); only what is given is checked.

        ``hooks`` replaces the hooks; ``extra_headers`` are added to the headers, replacing
        those of the same name. Nothing given: this configuration itself.

        Raises:
            InvalidRequestError: An argument is invalid.
        """
        changes: dict[str, Any] = {}
        if not isinstance(timeout, Unset):
            changes["timeout"] = _check_timeout(timeout)
        if not isinstance(retry, Unset):
            changes["retry"] = _check_setting(retry, RetryPolicy, "retry")
        if not isinstance(hooks, Unset):
            changes["hooks"] = check_hooks(hooks)
        extra = check_headers(extra_headers, "extra_headers")
        if extra:
            headers = self.headers.merged(extra)
            changes.update(headers=headers, body_headers=_with_json_body(headers))
        return msgspec.structs.replace(self, **changes) if changes else self

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a client configuration holds the token and cannot be pickled")


def _with_json_body(headers: SecretHeaders) -> SecretHeaders:
    # A JSON body is always declared as one, whatever the caller's headers say.
    return headers.merged({"Content-Type": "application/json"})


def _check_session(session: object) -> aiohttp.ClientSession:
    if not isinstance(session, aiohttp.ClientSession):
        raise InvalidRequestError(
            f"session must be an aiohttp.ClientSession, got {type(session).__name__}",
            argument="session",
        )
    if session.auth is not None:
        # aiohttp refuses to send both its auth= and our Authorization header, with a bare
        # ValueError on every request; the token is how the client authenticates.
        raise InvalidRequestError(
            "the session was created with auth=... (HTTP basic auth), which conflicts with"
            " the client's token (its 'Authorization: Bearer' header); give the client a"
            " session without auth=",
            argument="session",
        )
    return session


def _check_token(token: object, env: str) -> str:
    # The value itself never goes into the message: it may be a real secret, mistyped.
    if token is None:
        raise InvalidRequestError(f"no API token: pass token=... or set ${env}", argument="token")
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise InvalidRequestError(
            "token must be a non-empty string of printable ASCII characters", argument="token"
        )
    if token != token.strip() or " " in token:
        raise InvalidRequestError("token must not contain spaces", argument="token")
    return token


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object, allow_http: bool = False) -> str:
    if not isinstance(base_url, str):
        raise InvalidRequestError(
            f"base_url must be a string, got {type(base_url).__name__}", argument="base_url"
        )
    bad = next((c for c in base_url if not c.isprintable() or c.isspace()), None)
    if bad is not None:
        # urlsplit and yarl silently drop tabs and newlines, so "https://api.example\n.evil"
        # would reach another host than the one shown; spaces and control characters have
        # no place in a URL anyway (percent-encode them). The URL is not echoed: it may
        # hold credentials.
        raise InvalidRequestError(
            f"base_url must not contain spaces or control characters, found {bad!r} at"
            f" position {base_url.index(bad)}",
            argument="base_url",
        )
    try:
        base_url.encode("utf-8")
        parts = urlsplit(base_url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise InvalidRequestError(
            f"base_url is not a valid URL: {exc}", argument="base_url"
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise InvalidRequestError(
            "base_url must be an http:// or https:// URL with a host (and a port from 1)",
            argument="base_url",
        )
    if "?" in base_url or "#" in base_url or parts.username or parts.password:
        # Credentials in a URL end up in logs and error messages; the token has its own place.
        # An empty "?" or "#" counts too: request paths would be appended after it.
        raise InvalidRequestError(
            "base_url must not contain credentials, a query or a fragment", argument="base_url"
        )
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        # yarl resolves them away, so requests would go elsewhere than base_url says.
        raise InvalidRequestError(
            "base_url must not contain '.' or '..' path segments", argument="base_url"
        )
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise InvalidRequestError(
            f"base_url uses plain http:// on a non-loopback host ({parts.hostname}), which"
            " would send the token in clear text; use https:// or pass allow_http=True",
            argument="base_url",
        )
    return base_url.rstrip("/")


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    # is_positive_number, not math.isfinite: that raises OverflowError for a huge int.
    if not is_positive_number(timeout):
        raise InvalidRequestError(
            f"timeout must be a positive number of seconds or None, got {short_repr(timeout)}",
            argument="timeout",
        )
    return float(timeout)  # type: ignore[arg-type]  # a real number, checked above


def _check_setting(value: object, kind: type[Setting], argument: str) -> Setting | None:
    """``True`` -> the defaults, ``False`` -> off, an instance of ``kind`` -> itself."""
    if value is True:
        return kind()
    if value is False:
        return None
    if isinstance(value, kind):
        return value
    raise InvalidRequestError(
        f"{argument} must be a {kind.__name__}, True or False, got {type(value).__name__}",
        argument=argument,
    )


def _check_transport(transport: object, *, session: object, **settings: object) -> Transport:
    """Refuse a ``transport`` that is not one, or one given with what it replaces."""
    if not (
        callable(getattr(transport, "send", None)) and callable(getattr(transport, "aclose", None))
    ):
        raise InvalidRequestError(
            "transport must be a Transport (async send and aclose methods),"
            f" got {type(transport).__name__}",
            argument="transport",
        )
    if session is not None:
        raise InvalidRequestError(
            "pass session= or transport=, not both: a transport sends on its own",
            argument="transport",
        )
    defaults: dict[str, object] = {
        "max_response_bytes": DEFAULT_MAX_RESPONSE_BYTES,
        "trust_env": False,
    }
    given = [name for name, value in settings.items() if value != defaults.get(name)]
    if given:
        raise InvalidRequestError(
            f"{', '.join(given)} configure the client's own aiohttp transport; a transport"
            " you give sends as it was built",
            argument=given[0],
        )
    return cast("Transport", transport)  # duck-typed, as a Protocol is: checked above
