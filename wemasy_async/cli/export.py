"""The ``fetch`` command's pipeline: an ids file to a JSONL file, resumably.

:func:`run_fetch` streams the ids through
:meth:`Client.fetch_conversations <wemasy_async.Client.fetch_conversations>` (or
``fetch_messages``) and writes each result as it comes; the ``fetch`` command
(:func:`wemasy_async.cli.commands.fetch`) and the demo's step 7 drive it.

``fetch --ids-file FILE --out OUT.jsonl [--errors ERR.jsonl] [--messages] [--shard K/N]
[--redis URL] [--rate-window SECONDS] [--concurrency N]``:

- The ids file holds one id per line; blank lines and lines starting with ``#`` are
  skipped. It is read twice, both times streamed: once to count the work (for the progress
  bar's total and ETA), then lazily while fetching. A repeated id is one id: fetched once and
  counted once, in the total ("of N" is distinct ids) and in ``skipped`` alike, so an
  interrupted run and a whole one agree. Ids added to the file during a run wait for the
  next run.
- OUT gets one JSON object per fetched id, appended: the conversation (with its ``id``), or
  ``{"id": ..., "messages": [...]}`` with ``--messages``. Lines are written whole and flushed
  at least every second (and every 1,000 lines), so a crash loses at most that tail.
- Resume: ids already in OUT (their ``id`` field) are skipped. A truncated last line (a crash
  mid-write) is cut off first, so OUT stays valid JSONL, and that id is fetched again. Any
  other malformed line in OUT is an error: the file is not touched.
- ERR (default: OUT with ``.errors.jsonl``, ``out.jsonl`` -> ``out.errors.jsonl``) holds one
  ``{"id", "status", "error", "message"}`` object per failed id. It is rewritten on every run
  and describes that run only: failed ids are not in OUT, so a rerun retries them; a run
  without failures removes the file. A 401 (bad token) stops the run instead: every id
  would fail the same way.
- On a terminal, stderr shows a progress bar (done/total, rate, ETA, errors), then the
  summary; otherwise just the one-line summary. stdout stays empty. When the server's rate
  limit is what sets the pace, the bar says so (``paced by the server: 60/min``) and its ETA
  counts at that rate.
- Concurrency: without ``--concurrency`` the batch tunes it (``fetch_conversations(ids)``).
  ``--rate-window`` is the server's rate-limit window if it is not the documented minute.
- Many hosts, one token: ``--shard K/N`` (K from 1 to N) fetches only the ids whose shard
  is K: shard = ``int.from_bytes(sha256(id)[:8], "big") % N + 1``, over the id's text as it
  stands in the ids file (UTF-8), so every host given the same file and N agrees without
  talking, and every id is in exactly one shard. Each shard has its own OUT and resumes on
  its own; the total and ``skipped`` count its ids only. ``--redis URL`` shares one rate
  limit between them all (a :class:`~wemasy_async.redis.RedisStore`): run the N commands
  with the same token and ``--redis`` and they stay within the server's limit together.
- Exit status: 0 when every id was fetched, 1 when some failed (the summary says where they
  are), 2 for usage errors, 130 on Ctrl-C (what was fetched is kept; rerun to resume).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

import msgspec

from wemasy_async.batch import MAX_CONCURRENCY, BatchFetch, FetchResult
from wemasy_async.cli.exits import EXIT_USAGE, CommandError
from wemasy_async.client import Client
from wemasy_async.errors import AuthenticationError, ClientClosedError
from wemasy_async.progress import ProgressBar, format_summary

if TYPE_CHECKING:
    from wemasy_async.ratelimit import Limiter

__all__ = ["FetchReport", "Shard", "default_errors_path", "run_fetch", "shard_of"]

#: Flush OUT and ERR at least this often (seconds) and every this many lines.
FLUSH_INTERVAL = 1.0
FLUSH_LINES = 1000


class _HasId(msgspec.Struct):
    id: str | int | None = None


@dataclass
class FetchReport:
    """What one ``fetch`` run did (also filled in when it is interrupted)."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    elapsed: float = 0.0


def default_errors_path(out: Path) -> Path:
    """``out.jsonl`` -> ``out.errors.jsonl`` (any other name just gets the suffix)."""
    stem = out.name.removesuffix(".jsonl")
    return out.with_name(f"{stem}.errors.jsonl")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``--shard K/N``: index K from 1 to N)."""

    index: int
    count: int

    def holds(self, conversation_id: str) -> bool:
        """Whether the id (its text, as in the ids file) belongs to this shard."""
        return shard_of(conversation_id, self.count) == self.index


def shard_of(conversation_id: str, count: int) -> int:
    """The shard (1 to ``count``) of an id: a stable hash of its text, the same on every host
    and Python version (not ``hash()``, which is salted per process)."""
    digest = hashlib.sha256(conversation_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def _iter_ids(path: Path, shard: Shard | None = None) -> Iterator[str]:
    """The ids in ``path``, one per line, streamed; blank lines and ``#`` comments skipped,
    and with ``shard`` the ids of other shards too."""
    with path.open(encoding="utf-8-sig") as lines:
        for line in lines:
            text = line.strip()
            if text and not text.startswith("#") and (shard is None or shard.holds(text)):
                yield text


def _load_done(out: Path) -> set[str]:
    """The ids already in ``out``; a truncated last line is cut off (and ends the file)."""
    done: set[str] = set()
    if not out.exists():
        return done
    decoder = msgspec.json.Decoder(_HasId)
    offset = 0
    cut: int | None = None
    missing_newline = False
    with out.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            complete = raw.endswith(b"\n")
            if not raw.strip():
                offset += len(raw)
                continue
            try:
                record = decoder.decode(raw)
            except msgspec.DecodeError:
                record = None
            if record is None or record.id is None:
                if not complete:  # the last line, cut short by a crash mid-write
                    cut = offset
                    break
                raise CommandError(
                    f"{out} line {number} is not a JSON object with an id; "
                    "fix it or choose another --out"
                )
            done.add(str(record.id))
            offset += len(raw)
            missing_newline = not complete
    if cut is not None:
        with out.open("r+b") as file:
            file.truncate(cut)
    elif missing_newline:  # a whole object without its newline: keep it, end the line
        with out.open("ab") as file:
            file.write(b"\n")
    return done


def _error_record(result: FetchResult[Any]) -> bytes:
    error = result.error
    return msgspec.json.encode(
        {
            "id": str(result.id),
            "status": getattr(error, "status", None),
            "error": type(error).__name__,
            "message": str(error),
        }
    )


def _prepare(
    ids_file: Path, out: Path, errors: Path, shard: Shard | None
) -> tuple[set[str], FetchReport]:
    """Check the paths, repair OUT, count the work: the distinct ids to fetch, and the
    counts (each distinct id once, however often the file repeats it)."""
    if not ids_file.is_file():
        raise CommandError(f"ids file not found: {ids_file}", EXIT_USAGE)
    if len({ids_file.resolve(), out.resolve(), errors.resolve()}) != 3:
        raise CommandError(
            "--ids-file, --out and --errors must be three different files", EXIT_USAGE
        )
    try:
        done = _load_done(out)
    except OSError as exc:
        raise CommandError(f"cannot read {out}: {exc.strerror}") from None
    report = FetchReport()
    todo: set[str] = set()
    skipped: set[str] = set()
    try:
        for conversation_id in _iter_ids(ids_file, shard):
            (skipped if conversation_id in done else todo).add(conversation_id)
    except OSError as exc:
        raise CommandError(f"cannot read {ids_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{ids_file} is not UTF-8 text", EXIT_USAGE) from None
    report.total, report.skipped = len(todo), len(skipped)
    return todo, report


class _Sink:
    """OUT (appended) and ERR (created on the first failure), flushed by time and count."""

    def __init__(self, out: Path, errors: Path) -> None:
        self._errors_path = errors
        try:
            errors.unlink(missing_ok=True)  # it describes the latest run only
            self._out: IO[bytes] = out.open("ab")
        except OSError as exc:
            raise CommandError(f"cannot write {exc.filename}: {exc.strerror}") from None
        self._errors: IO[bytes] | None = None
        self._pending = 0
        self._flushed_at = time.monotonic()

    def write(self, line: bytes, *, error: bool = False) -> None:
        if error:
            if self._errors is None:
                self._errors = self._errors_path.open("wb")
            self._errors.write(line + b"\n")
        else:
            self._out.write(line + b"\n")  # one write per line: never split by us
        self._pending += 1
        if self._pending >= FLUSH_LINES:
            self.flush()

    def tick(self) -> None:
        if self._pending and time.monotonic() - self._flushed_at >= FLUSH_INTERVAL:
            self.flush()

    def flush(self) -> None:
        self._out.flush()
        if self._errors is not None:
            self._errors.flush()
        self._pending = 0
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._out.close()
            if self._errors is not None:
                self._errors.close()


async def run_fetch(
    client: Client,
    *,
    ids_file: Path,
    out: Path,
    errors: Path | None = None,
    messages: bool = False,
    concurrency: int | None = None,
    shard: Shard | None = None,
    summary: Callable[[str], object],
    bar: TextIO | None = None,
) -> FetchReport:
    """Fetch the ids in ``ids_file`` into ``out`` (resuming), failures into ``errors``.

    The engine of the ``fetch`` command (and of the demo's step 7); see the module
    docstring for the file formats. ``concurrency`` ``None`` lets the batch tune it;
    ``shard`` restricts the run to that shard's ids. ``summary`` gets the one-line summary
    at the end (also after Ctrl-C); ``bar``, when given, shows a progress bar first.

    Raises:
        CommandError: A file problem (status 2 for usage errors).
        AuthenticationError: The token was rejected; the run stops.
    """
    errors = errors if errors is not None else default_errors_path(out)
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise CommandError(f"concurrency must be from 1 to {MAX_CONCURRENCY}", EXIT_USAGE)
    todo, report = _prepare(ids_file, out, errors, shard)

    def pending() -> Iterator[str]:
        # The file order, each counted id once: a repeat (or an id added to the file since
        # it was counted) is not in `todo` any more, so the total stays exact.
        for conversation_id in _iter_ids(ids_file, shard):
            if conversation_id in todo:
                todo.discard(conversation_id)
                yield conversation_id

    batch: BatchFetch[Any] = (
        client.fetch_messages(pending(), concurrency=concurrency)
        if messages
        else client.fetch_conversations(pending(), concurrency=concurrency)
    )
    sink = _Sink(out, errors)  # opened last: nothing may fail between here and `try`
    progress = ProgressBar(bar) if bar is not None else None
    pace = _Pace(client.limiter)
    started = time.monotonic()

    def show(force: bool = False) -> None:
        if progress is not None:
            done_now = report.succeeded + report.failed
            elapsed = time.monotonic() - started
            paced = pace.rate(done_now / elapsed if elapsed > 0 else 0.0)
            progress.update(
                done_now, report.total, report.failed, elapsed, force=force, paced=paced
            )

    async def ticker() -> None:  # redraw and flush even while results are slow to come
        while True:
            await asyncio.sleep(0.1)
            show()
            sink.tick()

    fatal = False
    ticking = asyncio.create_task(ticker())
    try:
        async with batch:
            async for result in batch:
                if result.ok:
                    sink.write(_encode_result(result, messages))
                    report.succeeded += 1
                elif isinstance(result.error, (AuthenticationError, ClientClosedError)):
                    fatal = True  # every other id would fail the same way: stop
                    raise result.error
                else:
                    sink.write(_error_record(result), error=True)
                    report.failed += 1
                show()
                sink.tick()
    finally:
        ticking.cancel()
        report.elapsed = time.monotonic() - started
        sink.close()
        if progress is not None:
            progress.finish(
                report.succeeded + report.failed,
                report.total,
                report.failed,
                report.elapsed,
                paced=pace.rate(
                    (report.succeeded + report.failed) / report.elapsed if report.elapsed else 0.0
                ),
            )
        if not fatal:  # a fatal error is reported on its own, as one line
            summary(
                format_summary(
                    succeeded=report.succeeded,
                    failed=report.failed,
                    total=report.total,
                    elapsed=report.elapsed,
                    skipped=report.skipped,
                    out=str(out),
                    errors_path=str(errors),
                )
            )
    return report


class _Pace:
    """Whether the server's limit is what sets the pace, for the progress bar.

    It is when requests wait for the limiter (which keeps to the limit the server
    announced) and the run goes at :attr:`NEAR` of the allowed rate or faster: a limiter
    also holds a request briefly while it learns the limit, at any pace. The state is held
    for :attr:`HOLD` seconds so that the bar does not flicker between sends. (Shards
    sharing one limit through Redis each go at a share of it, so they do not say so.)
    """

    HOLD = 1.0
    NEAR = 0.75

    def __init__(self, limiter: Limiter | None) -> None:
        self._limiter = limiter
        self._until = float("-inf")

    def rate(self, achieved: float) -> float | None:
        """The server's allowed rate (per second) while it sets the pace, else ``None``;
        ``achieved`` is the run's rate so far."""
        limiter = self._limiter
        if limiter is None:
            return None
        allowed = limiter.allowed_rate
        now = time.monotonic()
        if allowed is not None and limiter.waiting > 0 and achieved >= self.NEAR * allowed:
            self._until = now + self.HOLD
        return allowed if allowed is not None and now < self._until else None


def _encode_result(result: FetchResult[Any], messages: bool) -> bytes:
    if messages:
        return msgspec.json.encode({"id": str(result.id), "messages": result.value})
    return msgspec.json.encode(result.value)
