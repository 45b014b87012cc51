"""The admin UI as an aiohttp sub-app, mounted by the gateway at ``/.gatehold/admin/``.

Every page goes through ``AdminUi.serve``, which is the whole request path of the UI:

1. who calls: the session cookie, resolved by the gateway's identity stage; someone not
   signed in is sent to sign in, a signed-in person who administers nothing gets the
   gateway's normal 403 page (``acting_admin`` decides, as for the JSON API);
2. every state change (any method but GET/HEAD) must carry the session's CSRF token, as
   the form field ``csrf`` or the header ``X-CSRF-Token`` (htmx sends the header);
3. the page handler, given a ``View``: the ``AdminContext`` the admin service acts in,
   built by ``ServiceParts.context`` exactly as the JSON API builds it;
4. one ``admin-ui`` audit row per request, refused or not (the changes themselves are
   audited by the admin service with their state before and after).

Every answer carries a strict Content-Security-Policy: scripts and styles only from the
UI's own static files, no inline script or style, no framing.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jinja2
from aiohttp import web

from admin_ui.pages import ALL_PAGES
from admin_ui.view import ADMIN_UI_PREFIX, Page, PageHandler, View
from gateway.admin.actors import acting_admin
from gateway.admin.parts import ServiceParts
from gateway.admin.service import AdminError
from gateway.audit import event_entry
from gateway.auth.keys import CsrfTokens
from gateway.context import Gateway
from gateway.ingress import new_request_id
from gateway.live import LIVE
from gateway.model import Principal, Reason
from gateway.responses import LOGIN_PATH

PACKAGE_DIR = Path(__file__).parent
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class AdminUi:
    """What every page needs; built once by ``build_admin_ui``."""

    templates: jinja2.Environment
    csrf: CsrfTokens
    parts: ServiceParts

    def csrf_token(self, session_hash: str) -> str:
        return self.csrf.token("admin-ui:" + session_hash)

    def route(self, handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self.serve(handler, request)

        return endpoint

    async def serve(self, handler: PageHandler, request: web.Request) -> web.StreamResponse:
        """Who calls, CSRF, the page, one audit row (the module docstring)."""
        request_id = new_request_id()
        live = request.config_dict[LIVE]
        gw = live.enter()
        actor, outcome = "", "ok"
        answer: web.StreamResponse
        try:
            principal = await gw.identity.resolve(request)
            if not isinstance(principal, Principal) or principal.session_hash is None:
                answer, outcome = _sign_in_first(gw, request, request_id), "auth-required"
            else:
                actor = principal.email
                admin = acting_admin(principal, gw.policy.roles)
                token = self.csrf_token(principal.session_hash)
                if isinstance(admin, AdminError):
                    answer, outcome = _forbidden(gw, request, request_id), "forbidden"
                elif (unreadable := await _unreadable_form(gw, request, request_id)) is not None:
                    answer, outcome = unreadable, "form-unreadable"
                elif request.method not in SAFE_METHODS and not await self._csrf_sent(
                    request, token
                ):
                    answer, outcome = _forbidden(gw, request, request_id), "csrf-failed"
                else:
                    view = View(
                        request=request,
                        gw=gw,
                        ctx=self.parts.context(gw, admin),
                        admin=admin,
                        csrf=token,
                        templates=self.templates,
                        request_id=request_id,
                    )
                    answer = await handler(view)
                    if answer.status >= 400:
                        outcome = f"refused-{answer.status}"
        finally:
            live.leave(gw)
        await gw.audit.begin(
            event_entry(
                "admin-ui",
                actor=actor or f"anonymous@{gw.ingress.client_address(request)}",
                request_id=request_id,
                method=request.method,
                path=request.path,
                decision="allow" if outcome == "ok" else "deny",
                reason=outcome,
                status=answer.status,
            )
        )
        return answer

    @staticmethod
    async def _csrf_sent(request: web.Request, token: str) -> bool:
        """The session's token came as the header or as the form field ``csrf``."""
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            sent = str((await request.post()).get(CSRF_FIELD, ""))
        return bool(sent) and hmac.compare_digest(
            token.encode(), sent.encode("utf-8", "surrogatepass")
        )


def _sign_in_first(gw: Gateway, request: web.Request, request_id: str) -> web.Response:
    if request.method in SAFE_METHODS:
        location = f"{LOGIN_PATH}?rd={quote(request.path_qs, safe='/')}"
        return web.Response(status=303, headers={"Location": location})
    problem = gw.renderer.problem(
        Reason.AUTH_REQUIRED,
        detail="Sign in to use the admin pages.",
        request_id=request_id,
        target=request.path,
    )
    return gw.renderer.render(request, problem)


async def _unreadable_form(
    gw: Gateway, request: web.Request, request_id: str
) -> web.Response | None:
    """A refusal for a posted form that cannot be read (over the body size limit, or
    not UTF-8), else ``None``; the form read here is what every later reader gets."""
    if request.method in SAFE_METHODS:
        return None
    try:
        await request.post()
    except web.HTTPRequestEntityTooLarge:
        reason = Reason.BODY_TOO_LARGE
        detail = f"The form is larger than the {request.client_max_size:,} bytes accepted."
    except ValueError:  # UnicodeDecodeError, or a malformed multipart body
        reason, detail = Reason.BODY_INVALID, "The form is not valid UTF-8 text."
    else:
        return None
    problem = gw.renderer.problem(reason, detail=detail, request_id=request_id, target=request.path)
    return gw.renderer.render(request, problem)


def _forbidden(gw: Gateway, request: web.Request, request_id: str) -> web.Response:
    """The gateway's normal 403 page: the same for a non-admin and a missing CSRF token."""
    problem = gw.renderer.problem(
        Reason.ROLE_FORBIDDEN,
        detail="You do not administer anything here, or the form was not sent from this site.",
        request_id=request_id,
        target=request.path,
    )
    return gw.renderer.render(request, problem)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer of the UI, static files included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if "Cache-Control" not in response.headers:
        static = request.path.startswith(ADMIN_UI_PREFIX + "/static/")
        # Pages hold people's data: never stored. Static files are revalidated.
        response.headers["Cache-Control"] = "no-cache" if static else "no-store"


async def _no_such_page(view: View) -> web.StreamResponse:
    """Any other address below the prefix: a page that says so (after sign-in)."""
    return view.refused(AdminError("There is no such admin page.", "not-found"), title="Not found")


def ui_templates() -> jinja2.Environment:
    """The UI's templates: autoescaped, and an undefined name is an error, not blank."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        enable_async=False,
    )
    env.globals["prefix"] = ADMIN_UI_PREFIX
    return env


def page_modules() -> Iterable[Iterable[Page]]:
    """Each page module's ``PAGES``."""
    return ALL_PAGES


def build_admin_ui(csrf: CsrfTokens, parts: ServiceParts) -> web.Application:
    """The UI sub-app: every page module's routes and the static files."""
    ui = AdminUi(ui_templates(), csrf, parts)
    app = web.Application()
    app.on_response_prepare.append(_security_headers)
    for pages in page_modules():
        for page in pages:
            if page.method == "GET":  # and HEAD, as every GET page of the gateway
                app.router.add_get(page.path, ui.route(page.handler))
            else:
                app.router.add_route(page.method, page.path, ui.route(page.handler))
    app.router.add_static("/static/", PACKAGE_DIR / "static", name="static")
    app.router.add_route("*", "/{tail:.*}", ui.route(_no_such_page))
    return app


def mount_admin_ui(app: web.Application, csrf: CsrfTokens, parts: ServiceParts) -> None:
    """Mount the UI under ``ADMIN_UI_PREFIX`` of the gateway ``app`` (and send the
    address without its trailing slash there)."""
    app.router.add_get(ADMIN_UI_PREFIX, _to_the_dashboard)
    app.add_subapp(ADMIN_UI_PREFIX + "/", build_admin_ui(csrf, parts))


async def _to_the_dashboard(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": ADMIN_UI_PREFIX + "/"})
