"""The ``wemasy-async`` command (also ``python -m wemasy_async``).

``demo`` tours the SDK against the bundled fake servers, with no credentials and no
network. ``get``, ``messages``, ``list`` and ``chat`` talk to a real provider, with the token
from the provider's environment variable, and print JSON. Every failure prints one line to
stderr and exits non-zero; no traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import msgspec

from wemasy_async._version import __version__
from wemasy_async.client import Client
from wemasy_async.errors import UnsupportedOperationError, WemasyAsyncError
from wemasy_async.models import Conversation
from wemasy_async.protocols import ConversationStore
from wemasy_async.providers.registry import provider_names

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _print_json(value: object) -> None:
    print(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def _client(args: argparse.Namespace) -> Client:
    return Client(args.provider, base_url=args.base_url, timeout=args.timeout)


async def _get(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        _print_json(await client.get_conversation(args.conversation_id))


async def _messages(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        _print_json(await client.list_messages(args.conversation_id))


async def _list(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        if args.all:
            _print_json(
                [
                    c
                    async for c in client.iter_conversations(
                        agent_id=args.agent_id, search=args.search, per_page=args.per_page
                    )
                ]
            )
            return
        _print_json(
            await client.list_conversations(
                agent_id=args.agent_id, search=args.search, per_page=args.per_page, page=args.page
            )
        )


async def _chat(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        reply = await client.chat(
            args.message,
            conversation_id=args.conversation_id,
            model=args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            tool_call_id=args.tool_call_id,
            tool_result=args.tool_result,
        )
        _print_json(reply)


async def _fetch_all(
    client: Client, ids: Sequence[int], concurrency: int
) -> list[Conversation | WemasyAsyncError]:
    """Fetch ``ids`` with a fixed pool of workers; a failure is kept, not raised."""
    results: list[Conversation | WemasyAsyncError] = []
    queue = iter(ids)

    async def worker() -> None:
        for conversation_id in queue:  # workers share one iterator: each id is taken once
            try:
                results.append(await client.get_conversation(conversation_id))
            except WemasyAsyncError as exc:
                results.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return results


async def _demo(args: argparse.Namespace) -> None:
    # Imported here: the fakes (and aiohttp.web) are only needed by the demo.
    from wemasy_async.testing import FakeWemasy

    count = args.conversations
    async with FakeWemasy(seed=args.seed, conversations=count) as fake:
        print(f"wemasy-async {__version__} demo")
        print(f"Fake Wemasy API at {fake.url} (in-process: no credentials, no network)\n")
        async with Client("wemasy", base_url=fake.url, token="demo-token") as client:
            await _demo_tour(client)
            print(f"\n5. Fetch {count:,} conversations concurrently ({args.concurrency} at a time)")
            started = time.perf_counter()
            results = await _fetch_all(client, range(1, count + 1), args.concurrency)
            elapsed = time.perf_counter() - started
            failed = sum(isinstance(r, WemasyAsyncError) for r in results)
            messages = sum(len(r.messages or ()) for r in results if isinstance(r, Conversation))
            print(
                f"   {len(results) - failed:,} conversations ({messages:,} messages), "
                f"{failed} errors, in {elapsed:.2f} s = {len(results) / elapsed:,.0f} req/s"
            )
    await _demo_other_providers(args.seed)
    print("\nDone. Next: `wemasy-async get ID` against a real API, token from the environment.")


async def _neutral_summary(store: ConversationStore, conversation_id: str) -> str:
    """Provider-neutral code: the same lines work against every provider."""
    conversation = await store.get_conversation(conversation_id)
    messages = await store.list_messages(conversation_id, limit=2)
    first = (messages[0].content or "").replace("\n", " ")[:50] if messages else ""
    return (
        f"{conversation.id[:13]}… {conversation.status or '-'}, "
        f"{len(conversation.messages or ())} messages; first: {first!r}"
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
    messages = conversation.messages or []
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wemasy-async", description="Async SDK for AI-assistant conversation APIs."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="tour the SDK against in-process fake servers")
    demo.add_argument("--conversations", type=int, default=1000, help="how many to fetch")
    demo.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    demo.add_argument("--seed", type=int, default=0, help="seed of the fake data")
    demo.set_defaults(run=_demo)

    def remote(name: str, help: str, run: Callable[[argparse.Namespace], Awaitable[None]]) -> Any:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--provider", default="wemasy", choices=provider_names())
        sub.add_argument("--base-url", default=None, help="override the provider's base URL")
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        sub.set_defaults(run=run)
        return sub

    remote("get", "print one conversation as JSON", _get).add_argument("conversation_id")
    remote("messages", "print a conversation's messages", _messages).add_argument("conversation_id")
    listing = remote("list", "print a page of conversations", _list)
    listing.add_argument("--agent-id")
    listing.add_argument("--search")
    listing.add_argument("--per-page", type=int, default=20)
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--all", action="store_true", help="follow every page")
    chat = remote("chat", "send a message (or a tool result) and print the reply", _chat)
    chat.add_argument("message", nargs="?")
    chat.add_argument("--conversation-id")
    chat.add_argument("--model")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--tool-call-id")
    chat.add_argument("--tool-result")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 on success)."""
    args = _parser().parse_args(argv)
    # A terminal that cannot show a character must not turn a result into a crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    try:
        anyio.run(args.run, args, backend="asyncio")
    except WemasyAsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
