"""Error statuses that every adapter maps alike, written once over the providers: retry
hints, redirects (where ``REDIRECTED`` of ``tests/support/cases.py`` says how) and a proxy's
HTML page, the last through a client and the provider's fake.

Each provider's own error bodies and statuses are in ``tests/providers/<name>/
test_adapter_responses.py``; SiteAssist keeps a 503's retry hint in ``details`` as well, which
its own tests check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import loop_adapter, siteassist_adapter, wemasy_adapter
from tests.support.arguments import TOKEN
from tests.support.cases import CASES, REDIRECTED, ProviderCase
from tests.support.recordings import PARSERS, response
from wemasy_async import APIStatusError, Client, InternalServerError
from wemasy_async.providers.base import Response

GET_PARSERS: dict[str, Callable[[Response], Any]] = {
    "wemasy": wemasy_adapter.get_parse,
    "loop": loop_adapter.get_parse,
    "siteassist": siteassist_adapter.get_parse,
}
"""Each provider's ``get_conversation`` parse."""


@pytest.mark.parametrize("provider", GET_PARSERS)
def test_retry_hint_on_503_is_kept(provider: str) -> None:
    get_parse = GET_PARSERS[provider]
    with pytest.raises(InternalServerError) as info:
        get_parse(response(503, b"", {"Retry-After": "30"}))
    assert info.value.retry_after == 30.0


@pytest.mark.parametrize("provider", GET_PARSERS)
def test_no_retry_hint_means_none(provider: str) -> None:
    get_parse = GET_PARSERS[provider]
    with pytest.raises(InternalServerError) as info:
        get_parse(response(500, b"", {}))
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("case", [case for case in CASES if case.name in REDIRECTED], ids=str)
def test_redirect_is_an_error_naming_the_location(case: ProviderCase, status: int) -> None:
    operation, location = REDIRECTED[case.name]
    with pytest.raises(APIStatusError) as info:
        PARSERS[case.name][operation](response(status, b"", {"Location": location}))
    assert type(info.value) is APIStatusError
    assert info.value.message == f"unexpected redirect to {location}"


async def test_html_gateway_page(case: ProviderCase) -> None:
    async with (
        case.start(token=TOKEN) as fake,
        Client(case.name, base_url=fake.url, token=TOKEN, retry=False) as client,
    ):
        fake.queue_error(502, body="<html><body><h1>502 Bad Gateway</h1></body></html>")
        with pytest.raises(InternalServerError) as info:
            await client.get_conversation(case.native_id(case.ids(fake)[0]))
    assert info.value.message == "Bad Gateway"
    assert info.value.code is None
