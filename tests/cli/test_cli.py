"""The ``wemasy-async`` command: the demo tour, JSON output, one-line errors, both entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import msgspec
import pytest

from wemasy_async.cli import main

TOKEN = "cli-SECRET-token"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """A fake Wemasy in its own process, so ``main`` can run its own event loop here."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wemasy_async.testing",
            "serve",
            "--conversations",
            "40",
            "--token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        assert line.startswith("URL "), line
        yield line.removeprefix("URL ")
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", TOKEN)


def test_demo_prints_the_whole_tour(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--conversations", "60", "--concurrency", "8"]) == 0
    out = capsys.readouterr().out
    assert "1. List conversations: page 1 of 12, 60 in all" in out
    assert "2. Page through agent 'chat' conversations matching 'SEO strategy'" in out
    assert "3. Get conversation" in out
    assert "calls get_weather(" in out
    assert "Based on the tool result: 18°C and sunny" in out
    assert "60 conversations" in out
    assert "0 errors" in out
    assert "req/s" in out
    assert "6. The same provider-neutral code against SiteAssist and Loop" in out
    assert "provider 'siteassist' does not support 'chat'" in out
    assert "provider 'loop' does not support 'chat'" in out


@pytest.mark.usefixtures("token_env")
def test_get_prints_conversation_json(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "27", "--base-url", server_url]) == 0
    data = msgspec.json.decode(capsys.readouterr().out)
    assert data["id"] == "27"
    assert data["provider"] == "wemasy"
    assert isinstance(data["messages"], list)
    assert data["messages"]


@pytest.mark.usefixtures("token_env")
def test_messages_and_list(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["messages", "3", "--base-url", server_url]) == 0
    messages = msgspec.json.decode(capsys.readouterr().out)
    assert all(m["conversation_id"] == "3" for m in messages)
    assert main(["list", "--per-page", "15", "--page", "3", "--base-url", server_url]) == 0
    page = msgspec.json.decode(capsys.readouterr().out)
    assert (page["page"], page["last_page"], page["total"]) == (3, 3, 40)
    assert [c["id"] for c in page["items"]] == [str(i) for i in range(31, 41)]
    assert main(["list", "--all", "--per-page", "7", "--base-url", server_url]) == 0
    assert len(msgspec.json.decode(capsys.readouterr().out)) == 40


@pytest.mark.usefixtures("token_env")
def test_chat_prints_reply(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "Hello there", "--conversation-id", "4", "--base-url", server_url]) == 0
    reply = msgspec.json.decode(capsys.readouterr().out)
    assert reply["content"] == "Here is what I found about: Hello there"
    assert reply["conversation_id"] == "4"


@pytest.mark.usefixtures("token_env")
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["get", "999"], "error: Conversation not found. (HTTP 404 from wemasy, POST /api/"),
        (["get", "abc"], "error: conversation_id must be a positive integer"),
        (["list", "--per-page", "500"], "error: per_page must be between 1 and 100"),
        (["chat"], "error: chat needs a message"),
    ],
)
def test_errors_are_one_line_without_traceback(
    server_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert main([*argv, "--base-url", server_url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(expected)
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_missing_token_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WEMASY_API_TOKEN", raising=False)
    assert main(["get", "1"]) == 1
    assert "$WEMASY_API_TOKEN" in capsys.readouterr().err


def test_wrong_token_is_reported_without_the_token(
    server_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", "wrong-SECRET-value")
    assert main(["get", "1", "--base-url", server_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unauthenticated. (HTTP 401 from wemasy, POST /api/")
    assert "SECRET" not in err


def test_unreachable_server_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", TOKEN)
    # Port 9 (discard) on loopback: nothing listens there, so the connection is refused.
    assert main(["get", "1", "--base-url", "http://127.0.0.1:9/api"]) == 1
    assert capsys.readouterr().err.startswith("error: connection to wemasy failed")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "wemasy_async"],
        [os.path.join(os.path.dirname(sys.executable), "wemasy-async")],
    ],
)
def test_both_entry_points_run_the_demo(command: list[str]) -> None:
    if not os.path.exists(command[0]):
        pytest.skip("console script not installed in this environment")
    result = subprocess.run(
        [*command, "demo", "--conversations", "20", "--concurrency", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "20 conversations" in result.stdout
    assert result.stderr == ""
