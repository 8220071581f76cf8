"""The command's exit statuses, and the failure that carries one.

Every module of the command raises :class:`CommandError` for a failure of its own (a file,
an argument); :func:`wemasy_async.cli.main` prints it as one line and exits with its status.
"""

from __future__ import annotations

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "CommandError"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class CommandError(Exception):
    """A failure reported as one line, with its exit status (1, or 2 for usage errors)."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status
