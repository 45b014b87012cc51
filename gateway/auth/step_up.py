"""Step-up by second factor: a signed-in person confirms it is them without signing in again.

A route with ``step_up`` sends a session whose sign-in is too old back to the login
page; a route (role, tenant) with ``mfa: required`` does the same for a session that
has shown no second factor. When the person has a second factor enrolled, the login
page then also offers "Confirm with your second factor": a POST here (the session's
CSRF token; an Origin naming another site is refused) opens a pending sign-in
with purpose ``step-up`` for them and leads to the verify page. Once the factor is
shown, ``AuthPages.second_factor_done`` replaces the session with a new one whose
auth time and second-factor time are now. A person with no second factor, refused by
an MFA route, is led to enrol one the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.audit import event_entry
from gateway.auth.form_checks import from_own_pages, origin_of
from gateway.auth.handlers import ENROL_PATH, VERIFY_PATH, AuthPages, see_other
from gateway.auth.redirects import safe_next
from gateway.context import GATEWAY
from gateway.model import Principal
from gateway.store import pending_sign_ins as pending_store
from gateway.store.factors import factors_of

STEP_UP_PATH = "/.gatehold/login/step-up"


@dataclass(frozen=True, slots=True)
class StepUpOffer:
    """What the login page offers a signed-in person sent back to it by a step-up."""

    verify: bool
    """They have a second factor: "Confirm with your second factor"."""
    csrf: str
    """The session's CSRF token for the form."""
    mfa: bool
    """An MFA route sent them (``&mfa=1``), not only a stale sign-in."""


class StepUpPages:
    """The offer on the login page and the POST that starts a step-up."""

    def __init__(self, pages: AuthPages, *, public_url: str) -> None:
        self.pages = pages
        self._origin = origin_of(public_url)

    async def offer(self, request: web.Request) -> StepUpOffer | None:
        """The login page's offer for ``?step_up=1`` (``&mfa=1``: an MFA route), if any.

        Only for a person signed in with a session: with a second factor enrolled, to
        confirm with it; without one, refused by an MFA route, to enrol one.
        """
        if request.query.get("step_up") != "1":
            return None
        principal = await self._session_person(request)
        if principal is None or principal.session_hash is None:
            return None
        mfa = request.query.get("mfa") == "1"
        factors = await factors_of(self.pages.sessions.engine, int(principal.user_id))
        if not factors.second_factor and not mfa:
            return None
        csrf = self.pages.csrf.token(principal.session_hash)
        return StepUpOffer(verify=factors.second_factor, csrf=csrf, mfa=mfa)

    async def start(self, request: web.Request) -> web.StreamResponse:
        """Open a step-up for the current session; on to verify (or enrol)."""
        form = await request.post()
        if not from_own_pages(request, self._origin):
            return await self._refused(request, None, "origin-forbidden", status=403)
        principal = await self._session_person(request)
        if principal is None or principal.session_hash is None:
            rd = safe_next(str(form.get("rd", "/")))
            return see_other(f"/.gatehold/login?rd={rd}")
        if not self.pages.csrf.valid(principal.session_hash, str(form.get("csrf", ""))):
            return await self._refused(request, principal, "csrf-rejected", status=403)
        pages = self.pages
        factors = await factors_of(pages.sessions.engine, int(principal.user_id))
        token = await pending_store.create_pending(
            pages.sessions.engine,
            user_id=int(principal.user_id),
            method=principal.auth_method.value,
            purpose=pending_store.STEP_UP,
            rd=safe_next(str(form.get("rd", "/"))),
            details={"step_up": "second-factor", "replaces": principal.session_hash},
            now=pages.clock(),
            ttl=pages.mfa.pending_seconds,
        )
        pages.audit.record(
            event_entry(
                "step-up-started",
                actor=principal.email,
                method=principal.auth_method.value,
                session=principal.session_hash,
                client=pages.client_address(request),
                next="verify" if factors.second_factor else "enrol",
            )
        )
        response = see_other(VERIFY_PATH if factors.second_factor else ENROL_PATH)
        pages.set_pending_cookie(response, token)
        return response

    async def _session_person(self, request: web.Request) -> Principal | None:
        """The person signed in with a session cookie (not an API client)."""
        principal = await self.pages.signed_in(request)
        if principal is None or principal.session_hash is None:
            return None
        return principal if principal.user_id.isdigit() else None

    async def _refused(
        self, request: web.Request, principal: Principal | None, reason: str, *, status: int
    ) -> web.Response:
        self.pages.audit.record(
            event_entry(
                "step-up-refused",
                actor=principal.email if principal else "unknown",
                decision="deny",
                reason=reason,
                path=request.path,
                client=self.pages.client_address(request),
            )
        )
        return self.pages.page("step_up_refused.html", status=status, reason=reason)


def mount_step_up(app: web.Application, pages: AuthPages) -> StepUpPages:
    """Add the step-up POST and give the login page its offer."""
    step_up = StepUpPages(pages, public_url=app[GATEWAY].public_url)
    pages.step_up_offer = step_up.offer
    app.router.add_post(STEP_UP_PATH, step_up.start)
    return step_up
