"""The console script in a subprocess against a fake served in another process (issue 16):
``--token``, a reader that goes away, ``--raw``, chat tools, duplicate ids, ``--help``, and
the progress bar's pace."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.cli_served import accepted, interrupt_once_written, running

TOKEN = "console-SECRET-token"
COUNT = 300
TOKEN_VARIABLES = ("WEMASY_API_TOKEN", "SITEASSIST_API_TOKEN", "LOOP_API_TOKEN")
REMOTE_COMMANDS = ("get", "messages", "list", "chat", "fetch")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running(conversations=COUNT, token=TOKEN) as url:
        yield url


def environment(token: str | None = TOKEN) -> dict[str, str]:
    """This environment without any provider's token, and with ``token`` for Wemasy."""
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARIABLES}
    if token is not None:
        env["WEMASY_API_TOKEN"] = token
    return env


COMMAND = [sys.executable, "-m", "wemasy_async"]


def run(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    """Run the command with :func:`environment` of ``token``."""
    return subprocess.run(
        [*COMMAND, *args],
        env=environment(token),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The single ``error: ...`` line of a failed run (nothing on stdout, no traceback)."""
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    return result.stderr


# --- 1. --token ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "variable"),
    [
        ("wemasy", "WEMASY_API_TOKEN"),
        ("loop", "LOOP_API_TOKEN"),
        ("siteassist", "SITEASSIST_API_TOKEN"),
    ],
)
def test_missing_token_names_the_option_and_the_variable(provider: str, variable: str) -> None:
    result = run("get", "1", "--provider", provider, token=None)
    assert one_line_error(result, 1) == f"error: no API token: pass --token or set ${variable}\n"


def test_empty_variable_is_missing_too() -> None:
    result = run("get", "1", token="")
    assert one_line_error(result, 1) == (
        "error: no API token: pass --token or set $WEMASY_API_TOKEN\n"
    )


def test_token_option_authenticates_and_wins_over_the_variable(server_url: str) -> None:
    alone = run("get", "3", "--base-url", server_url, "--token", TOKEN, token=None)
    assert alone.returncode == 0, alone.stderr
    assert msgspec.json.decode(alone.stdout)["id"] == "3"
    over = run("get", "3", "--base-url", server_url, "--token", TOKEN, token="wrong-value")
    assert over.returncode == 0, over.stderr
    assert run("get", "3", "--base-url", server_url, "--token=", token=TOKEN).stderr == (
        "error: --token is empty\n"
    )


@pytest.mark.parametrize("command", REMOTE_COMMANDS)
def test_every_remote_command_takes_token_and_help_never_shows_it(command: str) -> None:
    # The token in the environment and on the command line: --help shows neither.
    result = run(command, "--token", "argv-SECRET-value", "--help", token="env-SECRET-value")
    assert result.returncode == 0, result.stderr
    assert "--token TOKEN" in result.stdout
    assert "SECRET" not in result.stdout + result.stderr
    assert_names_the_default_provider_and_the_token_variables(result.stdout)  # item 6


def test_rejected_token_is_never_echoed(server_url: str, tmp_path: Path) -> None:
    wrong = "wrong-SECRET-value"
    for args in (
        ["get", "1"],
        ["list", "--all"],
        ["chat", "hi"],
        ["fetch", "--ids-file", str(write_ids(tmp_path / "ids.txt", ["1", "2"]))],
    ):
        if args[0] == "fetch":
            args += ["--out", str(tmp_path / "out.jsonl")]
        result = run(*args, "--base-url", server_url, "--token", wrong, token=None)
        error = one_line_error(result, 1)
        assert error.startswith("error: Unauthenticated. (HTTP 401 from wemasy"), error
        assert "SECRET" not in error


# --- 2. a reader that goes away -------------------------------------------------------------


def test_closed_pipe_stops_quietly_with_141_and_stops_paging(server_url: str) -> None:
    before = accepted(server_url)
    child = subprocess.Popen(
        [*COMMAND, "list", "--all", "--per-page", "10", "--base-url", server_url],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    head = child.stdout.read(100)
    child.stdout.close()  # the reader goes away, like `| head -c 100`
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=60) == 141
    assert head.startswith(b'[\n  {\n    "id": "1",')
    assert err == b""  # no BrokenPipeError traceback, no "Exception ignored" either
    assert accepted(server_url) - before < COUNT // 10  # it did not page through all 30


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell pipeline")
def test_real_head_pipeline(server_url: str) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "wemasy-async")
    command = [script] if os.path.exists(script) else COMMAND
    line = shlex.join([*command, "list", "--all", "--per-page", "5", "--base-url", server_url])
    result = subprocess.run(
        ["bash", "-c", f'{line} | head -c 100; exit "${{PIPESTATUS[0]}}"'],
        env=environment(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 141
    assert len(result.stdout) == 100
    assert result.stderr == b""


def test_streamed_list_is_the_same_json_as_one_print(server_url: str) -> None:
    result = run("list", "--all", "--per-page", "40", "--base-url", server_url)
    assert result.returncode == 0, result.stderr
    items = msgspec.json.decode(result.stdout)
    assert [c["id"] for c in items] == [str(i) for i in range(1, COUNT + 1)]
    # Formatted exactly as one msgspec.json.format(..., indent=2) of the whole list.
    text = result.stdout.removesuffix("\n")
    assert msgspec.json.format(text.encode(), indent=2).decode() == text
    empty = run("list", "--all", "--search", "no-such-text-anywhere", "--base-url", server_url)
    assert (empty.returncode, empty.stdout) == (0, "[]\n")


# --- 3. --raw -------------------------------------------------------------------------------


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return msgspec.json.decode(result.stdout)


def test_get_leaves_out_raw_unless_asked(server_url: str) -> None:
    plain = _json(run("get", "27", "--base-url", server_url))
    raw = _json(run("get", "27", "--base-url", server_url, "--raw"))
    assert "raw" not in plain
    assert isinstance(raw["raw"], dict)
    assert raw["raw"]["id"] == 27
    assert {k: v for k, v in raw.items() if k != "raw"} == plain  # nothing else is lost
    assert plain["messages"]


def test_list_leaves_out_raw_unless_asked(server_url: str) -> None:
    page = _json(run("list", "--per-page", "3", "--base-url", server_url))
    assert page["items"]
    assert all("raw" not in c for c in page["items"])
    raw = _json(run("list", "--per-page", "3", "--base-url", server_url, "--raw"))
    assert all("raw" in c for c in raw["items"])
    streamed = _json(run("list", "--all", "--per-page", "100", "--base-url", server_url))
    assert all("raw" not in c for c in streamed)


def test_chat_leaves_out_raw_unless_asked(server_url: str) -> None:
    plain = _json(run("chat", "Hello", "--conversation-id", "5", "--base-url", server_url))
    assert plain["content"] == "Here is what I found about: Hello"
    assert "raw" not in plain
    raw = _json(run("chat", "Hello", "--conversation-id", "5", "--base-url", server_url, "--raw"))
    assert raw["raw"] is not None


# --- 4. chat tools --------------------------------------------------------------------------


def test_chat_tool_round_trip(server_url: str, tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS), encoding="utf-8")
    reply = _json(
        run("chat", "What is the weather in Amsterdam?", "--tools", str(tools), "--base-url",
            server_url)
    )  # fmt: skip
    assert reply["content"] is None
    [call] = reply["tool_calls"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Amsterdam"}

    answer = _json(
        run(
            "chat",
            "--conversation-id",
            reply["conversation_id"],
            "--tool-call-id",
            call["id"],
            "--tool-result",
            "18°C and sunny",
            "--base-url",
            server_url,
        )
    )
    assert answer["content"] == "Based on the tool result: 18°C and sunny"
    assert answer["conversation_id"] == reply["conversation_id"]
    assert answer["tool_calls"] == []


def test_chat_tools_can_be_sent_but_not_allowed(server_url: str, tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS), encoding="utf-8")
    args = ("chat", "Weather in Amsterdam?", "--tools", str(tools), "--base-url", server_url)
    assert _json(run(*args, "--no-use-tools"))["tool_calls"] == []
    assert _json(run(*args, "--use-tools"))["tool_calls"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("[{", "{path} is not JSON: "),
        ('{"type": "function"}', "{path} must hold a non-empty JSON list of tool specs"),
        ("[]", "{path} must hold a non-empty JSON list of tool specs"),
        ("[1]", "tool 1 in {path} is not {{"),
        (json.dumps([*TOOLS, {"type": "function", "function": {}}]), "tool 2 in {path} is not"),
        (json.dumps([{"type": "code", "function": {"name": "x"}}]), "tool 1 in {path} is not"),
        (
            json.dumps([{"type": "function", "function": {"name": "x", "parameters": []}}]),
            "tool 1 (x) in {path}: parameters must be a JSON object",
        ),
    ],
)
def test_bad_tools_file_is_a_usage_error_before_any_request(
    server_url: str, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "tools.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    before = accepted(server_url)
    result = run("chat", "hi", "--tools", str(path), "--base-url", server_url)
    error = one_line_error(result, 2)
    assert error.startswith("error: --tools: " + expected.format(path=path)), error
    assert accepted(server_url) == before


# --- 5. fetch counts with repeated ids ------------------------------------------------------


def write_ids(path: Path, ids: Sequence[str]) -> Path:
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def read_ids(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line)["id"] for line in text.splitlines()]


#: 20 known ids, each twice and one three times, and an unknown one twice: 21 distinct.
KNOWN = [str(i) for i in range(1, 21)]
REPEATED = [*KNOWN, "999", *reversed(KNOWN), "7", "999"]


def fetch_args(url: str, ids_file: Path, out: Path) -> list[str]:
    files = ["--ids-file", str(ids_file), "--out", str(out)]
    return ["fetch", *files, "--base-url", url, "--concurrency", "4"]


def test_repeated_ids_are_fetched_once_and_counted_once(server_url: str, tmp_path: Path) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", REPEATED)
    out = tmp_path / "out.jsonl"
    before = accepted(server_url)
    first = run(*fetch_args(server_url, ids_file, out))
    assert first.returncode == 1, first.stderr
    assert accepted(server_url) - before == 21
    assert first.stderr.startswith("fetched 20 of 21 (1 error) in ")
    assert f"skipped 0 already in {out}" in first.stderr
    assert sorted(read_ids(out)) == sorted(KNOWN)

    second = run(*fetch_args(server_url, ids_file, out))
    assert second.returncode == 1, second.stderr
    assert second.stderr.startswith("fetched 0 of 1 (1 error) in ")
    # 41 lines of the ids file are in OUT, as 20 distinct ids: 20 skipped, as OUT has 20 lines.
    assert f"skipped 20 already in {out}" in second.stderr


def test_interrupted_and_resumed_run_with_repeated_ids(tmp_path: Path) -> None:
    # As in test_cli_fetch: a limit of 11 a minute holds the run after a burst, so that it
    # can be interrupted; the rerun goes to a second server with the same data.
    with (
        running("--rate-limit", "11", conversations=40, token=TOKEN) as url,
        running(conversations=40, token=TOKEN) as second,
    ):
        ids_file = write_ids(tmp_path / "ids.txt", REPEATED)
        out = tmp_path / "out.jsonl"
        command = [*COMMAND, *fetch_args(url, ids_file, out)]
        returncode, err = interrupt_once_written(command, environment(), out)
        assert returncode == 130, err
        kept = read_ids(out)
        assert 0 < len(kept) < 20
        assert len(set(kept)) == len(kept)
        summary = re.match(r"fetched (\d+) of (\d+) \((\d+) errors?\)", err)
        assert summary, err
        fetched, total, failed = map(int, summary.groups())
        assert (fetched, total) == (len(kept), 21)  # distinct ids, not 43 lines
        assert "skipped 0 already in" in err

        rerun = run(*fetch_args(second, ids_file, out))
        assert rerun.returncode == 1, rerun.stderr  # the unknown id fails again
        assert rerun.stderr.startswith(f"fetched {20 - len(kept)} of {21 - len(kept)} (1 error)")
        assert f"skipped {len(kept)} already in {out}" in rerun.stderr
        assert sorted(read_ids(out)) == sorted(KNOWN)
        assert failed in (0, 1)


# --- 6. --help -------------------------------------------------------------------------------


def assert_names_the_default_provider_and_the_token_variables(help_text: str) -> None:
    assert "(default: wemasy)" in help_text
    for provider, variable in (
        ("wemasy", "WEMASY_API_TOKEN"),
        ("siteassist", "SITEASSIST_API_TOKEN"),
        ("loop", "LOOP_API_TOKEN"),
    ):
        assert re.search(rf"^  {provider} +\${variable}$", help_text, re.MULTILINE), help_text


def test_help_names_the_default_provider_and_the_token_variables() -> None:
    # Each remote command's --help: test_every_remote_command_takes_token_and_help_never_shows_it
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert_names_the_default_provider_and_the_token_variables(result.stdout)


# --- 7. the progress bar's pace ---------------------------------------------------------------


def _run_on_a_terminal(
    args: Sequence[str], until: re.Pattern[str], timeout: float = 20
) -> tuple[str, int | None]:
    """Run with stderr on a pseudo-terminal (so the bar is drawn) until ``until`` is seen
    in it (then interrupt) or the run ends; what it drew, and its exit status."""
    import pty  # POSIX only

    master, slave = pty.openpty()
    child = subprocess.Popen(
        [*COMMAND, *args], env=environment(), stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    drawn = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                drawn += chunk
                if until.search(drawn.decode(errors="replace")):
                    child.send_signal(signal.SIGINT)
                    until = re.compile(r"(?!)")  # then read to the end
            elif child.poll() is not None:
                break
        status = child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    return drawn.decode(errors="replace"), status


PACED = re.compile(r"\| (\d+)/s \| paced by the server: (\d+)/min \| ETA (\d+:\d\d:\d\d) \|")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_says_when_the_server_sets_the_pace(tmp_path: Path) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", [str(i) for i in range(1, 41)])
    with running("--rate-limit", "11", conversations=40, token=TOKEN) as url:
        drawn, status = _run_on_a_terminal(fetch_args(url, ids_file, tmp_path / "out.jsonl"), PACED)
    assert status == 130, drawn
    match = PACED.search(drawn)
    assert match, drawn
    per_minute = int(match.group(2))
    assert 1 <= per_minute <= 11  # the server's 11 a minute, less the limiter's margin
    hours, minutes, seconds = map(int, match.group(3).split(":"))
    # About 30 ids left at about 11 a minute: minutes, not the burst's fraction of a second.
    assert hours * 3600 + minutes * 60 + seconds >= 60
    assert TOKEN not in drawn


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_does_not_claim_the_server_paces_a_fast_run(
    server_url: str, tmp_path: Path
) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", [str(i) for i in range(1, 41)])
    drawn, status = _run_on_a_terminal(
        fetch_args(server_url, ids_file, tmp_path / "out.jsonl"), re.compile(r"(?!)")
    )
    assert status == 0, drawn
    assert "[##########] 40/40 100% | " in drawn
    assert "paced by the server" not in drawn
    assert "fetched 40 of 40 (0 errors)" in drawn


def test_format_bar_with_the_server_pace() -> None:
    from wemasy_async.progress import format_bar, format_rate

    assert format_rate(1.0) == "60/min"
    assert format_rate(100.0) == "6,000/min"
    # 120 done in 60 s after a burst, the server allowing 1/s: the ETA counts at 1/s.
    assert format_bar(120, 5000, 0, 60.0, paced=1.0) == (
        "[----------] 120/5,000 2% | 2/s | paced by the server: 60/min | ETA 1:21:20 | 0 errors"
    )
    # Slower than the allowed rate: the ETA counts at the run's own rate.
    assert format_bar(30, 60, 0, 60.0, paced=1.0).endswith("| ETA 0:01:00 | 0 errors")
