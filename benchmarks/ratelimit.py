"""Rate limiting: how much of a server's limit each client uses, at every rate and latency.

A grid: allowed rate {1/s, 25/s, 500/s, 2,000/s} x server latency {0, 200 ms} x {1 process,
4 processes}, for three clients, each point against a fresh fake Wemasy server in its own
process (``serve --rate-limit L --window W --latency S``: a fixed window of ``L`` requests
per ``W`` seconds, windows aligned to the server's start; every admitted request waits ``S``
seconds before it is answered). The rates are limits of (``--quick`` in brackets):

- 1/s: 60 per 60 s (2 per 2 s), the documented window: pacing at most ``L - 1`` sends in
  any window span and ``L`` in a window plus the margin (what makes 0 429s certain whatever
  the alignment) caps its utilisation at ``60 / 61.5`` = 97.6% (50%). These points take two
  minutes each and hardly use the CPU, so they run side by side (threads, each with its own
  fake server and event loop) while the other points run one after another.
- 25/s: 50 per 2 s (25 per 1 s); 500/s: 1,000 per 2 s (500 per 1 s); 2,000/s: 4,000 per
  2 s (2,000 per 1 s).

Each point runs ``windows`` windows (4; 2 at 1/s; ``--quick``: 2), starting at a uniformly
random offset into a server window (``--seed`` repeats them); at the deadline everything is
cancelled, including requests waiting in a limiter or in flight. Clients:

- ``wemasy-async``: the SDK with its default settings: ``fetch_conversations(ids)`` with no
  ``concurrency`` (the pool tunes itself), ``RateLimit(window=W)`` (the window is told, since
  the providers document a minute), the default retry policy. With 4 processes its limiter
  state is shared through one fresh ``redis-server`` (``RateLimit(window=W,
  store=RedisStore(url))``). Its session is the benchmark's (to timestamp requests) with
  the connection pool the client's own session has (1,000).
- ``aiolimiter``: ``AsyncLimiter(L, W)`` around each SDK call (``rate_limit=False,
  retry=False``), and on a 429 a sleep of its ``Retry-After`` and a retry through the limiter
  again. With 4 processes each gets ``AsyncLimiter(L / 4, W)``, the best a static split does.
- ``naive``: the SDK with ``rate_limit=False, retry=False`` and the same retry-after-429 loop.

The baselines get the concurrency an oracle would pick, ``ceil(rate x (latency + 2 ms) x
1.5) + 4`` tasks in all (at least 16), split between the processes; the SDK gets none.

Reported per point (definitions):

- ``utilisation`` = accepted / allowed: the server's accepted count (admitted and answered
  2xx) over ``L x duration / W``, the sustained rate the limit permits over exactly the time
  the load ran. Not capped at 100%: a fixed window lets a client that bursts at both ends of
  the run exceed it, up to ``(windows + 1) / windows``.
- ``429s``: 429 responses the server sent.
- ``any span``: the most requests the clients sent within any span of one window length
  (client-side timestamps of request headers going out, 429s included), over ``L``. At most
  ``L`` in every span means no alignment of the server's windows could see too many.
- ``peak in flight``: the most requests the clients had in flight at once (summed over the
  processes' own peaks).
- ``machine CPU busy``: the share of all cores' time that was not idle from the point's start
  to its deadline (``/proc/stat``; every process: the fake, redis-server, the clients).

Also: the machine's ceiling, bare aiohttp + msgspec with no limit (the fake announces 10M a
minute) at 0 ms (64 in flight) and at 200 ms (512 in flight), in one process and in 4 worker
processes started together (the same in flight in all); grid points whose rate is above the
ceiling at their latency and process count cannot reach 100% and are marked so. The long
runs (:func:`long_runs`): the SDK alone at 500/s and 200 ms (1 and 4 processes) and 2,000/s
and 0 ms (1 process) for 20 windows, with what the fake accepted in each of its whole windows
(its ``window_counts``), early and late in the run: the steady state that a batch of 100k
conversations meets, which a 4-window point, starting from an empty log, does not. And the
non-binding row: ``Client.get_conversation`` with the limiter on vs off vs bare aiohttp at
concurrency 1/16/64 (10M a minute, 0 ms), in many short paired rounds with all three open
at once (:func:`benchmarks.e2e.paired_rounds`).

Window indices are computed on the wall clock from the moment the server reported its URL;
the server fixes its origin a fraction of a millisecond before that. The machine is whatever
runs it: on a shared 2-core machine the 500/s and 2,000/s points compete with the fake server
(and each other's processes) for CPU.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from aiolimiter import AsyncLimiter
from yarl import URL

from benchmarks import e2e
from benchmarks.fake_process import fake_server
from wemasy_async import Client, RateLimit
from wemasy_async.batch import MAX_CONCURRENCY
from wemasy_async.errors import APIError, RateLimitError
from wemasy_async.ratelimit import LimiterStore
from wemasy_async.testing import most_in_any_span
from wemasy_async.transport import Connector

if TYPE_CHECKING:
    from wemasy_async.redis import RedisStore

SDK = "wemasy-async"
NAIVE = "naive"
AIOLIMITER = "aiolimiter"
CLIENTS = (SDK, AIOLIMITER, NAIVE)
BARE = "bare"  # the ceiling's: aiohttp + msgspec, no limiter, no SDK

RATES = (1, 25, 500, 2000)
LATENCIES = (0.0, 0.2)
PROCESS_COUNTS = (1, 4)

#: allowed rate -> (limit, window): full run, and --quick.
LIMITS: dict[int, tuple[int, float]] = {
    1: (60, 60.0),
    25: (50, 2.0),
    500: (1000, 2.0),
    2000: (4000, 2.0),
}
QUICK_LIMITS: dict[int, tuple[int, float]] = {
    1: (2, 2.0),
    25: (25, 1.0),
    500: (500, 1.0),
    2000: (2000, 1.0),
}

CONVERSATIONS = 200
TOKEN = "bench"
ROOT = Path(__file__).resolve().parent.parent
UNLIMITED = 10_000_000

Row = dict[str, Any]


@dataclass(frozen=True)
class LoadSpec:
    """What one process of a point runs (JSON-able: it is sent to worker processes)."""

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
    peak_in_flight: int = 0
    sent: list[float] = field(default_factory=list)  # wall clock, request headers sent

    def merge(self, other: Load) -> None:
        self.ok += other.ok
        self.rate_limited += other.rate_limited
        self.failed += other.failed
        self.gave_up += other.gave_up
        self.peak_in_flight += other.peak_in_flight
        self.sent.extend(other.sent)


def _trace(load: Load) -> aiohttp.TraceConfig:
    """Count responses by status, requests in flight, and timestamp every request sent."""
    in_flight = 0

    async def on_start(
        session: aiohttp.ClientSession, ctx: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        nonlocal in_flight
        in_flight += 1
        load.peak_in_flight = max(load.peak_in_flight, in_flight)

    async def on_sent(
        session: aiohttp.ClientSession,
        ctx: object,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        load.sent.append(time.time())

    async def on_end(
        session: aiohttp.ClientSession, ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        nonlocal in_flight
        in_flight -= 1
        status = params.response.status
        if status == 429:
            load.rate_limited += 1
        elif 200 <= status < 300:
            load.ok += 1

    async def on_error(
        session: aiohttp.ClientSession,
        ctx: object,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        nonlocal in_flight
        in_flight -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_headers_sent.append(on_sent)
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_error)
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


def _endless_ids() -> Iterator[int]:
    while True:
        yield from range(1, CONVERSATIONS + 1)


async def _sdk_batch(client: Client, load: Load) -> None:
    """The SDK's default: one ``fetch_conversations(ids)``, no concurrency given."""
    async with client.fetch_conversations(_endless_ids()) as results:
        async for result in results:
            if isinstance(result.error, RateLimitError):
                load.gave_up += 1
            elif result.error is not None:
                load.failed += 1


async def _bare_load(spec: LoadSpec, start_at: float, deadline_at: float) -> Load:
    """``spec.tasks`` bare aiohttp + msgspec loops (the ceiling's client) until the deadline."""
    load = Load()

    async def loop(fetch: e2e.Fetch) -> None:
        for conversation_id in _endless_ids():
            await fetch(conversation_id)
            load.ok += 1

    async with e2e.open_bare(spec.url, spec.tasks) as fetch:
        await anyio.sleep(max(0.0, start_at - time.time()))
        with anyio.move_on_after(deadline_at - time.time()):
            async with anyio.create_task_group() as tg:
                for _ in range(spec.tasks):
                    tg.start_soon(loop, fetch)
    return load


async def run_load(spec: LoadSpec, start_at: float, deadline_at: float) -> Load:
    """Run ``spec``'s client from ``start_at`` until ``deadline_at`` (wall clock)."""
    if spec.client == BARE:
        return await _bare_load(spec, start_at, deadline_at)
    load = Load()
    store: RedisStore | None = None
    if spec.redis_url is not None:
        from wemasy_async.redis import RedisStore  # optional: imported only when used

        store = RedisStore(spec.redis_url)
    session = aiohttp.ClientSession(
        connector=Connector(limit=MAX_CONCURRENCY),  # as the SDK's own session
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
            await anyio.sleep(max(0.0, start_at - time.time()))
            with anyio.move_on_after(deadline_at - time.time()):
                if spec.client == SDK:
                    await _sdk_batch(client, load)
                else:
                    task = _task_factory(spec, client, load)
                    async with anyio.create_task_group() as tg:
                        for n in range(spec.tasks):
                            tg.start_soon(task, n % CONVERSATIONS + 1)
    finally:
        await session.close()
        if store is not None:
            await store.aclose()
    return load


# --- The machine's CPU while a point runs ---------------------------------------------------


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU time of the whole machine since boot, from ``/proc/stat`` (idle
    and I/O wait are not busy); ``None`` where there is no such file."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:9]  # user nice system idle iowait irq softirq steal
    except OSError:
        return None
    values = [float(v) for v in fields]
    total = sum(values)
    return total - values[3] - values[4], total


class BusyMeter:
    """The share of the machine's CPU time that was busy between two wall-clock times (all
    processes: the fake, redis-server, the clients), sampled by a thread of its own."""

    def __init__(self) -> None:
        self._busy: float | None = None
        self._thread: threading.Thread | None = None

    def arm(self, start_at: float, end_at: float) -> None:
        def sample() -> None:
            time.sleep(max(0.0, start_at - time.time()))
            first = _cpu_times()
            time.sleep(max(0.0, end_at - time.time()))
            last = _cpu_times()
            if first is not None and last is not None and last[1] > first[1]:
                self._busy = (last[0] - first[0]) / (last[1] - first[1])

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def busy(self) -> float | None:
        """The share, once the end time has passed (``None`` if it could not be read)."""
        if self._thread is not None:
            self._thread.join()
        return self._busy


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
    meter: BusyMeter | None = None,
) -> tuple[Load, float, float]:
    """Run ``spec`` in ``processes`` worker processes, started together; merge their loads
    (``meter``, if given, measures the machine from start to deadline)."""
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
        if meter is not None:
            meter.arm(start, deadline)
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


# --- Points ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One grid point: an allowed rate (as a fixed window) at a latency, over processes."""

    rate: int
    limit: int
    window: float
    latency: float
    processes: int
    windows: int


def grid(
    *,
    quick: bool = False,
    rates: Sequence[int] = RATES,
    latencies: Sequence[float] = LATENCIES,
    process_counts: Sequence[int] = PROCESS_COUNTS,
    windows: int | None = None,
) -> list[Point]:
    """The grid's points, in the order they run."""
    limits = QUICK_LIMITS if quick else LIMITS
    points = []
    for processes in process_counts:
        for latency in latencies:
            for rate in rates:
                limit, window = limits[rate]
                count = windows or (2 if quick or rate == 1 else 4)
                points.append(Point(rate, limit, window, latency, processes, count))
    return points


def oracle_tasks(point: Point) -> int:
    """The concurrency the baselines get: Little's law from the true rate and latency."""
    return min(MAX_CONCURRENCY, max(16, math.ceil(point.rate * (point.latency + 0.002) * 1.5) + 4))


def run_point(client: str, point: Point, rng: random.Random) -> Row:
    """One client at one point, against a fresh fake server; its row."""
    row: Row = {"client": client, **asdict(point)}
    use_redis = client == SDK and point.processes > 1
    if use_redis:
        if importlib.util.find_spec("redis") is None:
            return {**row, "skipped": "no redis package"}
        if redis_server_path() is None:
            return {**row, "skipped": "no redis-server"}
    offset = rng.uniform(0, point.window)
    duration = point.windows * point.window
    tasks = oracle_tasks(point)
    meter = BusyMeter()
    with fake_server(
        rate_limit=point.limit,
        window=point.window,
        latency=point.latency,
        conversations=CONVERSATIONS,
    ) as url:
        origin = time.time()
        spec = LoadSpec(
            url=url,
            client=client,
            tasks=max(1, tasks // point.processes),
            window=point.window,
            # aiolimiter refuses a capacity below one request (2 per 2 s over 4, --quick).
            aiolimiter_rate=max(1.0, point.limit / point.processes),
        )
        if point.processes == 1:
            start = _start_time(origin, point.window, offset, time.time() + 0.05)
            deadline = start + duration
            meter.arm(start, deadline)
            load = anyio.run(run_load, spec, start, deadline)
        else:
            with redis_server() if use_redis else _no_redis() as redis_url:
                spec = LoadSpec(**{**asdict(spec), "redis_url": redis_url})
                load, start, deadline = _run_workers(
                    spec,
                    point.processes,
                    origin=origin,
                    window=point.window,
                    offset=offset,
                    duration=duration,
                    meter=meter,
                )
        time.sleep(0.2 + point.latency)  # let responses to cancelled requests finish
        stats = _server_stats(url)
    allowed = point.limit * (deadline - start) / point.window
    return {
        **row,
        "utilisation": stats["accepted"] / allowed,
        "accepted": stats["accepted"],
        "allowed": allowed,
        "rate_limited": stats["rate_limited"],
        "client_429s": load.rate_limited,
        "failed": load.failed,
        "gave_up": load.gave_up,
        "max_sent_any_span": most_in_any_span(load.sent, point.window),
        "peak_in_flight": load.peak_in_flight,
        "machine_busy": meter.busy(),
        "tasks": None if client == SDK else tasks,
        "offset": offset,
        "window_counts": _window_counts(stats, point.windows),
    }


def _window_counts(stats: dict[str, Any], windows: int) -> list[int]:
    """Requests the fake accepted in each of the ``windows + 1`` windows of its that the run
    touched, in order: the first and the last are partial (the run starts ``offset`` into a
    window and lasts ``windows`` of them), the first is the one of the first request."""
    counts = {int(index): count for index, count in stats["window_counts"].items()}
    if not counts:
        return []
    first = min(counts)
    return [counts.get(index, 0) for index in range(first, first + windows + 1)]


@contextmanager
def _no_redis() -> Iterator[None]:
    yield None


def run_grid(
    points: Sequence[Point],
    *,
    clients: Sequence[str] = CLIENTS,
    seed: int | None = None,
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    rng = random.Random(seed)
    runs = [(client, point, rng.random()) for point in points for client in clients]
    rows: dict[int, Row] = {}

    def run(index: int) -> None:
        client, point, draw = runs[index]
        rows[index] = row = run_point(client, point, random.Random(draw))
        if progress is not None:
            progress(row)

    # The 1/s points last minutes and idle: side by side, while the others run in turn.
    slow = [i for i, (_, point, _) in enumerate(runs) if point.rate == 1]
    with ThreadPoolExecutor(max_workers=max(1, len(slow))) as pool:
        pending = [pool.submit(run, i) for i in slow]
        for index in range(len(runs)):
            if index not in slow:
                run(index)
        for future in pending:
            future.result()
    return [rows[i] for i in range(len(runs))]


# --- The long runs ----------------------------------------------------------------------------

#: (rate, latency, processes) of the long runs: the grid's busiest points below the ceiling.
LONG_RUNS = ((500, 0.2, 1), (2000, 0.0, 1), (500, 0.2, 4))
LONG_WINDOWS = 20
#: The windows at the start of a long run compared with its steady state (the grid's 4
#: windows hold 3 whole windows of the fake's).
EARLY_WINDOWS = 3


def long_runs(
    windows: int = LONG_WINDOWS,
    *,
    runs: Sequence[tuple[int, float, int]] = LONG_RUNS,
    seed: int | None = None,
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    """The SDK at a few grid points for ``windows`` windows instead of 4: what the fake
    accepted in each of its whole windows, early (the first :data:`EARLY_WINDOWS`, as the
    grid sees) and late (the second half), against the most the pacing rules allow when
    they bind for good, ``W / (W + margin)`` of the limit a window.

    A grid point starts with an empty log and a window's worth of sends at once; once the
    limit binds the sends of a window echo the window's before, each at least ``W +
    margin`` after its twin (no span of ``W + margin`` holds more than ``L``), so the pace
    settles at ``L / (W + margin)``: a batch of 100k conversations at 500/s lasts 100
    windows, and meets the steady state, not the start."""
    rng = random.Random(seed)
    rows = []
    for rate, latency, processes in runs:
        (point,) = grid(
            rates=[rate], latencies=[latency], process_counts=[processes], windows=windows
        )
        row = run_point(SDK, point, random.Random(rng.random()))
        if "skipped" not in row:
            whole = row["window_counts"][1:-1]  # the first and the last are partial
            early, late = whole[:EARLY_WINDOWS], whole[len(whole) // 2 :]
            row.update(
                whole_windows=[count / point.limit for count in whole],
                early=_share(early, point.limit),
                late=_share(late, point.limit),
                steady_bound=point.window / (point.window + _margin(point.window)),
            )
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _share(counts: Sequence[int], limit: int) -> float:
    """The mean of ``counts`` (accepted per window) as a share of ``limit``; NaN for none."""
    return sum(counts) / (limit * len(counts)) if counts else math.nan


def _margin(window: float) -> float:
    """The margin the SDK paces with at a window of ``window`` seconds by default."""
    return RateLimit(window=window).pacing_margin


def format_long_runs(rows: Sequence[Row]) -> str:
    """The long runs as markdown."""
    lines = [
        "| allowed rate | latency | processes | windows | utilisation | early windows "
        "| late windows | steady-state bound | 429s | any span / limit | peak in flight "
        "| machine CPU busy | target (>= 97%, 0 429s, late windows) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    series = []
    for row in rows:
        head = (
            f"| {_rate_text(row['rate'])} | {row['latency'] * 1000:.0f} ms "
            f"| {row['processes']} | {row['windows']} "
        )
        if "skipped" in row:
            lines.append(head + f"| not run: {row['skipped']} | | | | | | | | |")
            continue
        met = row["late"] >= 0.97 and row["rate_limited"] == 0
        lines.append(
            head + f"| {row['utilisation']:.1%} | {row['early']:.1%} | {row['late']:.1%} "
            f"| {row['steady_bound']:.1%} | {row['rate_limited']:,} "
            f"| {row['max_sent_any_span']:,} / {row['limit']:,} | {row['peak_in_flight']:,} "
            f"| {_busy_text(row.get('machine_busy'))} | {'met' if met else 'MISSED'} |"
        )
        processes = row["processes"]
        series.append(
            f"{_rate_text(row['rate'])}, {row['latency'] * 1000:.0f} ms, {processes} "
            f"process{'es' if processes > 1 else ''}: "
            + " ".join(f"{share:.1%}" for share in row["whole_windows"])
        )
    notes = [
        "",
        "Long runs: wemasy-async with default settings (`fetch_conversations(ids)`) at the "
        "grid's busiest points below the ceiling, for more windows. Early = what the fake "
        f"accepted in its first {EARLY_WINDOWS} whole windows (what a 4-window grid point "
        "holds), late = in the second half of its whole windows, each as a share of the "
        "limit; the steady-state bound is `W / (W + margin)`, the pace the sliding log allows "
        "once the limit binds in every window (no span of `W + margin` holds more than `L`). "
        "Accepted per whole window, in order:",
        "",
        *(f"- {line}" for line in series),
    ]
    return "\n".join(lines + notes)


# --- The ceiling and the non-binding row ------------------------------------------------------


#: (latency, processes, requests in flight over all processes) of the ceiling's runs.
CEILING_RUNS = ((0.0, 1, 64), (0.2, 1, 512), (0.0, 4, 64), (0.2, 4, 512))


def ceiling(requests: int = 5000, seconds: float = 4.0) -> list[Row]:
    """Requests per second bare aiohttp + msgspec reaches with no limit, by latency and
    process count (:data:`CEILING_RUNS`): one process in this one, ``requests`` after a
    warm-up; several in worker processes started together, for ``seconds``."""
    result = []
    for latency, processes, in_flight in CEILING_RUNS:
        with fake_server(rate_limit=UNLIMITED, latency=latency, conversations=requests) as url:
            if processes == 1:
                anyio.run(e2e.bare_loop, url, range(1, 201), in_flight)  # warm up
                rps = anyio.run(e2e.bare_loop, url, range(1, requests + 1), in_flight)
            else:
                spec = LoadSpec(
                    url=url,
                    client=BARE,
                    tasks=in_flight // processes,
                    window=1.0,
                    aiolimiter_rate=1.0,
                )
                load, start, deadline = _run_workers(
                    spec, processes, origin=time.time(), window=1.0, offset=0.0, duration=seconds
                )
                rps = load.ok / (deadline - start)
        result.append(
            {"latency": latency, "processes": processes, "in_flight": in_flight, "rps": rps}
        )
    return result


# "off again": a second limiter-off client, so that the table shows this run's own noise
# (off again / off) next to the ratio the target is about.
NON_BINDING = {
    "bare": e2e.open_bare,
    "on": e2e.open_sdk,
    "off": e2e.open_sdk_nolimit,
    "off_again": e2e.open_sdk_nolimit,
}


def non_binding(requests: int = 400, rounds: int = 101) -> list[Row]:
    """Limiter on vs off vs bare aiohttp when the limit never binds, at 1/16/64.

    The three (and a second limiter-off client, whose ratio to the first is the run's own
    noise) are open at once and run in many short paired rounds
    (:func:`benchmarks.e2e.paired_rounds`: ``requests`` each per round, a quarter of that
    at concurrency 1); a ratio is taken within each round and the median over the rounds is
    reported, req/s medians too. Next to them, the client's CPU time per request (this
    process's; the fake runs in another): it says what the limiter costs even when a shared
    VM's wall clock cannot.
    """
    rows = []
    with fake_server(rate_limit=UNLIMITED, conversations=requests) as url:
        for concurrency in (1, 16, 64):
            count = max(1, requests // 4) if concurrency == 1 else requests
            results = anyio.run(
                partial(
                    e2e.paired_rounds,
                    url,
                    NON_BINDING,
                    concurrency=concurrency,
                    counts=dict.fromkeys(NON_BINDING, count),
                    rounds=rounds,
                )
            )
            pairs = zip(results["on"], results["off"], strict=True)
            ratios = [on.rps / off.rps for on, off in pairs]
            rows.append(
                {
                    "concurrency": concurrency,
                    "requests": count * rounds,
                    "rounds": rounds,
                    **{name: statistics.median(r.rps for r in v) for name, v in results.items()},
                    "on_off": statistics.median(ratios),
                    "on_off_rounds": ratios,
                    "noise": e2e.paired(results, "off_again", "off"),
                    "cpu_us": {
                        name: statistics.median(r.cpu for r in v) * 1e6
                        for name, v in results.items()
                    },
                    "cpu_on_off": e2e.paired(results, "on", "off", cpu=True),
                }
            )
    return rows


# --- The table ---------------------------------------------------------------------------------


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f}/s"


def format_table(
    rows: Sequence[Row],
    *,
    ceilings: Sequence[Row] = (),
    unbound: Sequence[Row] = (),
    quick: bool = False,
) -> str:
    """The grid, the ceiling and the non-binding row as markdown."""
    lines = [
        "| allowed rate | limit | latency | processes | client | utilisation | 429s "
        "| any span / limit | peak in flight | machine CPU busy | target (>= 97%, 0 429s) |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        head = (
            f"| {_rate_text(row['rate'])} | {row['limit']:,} per {row['window']:g} s "
            f"| {row['latency'] * 1000:.0f} ms | {row['processes']} | {_label(row)} "
        )
        if "skipped" in row:
            lines.append(head + f"| not run: {row['skipped']} | | | | | |")
            continue
        ceiling_rps = next(
            (
                c["rps"]
                for c in ceilings
                if (c["latency"], c["processes"]) == (row["latency"], row["processes"])
            ),
            None,
        )
        if row["client"] != SDK:
            mark = ""
        elif ceiling_rps is not None and row["rate"] > ceiling_rps:
            mark = "above the ceiling"
        elif row["utilisation"] >= 0.97 and row["rate_limited"] == 0:
            mark = "met"
        else:
            mark = "MISSED"
            bound = (row["limit"] - 1) / row["limit"]
            if bound < 0.97:
                mark += f" (L - 1 bound: {bound:.0%})"
        lines.append(
            head + f"| {row['utilisation']:.1%} | {row['rate_limited']:,} "
            f"| {row['max_sent_any_span']:,} / {row['limit']:,} | {row['peak_in_flight']:,} "
            f"| {_busy_text(row.get('machine_busy'))} | {mark} |"
        )
    notes = [
        "",
        "utilisation = accepted / (limit x duration / window); 429s = sent by the server; any "
        "span = most sent (429s included) in any window-length span; peak in flight = the most "
        "requests in flight at once (each process's peak, summed); machine CPU busy = the "
        "share of all cores' time not idle while the point ran (fake, redis-server and "
        "clients together: near 100% the point is bound by the machine). wemasy-async runs "
        "`fetch_conversations(ids)` with no concurrency given (4 processes: one RedisStore); "
        "aiolimiter (the limit split evenly between processes) and naive (retry after "
        "Retry-After on 429) get `ceil(rate x (latency + 2 ms) x 1.5) + 4` tasks (at least "
        "16). "
        + (
            "Quick run: 2 windows per point, 1-2 s windows; 1/s is 2 per 2 s."
            if quick
            else "4 windows per point (2 at 1/s, where the limit is 60 per 60 s)."
        )
        + " A limit of L allows at most L - 1 sends in any window span, and L in a window plus"
        " the margin (2.5% of it): at 60 per 60 s the most utilisation without risking a 429"
        " is 97.6%.",
    ]
    if ceilings:
        notes += [
            "",
            "Ceiling (bare aiohttp + msgspec, no limit; several processes: started together, "
            "requests summed): "
            + ", ".join(
                f"{c['rps']:,.0f} req/s at {c['latency'] * 1000:.0f} ms in {c['processes']} "
                f"process{'es' if c['processes'] > 1 else ''} ({c['in_flight']} in flight)"
                for c in ceilings
            )
            + ". A grid point is above the ceiling when its rate is above the ceiling at its "
            "latency and process count.",
        ]
    if unbound:
        notes += [
            "",
            "| concurrency | requests | bare aiohttp | limiter on | limiter off "
            "| on / off (target >= 0.95x) | off again / off (noise) | on / bare | off / bare "
            "| client CPU per request: bare, on, off | CPU on / off |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in unbound:
            ratio = row["on_off"]
            mark = "met" if ratio >= 0.95 else "MISSED"
            cpu = row["cpu_us"]
            notes.append(
                f"| {row['concurrency']} | {row['requests']:,} | {row['bare']:,.0f} req/s "
                f"| {row['on']:,.0f} req/s | {row['off']:,.0f} req/s | {ratio:.2f}x ({mark}) "
                f"| {row['noise']:.2f}x | {row['on'] / row['bare']:.2f}x "
                f"| {row['off'] / row['bare']:.2f}x "
                f"| {cpu['bare']:.0f} / {cpu['on']:.0f} / {cpu['off']:.0f} µs "
                f"| {row['cpu_on_off']:.2f}x |"
            )
        notes.append(
            "\nLimit not binding (the fake announces 10M a minute, 0 ms): "
            "`Client.get_conversation` with the limiter on and off vs a bare aiohttp + msgspec "
            f"loop, all open at once; {unbound[0]['rounds']} short rounds, each running them "
            "back to back (the order alternating; requests: over all rounds); off again is a "
            "second limiter-off client (its ratio to the first: this run's noise); "
            "on / off is the median of the rounds' own ratios, req/s the medians; client CPU "
            "per request is this process's CPU time over the requests (median of the rounds; "
            "CPU on / off the median of the rounds' ratios)."
        )
    for row in rows:
        if "skipped" not in row and (row["failed"] or row["gave_up"]):
            notes.append(
                f"\nnote: {_rate_text(row['rate'])}, {row['latency'] * 1000:.0f} ms, "
                f"{row['processes']} processes, {row['client']}: {row['failed']} failures, "
                f"{row['gave_up']} RateLimitErrors raised after retries"
            )
    return "\n".join(lines + notes)


def _busy_text(busy: float | None) -> str:
    return "" if busy is None else f"{busy:.0%}"


def _label(row: Row) -> str:
    client = row["client"]
    if client == SDK:
        return "wemasy-async + Redis" if row["processes"] > 1 else "wemasy-async"
    if client == AIOLIMITER:
        return "aiolimiter" + (" (split)" if row["processes"] > 1 else "")
    return "naive (retry on 429)"
