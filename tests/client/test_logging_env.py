"""``WEMASY_ASYNC_LOG=info|debug``: the SDK's logging on stderr without configuring logging."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from wemasy_async import Client
from wemasy_async.logs import ENV, LOGGER, configure_from_env
from wemasy_async.retry import RetryPolicy
from wemasy_async.testing import FakeWemasy

TOKEN = "log-env-token-7f3a9c"
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.01)


@pytest.fixture(autouse=True)
def clean_logger() -> Iterator[logging.Logger]:
    """Each test starts and ends with the SDK's logger as an application would find it."""
    logger = logging.getLogger(LOGGER)
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _ours(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if type(h).__name__ == "_StderrHandler"]


def test_unset_or_empty_adds_nothing(clean_logger: logging.Logger) -> None:
    before = list(clean_logger.handlers)
    configure_from_env({})
    configure_from_env({ENV: ""})
    assert clean_logger.handlers == before


@pytest.mark.parametrize(("value", "level"), [("info", logging.INFO), (" DEBUG ", logging.DEBUG)])
def test_a_level_adds_one_stderr_handler(
    value: str, level: int, clean_logger: logging.Logger
) -> None:
    configure_from_env({ENV: value})
    configure_from_env({ENV: value})  # a second client: still one handler
    assert len(_ours(clean_logger)) == 1
    assert clean_logger.level == level
    configure_from_env({ENV: "info"})  # a changed level applies
    assert clean_logger.level == logging.INFO
    assert len(_ours(clean_logger)) == 1


def test_an_unknown_value_warns_and_is_ignored(clean_logger: logging.Logger) -> None:
    with pytest.warns(RuntimeWarning, match="WEMASY_ASYNC_LOG must be 'info' or 'debug'"):
        configure_from_env({ENV: "verbose"})
    assert _ours(clean_logger) == []


@pytest.mark.parametrize("level", ["debug", "info"])
async def test_info_tells_the_retries_debug_every_response_never_the_token(
    level: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, level)
    async with FakeWemasy(conversations=3, token=TOKEN) as fake:
        fake.queue_error(503)
        client = Client("wemasy", base_url=fake.url, token=TOKEN, rate_limit=False, retry=FAST)
        async with client:
            await client.get_conversation(1)
    err = capsys.readouterr().err
    assert "wemasy_async INFO] retrying POST /services/ai/v1/conversations/get" in err
    assert "InternalServerError" in err
    # DEBUG: each response, the failed one too; INFO leaves them out.
    assert ("-> 503 in" in err) is (level == "debug")
    assert ("-> 200 in" in err) is (level == "debug")
    assert TOKEN not in err


def test_a_program_that_configures_nothing_logs_on_stderr() -> None:
    # As a user runs it: no logging setup in the program, only the variable.
    program = textwrap.dedent(
        f"""
        import asyncio
        from wemasy_async import Client
        from wemasy_async.testing import FakeWemasy

        async def main():
            async with FakeWemasy(conversations=2, token={TOKEN!r}) as fake:
                async with Client("wemasy", base_url=fake.url, token={TOKEN!r}) as client:
                    await client.get_conversation(1)

        asyncio.run(main())
        """
    )
    env = {**os.environ, ENV: "debug"}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "-> 200 in" in done.stderr
    assert "pacing wemasy" in done.stderr  # the limiter's pace, at INFO
    assert TOKEN not in done.stderr
    assert done.stdout == ""
    quiet = subprocess.run(
        [sys.executable, "-c", program],
        env={k: v for k, v in os.environ.items() if k != ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 0
    assert quiet.stderr == ""
