"""Rate limiting: how much of a server's limit each client uses, and how often it hits it.

The fake Wemasy server runs in its own process with a fixed-window limit (by default 50
requests per 2-second window; windows are aligned to the moment the server started). The
run starts at a uniformly random offset into a server window, which is the same as the
windows being aligned at a random offset (``serve`` has no ``--window-offset`` flag). From
that start, ``tasks`` concurrent tasks loop on ``get_conversation`` until a deadline
``windows`` windows later (default 11 windows, 22 s); at the deadline every task is
cancelled, including requests waiting in a limiter or in flight. A fresh server (fresh
counters and windows) is started for every scenario. Scenarios run one after the other
(about 2.5 minutes in all): running them side by side on a 2-core machine would let them
starve each other. ``Settings.offset`` (``--offset``) fixes the offset instead, to
reproduce an alignment; ``--seed`` makes the random offsets repeatable.

Scenarios: one process with 200 tasks, then 4 processes (``processes``) with 50 tasks each
(200 in all; workers are ``python -m benchmarks.ratelimit_worker``, started together on the
wall clock), each for three clients:

- ``wemasy-async``: ``Client(rate_limit=RateLimit(window=W))`` with the default retry policy.
  It learns the limit from ``X-RateLimit-Limit``. With 4 processes its state is shared through
  a fresh ``redis-server`` (``RateLimit(window=W, store=RedisStore(url))``); that scenario is
  reported as not run when ``wemasy_async.redis`` or ``redis-server`` is missing.
- ``naive``: the SDK with ``rate_limit=False, retry=False`` and this benchmark's own loop
  that, on a 429, sleeps the ``Retry-After`` it was sent (1 s if none) and tries again. This
  is the same as the SDK's own retry with an unlimited ``max_attempts``, but explicit.
- ``aiolimiter``: ``AsyncLimiter(limit, W)`` around each SDK call (``rate_limit=False,
  retry=False``), with the same retry-after-429 loop as ``naive`` (the retry goes through
  the limiter again). With 4 processes each process gets ``AsyncLimiter(limit / 4, W)``: the
  best a static split can do (giving each process the full limit would simply send 4x too
  much).

Reported per scenario (definitions):

- ``utilisation`` = accepted / allowed, where *accepted* is the server's ``accepted`` counter
  (requests it admitted and answered 2xx) and *allowed* = ``limit * duration / window`` with
  ``duration = deadline - start``: the sustained rate the limit permits over exactly the
  time the load ran. It is not capped at 100%: a fixed window lets a client that bursts at
  both ends of the run (in the partial first and last windows) exceed it, up to
  ``(windows + 1) / windows``.
- ``full windows``: the server's accepted count in each window lying entirely within the
  run (``window_counts`` without the partial first and last windows), as min-max and as
  mean / limit.
- ``429s``: 429 responses the server sent (its ``rate_limited`` counter); the clients'
  own count of 429 responses received is checked against it (``client_429s``).
- ``max accepted/window``: the server's ``max_in_window``, the most requests it accepted in
  one window. A fixed-window server never accepts more than the limit, so this only shows
  that the limit was reached.
- ``max sent/window``: the most requests the clients sent within one server window, 429s
  included (client-side timestamps of the request headers going out, bucketed by the
  server's windows).
- ``any alignment``: the most requests sent within any span of one window length,
  i.e. the worst case over every possible alignment of the server's windows. A client that
  stays at or under the limit here cannot get a 429 from a fixed-window server however its
  windows are aligned.

Window indices are computed on the wall clock from the moment the server reported its URL;
the server fixes its origin a fraction of a millisecond before that.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from aiolimiter import AsyncLimiter
from yarl import URL

from benchmarks.fake_process import fake_server
from wemasy_async import Client, RateLimit
from wemasy_async.errors import APIError, RateLimitError
from wemasy_async.ratelimit import LimiterStore

if TYPE_CHECKING:
    from wemasy_async.redis import RedisStore

SDK = "wemasy-async"
NAIVE = "naive"
AIOLIMITER = "aiolimiter"
CLIENTS = (SDK, NAIVE, AIOLIMITER)

CONVERSATIONS = 200
TOKEN = "bench"
ROOT = Path(__file__).resolve().parent.parent

Row = dict[str, Any]


@dataclass(frozen=True)
class LoadSpec:
    """What one process of a scenario runs (JSON-able: it is sent to worker processes)."""

    url: str
    client: str
    tasks: int
    window: float
    aiolimiter_rate: float
    redis_url: str | None = None


@dataclass
class Load:
    """What one process measured."""

    ok: int = 0  # 2xx responses received
    rate_limited: int = 0  # 429 responses received
    failed: int = 0  # other exceptions from the client (none expected)
    gave_up: int = 0  # RateLimitError raised by the SDK after its retries
    sent: list[float] = field(default_factory=list)  # wall clock, request headers sent

    def merge(self, other: Load) -> None:
        self.ok += other.ok
        self.rate_limited += other.rate_limited
        self.failed += other.failed
        self.gave_up += other.gave_up
        self.sent.extend(other.sent)


def _trace(load: Load) -> aiohttp.TraceConfig:
    """Count responses by status and timestamp every request, below the client under test."""

    async def on_sent(
        session: aiohttp.ClientSession,
        ctx: object,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        load.sent.append(time.time())

    async def on_end(
        session: aiohttp.ClientSession, ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        if status == 429:
            load.rate_limited += 1
        elif 200 <= status < 300:
            load.ok += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_sent)
    trace.on_request_end.append(on_end)
    return trace


async def _try_once(client: Client, conversation_id: int) -> float | None:
    """One call; the seconds to wait if it was rate limited, else None."""
    try:
        await client.get_conversation(conversation_id)
    except RateLimitError as error:
        return error.retry_after if error.retry_after is not None else 1.0
    return None


def _task_factory(
    spec: LoadSpec, client: Client, load: Load
) -> Callable[[int], Coroutine[Any, Any, None]]:
    if spec.client == SDK:

        async def sdk(conversation_id: int) -> None:
            while True:
                try:
                    await client.get_conversation(conversation_id)
                except RateLimitError:
                    load.gave_up += 1  # the limiter still holds the key until Retry-After
                except APIError:
                    load.failed += 1
                    await anyio.sleep(0.1)

        return sdk

    if spec.client == NAIVE:

        async def naive(conversation_id: int) -> None:
            while True:
                try:
                    wait = await _try_once(client, conversation_id)
                except APIError:
                    load.failed += 1
                    wait = 0.1
                if wait is not None:
                    await anyio.sleep(wait)

        return naive

    if spec.client == AIOLIMITER:
        limiter = AsyncLimiter(spec.aiolimiter_rate, spec.window)

        async def paced(conversation_id: int) -> None:
            while True:
                async with limiter:
                    try:
                        wait = await _try_once(client, conversation_id)
                    except APIError:
                        load.failed += 1
                        wait = 0.1
                if wait is not None:
                    await anyio.sleep(wait)

        return paced

    raise ValueError(f"unknown client {spec.client!r}")


async def run_load(spec: LoadSpec, start_at: float, deadline_at: float) -> Load:
    """Run ``spec.tasks`` tasks from ``start_at`` until ``deadline_at`` (wall clock)."""
    load = Load()
    store: RedisStore | None = None
    if spec.redis_url is not None:
        from wemasy_async.redis import RedisStore  # optional: imported only when used

        store = RedisStore(spec.redis_url)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),  # as the SDK's own session
        cookie_jar=aiohttp.DummyCookieJar(),
        trace_configs=[_trace(load)],
    )
    try:
        rate_limit: RateLimit | bool = False
        if spec.client == SDK:
            limiter_store: LimiterStore | None = store
            rate_limit = RateLimit(window=spec.window, store=limiter_store)
        client = Client(
            "wemasy",
            base_url=spec.url,
            token=TOKEN,
            session=session,
            rate_limit=rate_limit,
            retry=spec.client == SDK,
        )
        async with client:
            task = _task_factory(spec, client, load)
            await anyio.sleep(max(0.0, start_at - time.time()))
            with anyio.move_on_after(deadline_at - time.time()):
                async with anyio.create_task_group() as tg:
                    for n in range(spec.tasks):
                        tg.start_soon(task, n % CONVERSATIONS + 1)
    finally:
        await session.close()
        if store is not None:
            await store.aclose()
    return load


# --- Processes: fake server, redis-server, workers -------------------------------------------


def _server_stats(url: str) -> dict[str, Any]:
    origin = str(URL(url).origin())
    with urllib.request.urlopen(origin + "/__fake__/stats", timeout=10) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


@contextmanager
def redis_server() -> Iterator[str]:
    """Start a throwaway ``redis-server`` (no persistence) and yield its URL."""
    executable = redis_server_path()
    if executable is None:
        raise RuntimeError("redis-server not found")
    port = _free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _start_time(origin: float, window: float, offset: float, earliest: float) -> float:
    """The first moment ``offset`` seconds into a server window that is not before ``earliest``."""
    start = origin + offset
    while start < earliest:
        start += window
    return start


def _run_workers(
    spec: LoadSpec,
    processes: int,
    *,
    origin: float,
    window: float,
    offset: float,
    duration: float,
) -> tuple[Load, float, float]:
    """Run ``spec`` in ``processes`` worker processes, started together; merge their loads."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.ratelimit_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(asdict(spec)) + "\n")
            worker.stdin.flush()
        for worker in workers:  # each has imported everything and built its spec
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"worker did not start: {line!r}")
        start = _start_time(origin, window, offset, time.time() + 0.1)
        deadline = start + duration
        timing = json.dumps({"start_at": start, "deadline_at": deadline})
        total = Load()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(timing + "\n")
            worker.stdin.close()
        for worker in workers:
            assert worker.stdout is not None
            out = worker.stdout.read()  # a worker that dies closes it; no timeout needed
            if worker.wait() != 0:
                raise RuntimeError(f"worker failed with exit code {worker.returncode}")
            total.merge(Load(**json.loads(out.strip().splitlines()[-1])))
        return total, start, deadline
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


# --- Scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    limit: int = 50
    window: float = 2.0
    windows: int = 11
    tasks: int = 200
    processes: int = 4
    offset: float | None = None  # seconds into a server window to start at; None: random


def _max_in_span(times: list[float], span: float) -> int:
    """The most timestamps within any half-open interval of length ``span``."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _row(
    scenario: str,
    client: str,
    settings: Settings,
    *,
    load: Load,
    stats: dict[str, Any],
    origin: float,
    offset: float,
    start: float,
    deadline: float,
) -> Row:
    window, limit = settings.window, settings.limit
    duration = deadline - start
    allowed = limit * duration / window
    first = math.floor((start - origin) / window)
    last = math.floor((deadline - origin) / window)
    counts = {int(k): v for k, v in stats["window_counts"].items()}
    full = [counts.get(i, 0) for i in range(first + 1, last)]
    sent_by_window: dict[int, int] = {}
    for t in load.sent:
        index = math.floor((t - origin) / window)
        sent_by_window[index] = sent_by_window.get(index, 0) + 1
    return {
        "scenario": scenario,
        "client": client,
        "utilisation": stats["accepted"] / allowed,
        "accepted": stats["accepted"],
        "allowed": allowed,
        "rate_limited": stats["rate_limited"],
        "client_429s": load.rate_limited,
        "client_ok": load.ok,
        "failed": load.failed,
        "gave_up": load.gave_up,
        "max_accepted_in_window": stats["max_in_window"],
        "max_sent_in_window": max(sent_by_window.values(), default=0),
        "max_sent_any_alignment": _max_in_span(load.sent, window),
        "full_windows": full,
        "full_window_utilisation": sum(full) / (len(full) * limit) if full else float("nan"),
        "first_window_accepted": counts.get(first, 0),
        "last_window_accepted": counts.get(last, 0),
        "offset": offset,
        "duration": duration,
    }


def _client_label(client: str, settings: Settings, processes: int) -> str:
    if client == AIOLIMITER:
        rate = settings.limit / processes
        label = f"aiolimiter({rate:g}, {settings.window:g})"
        return label + (" each" if processes > 1 else "")
    if client == SDK and processes > 1:
        return "wemasy-async + Redis"
    if client == NAIVE:
        return "naive (retry on 429)"
    return client


def run_scenario(client: str, processes: int, settings: Settings, rng: random.Random) -> Row:
    """One scenario against a fresh fake server; returns its row."""
    scenario = f"{processes} process" + ("es" if processes > 1 else "")
    label = _client_label(client, settings, processes)
    use_redis = client == SDK and processes > 1
    if use_redis:
        if importlib.util.find_spec("wemasy_async.redis") is None:
            return {"scenario": scenario, "client": label, "skipped": "no wemasy_async.redis"}
        if redis_server_path() is None:
            return {"scenario": scenario, "client": label, "skipped": "no redis-server"}
    offset = rng.uniform(0, settings.window) if settings.offset is None else settings.offset
    duration = settings.windows * settings.window
    with fake_server(
        rate_limit=settings.limit, window=settings.window, conversations=CONVERSATIONS
    ) as url:
        origin = time.time()
        spec = LoadSpec(
            url=url,
            client=client,
            tasks=settings.tasks // processes,
            window=settings.window,
            aiolimiter_rate=settings.limit / processes,
        )
        if processes == 1:
            start = _start_time(origin, settings.window, offset, time.time() + 0.05)
            deadline = start + duration
            load = anyio.run(run_load, spec, start, deadline)
        elif use_redis:
            with redis_server() as redis_url:
                spec = LoadSpec(**{**asdict(spec), "redis_url": redis_url})
                load, start, deadline = _run_workers(
                    spec,
                    processes,
                    origin=origin,
                    window=settings.window,
                    offset=offset,
                    duration=duration,
                )
        else:
            load, start, deadline = _run_workers(
                spec,
                processes,
                origin=origin,
                window=settings.window,
                offset=offset,
                duration=duration,
            )
        time.sleep(0.2)  # let responses to cancelled requests finish on the server
        stats = _server_stats(url)
    return _row(
        scenario,
        label,
        settings,
        load=load,
        stats=stats,
        origin=origin,
        offset=offset,
        start=start,
        deadline=deadline,
    )


def run(
    settings: Settings | None = None,
    *,
    seed: int | None = None,
    clients: Sequence[str] = CLIENTS,
    process_counts: Sequence[int] | None = None,
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Run every scenario (one process, then ``settings.processes``) and return the rows."""
    settings = settings or Settings()
    rng = random.Random(seed)
    rows: list[Row] = []
    for processes in process_counts or (1, settings.processes):
        for client in clients:
            row = run_scenario(client, processes, settings, rng)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def format_table(rows: Sequence[Row], settings: Settings) -> str:
    """The rows as a text table."""
    header = (
        f"{'scenario':<11} | {'client':<27} | {'utilisation':>11} | {'full windows':>19} | "
        f"{'429s':>5} | {'max/window':>10} | {'sent/window':>11} | {'any align':>9} | "
        f"{'accepted':>13}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"{row['scenario']:<11} | {row['client']:<27} | not run: {row['skipped']}")
            continue
        full = row["full_windows"]
        full_text = (
            f"{min(full)}-{max(full)} ({row['full_window_utilisation']:.1%})" if full else "-"
        )
        lines.append(
            f"{row['scenario']:<11} | {row['client']:<27} | {row['utilisation']:>11.1%} | "
            f"{full_text:>19} | {row['rate_limited']:>5} | {row['max_accepted_in_window']:>10} | "
            f"{row['max_sent_in_window']:>11} | {row['max_sent_any_alignment']:>9} | "
            f"{row['accepted']:>5} / {row['allowed']:>5.0f}"
        )
    lines.append(
        f"\nLimit {settings.limit} per {settings.window:g} s fixed window, runs of "
        f"{settings.windows} windows ({settings.windows * settings.window:g} s) starting at a "
        f"random offset into a window, {settings.tasks} tasks in all. utilisation = accepted / "
        f"(limit x duration / window); full windows = accepted per window entirely inside the run "
        f"(min-max, mean/limit); 429s = sent by the server; max/window = most accepted in one "
        f"server window; sent/window = most sent (429s included) in one server window; any "
        f"align = most sent in any {settings.window:g} s span."
    )
    mismatched = [r for r in rows if "skipped" not in r and r["client_429s"] != r["rate_limited"]]
    for row in mismatched:
        lines.append(
            f"note: {row['scenario']} {row['client']}: clients counted {row['client_429s']} "
            f"429s, the server {row['rate_limited']}"
        )
    for row in rows:
        if "skipped" not in row and (row["failed"] or row["gave_up"]):
            lines.append(
                f"note: {row['scenario']} {row['client']}: {row['failed']} failures, "
                f"{row['gave_up']} RateLimitErrors raised after retries"
            )
    return "\n".join(lines)
