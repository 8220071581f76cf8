"""An in-process fake of the Loop AI message-history API.

Base URL ``<fake.url>`` (``http://127.0.0.1:<port>``, no prefix) mirrors
``https://ai.platform.loop.health``; the one endpoint is
``GET /v1/conversations/{id}/messages?limit=N``, answering
``{"total": <all messages>, "messages": [<the first N, oldest first>]}``.

Where the docs are silent, the fake decides (and documents here):

* Without ``limit`` the server applies ``default_limit`` (50); a ``limit`` above
  ``max_limit`` (1000) is capped silently. ``total`` always counts every message, so a
  client can tell a truncated answer from a complete one.
* ``limit`` must be an integer >= 1 written in ASCII digits; anything else (``0``, ``-1``,
  ``1.5``, ``abc``, an empty value) is 400 ``{"error": "invalid_request", "message": ...}``.
  The limit is validated before the id is looked up.
* Error bodies are ``{"error": <snake_case code>, "message": <text>}``, as documented for
  404 and 500: an unknown id is 404 ``not_found`` "Conversation not found"; a missing or
  wrong bearer token 401 ``unauthorized``; the rate limiter 429 ``rate_limited`` with
  ``Retry-After``.
* Every message carries every documented field: ``tool_calls`` and ``token_usage`` are
  ``null`` when there are none, ``metadata`` is ``{}``, ``content`` is a string (``""`` for
  an assistant message that only calls tools), ``created_at`` is RFC 3339 with milliseconds
  and ``Z`` (JavaScript's ``toISOString``).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final, overload

import msgspec
from aiohttp import web

from wemasy_async.testing._server import (
    BoundedCache,
    FakeServer,
    Route,
    SeededUuidConversations,
    uuid4_of,
)

__all__ = ["MESSAGES_PATH", "FakeLoop", "HistoryRequest"]

#: The route template of the one endpoint.
MESSAGES_PATH: Final = "/v1/conversations/{id}/messages"

_EPOCH: Final = datetime(2024, 1, 1, tzinfo=timezone.utc)
_TOPICS: Final = (
    "sleep quality",
    "a new running plan",
    "vitamin D levels",
    "blood pressure readings",
    "a meal plan with more protein",
    "stress at work",
    "recovery after a knee injury",
    "resting heart rate trends",
)
_USER_TEMPLATES: Final = (
    "Can you help me with {topic}?",
    "What should I change first?",
    "How long before I see a difference?",
    "Can you give me a concrete example?",
    "Thanks, anything else I should track?",
)
_ASSISTANT_TEMPLATES: Final = (
    "Happy to help with {topic}. Let us start with what you do today.",
    "Start small: one change per week is easier to keep.",
    "Most people notice a difference within three to four weeks.",
    "For example, move your last meal two hours earlier.",
    "Track it daily for two weeks, then we can compare.",
)
_SYSTEM_PROMPT: Final = "You are Loop, a careful health coach. You do not diagnose."
_TOOLS: Final = (
    ("get_lab_results", {"panel": "vitamin_d"}, '{"vitamin_d_nmol_l": 48}'),
    ("get_sleep_summary", {"days": 7}, '{"average_hours": 6.4}'),
    ("get_heart_rate", {"period": "week"}, '{"resting_bpm": 58}'),
)

_encode = msgspec.json.encode
_DIGITS: Final = re.compile(r"[0-9]+")

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """A request that reached the messages handler (auth, rate limit and faults passed).

    Attributes:
        raw_path: The path exactly as sent, still percent-encoded (aiohttp's
            ``request.raw_path`` without the query string).
        conversation_id: The ``{id}`` path segment, percent-decoded by the router.
        limit: The ``limit`` query parameter as sent, or None when absent.
        status: The status the handler answered with.
    """

    raw_path: str
    conversation_id: str
    limit: str | None
    status: int


def _snake(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_") or "error"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _usage(rng: random.Random) -> dict[str, int]:
    prompt, completion = rng.randint(20, 900), rng.randint(5, 300)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _roles(count: int, system: bool, with_tool: bool) -> list[str]:
    """The roles of a conversation, ``"tool_call"`` for an assistant's tool call."""
    roles = ["system"] if system else []
    while len(roles) < count:
        if with_tool and len(roles) >= 1 and count - len(roles) >= 3 and roles[-1] == "user":
            roles += ["tool_call", "tool", "assistant"]
            with_tool = False
        else:
            roles.append("user" if not roles or roles[-1] != "user" else "assistant")
    return roles


def _seed_messages(rng: random.Random, conversation_id: str, count: int) -> list[Message]:
    """The messages of one conversation: the draws after its id and its count."""
    topic = rng.choice(_TOPICS)
    system = count >= 3 and rng.random() < 0.2
    roles = _roles(count, system, rng.random() < 0.35)
    moment = _EPOCH + timedelta(seconds=rng.randrange(365 * 86400))
    tool_name, tool_args, tool_output = rng.choice(_TOOLS)
    messages: list[Message] = []
    for index, role in enumerate(roles):
        moment += timedelta(seconds=rng.randint(5, 120), milliseconds=rng.randrange(1000))
        content = ""
        tool_calls: list[dict[str, Any]] | None = None
        usage: dict[str, int] | None = None
        if role == "system":
            content = _SYSTEM_PROMPT
        elif role == "user":
            template = _USER_TEMPLATES[0 if index <= 1 else rng.randrange(1, 5)]
            content = template.format(topic=topic)
        elif role == "tool_call":
            role = "assistant"
            tool_calls = [
                {
                    "id": f"call_{rng.getrandbits(48):012x}",
                    "type": "function",
                    "function": {"name": tool_name, "arguments": _encode(tool_args).decode()},
                }
            ]
            usage = _usage(rng)
        elif role == "tool":
            content = tool_output
        else:
            content = rng.choice(_ASSISTANT_TEMPLATES).format(topic=topic)
            usage = _usage(rng)
        messages.append(
            {
                "id": _uuid(rng),
                "conversation_id": conversation_id,
                "role": role,
                "content": content,
                "tool_calls": tool_calls,
                "token_usage": usage,
                "metadata": {},
                "created_at": _timestamp(moment),
            }
        )
    return messages


class _LoopStream:
    """The Loop data set's draws (`_uuid_data.Stream`): id, message count, messages.

    The first ``long_count`` conversations have ``long_messages`` messages and draw no
    count. `walk` makes `build`'s draws through ``_randbelow`` (what ``choice``,
    ``randrange`` and ``randint`` call), which yields the same numbers in a third of the
    Python calls; ``tests/fakes/test_uuid_data.py`` compares with the eager generator.
    """

    def __init__(self, messages: tuple[int, int], long_count: int, long_messages: int) -> None:
        self.low, self.high = messages
        self.long_count = long_count
        self.long_messages = long_messages

    def _count(self, rng: random.Random, position: int) -> int:
        if position < self.long_count:
            return self.long_messages
        return rng.randint(self.low, self.high)

    def build(self, rng: random.Random, position: int) -> tuple[str, list[Message]]:
        conversation_id = _uuid(rng)
        return conversation_id, _seed_messages(rng, conversation_id, self._count(rng, position))

    def walk(self, rng: random.Random, position: int) -> int:
        below: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]
        bits, uniform = rng.getrandbits, rng.random
        value = uuid4_of(bits(128))
        if position < self.long_count:
            count = self.long_messages
        else:
            count = self.low + below(self.high - self.low + 1)
        below(len(_TOPICS))
        system = count >= 3 and uniform() < 0.2
        roles = _roles(count, system, uniform() < 0.35)
        below(365 * 86400)
        below(len(_TOOLS))
        for index, role in enumerate(roles):
            below(116)  # randint(5, 120)
            below(1000)
            if role == "user":
                if index > 1:
                    below(4)  # randrange(1, 5)
            elif role == "tool_call":
                bits(48)
                below(881)  # _usage: randint(20, 900)
                below(296)  # randint(5, 300)
            elif role == "assistant":
                below(len(_ASSISTANT_TEMPLATES))
                below(881)
                below(296)
            bits(128)  # the message id
        return value


class _SeededIds:
    """A list attribute of a `FakeLoop`: its first ``count(fake)`` seeded ids.

    The list is built when first read and kept (a fake of a million conversations that
    nobody asks for its ids never builds it); assigning replaces it, as for a plain list
    attribute.
    """

    def __init__(self, count: Callable[[FakeLoop], int]) -> None:
        self._count = count
        self._name = ""

    def __set_name__(self, owner: type[FakeLoop], name: str) -> None:
        self._name = "_" + name

    @overload
    def __get__(self, fake: None, owner: type[FakeLoop]) -> _SeededIds: ...
    @overload
    def __get__(self, fake: FakeLoop, owner: type[FakeLoop]) -> list[str]: ...
    def __get__(self, fake: FakeLoop | None, owner: type[FakeLoop]) -> _SeededIds | list[str]:
        if fake is None:
            return self
        ids: list[str] | None = fake.__dict__.get(self._name)
        if ids is None:
            seeded = fake.conversations
            ids = fake.__dict__[self._name] = [seeded.id_at(i) for i in range(self._count(fake))]
        return ids

    def __set__(self, fake: FakeLoop, ids: list[str]) -> None:
        fake.__dict__[self._name] = ids


class FakeLoop(FakeServer):
    """Fake Loop server with deterministic, seeded conversation histories.

    Example:
        >>> async with FakeLoop(seed=0, conversations=20) as fake:  # doctest: +SKIP
        ...     client = Client("loop", base_url=fake.url, token="anything")

    ``fake.conversation_ids`` lists the seeded ids (UUID strings drawn from
    ``random.Random(seed)``) in creation order; ``fake.conversations`` maps each id to its
    messages, oldest first, exactly as served::

        {"id": "<uuid>", "conversation_id": "<uuid>",
         "role": "user" | "assistant" | "system" | "tool", "content": str,
         "tool_calls": null | [{"id": "call_<12 hex>", "type": "function",
                                "function": {"name": str, "arguments": "<JSON text>"}}],
         "token_usage": null | {"prompt_tokens": int, "completion_tokens": int,
                                "total_tokens": int},
         "metadata": {}, "created_at": "2024-03-05T10:30:00.000Z"}

    Assistant messages (and only they) carry ``token_usage``. Some conversations start with
    a ``system`` message; about a third contain an assistant tool call (``content`` ``""``)
    followed by a ``tool`` message with the tool's output. The first ``long_conversations``
    ids (``fake.long_conversation_ids``) have ``long_conversation_messages`` messages each,
    more than ``default_limit``, so truncation and ``total`` are exercised.

    Every request that reaches the handler is appended to `history_requests` with its raw
    path (bounded like `requests`, see ``request_log``). If you change
    ``fake.conversations`` directly, call `invalidate`: encoded messages are cached.

    ``fake.conversations`` is a mutable mapping that generates each conversation when it is
    read (`SeededUuidConversations`), identical to generating them all up front, so any
    ``conversations`` starts at once in bounded memory; a conversation read through it is
    kept. Reading ``fake.conversation_ids`` builds the list of every id once (about 100
    bytes per id); the server itself never does.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        conversations: int = 50,
        messages_per_conversation: tuple[int, int] = (2, 8),
        long_conversations: int = 1,
        long_conversation_messages: int = 120,
        default_limit: int = 50,
        max_limit: int = 1000,
        token: str | None = None,
        rate_limit: int | None = 100_000,
        window: float = 60.0,
        window_offset: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
        **kwargs: Any,
    ) -> None:
        """Seed the data set; see `FakeServer.__init__` for the server arguments.

        Args:
            seed: Seed for `random.Random`; equal seeds give identical data.
            conversations: Number of seeded conversations, long ones included.
            messages_per_conversation: Inclusive (min, max) messages of an ordinary one.
            long_conversations: How many of them (the first ones, at most ``conversations``)
                are long.
            long_conversation_messages: Messages in each long conversation.
            default_limit: Messages served when the request has no ``limit``.
            max_limit: The largest ``limit`` honoured; larger ones are capped to it.
            token: Required bearer token, or None to accept any.
            rate_limit: Requests per window, or None to disable rate limiting.
            window: Rate-limit window in seconds.
            window_offset: Shift of the window boundaries in seconds.
            host: Interface to bind.
            port: Port to bind (0: any free port).
            record_requests: Keep `requests` and `history_requests` (False is
                ``request_log=0``).
            **kwargs: Passed to `FakeServer` (e.g. ``clock``).
        """
        super().__init__(
            token=token,
            rate_limit=rate_limit,
            window=window,
            window_offset=window_offset,
            host=host,
            port=port,
            record_requests=record_requests,
            **kwargs,
        )
        low, high = messages_per_conversation
        if not 0 <= low <= high:
            raise ValueError("messages_per_conversation must be (min, max) with 0 <= min <= max")
        if conversations < 0 or long_conversations < 0 or long_conversation_messages < 0:
            raise ValueError("conversation and message counts must be >= 0")
        if not 1 <= default_limit <= max_limit:
            raise ValueError("limits must satisfy 1 <= default_limit <= max_limit")
        self.seed = seed
        self.default_limit = default_limit
        self.max_limit = max_limit
        self._long_count = min(long_conversations, conversations)
        stream = _LoopStream((low, high), self._long_count, long_conversation_messages)
        #: Conversation id -> messages, generated on demand (a `SeededUuidConversations`).
        self.conversations = SeededUuidConversations(seed, conversations, stream)
        #: Requests that reached the messages handler, in order.
        self.history_requests: list[HistoryRequest] = self.new_log()
        self._encoded: BoundedCache[str, list[bytes]] = BoundedCache()

    # ------------------------------------------------------------------ data

    #: The seeded ids in creation order.
    conversation_ids = _SeededIds(lambda fake: fake.conversations.count)
    #: The ids of the long conversations (the first ones).
    long_conversation_ids = _SeededIds(lambda fake: fake._long_count)

    def background(self) -> Iterable[Coroutine[Any, Any, None]]:
        """Walk the data set while serving, so a far id is found at once."""
        return (self.conversations.walk_ahead(),)

    def invalidate(self, conversation_id: str | None = None) -> None:
        """Drop cached encodings after `conversations` was changed directly.

        Args:
            conversation_id: The conversation that changed, or None for all of them.
        """
        if conversation_id is None:
            self._encoded.clear()
        else:
            self._encoded.pop(conversation_id, None)

    def _encoded_messages(self, conversation_id: str) -> list[bytes] | None:
        encoded = self._encoded.get(conversation_id)
        if encoded is None:
            messages = self.conversations.peek(conversation_id)
            if messages is None:
                return None
            encoded = self._encoded.keep(conversation_id, [_encode(m) for m in messages])
        return encoded

    def reset_log(self) -> None:
        """Forget all recorded requests, `history_requests` included."""
        super().reset_log()
        self.history_requests.clear()

    # ------------------------------------------------------------------ provider hooks

    def routes(self) -> Iterable[Route]:
        """The one documented endpoint."""
        return (Route("GET", MESSAGES_PATH, self._handle_messages),)

    def unauthorized_body(self) -> Any:
        """``{"error": "unauthorized", "message": ...}``."""
        return {"error": "unauthorized", "message": "Missing or invalid bearer token"}

    def rate_limited_body(self, retry_after: int) -> Any:
        """``{"error": "rate_limited", "message": ...}``."""
        return {
            "error": "rate_limited",
            "message": f"Too many requests; retry in {retry_after} seconds",
        }

    def error_body(self, status: int) -> Any:
        """``{"error": <snake_case reason>, "message": <reason phrase>}`` (401, 429: their own)."""
        if status == 401:
            return self.unauthorized_body()
        if status == 429:
            return self.rate_limited_body(1)
        reason = super().error_body(status)["message"]
        return {"error": _snake(reason), "message": reason}

    # ------------------------------------------------------------------ handler

    def _parse_limit(self, raw: str | None) -> int | None:
        """The number of messages to serve, or None when ``raw`` is not a valid limit."""
        if raw is None:
            return self.default_limit
        if not _DIGITS.fullmatch(raw) or int(raw) < 1:
            return None
        return min(int(raw), self.max_limit)

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["id"]
        raw_limit = request.query.get("limit")
        response = self._answer(conversation_id, raw_limit)
        if self.record_requests:
            raw_path = request.raw_path.partition("?")[0]
            self.history_requests.append(
                HistoryRequest(raw_path, conversation_id, raw_limit, response.status)
            )
        return response

    def _answer(self, conversation_id: str, raw_limit: str | None) -> web.Response:
        limit = self._parse_limit(raw_limit)
        if limit is None:
            return self.json_response(
                {"error": "invalid_request", "message": "limit must be a positive integer"}, 400
            )
        encoded = self._encoded_messages(conversation_id)
        if encoded is None:
            return self.json_response(
                {"error": "not_found", "message": "Conversation not found"}, 404
            )
        total = str(len(encoded)).encode()
        body = b'{"total":%s,"messages":[%s]}' % (total, b",".join(encoded[:limit]))
        return self.raw_json_response(body)
