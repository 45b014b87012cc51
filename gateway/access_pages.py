"""The "Request access" form a refused person reaches from the error page (I9).

``GET /.gatehold/access/request?tenant=…&what=…`` shows the form, prefilled from the
link the 403 page carries; ``POST`` (with the session's CSRF token, as the sign-in pages
use) puts the request in the tenant's queue through ``admin.access.request_access`` and
shows "sent". Anyone not signed in is sent to sign in first and comes back here. A
refusal is the form again with the message (400, or 429 for a flood), never a trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import access
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import event_entry
from gateway.auth.handlers import AuthPages, see_other
from gateway.auth.redirects import safe_next
from gateway.config.settings import AccessRequestSettings
from gateway.model import GLOBAL_TENANT, Principal, RoleDef
from gateway.responses import LOGIN_PATH, REQUEST_ACCESS_PATH


@dataclass
class AccessPages:
    """What the form needs; built by ``app.py``."""

    auth: AuthPages
    """The sign-in pages: who is signed in, CSRF tokens, page rendering, the audit."""
    engine: AsyncEngine
    roles: Callable[[], Mapping[str, RoleDef]]
    """The roles of the rules in force (they may be reloaded)."""
    limits: AccessRequestSettings

    async def form(self, request: web.Request) -> web.Response:
        principal = await self._signed_in(request)
        if principal is None:
            return _sign_in_first(request.path_qs)
        tenant = request.query.get("tenant", "") or _home_tenant(principal)
        what = request.query.get("what", "")[: access.WHAT_MAX]
        return self._form(principal, tenant=tenant, what=what)

    async def submit(self, request: web.Request) -> web.Response:
        principal = await self._signed_in(request)
        form = await request.post()
        if principal is None:
            return _sign_in_first(REQUEST_ACCESS_PATH)
        fields = {name: str(form.get(name, "")) for name in ("tenant", "role", "what", "why")}
        if not self.auth.csrf.valid(str(principal.session_hash), str(form.get("csrf", ""))):
            self.auth.audit.record(
                event_entry("csrf-rejected", actor=principal.email, path=request.path)
            )
            error = "The form expired. Send it again from this page."
            return self._form(principal, status=403, error=error, **fields)
        roles = self.roles()
        ctx = AdminContext.over(
            self.engine, self.auth.audit, Admin(principal.email), roles, access_requests=self.limits
        )
        row = await access.request_access(
            ctx,
            user_id=int(principal.user_id),
            tenant=fields["tenant"],
            what=fields["what"],
            why=fields["why"],
            role=fields["role"],
        )
        if isinstance(row, AdminError):
            status = 429 if row.code == "rate-limited" else 400
            return self._form(principal, status=status, error=row.message, **fields)
        return self.auth.page("access_sent.html", row=row)

    async def _signed_in(self, request: web.Request) -> Principal | None:
        """A person with a session (API keys and tokens do not ask for access)."""
        principal = await self.auth.signed_in(request)
        if principal is None or principal.session_hash is None:
            return None
        return principal

    def _form(self, principal: Principal, *, status: int = 200, **values: Any) -> web.Response:
        assert principal.session_hash is not None  # noqa: S101 - checked in _signed_in
        context = {"tenant": "", "role": "", "what": "", "why": "", "error": "", **values}
        return self.auth.page(
            "access_request.html",
            status=status,
            email=principal.email,
            csrf=self.auth.csrf.token(principal.session_hash),
            roles=sorted(name for name, role in self.roles().items() if not role.scope_global),
            what_max=access.WHAT_MAX,
            why_max=access.WHY_MAX,
            **context,
        )


def _home_tenant(principal: Principal) -> str:
    """The tenant a refusal without one most likely concerns: the person's active one."""
    if principal.active_tenant:
        return principal.active_tenant
    own = [m.tenant for m in principal.memberships if m.tenant != GLOBAL_TENANT]
    return own[0] if own else ""


def _sign_in_first(back_to: str) -> web.Response:
    return see_other(f"{LOGIN_PATH}?rd={quote(safe_next(back_to), safe='/')}")


ACCESS_PAGES = web.AppKey("access_pages", AccessPages)


def mount_access(app: web.Application, pages: AccessPages) -> None:
    """Add the request-access form (one of the gateway's own pages, outside the rules)."""
    app[ACCESS_PAGES] = pages
    app.router.add_get(REQUEST_ACCESS_PATH, pages.form)
    app.router.add_post(REQUEST_ACCESS_PATH, pages.submit)
