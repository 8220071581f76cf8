"""``Client(transport=...)`` and ``wemasy_async.testing.MockTransport``: request shapes in unit
tests without a server, with the whole SDK above the transport."""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import pytest

from wemasy_async import APIConnectionError, Client, InternalServerError, InvalidRequestError
from wemasy_async.exchange import Response
from wemasy_async.retry import RetryPolicy
from wemasy_async.testing import MockRequest, MockTransport, json_response

TOKEN = "mock-token-5d2e8b1c"
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.001)
GET = "https://api.wemasy.nl/api/services/ai/v1/conversations/get"


def conversation(conversation_id: int) -> dict[str, Any]:
    return {"success": True, "data": {"id": conversation_id, "agent_id": "chat"}}


async def test_the_request_goes_to_the_handler_and_its_answer_is_decoded() -> None:
    def handler(request: MockRequest) -> Response:
        return json_response(200, conversation(request.json()["conversation_id"]))

    transport = MockTransport(handler)
    async with Client("wemasy", token=TOKEN, transport=transport, rate_limit=False) as client:
        found = await client.get_conversation(27)
    assert found.id == "27"
    assert found.agent_id == "chat"
    (sent,) = transport.requests
    assert sent.method == "POST"
    assert sent.url == GET
    assert sent.json() == {"conversation_id": 27}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"


async def test_retries_the_limiter_and_async_handlers_run_above_it() -> None:
    answers = [
        json_response(503, {"success": False, "message": "busy"}),
        # Lower-case names count: the headers are read as aiohttp's are.
        json_response(200, conversation(1), headers={"x-ratelimit-limit": "60"}),
    ]

    async def handler(request: MockRequest) -> Response:
        return answers.pop(0)

    transport = MockTransport(handler)
    async with Client("wemasy", token=TOKEN, transport=transport, retry=FAST) as client:
        await client.get_conversation(1)
        limiter = client.limiter
        assert limiter is not None
        assert limiter.allowed_rate == pytest.approx(
            min(59 / 60, 60 / 61.5)
        )  # the header's 60 a minute
    assert len(transport.requests) == 2  # the 503, retried


async def test_a_handler_raising_a_connection_error_is_a_network_failure() -> None:
    def handler(request: MockRequest) -> Response:
        raise APIConnectionError("refused", provider="wemasy")

    transport = MockTransport(handler)
    async with Client("wemasy", token=TOKEN, transport=transport, retry=FAST) as client:
        with pytest.raises(APIConnectionError):
            await client.get_conversation(1)
    assert len(transport.requests) == RetryPolicy().max_attempts  # a read is retried


async def test_a_handler_that_answers_something_else_says_so() -> None:
    transport = MockTransport(lambda request: {"success": True})  # type: ignore[arg-type, return-value]
    async with Client("wemasy", token=TOKEN, transport=transport, retry=False) as client:
        with pytest.raises(TypeError, match=r"not a Response \(build one with json_response\)"):
            await client.get_conversation(1)


async def test_the_client_never_closes_a_given_transport() -> None:
    class Counting(MockTransport):
        closed = 0

        async def aclose(self) -> None:
            self.closed += 1

    transport = Counting(lambda request: json_response(200, conversation(1)))
    async with Client("wemasy", token=TOKEN, transport=transport) as client:
        await client.get_conversation(1)
    assert transport.closed == 0
    async with Client("wemasy", token=TOKEN, transport=transport) as again:  # reusable
        await again.get_conversation(1)


@pytest.mark.parametrize(
    ("settings", "argument", "message"),
    [
        ({"transport": object()}, "transport", "transport must be a Transport"),
        ({"session": "set below"}, "transport", "pass session= or transport=, not both"),
        ({"proxy": "http://127.0.0.1:3128"}, "proxy", "configure the client's own"),
        ({"trust_env": True}, "trust_env", "configure the client's own"),
        ({"connection_limit": 4}, "connection_limit", "configure the client's own"),
        ({"max_response_bytes": 10}, "max_response_bytes", "configure the client's own"),
    ],
)
async def test_what_a_transport_replaces_cannot_be_given_with_it(
    settings: dict[str, Any], argument: str, message: str
) -> None:
    import aiohttp

    transport = MockTransport(lambda request: json_response(200, conversation(1)))
    options: dict[str, Any] = {"transport": transport, **settings}
    async with aiohttp.ClientSession() as session:
        if "session" in settings:
            options["session"] = session
        with pytest.raises(InvalidRequestError, match=message) as caught:
            Client("wemasy", token=TOKEN, **options)
    assert caught.value.argument == argument
    assert transport.requests == []  # before any I/O


async def test_no_rendering_of_a_mocked_call_shows_the_token() -> None:
    transport = MockTransport(lambda request: json_response(500, {"message": "boom"}))
    async with Client("wemasy", token=TOKEN, transport=transport, retry=False) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.get_conversation(1)
        renderings = [
            repr(transport),
            repr(transport.requests),
            repr(transport.requests[0].headers),
            str(caught.value),
            repr(caught.value),
            "".join(
                traceback.TracebackException.from_exception(
                    caught.value, capture_locals=True
                ).format()
            ),
            repr(pickle.loads(pickle.dumps(caught.value))),
        ]
    for text in renderings:
        assert TOKEN not in text
