"""The remote commands: ``get``, ``messages``, ``list``, ``chat`` and ``fetch``.

Each takes the parsed arguments, builds a :class:`~wemasy_async.Client` for ``--provider``
(token from ``--token``, else the provider's environment variable; never printed), and
prints JSON to stdout (``fetch`` writes files and prints its summary to stderr; its
pipeline is :mod:`wemasy_async.cli.export`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from wemasy_async.cli.exits import EXIT_ERROR, EXIT_USAGE, CommandError
from wemasy_async.cli.export import run_fetch
from wemasy_async.client import Client
from wemasy_async.errors import WemasyAsyncError
from wemasy_async.providers.registry import get_provider, provider_names
from wemasy_async.ratelimit import RateLimit

if TYPE_CHECKING:
    from wemasy_async.redis import RedisStore

__all__ = [
    "TOOL_SPEC_SHAPE",
    "chat",
    "client_for",
    "fetch",
    "get",
    "list_conversations",
    "load_tools",
    "messages",
    "token_variables",
]


def _format_json(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _print_json(value: object) -> None:
    print(_format_json(value))


def _without_raw(value: object) -> object:
    """``value`` with the ``raw`` field of every model in it left out (the neutral fields
    already carry that data); plain values (a message's ``metadata``) are kept as they are."""
    if isinstance(value, msgspec.Struct):
        return {
            field.encode_name: _without_raw(getattr(value, field.name))
            for field in msgspec.structs.fields(value)
            if field.name != "raw"
        }
    if isinstance(value, list):
        return [_without_raw(item) for item in value]
    return value


def _output(args: argparse.Namespace, value: object) -> object:
    return value if args.raw else _without_raw(value)


async def _print_json_array(items: AsyncIterator[object]) -> None:
    """Print ``items`` as one JSON array, formatted as :func:`_print_json` would, one item
    at a time: a reader that stops early (``| head``) stops the paging too."""
    opening = "[\n  "
    async for item in items:
        sys.stdout.write(opening + _format_json(item).replace("\n", "\n  "))
        opening = ",\n  "
    sys.stdout.write("[]\n" if opening == "[\n  " else "\n]\n")


def token_variables() -> dict[str, str]:
    """Provider name -> the environment variable its token falls back to."""
    variables: dict[str, str] = {}
    for name in provider_names():
        try:
            variables[name] = get_provider(name).token_env
        except WemasyAsyncError:  # a broken plug-in must not break --help
            continue
    return variables


def _token(args: argparse.Namespace) -> str:
    """``--token``, else the provider's variable; the error names both, never the value."""
    if args.token is not None:
        if not args.token:
            raise CommandError("--token is empty")
        return str(args.token)
    variable = get_provider(args.provider).token_env
    token = os.environ.get(variable)
    if not token:
        raise CommandError(f"no API token: pass --token or set ${variable}")
    return token


def client_for(args: argparse.Namespace, rate_limit: RateLimit | bool = True) -> Client:
    """The client a remote command's arguments describe (no I/O until it is used).

    Raises:
        CommandError: No token given or found in the provider's variable.
        InvalidRequestError: An argument the client refuses (e.g. plain ``http://``).
    """
    return Client(
        args.provider,
        token=_token(args),
        base_url=args.base_url,
        timeout=args.timeout,
        allow_http=args.allow_http,
        rate_limit=rate_limit,
    )


async def get(args: argparse.Namespace) -> None:
    """``get ID``: print one conversation, with its messages."""
    async with client_for(args) as client:
        _print_json(_output(args, await client.get_conversation(args.conversation_id)))


async def messages(args: argparse.Namespace) -> None:
    """``messages ID``: print a conversation's messages."""
    async with client_for(args) as client:
        _print_json(await client.list_messages(args.conversation_id))


async def list_conversations(args: argparse.Namespace) -> None:
    """``list``: print one page, or with ``--all`` every conversation as the pages come."""
    async with client_for(args) as client:
        if args.all:
            conversations = client.iter_conversations(
                agent_id=args.agent_id, search=args.search, per_page=args.per_page
            )
            await _print_json_array(_output(args, c) async for c in conversations)
            return
        page = await client.list_conversations(
            agent_id=args.agent_id, search=args.search, per_page=args.per_page, page=args.page
        )
        _print_json(_output(args, page))


async def chat(args: argparse.Namespace) -> None:
    """``chat``: send a message or a tool result, print the reply."""
    tools = None if args.tools is None else load_tools(Path(args.tools))
    # Tools given: the assistant may call them, unless --no-use-tools says not now.
    use_tools = args.use_tools if args.use_tools is not None or tools is None else True
    async with client_for(args) as client:
        reply = await client.chat(
            args.message,
            conversation_id=args.conversation_id,
            model=args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            use_tools=use_tools,
            tools=tools,
            tool_call_id=args.tool_call_id,
            tool_result=args.tool_result,
        )
        _print_json(_output(args, reply))


TOOL_SPEC_SHAPE = '{"type": "function", "function": {"name": ..., "parameters": {...}}}'


def load_tools(path: Path) -> list[dict[str, Any]]:
    """The tool specs in ``path``: a JSON list of OpenAI-style function definitions.

    Raises:
        CommandError: (status 2) The file is missing, not JSON, or not a list of specs.
    """
    try:
        data = msgspec.json.decode(path.read_bytes())
    except OSError as exc:
        raise CommandError(f"--tools: cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    except msgspec.DecodeError as exc:
        raise CommandError(f"--tools: {path} is not JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(data, list) or not data:
        raise CommandError(
            f"--tools: {path} must hold a non-empty JSON list of tool specs, each"
            f" {TOOL_SPEC_SHAPE}",
            EXIT_USAGE,
        )
    for number, spec in enumerate(data, 1):
        function = spec.get("function") if isinstance(spec, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name or spec.get("type") != "function":
            raise CommandError(
                f"--tools: tool {number} in {path} is not {TOOL_SPEC_SHAPE}", EXIT_USAGE
            )
        assert isinstance(function, dict)  # it has a name
        if not isinstance(function.get("parameters", {}), dict):
            raise CommandError(
                f"--tools: tool {number} ({name}) in {path}: parameters must be a JSON object",
                EXIT_USAGE,
            )
    return data


async def fetch(args: argparse.Namespace) -> int:
    """``fetch``: run :func:`~wemasy_async.cli.export.run_fetch` with the command's options;
    exit status 1 when some ids failed."""
    store: RedisStore | None = None
    if args.redis is not None:
        from wemasy_async.redis import RedisStore  # optional: needs the redis extra

        # While Redis is down, each of the N shards keeps to 1/N of the limit.
        share = 1.0 if args.shard is None else 1.0 / args.shard.count
        store = RedisStore(args.redis, fallback_share=share)
    try:
        rate_limit = RateLimit(window=args.rate_window, store=store)
        async with client_for(args, rate_limit) as client:
            report = await run_fetch(
                client,
                ids_file=Path(args.ids_file),
                out=Path(args.out),
                errors=Path(args.errors) if args.errors else None,
                messages=args.messages,
                concurrency=args.concurrency,
                shard=args.shard,
                summary=lambda line: print(line, file=sys.stderr),
                bar=sys.stderr if sys.stderr.isatty() else None,
            )
    finally:
        if store is not None:
            await store.aclose()
    return EXIT_ERROR if report.failed else 0
