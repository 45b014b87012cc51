"""I9: an unexpected failure inside the gateway is a clean answer with a request id.

A bug is planted (a stage raises) and a request sent as a partner's system and as a
browser would: the answer is a 500 problem or page carrying a request id, with no trace
and nothing of the exception's text, and nothing reaches the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest

from gateway.context import GATEWAY
from tests.support.stack import problem, running_stack

SECRET = "internal detail: /srv/gatehold/secret.py line 12"


def broken(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(SECRET)


async def test_a_failing_stage_is_a_clean_500_and_nothing_is_forwarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(tmp_path) as stack:
        monkeypatch.setattr(stack.app[GATEWAY].router, "match", broken)
        before = await stack.ledger_total()
        api = await stack.client.get(
            "/api/invoices/1",
            headers={"Accept": "application/json", **stack.cookie("alice@acme.test")},
        )
        api_body = await api.text()
        page = await stack.client.get(
            "/api/invoices/1", headers={"Accept": "text/html", **stack.cookie("alice@acme.test")}
        )
        page_body = await page.text()
        assert await stack.ledger_total() == before, "the app was reached"
    assert api.status == 500 and api.content_type == "application/problem+json"
    answer = problem(api_body)
    assert answer["status"] == 500 and answer["request_id"] == api.headers["X-Request-Id"]
    assert page.status == 500 and page.content_type == "text/html"
    assert page.headers["X-Request-Id"] in page_body
    for body in (api_body, page_body):
        assert "Traceback" not in body and SECRET not in body and "RuntimeError" not in body


async def test_a_failing_gateway_page_is_a_clean_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(tmp_path) as stack:
        monkeypatch.setattr(stack.app[GATEWAY].forward.signer, "jwks", broken)
        response = await stack.client.get(
            "/.gatehold/jwks.json", headers={"Accept": "application/json"}
        )
        body = await response.text()
    assert response.status == 500
    assert problem(body)["request_id"] == response.headers["X-Request-Id"]
    assert SECRET not in body and "Traceback" not in body
