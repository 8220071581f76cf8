"""A refused construction renders no secret, however its error is rendered.

An error raised while a client is being made carries a traceback whose frames held the
token, secret headers and a proxy's password as arguments and locals: a traceback rendered
with its locals (``capture_locals=True``, pytest ``--showlocals``, error trackers) would print
them. And a blocking client keeps its arguments, for a forked child, where nothing renders
them.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import pytest

from wemasy_async import Client, InvalidRequestError, sync

TOKEN = "tok-CONSTRUCTION-7f3a91"
PASSWORD = "pw-PROXY-c0ffee"
HEADER = "hdr-SECRET-5eed"
SECRETS = (TOKEN, PASSWORD, HEADER)

# Each refused in a different place: the config's own checks, a check in another module
# (RateLimit), and after the arguments passed (a bad value the transport refuses).
REFUSALS: list[dict[str, Any]] = [
    {"timeout": -1},
    {"rate_limit": "yes"},
    {"max_response_bytes": 0},
    {"connection_limit": 0},
    {"base_url": "ftp://example.com"},
]


def _renderings(error: BaseException) -> list[str]:
    rendered = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format()),
    ]
    try:
        rendered.append(repr(pickle.loads(pickle.dumps(error))))
    except Exception as refused:  # unpicklable is fine, if its message holds no secret
        rendered.append(str(refused))
    return rendered


def _arguments(**refused: Any) -> dict[str, Any]:
    return {
        "token": TOKEN,
        "proxy": f"http://user:{PASSWORD}@127.0.0.1:3128",
        "default_headers": {"X-Api-Key": HEADER},
        **refused,
    }


@pytest.mark.parametrize("refused", REFUSALS, ids=lambda r: next(iter(r)))
async def test_a_refused_client_renders_no_secret(refused: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Client("wemasy", **_arguments(**refused))
    for text in _renderings(caught.value):
        for secret in SECRETS:
            assert secret not in text


@pytest.mark.parametrize("refused", REFUSALS, ids=lambda r: next(iter(r)))
def test_a_refused_blocking_client_renders_no_secret(refused: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        sync.Client("wemasy", **_arguments(**refused))
    for text in _renderings(caught.value):
        for secret in SECRETS:
            assert secret not in text


async def test_the_locals_are_there_but_hold_no_secret() -> None:
    # The frames are still in the traceback (the error says where it came from); the
    # client's own frame shows its other arguments, the checks' frames nothing.
    with pytest.raises(InvalidRequestError) as caught:
        Client("wemasy", **_arguments(timeout=-1))
    frames = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    init = next(frame for frame in frames.stack if frame.name == "__init__")
    assert init.locals is not None
    assert init.locals["timeout"] == "-1"
    assert init.locals["token"] == "None"


def test_a_blocking_clients_kept_arguments_render_nothing() -> None:
    with sync.Client("wemasy", **_arguments()) as client:
        for text in (repr(client), repr(vars(client)), str(vars(client))):
            for secret in SECRETS:
                assert secret not in text
        with pytest.raises(TypeError) as refused:
            pickle.dumps(client._make)
        assert TOKEN not in str(refused.value)
