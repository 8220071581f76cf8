"""An in-process fake of the SiteAssist API.

Base URL ``<fake.url>`` (``http://127.0.0.1:<port>/v2``) mirrors
``https://api.siteassist.io/v2``; the one endpoint is ``GET /conversations/{conversationId}``.
Errors use the documented envelope ``{"error": {"message", "code", "details"}}``, with the
docs' own messages.

Where the docs are silent, the fake behaves like a typical Node API that validates the path
with a UUID schema:

* ``conversationId`` must be a UUID in canonical 8-4-4-4-12 form (any case; looked up
  case-insensitively, as a ``uuid`` database column would). Anything else is rejected
  before the lookup with 400 ``INVALID_REQUEST_BODY``, ``details: {"field":
  "conversationId"}`` (the docs' only 400 code).
* An unknown conversation is 404 ``CONVERSATION_NOT_FOUND`` with
  ``details.conversationId`` echoing the id as requested. Existence is checked before
  access: an id in ``forbidden_ids`` that does not exist is a 404, one that exists is 403
  ``FORBIDDEN``.
* Rate limiting (see `FakeServer`) answers 429 ``RATE_LIMIT_EXCEEDED`` with
  ``details.retryAfter`` equal to the ``Retry-After`` header.
* Router-level errors (unknown path, wrong method) use `FakeSiteAssist.error_body` too, so
  an unknown path gets the documented 404 body.

Timestamps are JavaScript ``toISOString()`` output: ``2024-01-15T10:30:00.000Z``. The docs
show only ``"messages": []`` and ``"humanAgent": null``; see `FakeSiteAssist` for the shapes
this fake sends.
"""

from __future__ import annotations

import copy
import random
import re
import uuid
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import msgspec
from aiohttp import web

from wemasy_async.testing._server import (
    BoundedCache,
    FakeServer,
    Route,
    SeededUuidConversations,
    uuid4_of,
)

__all__ = ["CONVERSATION_PATH", "DOCS_ERROR_BODIES", "FakeSiteAssist"]

#: The route template, relative to `FakeSiteAssist.url_prefix` (use it as a fault ``path``).
CONVERSATION_PATH: Final = "/conversations/{conversationId}"

_DOCS_CONVERSATION_ID: Final = "123e4567-e89b-12d3-a456-426614174000"


def _error(message: str, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "code": code}
    if details is not None:
        error["details"] = details
    return {"error": error}


#: The documented error body for each documented status, verbatim from the API page.
DOCS_ERROR_BODIES: Final[dict[int, dict[str, Any]]] = {
    400: _error(
        "Invalid request body. Content is required.", "INVALID_REQUEST_BODY", {"field": "content"}
    ),
    401: _error("Authentication required", "UNAUTHORIZED"),
    402: _error(
        "A higher pricing plan is required to access this feature",
        "PAYMENT_REQUIRED",
        {"currentPlan": "free", "requiredPlan": "pro", "feature": "advanced_ai_models"},
    ),
    403: _error("Access denied to this conversation", "FORBIDDEN"),
    404: _error(
        "Conversation not found!",
        "CONVERSATION_NOT_FOUND",
        {"conversationId": _DOCS_CONVERSATION_ID},
    ),
    409: _error(
        "Resource already exists",
        "CONFLICT",
        {"resource": "conversation", "conflictingField": "id"},
    ),
    422: _error(
        "Validation failed",
        "VALIDATION_ERROR",
        {"field": "content", "reason": "Content exceeds maximum length of 10000 characters"},
    ),
    429: _error(
        "Rate limit exceeded. Please try again later.", "RATE_LIMIT_EXCEEDED", {"retryAfter": 60}
    ),
    500: _error("An internal server error occurred", "INTERNAL_SERVER_ERROR"),
    502: _error("Service temporarily unavailable", "BAD_GATEWAY", {"service": "ai_model_service"}),
    503: _error("Service temporarily unavailable", "SERVICE_UNAVAILABLE", {"retryAfter": 30}),
}

_UUID_TEXT: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_EPOCH: Final = datetime(2024, 1, 1, tzinfo=timezone.utc)
_CLOSE_REASONS: Final = ("resolved", "inactivity")
_HUMAN_AGENTS: Final = ("Sanne de Vries", "Daan Jansen", "Emma Bakker", "Lucas Visser")
_USER_LINES: Final = (
    "Hi, do you ship to Belgium?",
    "How long does delivery take?",
    "Can I change the address on my order?",
    "What is your return policy?",
    "Do you have this in a larger size?",
    "Thanks, that helps.",
)
_ASSISTANT_LINES: Final = (
    "Yes, we ship to Belgium and the Netherlands.",
    "Delivery usually takes two to three working days.",
    "You can change the address until the order has shipped.",
    "You can return any item within 30 days.",
    "Let me check the stock for you.",
    "You're welcome! Anything else I can help with?",
)

_encode = msgspec.json.encode

_MALFORMED_ID: Final = _encode(
    _error(
        "Invalid request. conversationId must be a valid UUID.",
        "INVALID_REQUEST_BODY",
        {"field": "conversationId"},
    )
)
_FORBIDDEN: Final = _encode(DOCS_ERROR_BODIES[403])

Conversation = dict[str, Any]
Message = dict[str, Any]


def _timestamp(moment: datetime) -> str:
    """JavaScript's ``Date.prototype.toISOString()``: milliseconds and ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _seed_conversation(rng: random.Random, count: int) -> Conversation:
    """One conversation of ``count`` messages: the draws after its count."""
    conversation_id = _uuid(rng)
    created = _EPOCH + timedelta(milliseconds=rng.randrange(365 * 86_400_000))
    moment = created
    messages: list[Message] = []
    for index in range(count):
        moment += timedelta(milliseconds=rng.randrange(2_000, 120_000))
        user = index % 2 == 0
        lines = _USER_LINES if user else _ASSISTANT_LINES
        messages.append(
            {
                "id": _uuid(rng),
                "conversationId": conversation_id,
                "role": "user" if user else "assistant",
                "content": lines[rng.randrange(len(lines))],
                "createdAt": _timestamp(moment),
                "metadata": {},
            }
        )
    last_interaction = _timestamp(moment)
    closed = rng.random() < 0.7
    human = rng.random() < 0.2
    closed_at = (
        _timestamp(moment + timedelta(milliseconds=rng.randrange(60_000, 3_600_000)))
        if closed
        else None
    )
    human_agent = (
        {"id": _uuid(rng), "name": _HUMAN_AGENTS[rng.randrange(len(_HUMAN_AGENTS))]}
        if human
        else None
    )
    return {
        "object": "conversation",
        "id": conversation_id,
        "createdAt": _timestamp(created),
        "updatedAt": closed_at or last_interaction,
        "status": "closed" if closed else "open",
        "closedAt": closed_at,
        "closeReason": rng.choice(_CLOSE_REASONS) if closed else None,
        "lastInterationAt": last_interaction,
        "isHumanHandled": human,
        "humanAgent": human_agent,
        "messages": messages,
    }


class _SiteAssistStream:
    """The SiteAssist data set's draws (`_uuid_data.Stream`): message count, conversation.

    `walk` makes `build`'s draws through ``_randbelow`` (what ``choice`` and ``randrange``
    call), which yields the same numbers in fewer Python calls;
    ``tests/fakes/test_uuid_data.py`` compares with the eager generator.
    """

    def __init__(self, messages: tuple[int, int]) -> None:
        self.low, self.high = messages

    def build(self, rng: random.Random, position: int) -> tuple[str, Conversation]:
        conversation = _seed_conversation(rng, rng.randint(self.low, self.high))
        return conversation["id"], conversation

    def walk(self, rng: random.Random, position: int) -> int:
        below: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]
        bits, uniform = rng.getrandbits, rng.random
        count = self.low + below(self.high - self.low + 1)
        value = uuid4_of(bits(128))
        below(365 * 86_400_000)
        for index in range(count):
            below(118_000)  # randrange(2_000, 120_000)
            bits(128)  # the message id
            below(len(_ASSISTANT_LINES if index % 2 else _USER_LINES))
        closed = uniform() < 0.7
        human = uniform() < 0.2
        if closed:
            below(3_540_000)  # randrange(60_000, 3_600_000)
        if human:
            bits(128)
            below(len(_HUMAN_AGENTS))
        if closed:
            below(len(_CLOSE_REASONS))
        return value


class FakeSiteAssist(FakeServer):
    """Fake SiteAssist API server with deterministic seeded conversations.

    Example:
        >>> async with FakeSiteAssist(seed=0, conversations=50) as fake:  # doctest: +SKIP
        ...     client = Client("siteassist", base_url=fake.url, token="anything")

    Conversations are in ``fake.conversations`` (lower-case uuid -> wire dict) and
    ``fake.conversation_ids`` (in creation order). Ids are version-4 UUIDs drawn from
    ``random.Random(seed)``. A conversation looks like::

        {"object": "conversation", "id": "<uuid>", "createdAt": "...Z",
         "updatedAt": "...Z", "status": "open" | "closed", "closedAt": null | "...Z",
         "closeReason": null | "resolved" | "inactivity", "lastInterationAt": "...Z",
         "isHumanHandled": bool, "humanAgent": null | {"id": "<uuid>", "name": str},
         "messages": [message, ...]}

    Closed conversations have ``closedAt`` (after the last message) and ``closeReason``;
    ``humanAgent`` is an object exactly when ``isHumanHandled`` is true.
    ``lastInterationAt`` is the last message's ``createdAt`` (``createdAt`` when there are
    none) and ``updatedAt`` is ``closedAt`` when closed, else ``lastInterationAt``. Messages
    alternate ``user`` and ``assistant``, starting with ``user``::

        {"id": "<uuid>", "conversationId": "<uuid>", "role": "user" | "assistant",
         "content": str, "createdAt": "...Z", "metadata": {}}

    If you mutate ``fake.conversations`` directly, call `invalidate` afterwards: encoded
    responses are cached per conversation.

    ``fake.conversations`` is a mutable mapping that generates each conversation when it is
    read (`SeededUuidConversations`), identical to generating them all up front, so any
    ``conversations`` starts at once in bounded memory; a conversation read through it is
    kept.
    """

    url_prefix = "/v2"

    def __init__(
        self,
        *,
        seed: int = 0,
        conversations: int = 200,
        messages_per_conversation: tuple[int, int] = (2, 8),
        forbidden_ids: Iterable[str | uuid.UUID] = (),
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
            conversations: Number of seeded conversations.
            messages_per_conversation: Inclusive (min, max) messages per conversation.
            forbidden_ids: Conversation ids (UUID objects or text, any case) that exist but
                answer 403.
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
        self.forbidden_ids: set[str] = {str(i).lower() for i in forbidden_ids}
        #: Conversation id -> wire dict, generated on demand (a `SeededUuidConversations`).
        self.conversations = SeededUuidConversations(
            seed, conversations, _SiteAssistStream((low, high))
        )
        self._encoded: BoundedCache[str, bytes] = BoundedCache()

    @property
    def conversation_ids(self) -> list[str]:
        """The conversation ids (lower-case), in creation order."""
        return list(self.conversations)

    def background(self) -> Iterable[Coroutine[Any, Any, None]]:
        """Walk the data set while serving, so a far id is found at once."""
        return (self.conversations.walk_ahead(),)

    # ------------------------------------------------------------------ data

    def invalidate(self, conversation_id: str | uuid.UUID | None = None) -> None:
        """Drop cached encodings after `conversations` was changed directly.

        Args:
            conversation_id: The conversation that changed, or None for all of them.
        """
        if conversation_id is None:
            self._encoded.clear()
        else:
            self._encoded.pop(str(conversation_id).lower(), None)

    def _encoded_conversation(self, conversation_id: str) -> bytes | None:
        encoded = self._encoded.get(conversation_id)
        if encoded is None:
            conversation = self.conversations.peek(conversation_id)
            if conversation is None:
                return None
            encoded = self._encoded.keep(conversation_id, _encode(conversation))
        return encoded

    # ------------------------------------------------------------------ provider hooks

    def routes(self) -> Iterable[Route]:
        """The one documented endpoint."""
        return (Route("GET", CONVERSATION_PATH, self._handle_get),)

    def unauthorized_body(self) -> Any:
        """The documented 401 body (``UNAUTHORIZED``)."""
        return copy.deepcopy(DOCS_ERROR_BODIES[401])

    def rate_limited_body(self, retry_after: int) -> Any:
        """The documented 429 body, with ``details.retryAfter`` = ``retry_after``."""
        return _error(
            "Rate limit exceeded. Please try again later.",
            "RATE_LIMIT_EXCEEDED",
            {"retryAfter": retry_after},
        )

    def error_body(self, status: int) -> Any:
        """The documented body for ``status``; others get the envelope with the reason."""
        documented = DOCS_ERROR_BODIES.get(status)
        if documented is not None:
            return copy.deepcopy(documented)
        message: str = super().error_body(status)["message"]
        return _error(message, re.sub(r"\W+", "_", message).strip("_").upper())

    # ------------------------------------------------------------------ handlers

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        requested = request.match_info["conversationId"]
        if not _UUID_TEXT.fullmatch(requested):
            return self.raw_json_response(_MALFORMED_ID, 400)
        conversation_id = requested.lower()
        encoded = self._encoded_conversation(conversation_id)
        if encoded is None:
            return self.json_response(
                _error(
                    "Conversation not found!",
                    "CONVERSATION_NOT_FOUND",
                    {"conversationId": requested},
                ),
                404,
            )
        if conversation_id in self.forbidden_ids:
            return self.raw_json_response(_FORBIDDEN, 403)
        return self.raw_json_response(encoded)
