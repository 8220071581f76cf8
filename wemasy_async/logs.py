"""The SDK's logging: what each level says, and the ``WEMASY_ASYNC_LOG`` switch.

The SDK logs to the ``wemasy_async`` logger (``wemasy_async.hooks`` for hooks) and, as a
library should, adds no handler of its own: the application decides where records go. For
a quick look without configuring anything, like ``OPENAI_LOG``, set
``WEMASY_ASYNC_LOG=info`` (or ``debug``): the first :class:`~wemasy_async.Client` created
then adds one handler writing to stderr at that level. It is read when a client is created,
never at import.

What each level says (method and path or URL of the request, never a header, a body or the
token; the token is also blanked from anything a server sent back):

- WARNING: the rate-limit state in Redis is unreachable or answers nonsense (the client goes
  on with a local limiter); the server's rate-limit window looks shorter than the one
  assumed (once per key, see :mod:`wemasy_async.window_check`); a hook raised (the first
  time, with its traceback).
- INFO: a retry (method, path, error type, attempt, delay); the pace the limiter keeps for
  a key, when learned and when it changes; Redis reachable again.
- DEBUG: every response (method, URL, status, milliseconds); every attempt that got no
  response (method, URL, error type); Redis still unreachable; a hook raised again.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping
from typing import TextIO

from wemasy_async.validation import short_repr

__all__ = ["ENV", "LOGGER", "configure_from_env"]

ENV = "WEMASY_ASYNC_LOG"
LOGGER = "wemasy_async"
_LEVELS = {"info": logging.INFO, "debug": logging.DEBUG}
_FORMAT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirect), so
    that it never holds on to a stream closed since; the mark of the handler this module
    adds, so that it is added once."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def configure_from_env(environ: Mapping[str, str] | None = None) -> None:
    """Add the stderr handler ``WEMASY_ASYNC_LOG`` asks for, once (later calls only apply a
    changed level). Unset or empty: nothing. An unknown value is a ``RuntimeWarning`` and
    ignored: a typo in an environment variable must not stop a program."""
    value = (os.environ if environ is None else environ).get(ENV)
    if not value:
        return
    level = _LEVELS.get(value.strip().lower())
    if level is None:
        warnings.warn(
            f"{ENV} must be 'info' or 'debug', got {short_repr(value)}; ignored",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
