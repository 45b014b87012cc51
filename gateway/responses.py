"""Decide, then render: the only place a reason code becomes a status and a page (I9).

Browsers get an HTML page, API clients ``application/problem+json`` (RFC 9457); both
carry the request id and, on a denial, a way to ask for access. Nothing here ever
shows a stack trace. A foreign object and a missing one are rendered identically (I3),
so the answer cannot be used to probe which ids exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from gateway.model import Reason

LOGIN_PATH = "/.gatehold/login"
PIPELINE_ROUTE = "pipeline"
"""Name of the catch-all route whose answers, when allowed, come from an upstream."""
OWN_PAGE_HEADERS = {"X-Content-Type-Options": "nosniff"}
"""Headers on every answer the gateway writes itself (pages, problems, JSON, files)."""
REQUEST_ACCESS_PATH = "/.gatehold/access/request"
"""The form a refused person asks a tenant's admins for access with (``access_pages.py``)."""

RETRY_UNAVAILABLE_SECONDS = "5"
"""``Retry-After`` of a 503: the store or a resolver is briefly unreachable (a database
restart or failover takes seconds); the client may try again after this long."""

_STATUS: dict[Reason, int] = {
    Reason.TARGET_AMBIGUOUS: 400,
    Reason.HEADER_INVALID: 400,
    Reason.BODY_INVALID: 400,
    Reason.ID_INVALID: 400,
    Reason.BODY_TOO_LARGE: 413,
    Reason.ROUTE_NOT_FOUND: 404,
    Reason.METHOD_NOT_ALLOWED: 405,
    Reason.AUTH_REQUIRED: 401,
    Reason.SESSION_INVALID: 401,
    Reason.CREDENTIAL_INVALID: 401,
    Reason.STEP_UP_REQUIRED: 401,
    Reason.MFA_REQUIRED: 401,
    Reason.ROLE_FORBIDDEN: 403,
    Reason.TENANT_UNSELECTED: 403,
    Reason.ENUMERATION_BLOCKED: 429,
    Reason.RATE_LIMITED: 429,
    Reason.RESOLVER_FAILED: 503,
    Reason.AUDIT_UNAVAILABLE: 503,
    Reason.STORE_UNAVAILABLE: 503,
    Reason.UPSTREAM_REFUSED: 502,
    Reason.GUARD_BLOCKED: 502,
    Reason.UPSTREAM_TIMEOUT: 504,
    Reason.UPSTREAM_INVALID: 502,
    Reason.UPSTREAM_RESET: 502,
    Reason.INTERNAL_ERROR: 500,
    Reason.IDS_TOO_MANY: 400,
    Reason.BODY_UNSUPPORTED: 415,
    Reason.PARAM_AMBIGUOUS: 400,
    Reason.METHOD_OVERRIDE_INVALID: 400,
    Reason.BODY_TIMEOUT: 408,
    Reason.IN_FLIGHT_LIMIT: 429,
    Reason.ORIGIN_FORBIDDEN: 403,
    Reason.REQUEST_MALFORMED: 400,
    Reason.CONNECTION_LIMIT: 429,
    Reason.PARAM_FORBIDDEN: 403,
    Reason.PARAM_MISSING: 400,
    Reason.TENANT_MISMATCH: 403,
    Reason.PROXY_UNTRUSTED: 403,
    Reason.FULL_PROXY_REQUIRED: 403,
    Reason.FILE_TOO_LARGE: 413,
    Reason.FILE_TYPE_REFUSED: 415,
    Reason.FILE_NAME_REFUSED: 400,
    Reason.UPLOAD_LIMIT: 413,
    Reason.FILE_INFECTED: 422,
    Reason.SCANNER_UNAVAILABLE: 503,
}

_TITLE: dict[Reason, str] = {
    Reason.TARGET_AMBIGUOUS: "This address is ambiguous",
    Reason.HEADER_INVALID: "The request headers are malformed",
    Reason.BODY_INVALID: "The request body could not be read",
    Reason.ID_INVALID: "An object id in the request is malformed",
    Reason.BODY_TOO_LARGE: "The request body is too large",
    Reason.ROUTE_NOT_FOUND: "Not found",
    Reason.OBJECT_NOT_FOUND: "Not found",
    Reason.METHOD_NOT_ALLOWED: "This method is not allowed here",
    Reason.AUTH_REQUIRED: "Please sign in",
    Reason.SESSION_INVALID: "Your session has ended",
    Reason.CREDENTIAL_INVALID: "The credential was not accepted",
    Reason.STEP_UP_REQUIRED: "Please sign in again to continue",
    Reason.MFA_REQUIRED: "Please confirm it is you with a second factor",
    Reason.ROLE_FORBIDDEN: "You do not have access to this",
    Reason.TENANT_UNSELECTED: "Choose an organisation first",
    Reason.ENUMERATION_BLOCKED: "Too many refused requests",
    Reason.RATE_LIMITED: "Too many requests",
    Reason.RESOLVER_FAILED: "Access could not be checked right now",
    Reason.AUDIT_UNAVAILABLE: "The service is temporarily unavailable",
    Reason.STORE_UNAVAILABLE: "The service is temporarily unavailable",
    Reason.UPSTREAM_REFUSED: "The application is not reachable",
    Reason.GUARD_BLOCKED: "The application answered with data you may not see",
    Reason.UPSTREAM_TIMEOUT: "The application took too long to answer",
    Reason.UPSTREAM_INVALID: "The application sent an answer that is not valid HTTP",
    Reason.UPSTREAM_RESET: "The application broke off its answer",
    Reason.INTERNAL_ERROR: "Something went wrong on our side",
    Reason.IDS_TOO_MANY: "The request names too many objects",
    Reason.BODY_UNSUPPORTED: "The request body's type or encoding is not accepted here",
    Reason.PARAM_AMBIGUOUS: "A parameter name in the request is ambiguous",
    Reason.METHOD_OVERRIDE_INVALID: "The method override in the request is not accepted",
    Reason.BODY_TIMEOUT: "The request body did not arrive in time",
    Reason.IN_FLIGHT_LIMIT: "Too many requests in progress",
    Reason.ORIGIN_FORBIDDEN: "This page may not open a connection here",
    Reason.REQUEST_MALFORMED: "The request could not be read",
    Reason.CONNECTION_LIMIT: "Too many open connections",
    Reason.PARAM_FORBIDDEN: "A parameter in the request is not allowed here",
    Reason.PARAM_MISSING: "A required parameter is missing",
    Reason.TENANT_MISMATCH: "The request names another organisation",
    Reason.PROXY_UNTRUSTED: "Only the configured front proxies may ask for decisions",
    Reason.FULL_PROXY_REQUIRED: "This address is served through the gateway's full proxy only",
    Reason.FILE_TOO_LARGE: "A file in the upload is too large",
    Reason.FILE_TYPE_REFUSED: "A file in the upload is not of an accepted type",
    Reason.FILE_NAME_REFUSED: "A file name in the upload is not accepted",
    Reason.UPLOAD_LIMIT: "The upload form is larger than this address accepts",
    Reason.FILE_INFECTED: "A file in the upload carries malware",
    Reason.SCANNER_UNAVAILABLE: "Uploads cannot be checked for malware right now",
}

# Reasons a person can do something about by asking an admin for access.
_ACCESS_REQUESTABLE = frozenset({Reason.ROLE_FORBIDDEN, Reason.TENANT_UNSELECTED})
_SIGN_IN = frozenset(
    {Reason.AUTH_REQUIRED, Reason.SESSION_INVALID, Reason.STEP_UP_REQUIRED, Reason.MFA_REQUIRED}
)


@dataclass(frozen=True, slots=True)
class Problem:
    """What a client is told about one refusal."""

    reason: Reason
    """The reason shown to the client (``tenant-foreign`` is shown as ``object-not-found``)."""
    status: int
    title: str
    detail: str
    request_id: str
    request_access: str | None = None
    login: str | None = None


class Renderer:
    """Turns reason codes into HTTP answers."""

    def __init__(self, *, templates: jinja2.Environment, foreign_object_status: int = 404) -> None:
        self._templates = templates
        self._foreign_status = foreign_object_status

    def problem(
        self,
        reason: Reason,
        *,
        detail: str,
        request_id: str,
        target: str,
        tenant: str | None = None,
    ) -> Problem:
        """The public face of a refusal. ``target`` is the canonical target, reused as ``rd``
        and as what the "request access" form asks for; ``tenant`` is the decision's."""
        shown = reason
        if reason in (Reason.TENANT_FOREIGN, Reason.OBJECT_NOT_FOUND):
            shown, detail = Reason.OBJECT_NOT_FOUND, "There is nothing at this address."
        status = self._foreign_status if shown is Reason.OBJECT_NOT_FOUND else _STATUS[shown]
        rd = quote(target, safe="/")
        login = f"{LOGIN_PATH}?rd={rd}" if shown in _SIGN_IN else None
        if shown is Reason.STEP_UP_REQUIRED:
            login = f"{LOGIN_PATH}?rd={rd}&step_up=1"
        elif shown is Reason.MFA_REQUIRED:
            login = f"{LOGIN_PATH}?rd={rd}&step_up=1&mfa=1"
        access = _access_link(target, tenant) if shown in _ACCESS_REQUESTABLE else None
        return Problem(shown, status, _TITLE[shown], detail, request_id, access, login)

    def status_for(self, reason: Reason) -> int:
        """The status a refusal with ``reason`` is answered with."""
        if reason in (Reason.TENANT_FOREIGN, Reason.OBJECT_NOT_FOUND):
            return self._foreign_status
        return _STATUS.get(reason, 500)

    def render(
        self, request: web.BaseRequest, problem: Problem, *, redirect: bool = True
    ) -> web.Response:
        """HTML for browsers, problem+json for everyone else; sign-in redirects for browsers
        (``redirect=False``: the 401 itself, for a front proxy that redirects on its own)."""
        headers = {
            **OWN_PAGE_HEADERS,
            "X-Request-Id": problem.request_id,
            "Cache-Control": "no-store",
        }
        if problem.status == 401:  # RFC 9110: a 401 carries a challenge, page or problem
            headers["WWW-Authenticate"] = 'Bearer realm="gatehold"'
        if problem.status == 429:
            headers["Retry-After"] = "60"
        elif problem.status == 503:
            headers["Retry-After"] = RETRY_UNAVAILABLE_SECONDS
        if wants_html(request):
            if redirect and problem.login is not None and request.method in ("GET", "HEAD"):
                headers["Location"] = problem.login
                return web.Response(status=302, headers=headers)
            page = self._templates.get_template("error.html").render(problem=problem)
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self'"
            return web.Response(
                status=problem.status, text=page, content_type="text/html", headers=headers
            )
        body: dict[str, object] = {
            "type": f"/.gatehold/problems/{problem.reason}",
            "title": problem.title,
            "status": problem.status,
            "detail": problem.detail,
            "request_id": problem.request_id,
        }
        if problem.login:
            body["login"] = problem.login
        if problem.request_access:
            body["request_access"] = problem.request_access
        return web.Response(
            status=problem.status,
            text=json.dumps(body),
            content_type="application/problem+json",
            headers=headers,
        )


def _access_link(target: str, tenant: str | None) -> str:
    """The request-access form, prefilled with the refused address (and its tenant)."""
    query = {"tenant": tenant} if tenant else {}
    return f"{REQUEST_ACCESS_PATH}?{urlencode({**query, 'what': target})}"


async def mark_own_page(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: add ``OWN_PAGE_HEADERS`` to the gateway's own answers.

    Covers what no handler renders itself: static files, aiohttp's answers to raised
    ``HTTPException``s, JSON endpoints. Answers relayed from an upstream (the
    ``pipeline`` route) are the app's and keep its headers; the pipeline's own
    refusals get the headers from ``Renderer.render``.
    """
    if request.match_info.route.name == PIPELINE_ROUTE:
        return
    for name, value in OWN_PAGE_HEADERS.items():
        response.headers.setdefault(name, value)


def wants_html(request: web.BaseRequest) -> bool:
    """A browser navigation: it asks for HTML explicitly."""
    return "text/html" in request.headers.get("Accept", "")
