"""Memory: peak RSS of a fresh process fetching 100k conversations vs 1k, and what one
``Conversation`` holding 20 messages retains next to the bare wire Struct of the same body.

Each measurement is a fresh ``python -m benchmarks.memory URL N`` process that fetches ``N``
conversations through ``Client.fetch_conversations(ids, concurrency=64)`` from a fake Wemasy
server in another process, and prints its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The ids come from a generator
(``i % conversations + 1``, so they cycle over the fake's 2,000 seeded conversations of 2 to
8 messages each) and every result is dropped as soon as it arrives. A batch whose memory
grows with the number of ids (ids materialised, results or tasks kept) shows as a ratio
above 1; a flat one stays near 1.0x. The process's RSS right after importing (before any
request) is reported too, so the fetching's own share can be read off.
"""

from __future__ import annotations

import gc
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import anyio

CONVERSATIONS = 2000
CONCURRENCY = 64
RETAINED_MESSAGES = 20
RETAINED_COUNT = 500
RETAINED_TARGET = 1.5


def _ids(count: int) -> Iterator[int]:
    return (i % CONVERSATIONS + 1 for i in range(count))


def _rss_kib() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes; this benchmark targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _fetch(url: str, count: int) -> tuple[int, int]:
    from wemasy_async import Client

    ok = failed = 0
    async with Client("wemasy", base_url=url, token="bench") as client:
        async for result in client.fetch_conversations(_ids(count), concurrency=CONCURRENCY):
            if result.ok:
                ok += 1
            else:
                failed += 1
    return ok, failed


def child(url: str, count: int) -> None:
    """Run in the fresh process: fetch, then print one JSON line of measurements."""
    import msgspec

    import wemasy_async  # noqa: F401  # measured as part of the baseline

    baseline = _rss_kib()
    started = time.perf_counter()
    ok, failed = anyio.run(_fetch, url, count)
    elapsed = time.perf_counter() - started
    line = msgspec.json.encode(
        {
            "count": count,
            "ok": ok,
            "failed": failed,
            "baseline_kib": baseline,
            "peak_kib": _rss_kib(),
            "seconds": elapsed,
        }
    )
    sys.stdout.write(line.decode() + "\n")


def _measure(url: str, count: int) -> dict[str, Any]:
    import msgspec

    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", url, str(count)],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = msgspec.json.decode(output.stdout.strip().splitlines()[-1])
    if result["failed"] or result["ok"] != count:
        raise RuntimeError(f"memory benchmark: {result['failed']} of {count} fetches failed")
    return result


def _retained_cases(
    count: int,
) -> list[tuple[str, list[bytes], Callable[[bytes], object], Callable[[bytes], object]]]:
    """Per provider: ``count`` bodies, our parse, and the bare decode of what ``raw`` holds."""
    import msgspec

    from wemasy_async.providers.base import Response
    from wemasy_async.providers.loop import LoopHistory, LoopProvider
    from wemasy_async.providers.siteassist import SiteAssistConversation, SiteAssistProvider
    from wemasy_async.providers.wemasy import WemasyConversation, WemasyProvider, _Envelope
    from wemasy_async.testing.loop import FakeLoop
    from wemasy_async.testing.siteassist import FakeSiteAssist
    from wemasy_async.testing.wemasy import FakeWemasy

    sizes = {"messages_per_conversation": (RETAINED_MESSAGES, RETAINED_MESSAGES)}
    wemasy = FakeWemasy(conversations=count, record_requests=False, **sizes)
    siteassist = FakeSiteAssist(conversations=count, record_requests=False, **sizes)
    loop = FakeLoop(conversations=count, long_conversations=0, record_requests=False, **sizes)

    def loop_body(conversation_id: str) -> bytes:
        encoded = loop._encoded_messages(conversation_id) or []
        return b'{"total":%d,"messages":[%s]}' % (len(encoded), b",".join(encoded))

    def ours(call: Any) -> Callable[[bytes], object]:
        parse = call.parse
        return lambda body: parse(Response(200, {}, body))

    wemasy_bare = msgspec.json.Decoder(_Envelope[WemasyConversation], strict=False).decode
    return [
        (
            "wemasy",
            [wemasy._encoded_conversation(i + 1) or b"" for i in range(count)],
            ours(WemasyProvider().get_conversation(1)),
            lambda body: wemasy_bare(body).data,  # the conversation, as raw holds it
        ),
        (
            "siteassist",
            [siteassist._encoded_conversation(c) or b"" for c in siteassist.conversation_ids],
            ours(SiteAssistProvider().get_conversation(siteassist.conversation_ids[0])),
            msgspec.json.Decoder(SiteAssistConversation).decode,
        ),
        (
            "loop",
            [loop_body(c) for c in loop.conversation_ids],
            ours(LoopProvider().get_conversation(loop.conversation_ids[0])),
            msgspec.json.Decoder(LoopHistory, strict=False).decode,
        ),
    ]


def _traced_per_object(build: Callable[[bytes], object], bodies: list[bytes]) -> float:
    build(bodies[0])  # warm any lazy state outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [build(body) for body in bodies]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before - sys.getsizeof(kept)) / len(kept)


def _with_raw_read(parse: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def build(body: bytes) -> object:
        conversation = parse(body)
        getattr(conversation, "raw")  # noqa: B009  # decodes a lazy raw into the field
        return conversation

    return build


def retained(count: int = RETAINED_COUNT) -> list[dict[str, Any]]:
    """Bytes retained per object: our ``Conversation`` (with ``raw``) vs the bare wire Struct.

    ``raw`` is decoded on first access (the body is kept until then): ``ours_bytes`` is what
    a parsed ``Conversation`` holds, ``ours_raw_bytes`` what it holds once ``raw`` was read.
    """
    rows = []
    for provider, bodies, ours, bare in _retained_cases(count):
        bare_bytes = _traced_per_object(bare, bodies)
        ours_bytes = _traced_per_object(ours, bodies)
        ours_raw_bytes = _traced_per_object(_with_raw_read(ours), bodies)
        rows.append(
            {
                "provider": provider,
                "messages": RETAINED_MESSAGES,
                "count": count,
                "body_bytes": sum(map(len, bodies)) / count,
                "bare_bytes": bare_bytes,
                "ours_bytes": ours_bytes,
                "ours_raw_bytes": ours_raw_bytes,
                "ratio": ours_bytes / bare_bytes,
                "raw_read_ratio": ours_raw_bytes / bare_bytes,
            }
        )
    return rows


def run(url: str, small: int = 1_000, large: int = 100_000) -> dict[str, Any]:
    """Peak RSS of fresh processes fetching ``small`` and ``large`` conversations."""
    low = _measure(url, small)
    high = _measure(url, large)
    return {
        "retained": retained(),
        "small": low,
        "large": high,
        "ratio": high["peak_kib"] / low["peak_kib"],
        "growth_ratio": (high["peak_kib"] - high["baseline_kib"])
        / max(1, low["peak_kib"] - low["baseline_kib"]),
    }


def format_table(result: dict[str, Any]) -> str:
    mark = "(met)" if result["ratio"] <= 1.2 else "(MISSED)"
    lines = [
        "| conversations fetched | RSS after import | peak RSS | time | rate |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key in ("small", "large"):
        row = result[key]
        lines.append(
            f"| {row['count']:,} | {row['baseline_kib'] / 1024:.1f} MiB "
            f"| {row['peak_kib'] / 1024:.1f} MiB | {row['seconds']:.1f} s "
            f"| {row['count'] / row['seconds']:,.0f} /s |"
        )
    lines += [
        "",
        f"Peak RSS, {result['large']['count']:,} vs {result['small']['count']:,}: "
        f"**{result['ratio']:.2f}x** {mark} (target <= 1.2x); growth above the RSS after "
        f"import: {result['growth_ratio']:.2f}x. `fetch_conversations(concurrency="
        f"{CONCURRENCY})`, ids from a generator, results dropped.",
    ]
    if "retained" in result:
        lines += ["", *format_retained(result["retained"])]
    return "\n".join(lines)


def format_retained(rows: list[dict[str, Any]]) -> list[str]:
    """The retained-size table (see the module docstring)."""
    lines = [
        f"Retained per object, {rows[0]['count']:,} kept, {rows[0]['messages']} messages each "
        "(tracemalloc):",
        "",
        "| provider | body | bare wire Struct | Conversation (with raw) "
        f"| ours / bare (target <= {RETAINED_TARGET}x) | after reading raw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mark = "(met)" if row["ratio"] <= RETAINED_TARGET else "(MISSED)"
        lines.append(
            f"| {row['provider']} | {row['body_bytes'] / 1024:.1f} KiB "
            f"| {row['bare_bytes'] / 1024:.1f} KiB | {row['ours_bytes'] / 1024:.1f} KiB "
            f"| {row['ratio']:.2f}x {mark} "
            f"| {row['ours_raw_bytes'] / 1024:.1f} KiB, {row['raw_read_ratio']:.2f}x |"
        )
    return lines


if __name__ == "__main__":
    if sys.argv[1:] == ["retained"]:
        print("\n".join(format_retained(retained())))
    else:
        child(sys.argv[1], int(sys.argv[2]))
