"""Decode: each provider's largest documented response through our decoders and the baselines.

The body per provider is the one ``get_conversation`` reads, with 100 messages (the largest
response the docs describe), built by the provider's fake from the package's test
data generators (``wemasy_async.testing``), so it has the fakes' mix of tool calls, usage,
nulls and timestamps. Every contender decodes the very same ``bytes``.

Contenders, per provider:

- ``json.loads``: the standard library, untyped (dicts and strings; no validation).
- ``msgspec`` (bare): ``msgspec.json.Decoder(<wire Struct>, strict=<as ours>)`` into the
  provider adapter's own wire Structs (``_Envelope[WemasyConversation]``,
  ``SiteAssistConversation``, ``LoopHistory``). These are the "equivalent Structs": the same
  fields with the same lenient types the wire needs (ids as ``int | str``, ``tool_calls`` as
  list, object or embedded JSON text, ...), because a bare decoder that validated less would
  not be reading the same API. What our path adds on top is exactly the translation into the
  neutral models and the status check around it.
- ``pydantic v2``: ``Model.model_validate_json(body)`` with pydantic models of the same
  schema and the same lenient types (pydantic's default lax mode turns numeric strings into
  ints and RFC 3339 strings into datetimes, as ``strict=False`` does for msgspec).
- ``wemasy-async``: ``Call.parse(Response(200, headers, body))``, our whole decode path:
  status check, and for these canonical bodies the fast path: msgspec decodes straight into
  ``Message`` objects (a few fields converted in place), ``raw`` kept as the body and decoded
  on first access (see ``wemasy_async.providers.wire``); other bodies take the lenient path
  (msgspec decode into the wire Structs, conversion to the neutral models).
- ``wemasy-async + raw``: the same, then reading ``raw`` (what a caller who wants the wire
  object pays; not a target).

Timing is ``timeit``-style: the number of calls per sample is chosen so that one sample
takes about 0.2 s, and the figure is the minimum over ``repeat`` samples, per call. The
samples of a provider's contenders are interleaved (one sample of each in turn, ``repeat``
times), so a burst of load from another process does not land on one contender only.

Targets (issue 13): ours <= 1.3x bare msgspec, and pydantic >= 3x slower than ours.

After the table comes the top of a ``cProfile`` of our path per provider (2,000 parses,
sorted by own time): ``parse`` is the status check and error handling, ``decode`` the msgspec
decoder (into the wire Structs), ``_messages`` the loop that builds the neutral messages. The
neutral ``Message``/``TokenUsage`` constructors are types, not functions, so their cost shows
inside the function that calls them.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import timeit
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from wemasy_async.models import Conversation
from wemasy_async.providers.base import Call, Provider, Response
from wemasy_async.providers.loop import LoopHistory, LoopProvider
from wemasy_async.providers.siteassist import SiteAssistConversation, SiteAssistProvider
from wemasy_async.providers.wemasy import WemasyConversation, WemasyProvider
from wemasy_async.testing.loop import FakeLoop
from wemasy_async.testing.siteassist import FakeSiteAssist
from wemasy_async.testing.wemasy import FakeWemasy

MESSAGES = 100
HEADERS = {"Content-Type": "application/json"}


# --- pydantic v2 models of the same wire schemas ---------------------------------------------


class PdFunction(BaseModel):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class PdToolCall(BaseModel):
    id: str | int | None = None
    type: str | None = None
    function: PdFunction | None = None
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class PdWemasyUsage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class PdWemasyMessage(BaseModel):
    id: int | str | None = None
    conversation_id: int | str | None = None
    role: str
    content: str | None = None
    tool_calls: list[PdToolCall] | PdToolCall | str | None = None
    tool_call_id: str | None = None
    usage: PdWemasyUsage | int | str | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] | list[Any] | None = None


class PdWemasyConversation(BaseModel):
    id: int
    agent_id: str | None = None
    status: str | None = None
    goal: str | None = None
    cost_tokens: int | None = None
    cost_amount: Decimal | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    messages: list[PdWemasyMessage] | str | None = None


class PdWemasyEnvelope(BaseModel):
    success: bool = True
    message: str | None = None
    data: PdWemasyConversation


class PdSiteAssistUsage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    prompt_tokens: int | None = Field(default=None, alias="promptTokens")
    completion_tokens: int | None = Field(default=None, alias="completionTokens")
    total_tokens: int | None = Field(default=None, alias="totalTokens")
    prompt_tokens_snake: int | None = Field(default=None, alias="prompt_tokens")
    completion_tokens_snake: int | None = Field(default=None, alias="completion_tokens")
    total_tokens_snake: int | None = Field(default=None, alias="total_tokens")


class PdSiteAssistMessage(BaseModel):
    id: str | int | None = None
    conversation_id: str | None = Field(default=None, alias="conversationId")
    role: str
    content: str | None = None
    created_at: datetime | None = Field(default=None, alias="createdAt")
    tool_calls: list[PdToolCall] | None = Field(default=None, alias="toolCalls")
    tool_calls_snake: list[PdToolCall] | None = Field(default=None, alias="tool_calls")
    tool_call_id: str | None = Field(default=None, alias="toolCallId")
    tool_call_id_snake: str | None = Field(default=None, alias="tool_call_id")
    usage: PdSiteAssistUsage | None = None
    token_usage: PdSiteAssistUsage | None = Field(default=None, alias="tokenUsage")
    metadata: dict[str, Any] | None = None


class PdHumanAgent(BaseModel):
    id: str | int | None = None
    name: str | None = None
    email: str | None = None


class PdSiteAssistConversation(BaseModel):
    object: str | None = None
    id: uuid.UUID
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    status: str | None = None
    closed_at: datetime | None = Field(default=None, alias="closedAt")
    close_reason: str | None = Field(default=None, alias="closeReason")
    last_interaction_at: datetime | None = Field(default=None, alias="lastInterationAt")
    is_human_handled: bool | None = Field(default=None, alias="isHumanHandled")
    human_agent: str | PdHumanAgent | None = Field(default=None, alias="humanAgent")
    messages: list[PdSiteAssistMessage] | None = None


class PdLoopUsage(BaseModel):
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    total_tokens: int | None = Field(default=None, ge=0)


class PdLoopMessage(BaseModel):
    id: str | int | None = None
    conversation_id: str | None = None
    role: str
    content: str | None = None
    tool_calls: list[PdToolCall] | None = None
    tool_call_id: str | None = None
    token_usage: PdLoopUsage | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


class PdLoopHistory(BaseModel):
    total: int = Field(ge=0)
    messages: list[PdLoopMessage]


# --- The bodies and the contenders -----------------------------------------------------------


class Case(msgspec.Struct, frozen=True):
    """One provider's body and its contenders (name -> function of the body)."""

    provider: str
    body: bytes
    contenders: dict[str, Callable[[bytes], object]]


def _ours(call: Call[Conversation]) -> Callable[[bytes], object]:
    parse = call.parse
    return lambda body: parse(Response(200, HEADERS, body))


def _ours_with_raw(ours: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def parse_and_read_raw(body: bytes) -> object:
        conversation = ours(body)
        return getattr(conversation, "raw")  # noqa: B009  # decodes the lazy raw

    return parse_and_read_raw


def _wemasy_body() -> tuple[bytes, int]:
    fake = FakeWemasy(
        conversations=1, messages_per_conversation=(MESSAGES, MESSAGES), record_requests=False
    )
    body = fake._encoded_conversation(1)
    assert body is not None
    return body, 1


def _siteassist_body() -> tuple[bytes, str]:
    fake = FakeSiteAssist(
        conversations=1, messages_per_conversation=(MESSAGES, MESSAGES), record_requests=False
    )
    conversation_id = fake.conversation_ids[0]
    body = fake._encoded_conversation(conversation_id)
    assert body is not None
    return body, conversation_id


def _loop_body() -> tuple[bytes, str]:
    fake = FakeLoop(
        conversations=1,
        messages_per_conversation=(MESSAGES, MESSAGES),
        long_conversations=0,
        record_requests=False,
    )
    conversation_id = fake.conversation_ids[0]
    encoded = fake._encoded_messages(conversation_id)
    assert encoded is not None
    # The same framing FakeLoop._answer uses.
    body = b'{"total":%d,"messages":[%s]}' % (len(encoded), b",".join(encoded))
    return body, conversation_id


def _bare(wire: Any, *, strict: bool) -> Callable[[bytes], object]:
    return msgspec.json.Decoder(wire, strict=strict).decode


def cases() -> list[Case]:
    """The three providers' bodies with their contenders, checked to decode alike."""
    from wemasy_async.providers.wemasy import _Envelope  # the envelope is private

    wemasy_body, wemasy_id = _wemasy_body()
    siteassist_body, siteassist_id = _siteassist_body()
    loop_body, loop_id = _loop_body()
    providers: list[tuple[str, bytes, Provider, object, Any, bool, type[BaseModel]]] = [
        (
            "wemasy",
            wemasy_body,
            WemasyProvider(),
            wemasy_id,
            _Envelope[WemasyConversation],
            False,
            PdWemasyEnvelope,
        ),
        (
            "siteassist",
            siteassist_body,
            SiteAssistProvider(),
            siteassist_id,
            SiteAssistConversation,
            True,
            PdSiteAssistConversation,
        ),
        ("loop", loop_body, LoopProvider(), loop_id, LoopHistory, False, PdLoopHistory),
    ]
    result = []
    for name, body, provider, conversation_id, wire, strict, model in providers:
        ours = _ours(provider.get_conversation(conversation_id))  # type: ignore[arg-type]
        conversation = ours(body)
        assert isinstance(conversation, Conversation)
        assert conversation.messages is not None
        assert len(conversation.messages) == MESSAGES
        result.append(
            Case(
                provider=name,
                body=body,
                contenders={
                    "json.loads": json.loads,
                    "msgspec": _bare(wire, strict=strict),
                    "pydantic": model.model_validate_json,
                    "wemasy-async": ours,
                    "wemasy-async + raw": _ours_with_raw(ours),
                },
            )
        )
    return result


def best_times(
    contenders: dict[str, Callable[[bytes], object]], body: bytes, repeat: int
) -> dict[str, float]:
    """Seconds per call of each contender: the minimum over ``repeat`` interleaved samples."""
    timers = {name: timeit.Timer(lambda f=f: f(body)) for name, f in contenders.items()}
    numbers = {name: timer.autorange()[0] for name, timer in timers.items()}
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(repeat):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name])
    return best


TARGET_VS_MSGSPEC = 1.3
TARGET_VS_PYDANTIC = 3.0
PROFILE_CALLS = 2000
PROFILE_LINES = 10


def profile(function: Callable[[bytes], object], body: bytes) -> list[str]:
    """The top :data:`PROFILE_LINES` of a cProfile of ``function(body)``, by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILE_CALLS):
        function(body)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return [line.replace(root, "") for line in lines[start:] if line.strip()]


def run(repeat: int = 7) -> list[dict[str, Any]]:
    """Time every contender on every provider's body; one row per provider."""
    rows = []
    for case in cases():
        times = best_times(case.contenders, case.body, repeat)
        ours = times["wemasy-async"]
        rows.append(
            {
                "provider": case.provider,
                "body_bytes": len(case.body),
                "messages": MESSAGES,
                "us": {name: t * 1e6 for name, t in times.items()},
                "ours_vs_msgspec": ours / times["msgspec"],
                "pydantic_vs_ours": times["pydantic"] / ours,
                "json_loads_vs_ours": times["json.loads"] / ours,
                "profile": profile(case.contenders["wemasy-async"], case.body),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| provider | body | json.loads | bare msgspec | pydantic v2 | wemasy-async (Call.parse) "
        "| + reading raw "
        f"| ours / bare msgspec (target <= {TARGET_VS_MSGSPEC}x) "
        f"| pydantic / ours (target >= {TARGET_VS_PYDANTIC:g}x) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        us = row["us"]
        lines.append(
            f"| {row['provider']} | {row['body_bytes'] / 1024:.1f} KiB, {row['messages']} msgs "
            f"| {us['json.loads']:.1f} µs | {us['msgspec']:.1f} µs | {us['pydantic']:.1f} µs "
            f"| {us['wemasy-async']:.1f} µs | {us['wemasy-async + raw']:.1f} µs "
            f"| {row['ours_vs_msgspec']:.2f}x "
            f"{_mark(row['ours_vs_msgspec'] <= TARGET_VS_MSGSPEC)} "
            f"| {row['pydantic_vs_ours']:.2f}x "
            f"{_mark(row['pydantic_vs_ours'] >= TARGET_VS_PYDANTIC)} |"
        )
    for row in rows:
        if row.get("profile"):
            lines += [
                "",
                f"Profile of our decode path, {row['provider']} ({PROFILE_CALLS:,} parses, "
                f"top {PROFILE_LINES} by own time):",
                "",
                "```",
                *row["profile"],
                "```",
            ]
    return "\n".join(lines)


def _mark(met: bool) -> str:
    return "(met)" if met else "(MISSED)"


if __name__ == "__main__":
    print(format_table(run()))
