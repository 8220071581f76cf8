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

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO, TypeVar

import anyio
import msgspec

from wemasy_async._version import __version__
from wemasy_async.batch import MAX_CONCURRENCY, BatchFetch, FetchResult
from wemasy_async.client import Client
from wemasy_async.errors import (
    AuthenticationError,
    ClientClosedError,
    UnsupportedOperationError,
    WemasyAsyncError,
)
from wemasy_async.models import Conversation
from wemasy_async.progress import ProgressBar, format_summary
from wemasy_async.protocols import ConversationStore
from wemasy_async.providers.registry import get_provider, provider_names
from wemasy_async.ratelimit import RateLimit
from wemasy_async.validation import MAX_SECONDS

if TYPE_CHECKING:
    from wemasy_async.ratelimit import Limiter
    from wemasy_async.redis import RedisStore

__all__ = ["main"]

Value = TypeVar("Value")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _format_json(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _print_json(value: object) -> None:
    print(_format_json(value))


def _without_raw(value: object) -> object:
    """``value`` with the ``raw`` field of every model in it left out (the neutral fields
    already carry that data); plain values (a message's ``metadata``) are kept as they are."""
    if isinstance(value, msgspec.Struct):
        return {
            field.encode_name: _without_raw(getattr(value, field.name))
            for field in msgspec.structs.fields(value)
            if field.name != "raw"
        }
    if isinstance(value, list):
        return [_without_raw(item) for item in value]
    return value


def _output(args: argparse.Namespace, value: object) -> object:
    return value if args.raw else _without_raw(value)


async def _print_json_array(items: AsyncIterator[object]) -> None:
    """Print ``items`` as one JSON array, formatted as :func:`_print_json` would, one item
    at a time: a reader that stops early (``| head``) stops the paging too."""
    opening = "[\n  "
    async for item in items:
        sys.stdout.write(opening + _format_json(item).replace("\n", "\n  "))
        opening = ",\n  "
    sys.stdout.write("[]\n" if opening == "[\n  " else "\n]\n")


def _token_variables() -> dict[str, str]:
    """Provider name -> the environment variable its token falls back to."""
    variables: dict[str, str] = {}
    for name in provider_names():
        try:
            variables[name] = get_provider(name).token_env
        except WemasyAsyncError:  # a broken plug-in must not break --help
            continue
    return variables


def _token(args: argparse.Namespace) -> str:
    """``--token``, else the provider's variable; the error names both, never the value."""
    if args.token is not None:
        if not args.token:
            raise CommandError("--token is empty")
        return str(args.token)
    variable = get_provider(args.provider).token_env
    token = os.environ.get(variable)
    if not token:
        raise CommandError(f"no API token: pass --token or set ${variable}")
    return token


def _client(args: argparse.Namespace, rate_limit: RateLimit | bool = True) -> Client:
    return Client(
        args.provider,
        token=_token(args),
        base_url=args.base_url,
        timeout=args.timeout,
        allow_http=args.allow_http,
        rate_limit=rate_limit,
    )


async def _get(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        _print_json(_output(args, await client.get_conversation(args.conversation_id)))


async def _messages(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        _print_json(await client.list_messages(args.conversation_id))


async def _list(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        if args.all:
            conversations = client.iter_conversations(
                agent_id=args.agent_id, search=args.search, per_page=args.per_page
            )
            await _print_json_array(_output(args, c) async for c in conversations)
            return
        page = await client.list_conversations(
            agent_id=args.agent_id, search=args.search, per_page=args.per_page, page=args.page
        )
        _print_json(_output(args, page))


async def _chat(args: argparse.Namespace) -> None:
    tools = None if args.tools is None else load_tools(Path(args.tools))
    # Tools given: the assistant may call them, unless --no-use-tools says not now.
    use_tools = args.use_tools if args.use_tools is not None or tools is None else True
    async with _client(args) as client:
        reply = await client.chat(
            args.message,
            conversation_id=args.conversation_id,
            model=args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            use_tools=use_tools,
            tools=tools,
            tool_call_id=args.tool_call_id,
            tool_result=args.tool_result,
        )
        _print_json(_output(args, reply))


TOOL_SPEC_SHAPE = '{"type": "function", "function": {"name": ..., "parameters": {...}}}'


def load_tools(path: Path) -> list[dict[str, Any]]:
    """The tool specs in ``path``: a JSON list of OpenAI-style function definitions.

    Raises:
        CommandError: (status 2) The file is missing, not JSON, or not a list of specs.
    """
    try:
        data = msgspec.json.decode(path.read_bytes())
    except OSError as exc:
        raise CommandError(f"--tools: cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    except msgspec.DecodeError as exc:
        raise CommandError(f"--tools: {path} is not JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(data, list) or not data:
        raise CommandError(
            f"--tools: {path} must hold a non-empty JSON list of tool specs, each"
            f" {TOOL_SPEC_SHAPE}",
            EXIT_USAGE,
        )
    for number, spec in enumerate(data, 1):
        function = spec.get("function") if isinstance(spec, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name or spec.get("type") != "function":
            raise CommandError(
                f"--tools: tool {number} in {path} is not {TOOL_SPEC_SHAPE}", EXIT_USAGE
            )
        assert isinstance(function, dict)  # it has a name
        if not isinstance(function.get("parameters", {}), dict):
            raise CommandError(
                f"--tools: tool {number} ({name}) in {path}: parameters must be a JSON object",
                EXIT_USAGE,
            )
    return data


async def _fetch_all(
    client: Client, ids: Sequence[int], concurrency: int
) -> list[Conversation | WemasyAsyncError]:
    """Fetch ``ids`` with a fixed pool of workers; a failure is kept, not raised."""
    results: list[Conversation | WemasyAsyncError] = []
    queue = iter(ids)

    async def worker() -> None:
        for conversation_id in queue:  # workers share one iterator: each id is taken once
            try:
                results.append(await client.get_conversation(conversation_id))
            except WemasyAsyncError as exc:
                results.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return results


# --- fetch ------------------------------------------------------------------------------

#: Flush OUT and ERR at least this often (seconds) and every this many lines.
FLUSH_INTERVAL = 1.0
FLUSH_LINES = 1000


class CommandError(Exception):
    """A failure reported as one line, with its exit status (1, or 2 for usage errors)."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


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
    pace = _Pace(_limiter(client))
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


def _limiter(client: Client) -> Limiter | None:
    """The client's rate limiter, read only (``None`` when it does not pace)."""
    # Client has no public accessor for it yet; the engine's options are where it lives.
    return client._engine.options.limiter


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


async def _fetch(args: argparse.Namespace) -> int:
    store: RedisStore | None = None
    if args.redis is not None:
        from wemasy_async.redis import RedisStore  # optional: needs the redis extra

        # While Redis is down, each of the N shards keeps to 1/N of the limit.
        share = 1.0 if args.shard is None else 1.0 / args.shard.count
        store = RedisStore(args.redis, fallback_share=share)
    try:
        rate_limit = RateLimit(window=args.rate_window, store=store)
        async with _client(args, rate_limit) as client:
            report = await run_fetch(
                client,
                ids_file=Path(args.ids_file),
                out=Path(args.out),
                errors=Path(args.errors) if args.errors else None,
                messages=args.messages,
                concurrency=args.concurrency,
                shard=args.shard,
                summary=lambda line: print(line, file=sys.stderr),
                bar=sys.stderr if sys.stderr.isatty() else None,
            )
    finally:
        if store is not None:
            await store.aclose()
    return EXIT_ERROR if report.failed else 0


async def _demo(args: argparse.Namespace) -> None:
    # Imported here: the fakes (and aiohttp.web) are only needed by the demo.
    from wemasy_async.testing import FakeWemasy

    count = args.conversations
    async with FakeWemasy(seed=args.seed, conversations=count) as fake:
        print(f"wemasy-async {__version__} demo")
        print(f"Fake Wemasy API at {fake.url} (in-process: no credentials, no network)\n")
        async with Client("wemasy", base_url=fake.url, token="demo-token") as client:
            await _demo_tour(client)
            print(f"\n5. Fetch {count:,} conversations concurrently ({args.concurrency} at a time)")
            started = time.perf_counter()
            results = await _fetch_all(client, range(1, count + 1), args.concurrency)
            elapsed = time.perf_counter() - started
            failed = sum(isinstance(r, WemasyAsyncError) for r in results)
            messages = sum(len(r.messages or ()) for r in results if isinstance(r, Conversation))
            print(
                f"   {len(results) - failed:,} conversations ({messages:,} messages), "
                f"{failed} errors, in {elapsed:.2f} s = {len(results) / elapsed:,.0f} req/s"
            )
    await _demo_other_providers(args.seed)
    await _demo_fetch(args.seed)
    print("\nDone. Next: `wemasy-async get ID` against a real API, token from the environment.")


async def _neutral_summary(store: ConversationStore, conversation_id: str) -> str:
    """Provider-neutral code: the same lines work against every provider."""
    conversation = await store.get_conversation(conversation_id)
    messages = await store.list_messages(conversation_id, limit=2)
    first = (messages[0].content or "").replace("\n", " ")[:50] if messages else ""
    return (
        f"{conversation.id[:13]}… {conversation.status or '-'}, "
        f"{len(conversation.messages or ())} messages; first: {first!r}"
    )


async def _demo_other_providers(seed: int) -> None:
    from wemasy_async.testing import FakeLoop, FakeSiteAssist

    print("\n6. The same provider-neutral code against SiteAssist and Loop")
    async with (
        FakeSiteAssist(seed=seed, conversations=20) as siteassist,
        FakeLoop(seed=seed, conversations=20) as loop,
    ):
        for name, fake in (("siteassist", siteassist), ("loop", loop)):
            async with Client(name, base_url=fake.url, token="demo-token") as client:
                summary = await _neutral_summary(client, fake.conversation_ids[0])
                print(f"   {name:<10} {summary}")
                try:
                    await client.chat("hello")
                except UnsupportedOperationError as exc:
                    supported = ", ".join(sorted(client.capabilities))
                    print(f"   {'':<10} {exc}; supports: {supported}")


async def _demo_fetch(seed: int) -> None:
    from wemasy_async.testing import FakeWemasy

    print("\n7. `wemasy-async fetch`: ids file -> JSONL, failures to their own file, resumable")
    with tempfile.TemporaryDirectory(prefix="wemasy-demo-") as tmp:
        ids_file, out = _demo_ids_file(Path(tmp)), Path(tmp, "out.jsonl")
        async with (
            FakeWemasy(seed=seed, conversations=50) as fake,
            Client("wemasy", base_url=fake.url, token="demo-token") as client,
        ):
            for run in ("first run", "second run (resumes)"):
                print(f"   {run}: fetch --ids-file ids.txt --out out.jsonl")
                await run_fetch(
                    client,
                    ids_file=ids_file,
                    out=out,
                    concurrency=8,
                    summary=lambda line: print(f"     {line.replace(tmp + os.sep, '')}"),
                )
        for line in _demo_files_report(out):
            print(f"   {line}")


def _demo_ids_file(directory: Path) -> Path:
    ids_file = directory / "ids.txt"
    ids_file.write_text(
        "# 50 known ids, then an unknown one and a malformed one\n"
        + "".join(f"{i}\n" for i in range(1, 51))
        + "\n99999\nnot-an-id\n",
        encoding="utf-8",
    )
    return ids_file


def _demo_files_report(out: Path) -> list[str]:
    errors = default_errors_path(out)
    with out.open("rb") as lines:
        count = sum(1 for _ in lines)
    failures = errors.read_text(encoding="utf-8").splitlines() if errors.exists() else []
    return [f"{out.name}: {count} lines; {errors.name}:", *(f"  {f}" for f in failures)]


async def _demo_tour(client: Client) -> None:
    page = await client.list_conversations(per_page=5)
    print(f"1. List conversations: page {page.page} of {page.last_page}, {page.total} in all")
    for c in page.items:
        print(f"   #{c.id:<4} {c.agent_id or '-':<8} {c.status or '-':<10} {c.goal or ''}")

    matches = [
        c
        async for c in client.iter_conversations(
            agent_id="chat", search="SEO strategy", per_page=10
        )
    ]
    print(
        f"\n2. Page through agent 'chat' conversations matching 'SEO strategy', 10 per page: "
        f"{len(matches)} found"
    )

    target = matches[0].id if matches else page.items[0].id
    conversation = await client.get_conversation(target)
    messages = conversation.messages or []
    print(
        f"\n3. Get conversation {conversation.id}: {conversation.status}, "
        f"{len(messages)} messages, {conversation.cost_tokens} tokens, "
        f"cost {conversation.cost_amount}"
    )
    for m in messages[:4]:
        calls = ", ".join(f"calls {c.name}({c.arguments})" for c in m.tool_calls)
        text = (m.content or calls).replace("\n", " ")
        print(f"   {m.role:>9}: {text[:70]}")

    question = "What is the weather in Amsterdam right now?"
    print("\n4. Chat with a tool round trip")
    print(f"   user      > {question}")
    reply = await client.chat(question, model="gpt-4o", use_tools=True, tools=[WEATHER_TOOL])
    for call in reply.tool_calls:
        print(f"   assistant < calls {call.name}({call.arguments})")
        result = "18°C and sunny"  # what our local get_weather returns
        print(f"   tool      > {result}")
        reply = await client.chat(
            conversation_id=reply.conversation_id, tool_call_id=call.id, tool_result=result
        )
    print(f"   assistant < {reply.content}  [conversation {reply.conversation_id}]")


DEFAULT_PROVIDER = "wemasy"


def _tokens_epilog() -> str:
    variables = "\n".join(
        f"  {name:<12} ${variable}" for name, variable in _token_variables().items()
    )
    return (
        f"The remote commands talk to --provider (default: {DEFAULT_PROVIDER}), with the\n"
        f"token from --token, else from the provider's environment variable:\n{variables}"
    )


def _parser() -> argparse.ArgumentParser:
    epilog = _tokens_epilog()
    parser = argparse.ArgumentParser(
        prog="wemasy-async",
        description="Async SDK for AI-assistant conversation APIs.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="tour the SDK against in-process fake servers")
    demo.add_argument("--conversations", type=int, default=1000, help="how many to fetch")
    demo.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    demo.add_argument("--seed", type=int, default=0, help="seed of the fake data")
    demo.set_defaults(run=_demo)

    def remote(
        name: str, help: str, run: Callable[[argparse.Namespace], Awaitable[int | None]]
    ) -> Any:
        sub = commands.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument(
            "--provider",
            default=DEFAULT_PROVIDER,
            choices=provider_names(),
            help="the provider (default: %(default)s)",
        )
        # No default shown, ever: the token must not appear in --help or in any message.
        sub.add_argument(
            "--token",
            default=None,
            metavar="TOKEN",
            help="the API token (default: the provider's variable, listed below); other local"
            " users can see command lines, so prefer the variable on shared machines",
        )
        sub.add_argument("--base-url", default=None, help="override the provider's base URL")
        sub.add_argument(
            "--allow-http",
            action="store_true",
            help="allow a plain http:// base URL on a non-loopback host (sends the token"
            " unencrypted)",
        )
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        sub.set_defaults(run=run)
        return sub

    raw_help = "also print the provider's wire object (`raw`) next to the neutral fields"
    get = remote("get", "print one conversation as JSON", _get)
    get.add_argument("conversation_id")
    get.add_argument("--raw", action="store_true", help=raw_help)
    remote("messages", "print a conversation's messages", _messages).add_argument("conversation_id")
    listing = remote("list", "print a page of conversations", _list)
    listing.add_argument("--agent-id")
    listing.add_argument("--search")
    listing.add_argument("--per-page", type=int, default=20)
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument(
        "--all", action="store_true", help="follow every page (printed as it comes)"
    )
    listing.add_argument("--raw", action="store_true", help=raw_help)
    chat = remote("chat", "send a message (or a tool result) and print the reply", _chat)
    chat.add_argument("message", nargs="?")
    chat.add_argument("--conversation-id")
    chat.add_argument("--model")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument(
        "--tools",
        metavar="FILE",
        help=f"JSON list of tools the assistant may call, each {TOOL_SPEC_SHAPE}",
    )
    chat.add_argument(
        "--use-tools",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the assistant may call tools (default: yes with --tools)",
    )
    chat.add_argument(
        "--tool-call-id",
        metavar="ID",
        help="answer this tool call of the reply (with --conversation-id and --tool-result)",
    )
    chat.add_argument("--tool-result", metavar="TEXT", help="the tool's output, as text")
    chat.add_argument("--raw", action="store_true", help=raw_help)
    fetch = remote("fetch", "fetch many conversations to a JSONL file, resumably", _fetch)
    fetch.add_argument("--ids-file", required=True, help="one id per line; # comments")
    fetch.add_argument("--out", required=True, help="JSONL output; ids already in it are skipped")
    fetch.add_argument(
        "--errors", help="JSONL of failed ids (default: OUT with .errors.jsonl), rewritten"
    )
    fetch.add_argument("--messages", action="store_true", help="fetch messages instead")
    fetch.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help="requests in flight, fixed (1-1000; default: tuned to the rate limit)",
    )
    fetch.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="fetch only shard K of N (a stable hash of each id); run one per host",
    )
    fetch.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="share the rate limit with other processes through this Redis (redis://...)",
    )
    fetch.add_argument(
        "--rate-window",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="the server's rate-limit window (default 60, as the providers document)",
    )
    return parser


def _argument(
    parse: Callable[[str], Value], ok: Callable[[Value], bool], message: str
) -> Callable[[str], Value]:
    """An argparse ``type``: ``parse`` the text, then check it; ``message`` says what is wrong."""

    def convert(text: str) -> Value:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(message) from None
        if not ok(value):
            raise argparse.ArgumentTypeError(message)
        return value

    return convert


def _parse_shard(text: str) -> Shard:
    index, slash, count = text.partition("/")
    if not slash:
        raise ValueError(text)
    return Shard(int(index), int(count))


_shard = _argument(
    _parse_shard, lambda s: 1 <= s.index <= s.count, "must be K/N with 1 <= K <= N, e.g. 1/3"
)
_seconds = _argument(
    float, lambda s: 0 < s <= MAX_SECONDS, "must be a number of seconds, more than 0, at most a day"
)
_concurrency = _argument(
    int, lambda n: 1 <= n <= MAX_CONCURRENCY, f"must be an integer from 1 to {MAX_CONCURRENCY}"
)


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
    args = _parser().parse_args(argv)
    # A terminal that cannot show a character must not turn a result into a crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    try:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
