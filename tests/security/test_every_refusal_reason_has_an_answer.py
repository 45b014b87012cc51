"""Every reason a request can be refused with has a status, a title and a page (I9).

A reason code added to ``model.Reason`` without its status and title in
``responses.py`` would be a ``KeyError`` the first time a request was refused with it:
a 500 instead of the refusal. This walks the whole enum, so such a gap fails here
rather than in front of a client. The allowing reasons are never rendered as refusals
(``ALLOWING_REASONS``); every other member must render as HTML and as problem+json.
"""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request
from markupsafe import escape

from gateway.app import templates
from gateway.model import ALLOWING_REASONS, Reason
from gateway.responses import Renderer

REFUSALS = [reason for reason in Reason if reason not in ALLOWING_REASONS]
HIDDEN = {Reason.TENANT_FOREIGN: Reason.OBJECT_NOT_FOUND}
"""Reasons shown to the client as another (a foreign object looks like a missing one, I3)."""


def test_only_allow_reasons_are_excepted() -> None:
    assert ALLOWING_REASONS == {Reason.PUBLIC_ROUTE, Reason.ROLE_ALLOWED}
    assert len(REFUSALS) == len(Reason) - 2


@pytest.mark.parametrize("foreign_status", [403, 404])
@pytest.mark.parametrize("reason", REFUSALS, ids=[r.value for r in REFUSALS])
def test_the_reason_renders_as_json_and_html(reason: Reason, foreign_status: int) -> None:
    renderer = Renderer(templates=templates(), foreign_object_status=foreign_status)
    problem = renderer.problem(reason, detail="why", request_id="rid-1", target="/x?y=1")
    shown = HIDDEN.get(reason, reason)
    assert problem.reason is shown
    assert isinstance(problem.status, int) and 400 <= problem.status <= 599
    assert problem.status == renderer.status_for(reason)
    assert problem.title.strip()

    api = renderer.render(make_mocked_request("POST", "/x"), problem)
    assert api.status == problem.status
    assert api.content_type == "application/problem+json"
    assert api.headers["X-Request-Id"] == "rid-1"
    assert isinstance(api.body, bytes)
    body = json.loads(api.body)
    assert body["type"] == f"/.gatehold/problems/{shown}"
    assert body["status"] == problem.status and body["title"] == problem.title

    browser = make_mocked_request("POST", "/x", headers={"Accept": "text/html"})
    page = renderer.render(browser, problem)
    assert page.status == problem.status
    assert page.content_type == "text/html"
    assert isinstance(page.body, bytes)
    assert str(escape(problem.title)).encode() in page.body
    assert b"rid-1" in page.body
