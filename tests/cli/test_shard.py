"""``wemasy-async fetch --shard K/N --redis URL``: N processes, one id list, one shared budget.

The fake runs in its own process with a fixed-window limit; the shards are real OS
processes (``python -m wemasy_async fetch``) sharing one token and one real redis-server
(the session's, from conftest).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.served import REPO_ROOT, served
from wemasy_async.cli import Shard, main, shard_of
from wemasy_async.cli.export import _iter_ids

TOKEN = "shard-token"
IDS = [str(i) for i in range(1, 101)]
LIMIT, WINDOW = 25, 1.0  # 100 ids at most 24 a second: about 4 s, shared by 3 processes


def _stats(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/__fake__/stats") as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def _command(url: str, ids_file: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wemasy_async",
        "fetch",
        "--base-url",
        url,
        "--ids-file",
        str(ids_file),
        "--out",
        str(out),
        "--rate-window",
        str(WINDOW),
        *extra,
    ]


async def _run(command: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``command`` to its end (a minute at most): exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _ids_in(out: Path) -> list[str]:
    return [str(json.loads(line)["id"]) for line in out.read_text().splitlines()]


def test_shard_of_is_a_stable_hash_of_the_ids_text() -> None:
    # Fixed values: the same on every host and Python version (sha256, not hash()).
    assert [shard_of(str(i), 3) for i in range(1, 13)] == [2, 2, 2, 2, 3, 1, 3, 1, 1, 1, 2, 1]
    assert shard_of("00000000-0000-4000-8000-000000000001", 4) == 1
    assert {shard_of(i, 1) for i in IDS} == {1}


def test_every_id_is_in_exactly_one_shard(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# ids\n" + "".join(f"{i}\n" for i in IDS))
    shards = [list(_iter_ids(ids_file, Shard(k, 3))) for k in (1, 2, 3)]
    assert sorted((i for shard in shards for i in shard), key=int) == IDS
    assert all(20 <= len(shard) <= 47 for shard in shards)  # roughly even


@pytest.mark.parametrize("shard", ["0/3", "4/3", "1/0", "3", "a/b", "1/3/2", "-1/3"])
def test_a_bad_shard_is_a_usage_error(
    shard: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fetch", "--ids-file", "x", "--out", str(tmp_path / "o"), f"--shard={shard}"])
    assert info.value.code == 2
    assert "must be K/N with 1 <= K <= N" in capsys.readouterr().err


@pytest.mark.slow
async def test_three_processes_share_one_budget_and_cover_every_id_once(
    tmp_path: Path, redis_url: str
) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("".join(f"{i}\n" for i in IDS))
    outs = [tmp_path / f"out-{k}.jsonl" for k in (1, 2, 3)]
    env = {**os.environ, "WEMASY_API_TOKEN": TOKEN}
    args = ("--rate-limit", str(LIMIT), "--window", str(WINDOW), "--conversations", "100")
    async with served(*args, "--token", TOKEN, prefix="/api") as url:
        commands = [
            _command(url, ids_file, out, "--shard", f"{k}/3", "--redis", redis_url)
            for k, out in zip((1, 2, 3), outs, strict=True)
        ]
        runs = await asyncio.gather(*(_run(command, env) for command in commands))
        for returncode, stdout, stderr in runs:
            assert returncode == 0, stderr
            assert stdout == ""
        stats = _stats(url)
        assert stats["rate_limited"] == 0
        assert stats["accepted"] == len(IDS)
        # The budget binds: without sharing, three processes would each send ~24 a second.
        assert stats["max_in_window"] <= LIMIT
        assert len(stats["window_counts"]) >= 4

        union = Counter(i for out in outs for i in _ids_in(out))
        assert sorted(union, key=int) == IDS
        assert set(union.values()) == {1}
        for k, out in zip((1, 2, 3), outs, strict=True):
            assert all(shard_of(i, 3) == k for i in _ids_in(out))

        # Each shard resumes on its own: a rerun of shard 2 sends nothing and keeps OUT.
        before = outs[1].read_bytes()
        returncode, _, stderr = await _run(commands[1], env)
        assert returncode == 0, stderr
        assert f"skipped {len(_ids_in(outs[1]))} already in" in stderr
        assert outs[1].read_bytes() == before
        assert _stats(url)["requests_total"] == stats["requests_total"]
