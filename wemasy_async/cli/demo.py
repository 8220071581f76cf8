"""``wemasy-async demo``: a tour of the SDK against the bundled fake servers.

No credentials and no network: the fakes run in-process on loopback. The steps: list and
page through Wemasy conversations, get one with its messages, chat with a tool-call round
trip, fetch ``--conversations`` conversations through
:meth:`Client.fetch_conversations <wemasy_async.Client.fetch_conversations>` and print the
throughput, run the same provider-neutral code against SiteAssist and Loop, then show the
``fetch`` command's pipeline (and its resume) on a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from wemasy_async._version import __version__
from wemasy_async.cli.export import default_errors_path, run_fetch
from wemasy_async.client import Client
from wemasy_async.errors import UnsupportedOperationError
from wemasy_async.protocols import ConversationStore

__all__ = ["demo"]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def demo(args: argparse.Namespace) -> None:
    """Run the tour (``--conversations``, ``--concurrency``, ``--seed``), printing to stdout."""
    # Imported here: the fakes (and aiohttp.web) are only needed by the demo.
    from wemasy_async.testing import FakeWemasy

    async with FakeWemasy(seed=args.seed, conversations=args.conversations) as fake:
        print(f"wemasy-async {__version__} demo")
        print(f"Fake Wemasy API at {fake.url} (in-process: no credentials, no network)\n")
        async with Client("wemasy", base_url=fake.url, token="demo-token") as client:
            await _demo_tour(client)
            await _demo_fetch_many(client, args.conversations, args.concurrency)
    await _demo_other_providers(args.seed)
    await _demo_fetch(args.seed)
    print("\nDone. Next: `wemasy-async get ID` against a real API, token from the environment.")


async def _demo_tour(client: Client) -> None:
    page = await client.list_conversations(per_page=5)
    print(f"1. List conversations: page {page.page} of {page.last_page}, {page.total} in all")
    for c in page.items:
        print(f"   #{c.id:<4} {c.agent_id or '-':<8} {c.status or '-':<10} {c.goal or ''}")

    matches = [
        c
        async for c in client.iter_conversations(
            agent_id="chat", search="SEO strategy", per_page=10
        )
    ]
    print(
        f"\n2. Page through agent 'chat' conversations matching 'SEO strategy', 10 per page: "
        f"{len(matches)} found"
    )

    target = matches[0].id if matches else page.items[0].id
    conversation = await client.get_conversation(target)
    messages = conversation.messages
    print(
        f"\n3. Get conversation {conversation.id}: {conversation.status}, "
        f"{len(messages)} messages, {conversation.cost_tokens} tokens, "
        f"cost {conversation.cost_amount}"
    )
    for m in messages[:4]:
        calls = ", ".join(f"calls {c.name}({c.arguments})" for c in m.tool_calls)
        text = (m.content or calls).replace("\n", " ")
        print(f"   {m.role:>9}: {text[:70]}")

    question = "What is the weather in Amsterdam right now?"
    print("\n4. Chat with a tool round trip")
    print(f"   user      > {question}")
    reply = await client.chat(question, model="gpt-4o", use_tools=True, tools=[WEATHER_TOOL])
    for call in reply.tool_calls:
        print(f"   assistant < calls {call.name}({call.arguments})")
        result = "18°C and sunny"  # what our local get_weather returns
        print(f"   tool      > {result}")
        reply = await client.chat(
            conversation_id=reply.conversation_id, tool_call_id=call.id, tool_result=result
        )
    print(f"   assistant < {reply.content}  [conversation {reply.conversation_id}]")


async def _demo_fetch_many(client: Client, count: int, concurrency: int) -> None:
    print(f"\n5. Fetch {count:,} conversations concurrently ({concurrency} at a time)")
    succeeded = failed = messages = 0
    started = time.perf_counter()
    # Counted as they come: the results are not kept, so memory stays flat for any count.
    async with client.fetch_conversations(range(1, count + 1), concurrency=concurrency) as batch:
        async for result in batch:
            if result.ok:
                succeeded += 1
                messages += len(result.value.messages)
            else:
                failed += 1
    elapsed = time.perf_counter() - started
    print(
        f"   {succeeded:,} conversations ({messages:,} messages), "
        f"{failed} errors, in {elapsed:.2f} s = {(succeeded + failed) / elapsed:,.0f} req/s"
    )


async def _neutral_summary(store: ConversationStore, conversation_id: str) -> str:
    """Provider-neutral code: the same lines work against every provider."""
    conversation = await store.get_conversation(conversation_id)
    messages = await store.list_messages(conversation_id, limit=2)
    first = (messages[0].content or "").replace("\n", " ")[:50] if messages else ""
    return (
        f"{conversation.id[:13]}… {conversation.status or '-'}, "
        f"{len(conversation.messages)} messages; first: {first!r}"
    )


async def _demo_other_providers(seed: int) -> None:
    from wemasy_async.testing import FakeLoop, FakeSiteAssist

    print("\n6. The same provider-neutral code against SiteAssist and Loop")
    async with (
        FakeSiteAssist(seed=seed, conversations=20) as siteassist,
        FakeLoop(seed=seed, conversations=20) as loop,
    ):
        for name, fake in (("siteassist", siteassist), ("loop", loop)):
            async with Client(name, base_url=fake.url, token="demo-token") as client:
                summary = await _neutral_summary(client, fake.conversation_ids[0])
                print(f"   {name:<10} {summary}")
                try:
                    await client.chat("hello")
                except UnsupportedOperationError as exc:
                    supported = ", ".join(sorted(client.capabilities))
                    print(f"   {'':<10} {exc}; supports: {supported}")


async def _demo_fetch(seed: int) -> None:
    from wemasy_async.testing import FakeWemasy

    print("\n7. `wemasy-async fetch`: ids file -> JSONL, failures to their own file, resumable")
    with tempfile.TemporaryDirectory(prefix="wemasy-demo-") as tmp:
        ids_file, out = _demo_ids_file(Path(tmp)), Path(tmp, "out.jsonl")
        async with (
            FakeWemasy(seed=seed, conversations=50) as fake,
            Client("wemasy", base_url=fake.url, token="demo-token") as client,
        ):
            for run in ("first run", "second run (resumes)"):
                print(f"   {run}: fetch --ids-file ids.txt --out out.jsonl")
                await run_fetch(
                    client,
                    ids_file=ids_file,
                    out=out,
                    concurrency=8,
                    summary=lambda line: print(f"     {line.replace(tmp + os.sep, '')}"),
                )
        for line in _demo_files_report(out):
            print(f"   {line}")


def _demo_ids_file(directory: Path) -> Path:
    ids_file = directory / "ids.txt"
    ids_file.write_text(
        "# 50 known ids, then an unknown one and a malformed one\n"
        + "".join(f"{i}\n" for i in range(1, 51))
        + "\n99999\nnot-an-id\n",
        encoding="utf-8",
    )
    return ids_file


def _demo_files_report(out: Path) -> list[str]:
    errors = default_errors_path(out)
    with out.open("rb") as lines:
        count = sum(1 for _ in lines)
    failures = errors.read_text(encoding="utf-8").splitlines() if errors.exists() else []
    return [f"{out.name}: {count} lines; {errors.name}:", *(f"  {f}" for f in failures)]
