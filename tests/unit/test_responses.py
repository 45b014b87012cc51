"""Rendering refusals (I9): every reason, both formats, and what each answer must carry.

The renderer is the real one with the gateway's own templates; requests are aiohttp's
``make_mocked_request`` (only headers and method are read).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.app import templates
from gateway.model import ALLOWING_REASONS, Reason
from gateway.responses import LOGIN_PATH, REQUEST_ACCESS_PATH, Renderer

REFUSALS = [reason for reason in Reason if reason not in ALLOWING_REASONS]
SIGN_IN = {
    Reason.AUTH_REQUIRED,
    Reason.SESSION_INVALID,
    Reason.STEP_UP_REQUIRED,
    Reason.MFA_REQUIRED,
}
STEP_UPS = {Reason.STEP_UP_REQUIRED, Reason.MFA_REQUIRED}
ACCESS_REQUESTABLE = {Reason.ROLE_FORBIDDEN, Reason.TENANT_UNSELECTED}
HIDDEN = {Reason.TENANT_FOREIGN, Reason.OBJECT_NOT_FOUND}
REQUEST_ID = "0f" * 16
TARGET = "/api/invoices/7?view=full&x=1"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
API = {"Accept": "application/json"}


def renderer(foreign_object_status: int = 404) -> Renderer:
    return Renderer(templates=templates(), foreign_object_status=foreign_object_status)


def rendered(
    reason: Reason,
    *,
    accept: dict[str, str],
    method: str = "GET",
    detail: str = "what went wrong",
    target: str = TARGET,
    foreign_object_status: int = 404,
) -> web.Response:
    pages = renderer(foreign_object_status)
    problem = pages.problem(reason, detail=detail, request_id=REQUEST_ID, target=target)
    return pages.render(make_mocked_request(method, "/api/invoices/7", headers=accept), problem)


def problem_json(response: web.Response) -> dict[str, Any]:
    assert response.content_type == "application/problem+json"
    assert isinstance(response.body, bytes)
    document: dict[str, Any] = json.loads(response.body)
    return document


def html(response: web.Response) -> str:
    assert response.content_type == "text/html"
    assert response.text is not None
    return response.text


def assert_own_answer(response: web.Response) -> None:
    assert response.headers["X-Request-Id"] == REQUEST_ID
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("reason", REFUSALS, ids=str)
def test_every_refusal_renders_as_problem_json(reason: Reason) -> None:
    response = rendered(reason, accept=API)
    body = problem_json(response)
    shown = Reason.OBJECT_NOT_FOUND if reason in HIDDEN else reason
    assert response.status == renderer().status_for(reason) == body["status"]
    assert 400 <= response.status < 600
    assert body["type"] == f"/.gatehold/problems/{shown}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == REQUEST_ID
    assert_own_answer(response)


@pytest.mark.parametrize("reason", REFUSALS, ids=str)
def test_every_refusal_renders_as_an_html_page(reason: Reason) -> None:
    response = rendered(reason, accept=BROWSER, method="POST")
    page = html(response)
    pages = renderer()
    problem = pages.problem(reason, detail="d", request_id=REQUEST_ID, target=TARGET)
    assert response.status == problem.status == pages.status_for(reason)
    assert REQUEST_ID in page
    assert f"<h1>{problem.title}</h1>" in page.replace("&#39;", "'")
    assert "Traceback" not in page
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert_own_answer(response)


@pytest.mark.parametrize("status", [404, 403])
@pytest.mark.parametrize("accept", [API, BROWSER], ids=["json", "html"])
def test_a_foreign_object_and_a_missing_one_are_answered_identically(
    status: int, accept: dict[str, str]
) -> None:
    answers = [
        rendered(
            reason,
            accept=accept,
            method="POST",
            detail=f"invoice 7 is owned by globex ({reason})",
            foreign_object_status=status,
        )
        for reason in (Reason.TENANT_FOREIGN, Reason.OBJECT_NOT_FOUND)
    ]
    foreign, missing = answers
    assert foreign.status == missing.status == status
    assert foreign.body == missing.body
    assert dict(foreign.headers) == dict(missing.headers)
    assert b"globex" not in (foreign.body or b"")


@pytest.mark.parametrize("accept", [API, BROWSER], ids=["json", "html"])
@pytest.mark.parametrize("reason", REFUSALS, ids=str)
def test_a_401_always_carries_a_challenge(reason: Reason, accept: dict[str, str]) -> None:
    response = rendered(reason, accept=accept, method="POST")
    if response.status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="gatehold"'
    else:
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("accept", [API, BROWSER], ids=["json", "html"])
@pytest.mark.parametrize("reason", REFUSALS, ids=str)
def test_a_429_or_503_always_says_when_to_retry(reason: Reason, accept: dict[str, str]) -> None:
    response = rendered(reason, accept=accept, method="POST")
    if response.status in (429, 503):
        assert int(response.headers["Retry-After"]) > 0
    else:
        assert "Retry-After" not in response.headers


def test_an_unreachable_store_is_a_503_retried_within_seconds() -> None:
    for reason in (Reason.STORE_UNAVAILABLE, Reason.AUDIT_UNAVAILABLE):
        response = rendered(reason, accept=API)
        assert response.status == 503
        assert 0 < int(response.headers["Retry-After"]) <= 10, "a database restart is brief"
        assert problem_json(response)["type"] == f"/.gatehold/problems/{reason}"


@pytest.mark.parametrize("reason", REFUSALS, ids=str)
def test_sign_in_and_request_access_links_only_where_they_help(reason: Reason) -> None:
    body = problem_json(rendered(reason, accept=API))
    page = html(rendered(reason, accept=BROWSER, method="POST"))
    if reason in SIGN_IN:
        login = urlsplit(body["login"])
        assert login.path == LOGIN_PATH
        query = parse_qs(login.query)
        assert query["rd"] == [TARGET], "the sign-in returns to the refused address"
        assert ("step_up" in query) is (reason in STEP_UPS)
        assert ("mfa" in query) is (reason is Reason.MFA_REQUIRED), "asks for the second factor"
        assert ">Sign in</a>" in page
    else:
        assert "login" not in body and ">Sign in</a>" not in page
    if reason in ACCESS_REQUESTABLE:
        access = urlsplit(body["request_access"])
        assert access.path == REQUEST_ACCESS_PATH
        assert parse_qs(access.query) == {"what": [TARGET]}
        assert ">Request access</a>" in page
    else:
        assert "request_access" not in body and ">Request access</a>" not in page


def test_the_request_access_link_names_the_tenant_and_cannot_gain_parameters() -> None:
    pages = renderer()
    target = "/t/acme/x?tenant=globex&what=/y#z"
    problem = pages.problem(
        Reason.ROLE_FORBIDDEN, detail="d", request_id=REQUEST_ID, target=target, tenant="acme"
    )
    assert problem.request_access is not None
    access = urlsplit(problem.request_access)
    assert access.path == REQUEST_ACCESS_PATH
    assert parse_qs(access.query) == {"tenant": ["acme"], "what": [target]}


def test_the_return_address_cannot_add_parameters_to_the_link() -> None:
    target = "/a?rd=https://evil.example/&step_up=1#x"
    body = problem_json(rendered(Reason.AUTH_REQUIRED, accept=API, target=target))
    query = parse_qs(urlsplit(body["login"]).query)
    assert query == {"rd": [target]}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("reason", sorted(SIGN_IN), ids=str)
def test_a_browser_navigation_is_sent_to_sign_in(reason: Reason, method: str) -> None:
    response = rendered(reason, accept=BROWSER, method=method)
    assert response.status == 302
    assert response.headers["Location"].startswith(f"{LOGIN_PATH}?rd=")
    assert not response.body
    assert_own_answer(response)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_browser_write_is_not_redirected_but_told(method: str) -> None:
    response = rendered(Reason.AUTH_REQUIRED, accept=BROWSER, method=method)
    assert response.status == 401
    assert f'href="{LOGIN_PATH}?rd=' in html(response)


def test_an_api_client_is_never_redirected() -> None:
    response = rendered(Reason.AUTH_REQUIRED, accept=API)
    assert response.status == 401 and "Location" not in response.headers


def test_the_page_escapes_what_the_request_put_in_it() -> None:
    detail = '<script>alert("x")</script>'
    page = html(rendered(Reason.ID_INVALID, accept=BROWSER, detail=detail))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    target = '/a"><img src=x onerror=alert(1)>'
    page = html(rendered(Reason.AUTH_REQUIRED, accept=BROWSER, method="POST", target=target))
    assert "<img" not in page
