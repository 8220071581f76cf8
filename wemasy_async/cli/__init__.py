"""The ``wemasy-async`` command (also ``python -m wemasy_async``).

``demo`` tours the SDK against the bundled fake servers, with no credentials and no
network. ``get``, ``messages``, ``list`` and ``chat`` talk to a real provider (``--provider``,
default ``wemasy``), with the token from ``--token`` or else the provider's environment
variable (``$WEMASY_API_TOKEN``, ...; ``--help`` lists them), and print JSON. ``fetch``
downloads many conversations (or their messages) to a JSONL file, resumably. Every failure
prints one line to stderr and exits non-zero (2 for usage errors); no traceback. The token
is never printed: not in errors, not in ``--help``.

- ``get``, ``list`` and ``chat`` print the neutral fields; ``--raw`` adds each model's
  ``raw`` (the provider's wire object). ``fetch`` always keeps ``raw`` (it is a backup).
- ``list --all`` prints the array as the pages come, so a reader that stops early
  (``| head``) stops the paging; a failure part-way leaves the array unterminated (exit 1).
- A reader that goes away (a closed pipe) ends any command quietly with exit status 141
  (128 + SIGPIPE, what a shell reports for a Unix tool ended by that signal).
- ``chat --tools FILE`` sends a JSON list of OpenAI-style function specs (checked before any
  request; a bad file is a usage error), which the assistant may call unless
  ``--no-use-tools``; answer a call with ``--conversation-id C --tool-call-id ID
  --tool-result TEXT``.
- ``fetch``: its file formats, resume, sharding and exit statuses are documented in
  :mod:`wemasy_async.cli.export`.

The modules: :mod:`~wemasy_async.cli.args` (the parser), :mod:`~wemasy_async.cli.commands`
(the remote commands), :mod:`~wemasy_async.cli.export` (the ``fetch`` pipeline),
:mod:`~wemasy_async.cli.demo` (the tour) and :mod:`~wemasy_async.cli.exits` (exit statuses);
:func:`main` here runs one and turns every failure into a line and an exit status.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

import anyio

from wemasy_async.cli.args import build_parser
from wemasy_async.cli.commands import load_tools
from wemasy_async.cli.exits import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, CommandError
from wemasy_async.cli.export import FetchReport, Shard, default_errors_path, run_fetch, shard_of
from wemasy_async.errors import WemasyAsyncError

# main is the command; the rest are the public names cli.py had when it was one module.
__all__ = [
    "CommandError",
    "FetchReport",
    "Shard",
    "default_errors_path",
    "load_tools",
    "main",
    "run_fetch",
    "shard_of",
]


def _reader_gone() -> int:
    """Stop quietly, as Unix tools do when the reader of their output has gone
    (``wemasy-async list --all | head``): no traceback, exit status 141 (128 + SIGPIPE, what
    a shell reports for a tool the signal ended)."""
    # What Python still holds for stdout would fail again at exit, with a message: send it
    # nowhere instead.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    # A terminal that cannot show a character must not turn a result into a crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    try:
        # anyio.run, not asyncio.run: on Python 3.10 as on 3.11+ (asyncio.Runner), Ctrl-C
        # cancels the main task, so every `async with` closes what it opened (the client,
        # the export's files) before the program ends.
        status: int | None = anyio.run(args.run, args, backend="asyncio")
        sys.stdout.flush()  # here, so that a reader gone by now is handled below
    except BrokenPipeError:
        return _reader_gone()
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except WemasyAsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C cancels the main task; on Python 3.10 (no Task.uncancel) the runner then
        # lets that CancelledError out instead of turning it into KeyboardInterrupt. Nothing
        # else cancels the main task, so either one means the user interrupted.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status or 0
