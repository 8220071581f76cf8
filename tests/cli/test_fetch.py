"""``wemasy-async fetch``: JSONL out, errors file, resume, progress, exit codes, the demo."""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_served import accepted, interrupt_once_written, running, serve
from tests.support.cli_served import stop as _stop
from tests.support.cli_served import url as _url
from wemasy_async.cli import default_errors_path, main
from wemasy_async.cli.export import _iter_ids
from wemasy_async.progress import ProgressBar, format_bar, format_duration, format_summary

TOKEN = "fetch-SECRET-token"
COUNT = 40


def _serve(*extra: str) -> subprocess.Popen[str]:
    return serve(*extra, conversations=COUNT, token=TOKEN)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """A fake Wemasy in its own process, so ``main`` can run its own event loop here."""
    with running(conversations=COUNT, token=TOKEN) as url:
        yield url


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", TOKEN)


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def fetch(url: str, ids_file: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "fetch",
            "--ids-file",
            str(ids_file),
            "--out",
            str(out),
            "--base-url",
            url,
            "--concurrency",
            "8",
            *extra,
        ]
    )


ALL_IDS = [str(i) for i in range(1, COUNT + 1)]


def test_full_run_writes_one_line_per_id_and_an_errors_file(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", [*ALL_IDS, "999", "abc"])
    out = tmp_path / "out.jsonl"
    assert fetch(server_url, ids_file, out) == 1
    records = read_jsonl(out)
    assert sorted(r["id"] for r in records) == sorted(ALL_IDS)
    assert all(r["provider"] == "wemasy" and isinstance(r["messages"], list) for r in records)

    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    by_id = {e["id"]: e for e in errors}
    assert set(by_id) == {"999", "abc"}
    assert by_id["999"]["status"] == 404
    assert by_id["999"]["error"] == "NotFoundError"
    assert "not found" in str(by_id["999"]["message"])
    assert by_id["abc"]["status"] is None
    assert by_id["abc"]["error"] == "InvalidRequestError"
    assert "positive integer" in str(by_id["abc"]["message"])

    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays machine-friendly
    # Not a terminal (capsys): no bar, just the plain summary line.
    assert captured.err.count("\n") == 1
    assert "\r" not in captured.err
    assert captured.err.startswith(f"fetched {COUNT} of {COUNT + 2} (2 errors) in ")
    assert f"skipped 0 already in {out}" in captured.err
    assert f"errors in {tmp_path / 'out.errors.jsonl'}" in captured.err


def test_no_errors_exits_0_and_removes_a_stale_errors_file(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", ALL_IDS[:10])
    out = tmp_path / "conversations.jsonl"
    errors = tmp_path / "failed.jsonl"
    errors.write_text('{"id":"stale"}\n', encoding="utf-8")
    assert fetch(server_url, ids_file, out, "--errors", str(errors)) == 0
    assert len(read_jsonl(out)) == 10
    assert not errors.exists()
    err = capsys.readouterr().err
    assert err.startswith("fetched 10 of 10 (0 errors)")
    assert "errors in" not in err


def test_resume_skips_ids_already_in_out_and_retries_failures(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", [*ALL_IDS[:20], "999"])
    out = tmp_path / "out.jsonl"
    assert fetch(server_url, ids_file, out) == 1
    before = out.read_bytes()
    capsys.readouterr()

    requests = accepted(server_url)
    assert fetch(server_url, ids_file, out) == 1
    assert accepted(server_url) - requests == 1  # only the failed id, retried
    assert out.read_bytes() == before
    err = capsys.readouterr().err
    assert err.startswith("fetched 0 of 1 (1 error)")
    assert f"skipped 20 already in {out}" in err
    assert [e["id"] for e in read_jsonl(default_errors_path(out))] == ["999"]

    # More ids later: only the new ones are fetched.
    write_ids(ids_file, ALL_IDS[:25])
    requests = accepted(server_url)
    assert fetch(server_url, ids_file, out) == 0
    assert accepted(server_url) - requests == 5
    assert sorted(r["id"] for r in read_jsonl(out)) == sorted(ALL_IDS[:25])


def test_truncated_last_line_is_cut_off_and_refetched(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", ALL_IDS[:12])
    out = tmp_path / "out.jsonl"
    assert fetch(server_url, ids_file, out) == 0
    lines = out.read_bytes().splitlines(keepends=True)
    lost = json.loads(lines[-1])["id"]
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # crash mid-write
    capsys.readouterr()

    requests = accepted(server_url)
    assert fetch(server_url, ids_file, out) == 0
    assert accepted(server_url) - requests == 1
    records = read_jsonl(out)  # valid JSONL again
    assert sorted(r["id"] for r in records) == sorted(ALL_IDS[:12])
    assert records[-1]["id"] == lost
    assert "fetched 1 of 1 (0 errors)" in capsys.readouterr().err


def test_complete_last_line_without_newline_is_kept(server_url: str, tmp_path: Path) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", ALL_IDS[:3])
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id":"1","provider":"wemasy"}')
    requests = accepted(server_url)
    assert fetch(server_url, ids_file, out) == 0
    assert accepted(server_url) - requests == 2
    assert sorted(r["id"] for r in read_jsonl(out)) == ["1", "2", "3"]


def test_corrupt_line_in_the_middle_is_an_error_and_out_is_untouched(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", ALL_IDS[:3])
    out = tmp_path / "out.jsonl"
    content = b'{"id":"1"}\nnot json\n{"id":"2"}\n'
    out.write_bytes(content)
    assert fetch(server_url, ids_file, out) == 1
    assert out.read_bytes() == content
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {out} line 2 is not a JSON object with an id; fix it or choose another --out\n"
    )


def test_ids_file_is_streamed_and_skips_comments_blanks_and_repeats(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(
        "# conversations to back up\n\n  3  \n# another comment\n5\n\n3\n7\r\n",
        encoding="utf-8",
    )
    assert inspect.isgenerator(_iter_ids(ids_file))
    assert list(_iter_ids(ids_file)) == ["3", "5", "3", "7"]
    out = tmp_path / "out.jsonl"
    requests = accepted(server_url)
    assert fetch(server_url, ids_file, out) == 0
    assert accepted(server_url) - requests == 3  # the repeated id is fetched once
    assert sorted(r["id"] for r in read_jsonl(out)) == ["3", "5", "7"]
    assert capsys.readouterr().err.startswith("fetched 3 of 3 (0 errors)")


def test_messages_mode(server_url: str, tmp_path: Path) -> None:
    ids_file = write_ids(tmp_path / "ids.txt", ["4", "9", "999"])
    out = tmp_path / "messages.jsonl"
    assert fetch(server_url, ids_file, out, "--messages") == 1
    records = {r["id"]: r for r in read_jsonl(out)}
    assert set(records) == {"4", "9"}
    for conversation_id, record in records.items():
        assert set(record) == {"id", "messages"}
        messages = record["messages"]
        assert isinstance(messages, list)
        assert messages
        assert all(m["conversation_id"] == conversation_id for m in messages)
    errors = read_jsonl(tmp_path / "messages.errors.jsonl")
    assert [(e["id"], e["status"]) for e in errors] == [("999", 404)]


def test_progress_bar_on_a_terminal(
    server_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    ids_file = write_ids(tmp_path / "ids.txt", [*ALL_IDS[:10], "999"])
    assert fetch(server_url, ids_file, tmp_path / "out.jsonl") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    bar, summary = captured.err.rsplit("\r", 1)[1].splitlines()
    assert bar.startswith("[##########] 11/11 100% | ")
    assert bar.rstrip().endswith("| ETA 0:00:00 | 1 error")
    assert summary.startswith("fetched 10 of 11 (1 error)")


def test_usage_errors_exit_2(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    assert fetch(server_url, tmp_path / "missing.txt", out) == 2
    assert capsys.readouterr().err == f"error: ids file not found: {tmp_path / 'missing.txt'}\n"
    assert not out.exists()

    ids_file = write_ids(tmp_path / "ids.txt", ["1"])
    assert fetch(server_url, ids_file, ids_file) == 2
    assert capsys.readouterr().err.startswith("error: --ids-file, --out and --errors must be")

    with pytest.raises(SystemExit) as info:
        fetch(server_url, ids_file, out, "--concurrency", "0")
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["fetch", "--ids-file", str(ids_file)])
    assert info.value.code == 2


def test_rejected_token_stops_the_run_with_one_line(
    server_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEMASY_API_TOKEN", "wrong-SECRET-value")
    ids_file = write_ids(tmp_path / "ids.txt", ALL_IDS)
    out = tmp_path / "out.jsonl"
    assert fetch(server_url, ids_file, out) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unauthenticated. (HTTP 401 from wemasy, POST /api/")
    assert err.count("\n") == 1
    assert "SECRET" not in err
    assert out.read_bytes() == b""


def test_ctrl_c_keeps_what_was_fetched_and_a_rerun_resumes(tmp_path: Path) -> None:
    # A rate limit of 11 a minute: the client sends a burst of 10 and then waits for the
    # next window, which leaves time to interrupt it mid-run. The rerun goes to a second
    # server with the same data and no limit in the way (the first one's window is spent).
    process = _serve("--rate-limit", "11")
    second = _serve()
    try:
        url = _url(process)
        ids_file = write_ids(tmp_path / "ids.txt", ALL_IDS)
        out = tmp_path / "out.jsonl"
        command = [
            sys.executable,
            "-m",
            "wemasy_async",
            "fetch",
            "--ids-file",
            str(ids_file),
            "--out",
            str(out),
            "--base-url",
            url,
            "--concurrency",
            "4",
        ]
        env = {**os.environ, "WEMASY_API_TOKEN": TOKEN}
        returncode, err = interrupt_once_written(command, env, out)
        assert returncode == 130, err
        assert err.endswith("interrupted\n")
        assert "Traceback" not in err
        kept = read_jsonl(out)  # whole lines only
        assert 0 < len(kept) < COUNT

        command[command.index(url)] = _url(second)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        assert f"skipped {len(kept)} already in" in rerun.stderr
        assert sorted(r["id"] for r in read_jsonl(out)) == sorted(ALL_IDS)
    finally:
        _stop(process)
        _stop(second)


# --- Rendering: pure functions ----------------------------------------------------------


def test_format_bar() -> None:
    assert (
        format_bar(1234, 10_000, 3, 1234 / 812)
        == "[#---------] 1,234/10,000 12% | 812/s | ETA 0:00:11 | 3 errors"
    )
    assert format_bar(0, 50, 0, 0.0) == "[----------] 0/50 0% | 0/s | ETA -:--:-- | 0 errors"
    assert format_bar(50, 50, 1, 2.0) == "[##########] 50/50 100% | 25/s | ETA 0:00:00 | 1 error"
    assert format_bar(0, 0, 0, 0.0).startswith("[##########] 0/0 100% ")
    assert format_bar(5, 10, 0, 1.0, width=4) == "[##--] 5/10 50% | 5/s | ETA 0:00:01 | 0 errors"


def test_format_duration() -> None:
    assert format_duration(0) == "0:00:00"
    assert format_duration(11.4) == "0:00:11"
    assert format_duration(3 * 3600 + 62) == "3:01:02"
    assert format_duration(float("inf")) == "-:--:--"


def test_format_summary() -> None:
    line = format_summary(
        succeeded=9997,
        failed=3,
        total=10_000,
        elapsed=12.31,
        skipped=0,
        out="out.jsonl",
        errors_path="out.errors.jsonl",
    )
    assert line == (
        "fetched 9,997 of 10,000 (3 errors) in 12.3 s, 812/s; skipped 0 already in out.jsonl; "
        "errors in out.errors.jsonl"
    )


def test_progress_bar_redraws_in_place_and_is_throttled() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, interval=60.0)
    bar.update(1, 10, 0, 1.0)
    bar.update(2, 10, 0, 1.0)  # within the interval: not drawn
    bar.finish(10, 10, 0, 2.0)
    draws = stream.getvalue().split("\r")[1:]
    assert len(draws) == 2
    assert draws[0].startswith("[#---------] 1/10 10%")
    assert draws[1].startswith("[##########] 10/10 100%")
    assert stream.getvalue().endswith("\n")


def test_default_errors_path() -> None:
    assert default_errors_path(Path("a/out.jsonl")) == Path("a/out.errors.jsonl")
    assert default_errors_path(Path("dump")) == Path("dump.errors.jsonl")


def test_demo_shows_fetch_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--conversations", "20", "--concurrency", "4"]) == 0
    out = capsys.readouterr().out
    step = out[out.index("7. `wemasy-async fetch`") :]
    assert "fetched 50 of 52 (2 errors)" in step
    assert "skipped 0 already in out.jsonl; errors in out.errors.jsonl" in step
    assert "fetched 0 of 2 (2 errors)" in step
    assert "skipped 50 already in out.jsonl" in step
    assert '"status":404,"error":"NotFoundError"' in step
    assert "wemasy-demo-" not in step  # temp paths are shown relative
    assert out.rstrip().endswith("token from the environment.")
