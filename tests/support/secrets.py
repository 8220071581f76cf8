"""What the security tests share: two secret tokens, the pieces a partial leak would show, and
where to look for them (an exception's texts, every log record).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

TOKEN = "sk-SECRET-token-1234567890"
OTHER_TOKEN = "sk-OTHER-token-0987654321"
# The whole token and pieces of it that a partial leak (a prefix cut off, a digest-free
# excerpt) would still show.
SECRET_PARTS = (TOKEN, "SECRET-token", "token-1234567890", "1234567890")


def leaked(texts: Iterator[str] | list[str]) -> list[str]:
    """The texts that contain the token or a distinctive piece of it."""
    return [text for text in texts if any(part in text for part in SECRET_PARTS)]


def exception_texts(error: BaseException) -> list[str]:
    """Everything an exception shows: the formatted traceback with its whole chain, and
    ``str``, ``repr``, ``args`` and attributes of every exception in the chain."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        state = getattr(current, "__dict__", None)
        if state:
            texts.append(repr(state))
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        stack += getattr(current, "exceptions", ())  # an exception group's members
    return texts


class LogCapture(logging.Handler):
    """Keeps every record's message, arguments and formatted exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.records = 0
        self._formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.texts += [record.getMessage(), repr(record.args), self._formatter.format(record)]
        if record.exc_info and record.exc_info[1] is not None:
            self.texts += exception_texts(record.exc_info[1])


LOGGERS = (
    "",
    "wemasy_async",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.access",
    "aiohttp.web",
    "asyncio",
)
