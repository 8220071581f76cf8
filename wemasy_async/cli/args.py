"""The command line's grammar: the parser, its sub-commands and argument types.

Each sub-command's ``run`` default is the coroutine function that carries it out
(:mod:`wemasy_async.cli.commands`, :mod:`wemasy_async.cli.demo`). Arguments are checked
here where argparse can say what is wrong (a usage error, exit status 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from wemasy_async._version import __version__
from wemasy_async.batch import MAX_CONCURRENCY
from wemasy_async.cli import commands
from wemasy_async.cli.demo import demo
from wemasy_async.cli.export import Shard
from wemasy_async.providers.registry import provider_names
from wemasy_async.validation import MAX_SECONDS

__all__ = ["DEFAULT_PROVIDER", "build_parser"]

Value = TypeVar("Value")

DEFAULT_PROVIDER = "wemasy"


def _tokens_epilog() -> str:
    variables = "\n".join(
        f"  {name:<12} ${variable}" for name, variable in commands.token_variables().items()
    )
    return (
        f"The remote commands talk to --provider (default: {DEFAULT_PROVIDER}), with the\n"
        f"token from --token, else from the provider's environment variable:\n{variables}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``wemasy-async`` parser; its ``--help`` names each provider's token variable."""
    epilog = _tokens_epilog()
    parser = argparse.ArgumentParser(
        prog="wemasy-async",
        description="Async SDK for AI-assistant conversation APIs.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tour = subcommands.add_parser("demo", help="tour the SDK against in-process fake servers")
    tour.add_argument("--conversations", type=int, default=1000, help="how many to fetch")
    tour.add_argument(
        "--concurrency",
        type=_concurrency,
        default=64,
        help=f"requests in flight (1-{MAX_CONCURRENCY})",
    )
    tour.add_argument("--seed", type=int, default=0, help="seed of the fake data")
    tour.set_defaults(run=demo)

    def remote(
        name: str, help: str, run: Callable[[argparse.Namespace], Awaitable[int | None]]
    ) -> Any:
        sub = subcommands.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument(
            "--provider",
            default=DEFAULT_PROVIDER,
            choices=provider_names(),
            help="the provider (default: %(default)s)",
        )
        # No default shown, ever: the token must not appear in --help or in any message.
        sub.add_argument(
            "--token",
            default=None,
            metavar="TOKEN",
            help="the API token (default: the provider's variable, listed below); other local"
            " users can see command lines, so prefer the variable on shared machines",
        )
        sub.add_argument("--base-url", default=None, help="override the provider's base URL")
        sub.add_argument(
            "--allow-http",
            action="store_true",
            help="allow a plain http:// base URL on a non-loopback host (sends the token"
            " unencrypted)",
        )
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        sub.set_defaults(run=run)
        return sub

    raw_help = "also print the provider's wire object (`raw`) next to the neutral fields"
    get = remote("get", "print one conversation as JSON", commands.get)
    get.add_argument("conversation_id")
    get.add_argument("--raw", action="store_true", help=raw_help)
    remote("messages", "print a conversation's messages", commands.messages).add_argument(
        "conversation_id"
    )
    listing = remote("list", "print a page of conversations", commands.list_conversations)
    listing.add_argument("--agent-id")
    listing.add_argument("--search")
    listing.add_argument("--per-page", type=int, default=20)
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument(
        "--all", action="store_true", help="follow every page (printed as it comes)"
    )
    listing.add_argument("--raw", action="store_true", help=raw_help)
    chat = remote("chat", "send a message (or a tool result) and print the reply", commands.chat)
    chat.add_argument("message", nargs="?")
    chat.add_argument("--conversation-id")
    chat.add_argument("--model")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument(
        "--tools",
        metavar="FILE",
        help=f"JSON list of tools the assistant may call, each {commands.TOOL_SPEC_SHAPE}",
    )
    chat.add_argument(
        "--use-tools",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the assistant may call tools (default: yes with --tools)",
    )
    chat.add_argument(
        "--tool-call-id",
        metavar="ID",
        help="answer this tool call of the reply (with --conversation-id and --tool-result)",
    )
    chat.add_argument("--tool-result", metavar="TEXT", help="the tool's output, as text")
    chat.add_argument("--raw", action="store_true", help=raw_help)
    fetch = remote("fetch", "fetch many conversations to a JSONL file, resumably", commands.fetch)
    fetch.add_argument("--ids-file", required=True, help="one id per line; # comments")
    fetch.add_argument("--out", required=True, help="JSONL output; ids already in it are skipped")
    fetch.add_argument(
        "--errors", help="JSONL of failed ids (default: OUT with .errors.jsonl), rewritten"
    )
    fetch.add_argument("--messages", action="store_true", help="fetch messages instead")
    fetch.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help="requests in flight, fixed (1-1000; default: tuned to the rate limit)",
    )
    fetch.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="fetch only shard K of N (a stable hash of each id); run one per host",
    )
    fetch.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="share the rate limit with other processes through this Redis (redis://...)",
    )
    fetch.add_argument(
        "--rate-window",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="the server's rate-limit window (default 60, as the providers document)",
    )
    return parser


def _argument(
    parse: Callable[[str], Value], ok: Callable[[Value], bool], message: str
) -> Callable[[str], Value]:
    """An argparse ``type``: ``parse`` the text, then check it; ``message`` says what is wrong."""

    def convert(text: str) -> Value:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(message) from None
        if not ok(value):
            raise argparse.ArgumentTypeError(message)
        return value

    return convert


def _parse_shard(text: str) -> Shard:
    index, slash, count = text.partition("/")
    if not slash:
        raise ValueError(text)
    return Shard(int(index), int(count))


_shard = _argument(
    _parse_shard, lambda s: 1 <= s.index <= s.count, "must be K/N with 1 <= K <= N, e.g. 1/3"
)
_seconds = _argument(
    float, lambda s: 0 < s <= MAX_SECONDS, "must be a number of seconds, more than 0, at most a day"
)
_concurrency = _argument(
    int, lambda n: 1 <= n <= MAX_CONCURRENCY, f"must be an integer from 1 to {MAX_CONCURRENCY}"
)
