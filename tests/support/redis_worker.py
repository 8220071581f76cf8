"""One of several processes sharing a token through a RedisStore (for test_redis_store.py).

``python tests/support/redis_worker.py <fake url> <token> <redis url> <requests> <window>`` sends
``requests`` concurrent ``get_conversation`` calls, without retries so that a 429 would be
an error, and prints one JSON line: ``{"ok": n, "errors": [...]}``. Had Redis failed, the
store's warning would be on stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys

from wemasy_async import APIError, Client
from wemasy_async.ratelimit import RateLimit
from wemasy_async.redis import RedisStore


async def run(url: str, token: str, redis_url: str, requests: int, window: float) -> None:
    errors: list[str] = []
    async with RedisStore(redis_url) as store:
        config = RateLimit(window=window, store=store)
        async with Client("wemasy", base_url=url, token=token, rate_limit=config, retry=False) as c:

            async def one(n: int) -> None:
                try:
                    await c.get_conversation(n % 20 + 1)
                except APIError as error:
                    errors.append(repr(error))

            await asyncio.gather(*(one(n) for n in range(requests)))
    result = {"ok": requests - len(errors), "errors": errors}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    fake_url, token, redis_url, requests, window = sys.argv[1:6]
    asyncio.run(run(fake_url, token, redis_url, int(requests), float(window)))
