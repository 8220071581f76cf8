"""mypy --strict: a MockTransport is a Transport, and its handler's types are checked."""

from __future__ import annotations

from typing_extensions import assert_type

from wemasy_async import Client
from wemasy_async.exchange import Response
from wemasy_async.testing import MockRequest, MockTransport, json_response


def handler(request: MockRequest) -> Response:
    assert_type(request.url, str)
    return json_response(200, {"success": True, "data": {"id": 1}})


async def handler_async(request: MockRequest) -> Response:
    return json_response(404, {"success": False})


def build() -> list[Client]:
    return [
        Client("wemasy", token="t" * 20, transport=MockTransport(handler)),
        Client("wemasy", token="t" * 20, transport=MockTransport(handler_async)),
    ]
