"""An in-process fake of the Wemasy AI Assistant API.

Base URL ``<fake.url>`` mirrors ``https://api.wemasy.nl/api``; the endpoints are
``POST /services/ai/v1/conversations/get``, ``/conversations/list`` and ``/chat``.

The real server is a Laravel application, so the fake follows Laravel conventions where the
docs are silent:

* Input is normalised like Laravel's ``TrimStrings`` and ``ConvertEmptyStringsToNull``
  middleware: strings are trimmed and empty strings become null (recursively), before
  validation and before anything is stored.
* Validation failures are 422 ``{"message": ..., "errors": {field: [messages]}}`` with
  Laravel's wording; ``message`` is the first error, plus ``" (and N more error(s))"``.
  One error is reported per field.
* ``integer`` accepts ints, integral floats (``27.0``) and integer strings (``"27"``), and
  rejects booleans.
* ``conversations/list`` reads ``page`` like Laravel's paginator: from the JSON body, else
  from the ``?page=`` query parameter; anything that is not an integer >= 1 means page 1.
* Decimal columns (``cost_amount``) are strings with 4 decimals; timestamps are
  ``YYYY-MM-DDTHH:MM:SS.000000Z``.

The docs leave conversation ``messages`` untyped; this fake sends a list of message objects
(see `FakeWemasy`). Its conversation ``id`` and ``cost_tokens`` are integers even though
the docs' response table says ``string``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

import msgspec
from aiohttp import web

from wemasy_async.testing._server import FakeServer, RecordedRequest, Route

__all__ = [
    "CHAT_PATH",
    "DEFAULT_MODEL",
    "GET_PATH",
    "LIST_PATH",
    "FakeWemasy",
]

GET_PATH: Final = "/services/ai/v1/conversations/get"
LIST_PATH: Final = "/services/ai/v1/conversations/list"
CHAT_PATH: Final = "/services/ai/v1/chat"

#: Model reported when the chat request names none.
DEFAULT_MODEL: Final = "gpt-4o-mini"

_AGENTS: Final = ("chat", "support", "sales")
_GOALS: Final = (
    "Improve the SEO strategy for the blog",
    "Draft an SEO strategy for the new product pages",
    "Review the local SEO strategy for the Amsterdam stores",
    "Check whether our seo strategy covers voice search",
    "Answer questions about invoice payments",
    "Plan the spring newsletter campaign",
    "Troubleshoot the contact form on the website",
    "Compare hosting plans for a webshop",
    "Write product descriptions for summer shoes",
    "Explain the results of the last Google Ads campaign",
)
_USER_TEMPLATES: Final = (
    "Can you help me with this: {goal}?",
    "What should I do first?",
    "Can you give me a concrete example?",
    "How long will that take?",
    "Thanks, what else should I consider?",
)
_ASSISTANT_TEMPLATES: Final = (
    "Sure. To {goal_lower}, start by reviewing what you have today.",
    "A good first step is to list your top ten pages and their main keywords.",
    "For example, rewrite the title and introduction of your most visited page.",
    "Most teams finish the first iteration within two weeks.",
    "Also keep an eye on page speed and mobile usability.",
)
_SYSTEM_PROMPT: Final = "You are a helpful assistant for a Dutch web agency."
_SEEDED_TOOLS: Final = (
    ("get_weather", {"city": "Amsterdam"}, "The current temperature in Amsterdam is 18°C"),
    ("search_knowledge_base", {"query": "opening hours"}, "We are open Mon-Fri 09:00-17:00."),
    ("lookup_order", {"order_id": 1042}, "Order 1042 was shipped on 12 March."),
)

_PRICE_PER_TOKEN: Final = Decimal("0.00002")
_FOUR_PLACES: Final = Decimal("0.0001")
_EPOCH: Final = datetime(2024, 1, 1, tzinfo=timezone.utc)
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1

_encode = msgspec.json.encode

_NOT_FOUND: Final = _encode({"success": False, "message": "Conversation not found."})
_FORBIDDEN: Final = _encode({"error": True, "message": "This action is unauthorized."})
_NOT_AN_OBJECT: Final = _encode(
    {
        "message": "The given data was invalid.",
        "errors": {"body": ["The request body must be a JSON object."]},
    }
)

Conversation = dict[str, Any]
Message = dict[str, Any]


def _timestamp(moment: datetime) -> str:
    # Laravel serialises second-precision DB timestamps with six zero microseconds.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _cost_amount(tokens: int) -> str:
    return str((Decimal(tokens) * _PRICE_PER_TOKEN).quantize(_FOUR_PLACES))


def _words(text: str) -> int:
    return len(text.split())


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _normalize(value: Any) -> Any:
    """Apply Laravel's TrimStrings + ConvertEmptyStringsToNull to decoded JSON input."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _laravel_int(value: Any) -> int | None:
    """Return ``value`` as an int if Laravel's ``integer`` rule accepts it, else None."""
    if isinstance(value, bool):
        return None
    result: int
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        # PHP's FILTER_VALIDATE_INT rejects leading zeros ("027").
        if not digits.isascii() or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
            return None
        result = int(text)
    else:
        return None
    return result if _INT_MIN <= result <= _INT_MAX else None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _is_laravel_bool(value: Any) -> bool:
    # Laravel's ``boolean`` rule: a strict in_array() against true, false, 0, 1, "0", "1".
    if isinstance(value, bool):
        return True
    if type(value) is int:
        return value in (0, 1)
    return value in ("0", "1")


def _label(field: str) -> str:
    return field.replace("_", " ")


class _Errors:
    """Collects Laravel-style validation errors, one per field."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def response(self) -> web.Response:
        first = next(iter(self.fields.values()))[0]
        more = sum(len(v) for v in self.fields.values()) - 1
        message = first
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        return FakeServer.json_response({"message": message, "errors": self.fields}, 422)


def _check_string(errors: _Errors, body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(field, f"The {_label(field)} field must be a string.")
        return None
    return value


def _check_int(
    errors: _Errors, body: dict[str, Any], field: str, *, minimum: int | None = None
) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    number = _laravel_int(value)
    if number is None:
        errors.add(field, f"The {_label(field)} field must be an integer.")
        return None
    if minimum is not None and number < minimum:
        errors.add(field, f"The {_label(field)} field must be at least {minimum}.")
        return None
    return number


class FakeWemasy(FakeServer):
    """Fake Wemasy AI API server with deterministic seeded conversations.

    Example:
        >>> async with FakeWemasy(seed=0, conversations=50) as fake:  # doctest: +SKIP
        ...     client = make_client(base_url=fake.url, token="anything")

    Conversations (``fake.conversations``, id -> wire dict) have ids ``1..conversations`` and
    look like::

        {"id": 27, "agent_id": "chat", "status": "completed", "goal": "...",
         "cost_tokens": 1234, "cost_amount": "0.0247",
         "started_at": "2024-01-15T10:30:00.000000Z", "ended_at": "...Z" | null,
         "messages": [message, ...]}

    ``status`` is ``"active"`` (``ended_at`` null) or ``"completed"``. ``cost_tokens`` is the
    sum of the assistant messages' ``total_tokens``; ``cost_amount`` is 0.00002 per token.
    Messages look like::

        {"id": 101, "conversation_id": 27, "role": "user" | "assistant" | "tool" | "system",
         "content": str | null, "tool_calls": null | [{"id": "call_<12 hex>",
         "type": "function", "function": {"name": str, "arguments": "<JSON string>"}}],
         "tool_call_id": null | "call_...", "usage": null | {"prompt_tokens": int,
         "completion_tokens": int, "total_tokens": int}, "created_at": "...Z",
         "metadata": {}}

    Message ids are unique across the fake. Assistant messages carry ``usage``; an
    assistant message that makes tool calls has ``content`` null. About a third of the
    seeded conversations contain a tool call answered by a ``tool`` message; some start
    with a ``system`` message.

    Chat behaviour (``POST /services/ai/v1/chat``), after validation:

    * ``conversation_id`` unknown -> 404; in ``forbidden_ids`` -> 403; absent -> a new
      conversation (next id, ``agent_id`` "chat", ``goal`` = first 60 chars of the message).
    * A tool result (``tool_call_id`` + ``tool_result`` + ``conversation_id``) must answer a
      call listed in `pending_tool_calls`, else 422 on ``tool_call_id``; it appends a
      ``tool`` message and replies ``"Based on the tool result: <tool_result>"``. A
      ``message`` sent alongside a tool result is ignored.
    * A user message with truthy ``use_tools`` and non-empty ``tools`` is answered with a
      call to the first tool (``content`` null); its arguments give every property in
      ``function.parameters.properties`` a dummy value by JSON type ("Amsterdam", 1, true,
      [], {}). Otherwise the reply is ``"Here is what I found about: <message>"``.
    * The user/tool message and the assistant reply are appended to the conversation, its
      cost is updated and it becomes ``active`` again. The client's original body is
      appended to `chat_deliveries`. ``model`` defaults to `DEFAULT_MODEL`.

    If you mutate ``fake.conversations`` directly, call `invalidate` afterwards: encoded
    responses are cached per conversation.
    """

    url_prefix = "/api"

    def __init__(
        self,
        *,
        seed: int = 0,
        conversations: int = 200,
        messages_per_conversation: tuple[int, int] = (2, 8),
        forbidden_ids: Iterable[int] = (),
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
            seed: Seed for `random.Random`; equal seeds give identical data and tool call ids.
            conversations: Number of seeded conversations (ids ``1..conversations``).
            messages_per_conversation: Inclusive (min, max) messages per seeded conversation.
            forbidden_ids: Conversation ids that exist but answer 403 on get and chat.
            token: Required bearer token, or None to accept any.
            rate_limit: Requests per window, or None to disable rate limiting.
            window: Rate-limit window in seconds.
            window_offset: Shift of the window boundaries in seconds.
            host: Interface to bind.
            port: Port to bind (0: any free port).
            record_requests: Keep `requests` (turn off for long benchmarks).
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
        if conversations < 0:
            raise ValueError("conversations must be >= 0")
        self.seed = seed
        self.forbidden_ids: set[int] = set(forbidden_ids)
        self.conversations: dict[int, Conversation] = {}
        #: Body of every chat request that was accepted (200), in order, as the client sent it.
        self.chat_deliveries: list[dict[str, Any]] = []
        #: Conversation id -> tool call ids the fake is waiting for a tool result on.
        self.pending_tool_calls: dict[int, set[str]] = {}
        self._next_message_id = 1
        self._tool_call_counter = 0
        self._get_cache: dict[int, bytes] = {}
        self._summary_cache: dict[int, msgspec.Raw] = {}
        rng = random.Random(seed)
        for conversation_id in range(1, conversations + 1):
            self.conversations[conversation_id] = self._seed_conversation(
                rng, conversation_id, rng.randint(low, high)
            )

    # ------------------------------------------------------------------ data

    def _new_message(
        self,
        conversation_id: int,
        role: str,
        content: str | None,
        created_at: datetime,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> Message:
        message_id = self._next_message_id
        self._next_message_id += 1
        return {
            "id": message_id,
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "tool_calls": tool_calls,
            "tool_call_id": tool_call_id,
            "usage": usage,
            "created_at": _timestamp(created_at),
            "metadata": {},
        }

    def _seed_conversation(
        self, rng: random.Random, conversation_id: int, count: int
    ) -> Conversation:
        agent_id = rng.choice(_AGENTS)
        goal = rng.choice(_GOALS)
        active = rng.random() < 0.25
        started = _EPOCH + timedelta(seconds=rng.randrange(365 * 86400))
        roles: list[str] = []
        if count >= 3 and rng.random() < 0.15:
            roles.append("system")
        if count - len(roles) >= 4 and rng.random() < 0.35:
            roles += ["user", "tool_call", "tool", "assistant"]
        while len(roles) < count:
            roles.append("user" if not roles or roles[-1] != "user" else "assistant")

        messages: list[Message] = []
        moment = started
        cost = 0
        call_id = ""
        tool_name, tool_args, tool_output = rng.choice(_SEEDED_TOOLS)
        for index, role in enumerate(roles):
            moment += timedelta(seconds=rng.randint(5, 120))
            if role == "system":
                message = self._new_message(conversation_id, "system", _SYSTEM_PROMPT, moment)
            elif role == "user":
                template = _USER_TEMPLATES[0 if index <= 1 else rng.randrange(1, 5)]
                content = template.format(goal=goal.lower())
                message = self._new_message(conversation_id, "user", content, moment)
            elif role == "tool_call":
                call_id = f"call_{rng.getrandbits(48):012x}"
                usage = _usage(rng.randint(20, 400), rng.randint(5, 40))
                cost += usage["total_tokens"]
                call = {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool_name, "arguments": _encode(tool_args).decode()},
                }
                message = self._new_message(
                    conversation_id, "assistant", None, moment, tool_calls=[call], usage=usage
                )
            elif role == "tool":
                message = self._new_message(
                    conversation_id, "tool", tool_output, moment, tool_call_id=call_id
                )
            else:
                template = _ASSISTANT_TEMPLATES[rng.randrange(len(_ASSISTANT_TEMPLATES))]
                content = template.format(goal_lower=goal[0].lower() + goal[1:])
                usage = _usage(rng.randint(20, 400), rng.randint(10, 300))
                cost += usage["total_tokens"]
                message = self._new_message(
                    conversation_id, "assistant", content, moment, usage=usage
                )
            messages.append(message)
        ended = None if active else _timestamp(moment + timedelta(seconds=rng.randint(10, 300)))
        return {
            "id": conversation_id,
            "agent_id": agent_id,
            "status": "active" if active else "completed",
            "goal": goal,
            "cost_tokens": cost,
            "cost_amount": _cost_amount(cost),
            "started_at": _timestamp(started),
            "ended_at": ended,
            "messages": messages,
        }

    def invalidate(self, conversation_id: int | None = None) -> None:
        """Drop cached encodings after `conversations` was changed directly.

        Args:
            conversation_id: The conversation that changed, or None for all of them.
        """
        if conversation_id is None:
            self._get_cache.clear()
            self._summary_cache.clear()
        else:
            self._get_cache.pop(conversation_id, None)
            self._summary_cache.pop(conversation_id, None)

    def _next_tool_call_id(self) -> str:
        self._tool_call_counter += 1
        digest = hashlib.blake2s(
            f"{self.seed}:{self._tool_call_counter}".encode(), digest_size=6
        ).hexdigest()
        return f"call_{digest}"

    # ------------------------------------------------------------------ provider hooks

    def routes(self) -> Iterable[Route]:
        """The three documented endpoints, all POST."""
        return (
            Route("POST", GET_PATH, self._handle_get),
            Route("POST", LIST_PATH, self._handle_list),
            Route("POST", CHAT_PATH, self._handle_chat),
        )

    def unauthorized_body(self) -> Any:
        """``{"error": true, "message": "Unauthenticated."}``."""
        return {"error": True, "message": "Unauthenticated."}

    def rate_limited_body(self, retry_after: int) -> Any:
        """``{"error": true, "message": "Too Many Attempts."}``."""
        return {"error": True, "message": "Too Many Attempts."}

    def error_body(self, status: int) -> Any:
        """The documented Wemasy envelope for ``status``."""
        if status == 401:
            return self.unauthorized_body()
        if status == 403:
            return {"error": True, "message": "This action is unauthorized."}
        if status == 429:
            return self.rate_limited_body(1)
        if status == 422:
            return {
                "message": "The given data was invalid.",
                "errors": {"request": ["The given data was invalid."]},
            }
        if status == 500:
            return {"success": False, "message": "Server Error"}
        return {"success": False, "message": super().error_body(status)["message"]}

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _body(record: RecordedRequest) -> dict[str, Any] | None:
        """The normalised JSON object body; ``{}`` when empty; None when not an object."""
        if record.json_error:
            return None
        if record.json is None:
            return {} if not record.body.strip() else None
        if not isinstance(record.json, dict):
            return None
        normalized: dict[str, Any] = _normalize(record.json)
        return normalized

    def _encoded_conversation(self, conversation_id: int) -> bytes | None:
        cached = self._get_cache.get(conversation_id)
        if cached is None:
            conversation = self.conversations.get(conversation_id)
            if conversation is None:
                return None
            cached = _encode({"success": True, "data": conversation})
            self._get_cache[conversation_id] = cached
        return cached

    def _summary(self, conversation: Conversation) -> msgspec.Raw:
        conversation_id: int = conversation["id"]
        cached = self._summary_cache.get(conversation_id)
        if cached is None:
            summary = {k: v for k, v in conversation.items() if k != "messages"}
            cached = msgspec.Raw(_encode(summary))
            self._summary_cache[conversation_id] = cached
        return cached

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        body = self._body(self.record_of(request))
        if body is None:
            return self.raw_json_response(_NOT_AN_OBJECT, 422)
        raw_id = body.get("conversation_id")
        conversation_id = _laravel_int(raw_id)
        if conversation_id is None:
            errors = _Errors()
            if raw_id is None or raw_id == [] or raw_id == {}:
                errors.add("conversation_id", "The conversation id field is required.")
            else:
                errors.add("conversation_id", "The conversation id field must be an integer.")
            return errors.response()
        encoded = self._encoded_conversation(conversation_id)
        if encoded is None:
            return self.raw_json_response(_NOT_FOUND, 404)
        if conversation_id in self.forbidden_ids:
            return self.raw_json_response(_FORBIDDEN, 403)
        return self.raw_json_response(encoded)

    async def _handle_list(self, request: web.Request) -> web.StreamResponse:
        record = self.record_of(request)
        body = self._body(record)
        if body is None:
            return self.raw_json_response(_NOT_AN_OBJECT, 422)
        errors = _Errors()
        agent_id = _check_string(errors, body, "agent_id")
        search = _check_string(errors, body, "search")
        per_page = 20
        if body.get("per_page") is not None:
            parsed = _laravel_int(body["per_page"])
            if parsed is None:
                errors.add("per_page", "The per page field must be an integer.")
            elif not 1 <= parsed <= 100:
                errors.add("per_page", "The per page field must be between 1 and 100.")
            else:
                per_page = parsed
        if errors:
            return errors.response()

        # Laravel's paginator: input('page') (JSON body first, then query string); any
        # value that is not an integer >= 1 silently means page 1.
        raw_page = body.get("page")
        if raw_page is None:
            raw_page = record.query.get("page")
        page = _laravel_int(raw_page)
        if page is None or page < 1:
            page = 1

        needle = search.lower() if search is not None else None
        matches = [
            conversation
            for _, conversation in sorted(self.conversations.items())
            if (agent_id is None or conversation["agent_id"] == agent_id)
            and (needle is None or needle in (conversation.get("goal") or "").lower())
        ]
        total = len(matches)
        start = (page - 1) * per_page
        items = [self._summary(c) for c in matches[start : start + per_page]]
        return self.json_response(
            {
                "success": True,
                "data": items,
                "pagination": {
                    "current_page": page,
                    "last_page": max(1, math.ceil(total / per_page)),
                    "per_page": per_page,
                    "total": total,
                },
            }
        )

    def _validate_chat(self, body: dict[str, Any]) -> _Errors:
        errors = _Errors()
        message = _check_string(errors, body, "message")
        tool_result_present = body.get("tool_result") is not None
        tool_call_id_present = body.get("tool_call_id") is not None
        if message is None and "message" not in errors.fields and not tool_result_present:
            errors.add("message", "The message field is required when tool result is not present.")
        _check_int(errors, body, "conversation_id")
        if tool_result_present and body.get("conversation_id") is None:
            errors.add(
                "conversation_id",
                "The conversation id field is required when tool result is present.",
            )
        _check_int(errors, body, "connection_id")
        _check_string(errors, body, "model")
        temperature = body.get("temperature")
        if temperature is not None:
            if not _is_number(temperature):
                errors.add("temperature", "The temperature field must be a number.")
            elif not 0 <= float(temperature) <= 2:
                errors.add("temperature", "The temperature field must be between 0 and 2.")
        _check_int(errors, body, "max_tokens", minimum=1)
        use_tools = body.get("use_tools")
        if use_tools is not None and not _is_laravel_bool(use_tools):
            errors.add("use_tools", "The use tools field must be true or false.")
        self._validate_tools(errors, body.get("tools"))
        _check_string(errors, body, "tool_call_id")
        if tool_result_present and not tool_call_id_present:
            errors.add(
                "tool_call_id", "The tool call id field is required when tool result is present."
            )
        _check_string(errors, body, "tool_result")
        if tool_call_id_present and not tool_result_present:
            errors.add(
                "tool_result", "The tool result field is required when tool call id is present."
            )
        return errors

    @staticmethod
    def _validate_tools(errors: _Errors, tools: Any) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            errors.add("tools", "The tools field must be an array.")
            return
        for index, tool in enumerate(tools):
            prefix = f"tools.{index}"
            if not isinstance(tool, dict):
                errors.add(prefix, f"The {prefix} field must be an array.")
                continue
            if tool.get("type") is None:
                errors.add(f"{prefix}.type", f"The {prefix}.type field is required.")
            elif tool["type"] != "function":
                errors.add(f"{prefix}.type", f"The selected {prefix}.type is invalid.")
            function = tool.get("function")
            if function is None:
                errors.add(f"{prefix}.function", f"The {prefix}.function field is required.")
                continue
            if not isinstance(function, dict):
                errors.add(f"{prefix}.function", f"The {prefix}.function field must be an array.")
                continue
            name = function.get("name")
            if name is None:
                errors.add(
                    f"{prefix}.function.name", f"The {prefix}.function.name field is required."
                )
            elif not isinstance(name, str):
                errors.add(
                    f"{prefix}.function.name", f"The {prefix}.function.name field must be a string."
                )
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                errors.add(
                    f"{prefix}.function.parameters",
                    f"The {prefix}.function.parameters field must be an array.",
                )

    @staticmethod
    def _fake_arguments(function: dict[str, Any]) -> str:
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        arguments: dict[str, Any] = {}
        if isinstance(properties, dict):
            for name, schema in properties.items():
                kind = schema.get("type") if isinstance(schema, dict) else None
                if isinstance(kind, list):
                    kind = next((k for k in kind if k != "null"), None)
                if kind == "string":
                    arguments[name] = "Amsterdam"
                elif kind in ("integer", "number"):
                    arguments[name] = 1
                elif kind == "boolean":
                    arguments[name] = True
                elif kind == "array":
                    arguments[name] = []
                elif kind == "object":
                    arguments[name] = {}
                else:
                    arguments[name] = None
        return _encode(arguments).decode()

    def _touch(self, conversation: Conversation, usage: dict[str, int]) -> None:
        tokens: int = conversation["cost_tokens"] + usage["total_tokens"]
        conversation["cost_tokens"] = tokens
        conversation["cost_amount"] = _cost_amount(tokens)
        # A new message reopens the conversation.
        conversation["status"] = "active"
        conversation["ended_at"] = None
        self.invalidate(conversation["id"])

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        record = self.record_of(request)
        body = self._body(record)
        if body is None:
            return self.raw_json_response(_NOT_AN_OBJECT, 422)
        errors = self._validate_chat(body)
        if errors:
            return errors.response()

        conversation: Conversation | None = None
        raw_id = body.get("conversation_id")
        if raw_id is not None:
            conversation_id = _laravel_int(raw_id)
            assert conversation_id is not None
            conversation = self.conversations.get(conversation_id)
            if conversation is None:
                return self.raw_json_response(_NOT_FOUND, 404)
            if conversation_id in self.forbidden_ids:
                return self.raw_json_response(_FORBIDDEN, 403)

        model: str = body.get("model") or DEFAULT_MODEL
        now = datetime.now(timezone.utc)
        tool_result: str | None = body.get("tool_result")
        tool_calls: list[dict[str, Any]] | None = None
        content: str | None
        new_messages: list[Message] = []

        if tool_result is not None:
            assert conversation is not None
            conversation_id = conversation["id"]
            call_id: str = body["tool_call_id"]
            pending = self.pending_tool_calls.get(conversation_id)
            if not pending or call_id not in pending:
                invalid = _Errors()
                invalid.add("tool_call_id", "The selected tool call id is invalid.")
                return invalid.response()
            pending.discard(call_id)
            if not pending:
                del self.pending_tool_calls[conversation_id]
            new_messages.append(
                self._new_message(conversation_id, "tool", tool_result, now, tool_call_id=call_id)
            )
            content = f"Based on the tool result: {tool_result}"
            usage = _usage(_words(tool_result) + 10, _words(content))
        else:
            message: str = body["message"]
            if conversation is None:
                conversation = self._create_conversation(message, now)
            conversation_id = conversation["id"]
            new_messages.append(self._new_message(conversation_id, "user", message, now))
            tools: list[dict[str, Any]] | None = body.get("tools")
            use_tools = body.get("use_tools") in (True, 1, "1")
            if use_tools and tools:
                function: dict[str, Any] = tools[0]["function"]
                call_id = self._next_tool_call_id()
                arguments = self._fake_arguments(function)
                tool_calls = [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": function["name"], "arguments": arguments},
                    }
                ]
                self.pending_tool_calls.setdefault(conversation_id, set()).add(call_id)
                content = None
                usage = _usage(_words(message) + 10, len(arguments) // 4 + 5)
            else:
                content = f"Here is what I found about: {message}"
                usage = _usage(_words(message) + 10, _words(content))

        new_messages.append(
            self._new_message(
                conversation_id, "assistant", content, now, tool_calls=tool_calls, usage=usage
            )
        )
        conversation["messages"].extend(new_messages)
        self._touch(conversation, usage)
        assert isinstance(record.json, dict)
        self.chat_deliveries.append(record.json)
        return self.json_response(
            {
                "success": True,
                "data": {
                    "content": content,
                    "model": model,
                    "usage": usage,
                    "conversation_id": conversation_id,
                    "tool_calls": tool_calls,
                },
            }
        )

    def _create_conversation(self, message: str, now: datetime) -> Conversation:
        conversation_id = max(self.conversations, default=0) + 1
        conversation: Conversation = {
            "id": conversation_id,
            "agent_id": "chat",
            "status": "active",
            "goal": message[:60],
            "cost_tokens": 0,
            "cost_amount": _cost_amount(0),
            "started_at": _timestamp(now),
            "ended_at": None,
            "messages": [],
        }
        self.conversations[conversation_id] = conversation
        return conversation
