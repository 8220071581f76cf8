"""What hooks cost per call, and what the engine costs without them.

``Client.get_conversation`` (Wemasy, a 20-message conversation) through a
:class:`~wemasy_async.testing.MockTransport`, so no network and no server share the CPU:
what is measured is the SDK's own work per call. Contenders, alternating for ``rounds``
rounds of ``calls`` calls each, the least CPU time per call of the rounds:

- *parse only*: the adapter's ``Call.parse`` of the same response, the floor of a call;
- *no hooks*: the client as configured by default but with ``rate_limit=False`` (the
  limiter's cost is the ``overhead`` benchmark's);
- *one no-op hook*: a plain function receiving the four core events;
- *OpenTelemetryHook*: the ``otel`` extra with an SDK tracer and meter provider and no
  exporter (skipped when the extra is not installed).

Issue 15's claim is that with no hooks the request path does no extra work: the engine only
tests ``if hooks:`` (the ``no hooks`` row against ``parse only`` is the whole engine and
client around the parse).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wemasy_async import Client
from wemasy_async.exchange import Response
from wemasy_async.providers.wemasy import WemasyProvider
from wemasy_async.testing import MockRequest, MockTransport, json_response

TOKEN = "bench-hooks-token"


def _body(messages: int = 20) -> dict[str, Any]:
    return {
        "success": True,
        "data": {
            "id": 1,
            "agent_id": "chat",
            "status": "completed",
            "messages": [
                {
                    "id": i,
                    "conversation_id": 1,
                    "role": "user" if i % 2 else "assistant",
                    "content": f"message {i} " * 8,
                    "created_at": "2026-01-01T00:00:00+00:00",
                }
                for i in range(messages)
            ],
        },
    }


def _no_op(event: object) -> None:
    pass


def _otel_hook() -> object | None:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        from wemasy_async.otel import OpenTelemetryHook
    except ImportError:
        return None
    return OpenTelemetryHook(tracer_provider=TracerProvider(), meter_provider=MeterProvider())


async def _client_round(calls: int, hooks: list[Any] | None, response: Response) -> float:
    def handler(request: MockRequest) -> Response:
        return response

    client = Client(
        "wemasy", token=TOKEN, transport=MockTransport(handler), rate_limit=False, hooks=hooks
    )
    async with client:
        await client.get_conversation(1)  # warm
        started = time.process_time()
        for _ in range(calls):
            await client.get_conversation(1)
        return (time.process_time() - started) / calls


def _parse_round(calls: int, response: Response) -> float:
    call = WemasyProvider().get_conversation(1)
    started = time.process_time()
    for _ in range(calls):
        call.parse(response)
    return (time.process_time() - started) / calls


def run(calls: int = 5_000, rounds: int = 5) -> dict[str, Any]:
    """Least CPU seconds per call of each contender; ``None`` for one not installed."""
    # Headers as aiohttp's (MockTransport makes them so): what the engine reads.
    response = asyncio.run(_as_sent(json_response(200, _body())))
    otel = _otel_hook()
    contenders: dict[str, Callable[[], float] | None] = {
        "parse only": lambda: _parse_round(calls, response),
        "no hooks": lambda: asyncio.run(_client_round(calls, None, response)),
        "one no-op hook": lambda: asyncio.run(_client_round(calls, [_no_op], response)),
        "OpenTelemetryHook": (
            None if otel is None else lambda: asyncio.run(_client_round(calls, [otel], response))
        ),
    }
    best: dict[str, float | None] = dict.fromkeys(contenders)
    for _ in range(rounds):
        for name, contender in contenders.items():
            if contender is not None:
                seconds = contender()
                previous = best[name]
                best[name] = seconds if previous is None else min(previous, seconds)
    return {"calls": calls, "rounds": rounds, "seconds": best}


async def _as_sent(response: Response) -> Response:
    return await MockTransport(lambda request: response).send(
        "POST", "http://127.0.0.1/", headers={}, body=None, timeout=None
    )


def format_table(result: dict[str, Any]) -> str:
    seconds = result["seconds"]
    base = seconds["no hooks"]
    lines = [
        "| contender | CPU per call | / no hooks |",
        "|---|---:|---:|",
    ]
    for name, value in seconds.items():
        if value is None:
            lines.append(f"| {name} | not installed (the `otel` extra) | |")
        else:
            lines.append(f"| {name} | {value * 1e6:,.1f} µs | {value / base:.2f}x |")
    lines.append(
        f"\n`get_conversation` (20 messages) through a MockTransport, no network: least CPU "
        f"time per call of {result['rounds']} alternating rounds of {result['calls']:,}. "
        "With no hooks the engine builds no event (it tests `if hooks:`); the row against "
        "*parse only* is the whole client and engine around the adapter's parse."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run()))
