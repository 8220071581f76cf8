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
from collections.abc import Coroutine, Iterable
from datetime import datetime, timezone
from typing import Any, Final

import msgspec
from aiohttp import web

from wemasy_async.testing._laravel import (
    Errors,
    check_int,
    check_string,
    is_laravel_bool,
    is_number,
    laravel_int,
    normalize,
)
from wemasy_async.testing._server import BoundedCache, FakeServer, RecordedRequest, Route
from wemasy_async.testing._wemasy_data import (
    Conversation,
    Message,
    SeededConversations,
    cost_amount,
    new_message,
    timestamp,
    usage_of,
)

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


_encode = msgspec.json.encode

_NOT_FOUND: Final = _encode({"success": False, "message": "Conversation not found."})
_FORBIDDEN: Final = _encode({"error": True, "message": "This action is unauthorized."})
_NOT_AN_OBJECT: Final = _encode(
    {
        "message": "The given data was invalid.",
        "errors": {"body": ["The request body must be a JSON object."]},
    }
)


def _words(text: str) -> int:
    return len(text.split())


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

    ``fake.conversations`` is a mutable mapping that generates each conversation when it is
    read (`SeededConversations`), identical to generating them all up front, so any
    ``conversations`` starts at once in bounded memory; a conversation read through it, or
    changed by a chat, is kept. If you mutate ``fake.conversations`` directly, call
    `invalidate` afterwards: encoded responses are cached per conversation.
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
        #: Conversation id -> wire dict, generated on demand (a `SeededConversations`).
        self.conversations = SeededConversations(seed, conversations, (low, high))
        #: Body of every chat request that was accepted (200), in order, as the client sent it
        #: (bounded like `requests`, see ``request_log``).
        self.chat_deliveries: list[dict[str, Any]] = self.new_log()
        #: Conversation id -> tool call ids the fake is waiting for a tool result on.
        self.pending_tool_calls: dict[int, set[str]] = {}
        self._next_message_id: int | None = None
        self._tool_call_counter = 0
        self._get_cache: BoundedCache[int, bytes] = BoundedCache()
        self._summary_cache: BoundedCache[int, msgspec.Raw] = BoundedCache()

    def background(self) -> Iterable[Coroutine[Any, Any, None]]:
        """Walk the data set while serving, so a far id is found at once."""
        return (self.conversations.walk_ahead(),)

    # ------------------------------------------------------------------ data

    def _message_id(self) -> int:
        """The id of the next message a chat stores."""
        if self._next_message_id is None:
            # New ids follow every seeded one; counting them walks the set once.
            self._next_message_id = self.conversations.seeded_messages() + 1
        self._next_message_id += 1
        return self._next_message_id - 1

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
        normalized: dict[str, Any] = normalize(record.json)
        return normalized

    def _encoded_conversation(self, conversation_id: int) -> bytes | None:
        cache = self._get_cache
        cached = cache.get(conversation_id)
        if cached is None:
            conversation = self.conversations.peek(conversation_id)
            if conversation is None:
                return None
            cached = cache.keep(conversation_id, _encode({"success": True, "data": conversation}))
        return cached

    def _summary(self, conversation_id: int) -> msgspec.Raw:
        cache = self._summary_cache
        cached = cache.get(conversation_id)
        if cached is None:
            conversation = self.conversations.peek(conversation_id)
            assert conversation is not None, conversation_id
            summary = {k: v for k, v in conversation.items() if k != "messages"}
            cached = cache.keep(conversation_id, msgspec.Raw(_encode(summary)))
        return cached

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        body = self._body(self.record_of(request))
        if body is None:
            return self.raw_json_response(_NOT_AN_OBJECT, 422)
        raw_id = body.get("conversation_id")
        conversation_id = laravel_int(raw_id)
        if conversation_id is None:
            errors = Errors()
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
        errors = Errors()
        agent_id = check_string(errors, body, "agent_id")
        search = check_string(errors, body, "search")
        per_page = 20
        if body.get("per_page") is not None:
            parsed = laravel_int(body["per_page"])
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
        page = laravel_int(raw_page)
        if page is None or page < 1:
            page = 1

        needle = search.lower() if search is not None else None

        def keep(agent: str, goal: str | None) -> bool:
            return (agent_id is None or agent == agent_id) and (
                needle is None or needle in (goal or "").lower()
            )

        matches = self.conversations.select(None if agent_id is None and needle is None else keep)
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

    def _validate_chat(self, body: dict[str, Any]) -> Errors:
        errors = Errors()
        message = check_string(errors, body, "message")
        tool_result_present = body.get("tool_result") is not None
        tool_call_id_present = body.get("tool_call_id") is not None
        if message is None and "message" not in errors.fields and not tool_result_present:
            errors.add("message", "The message field is required when tool result is not present.")
        check_int(errors, body, "conversation_id")
        if tool_result_present and body.get("conversation_id") is None:
            errors.add(
                "conversation_id",
                "The conversation id field is required when tool result is present.",
            )
        check_int(errors, body, "connection_id")
        check_string(errors, body, "model")
        temperature = body.get("temperature")
        if temperature is not None:
            if not is_number(temperature):
                errors.add("temperature", "The temperature field must be a number.")
            elif not 0 <= float(temperature) <= 2:
                errors.add("temperature", "The temperature field must be between 0 and 2.")
        check_int(errors, body, "max_tokens", minimum=1)
        use_tools = body.get("use_tools")
        if use_tools is not None and not is_laravel_bool(use_tools):
            errors.add("use_tools", "The use tools field must be true or false.")
        self._validate_tools(errors, body.get("tools"))
        check_string(errors, body, "tool_call_id")
        if tool_result_present and not tool_call_id_present:
            errors.add(
                "tool_call_id", "The tool call id field is required when tool result is present."
            )
        check_string(errors, body, "tool_result")
        if tool_call_id_present and not tool_result_present:
            errors.add(
                "tool_result", "The tool result field is required when tool call id is present."
            )
        return errors

    @staticmethod
    def _validate_tools(errors: Errors, tools: Any) -> None:
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
        conversation["cost_amount"] = cost_amount(tokens)
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
            conversation_id = laravel_int(raw_id)
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
                invalid = Errors()
                invalid.add("tool_call_id", "The selected tool call id is invalid.")
                return invalid.response()
            pending.discard(call_id)
            if not pending:
                del self.pending_tool_calls[conversation_id]
            new_messages.append(
                new_message(
                    self._message_id(),
                    conversation_id,
                    "tool",
                    tool_result,
                    now,
                    tool_call_id=call_id,
                )
            )
            content = f"Based on the tool result: {tool_result}"
            usage = usage_of(_words(tool_result) + 10, _words(content))
        else:
            message: str = body["message"]
            if conversation is None:
                conversation = self._create_conversation(message, now)
            conversation_id = conversation["id"]
            new_messages.append(
                new_message(self._message_id(), conversation_id, "user", message, now)
            )
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
                usage = usage_of(_words(message) + 10, len(arguments) // 4 + 5)
            else:
                content = f"Here is what I found about: {message}"
                usage = usage_of(_words(message) + 10, _words(content))

        new_messages.append(
            new_message(
                self._message_id(),
                conversation_id,
                "assistant",
                content,
                now,
                tool_calls=tool_calls,
                usage=usage,
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
        conversation_id = self.conversations.max_id() + 1
        conversation: Conversation = {
            "id": conversation_id,
            "agent_id": "chat",
            "status": "active",
            "goal": message[:60],
            "cost_tokens": 0,
            "cost_amount": cost_amount(0),
            "started_at": timestamp(now),
            "ended_at": None,
            "messages": [],
        }
        self.conversations[conversation_id] = conversation
        return conversation
