"""Pages for authenticator apps and recovery codes: set up, use at sign-in, replace, remove.

Three ways in, each bound to what proves the person:

* the account page (a session: its CSRF token on every POST; setting up, replacing or
  removing an app, or making new recovery codes, needs a sign-in or second factor in
  the last ``RECENT_PROOF`` seconds, else the person signs in again first: a stolen
  session alone cannot add its thief's app and lock the person out);
* the enrol page of a pending sign-in (the pending cookie, SameSite=Lax, and the
  Origin header when the browser sends one) for a person who has no second factor yet;
* the verify page of a pending sign-in (same binding), for a person who has the factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.audit import event_entry
from gateway.auth.form_checks import from_own_pages, origin_of, proved_recently
from gateway.auth.handlers import (
    ACCOUNT_PATH,
    ENROL_PATH,
    PENDING_COOKIE,
    VERIFY_PATH,
    AuthPages,
    see_other,
)
from gateway.auth.recovery_codes import RecoveryCodes
from gateway.auth.totp import Authenticators, Setup
from gateway.model import Principal
from gateway.store import recovery_codes as code_store
from gateway.store import users as user_store
from gateway.store.factors import factors_of
from gateway.store.pending_sign_ins import PendingSignIn

ACCOUNT_TOTP_PATH = f"{ACCOUNT_PATH}/totp"
ENROL_TOTP_PATH = f"{ENROL_PATH}/totp"
"""Seconds since the last sign-in or second factor within which a person may set up,
replace or remove their authenticator app or make new recovery codes."""
ACCOUNT_SETUP = "totp-setup-account"
SIGN_IN_SETUP = "totp-setup-sign-in"
ENROLLED = "totp-enrolled-in-sign-in"
"""Purposes of sealed form values: one form's value is refused by another."""


@dataclass(frozen=True, slots=True)
class Setting:
    """Whose set-up a form confirms, what for, and where its page posts."""

    user_id: int
    email: str
    purpose: str
    action: str


@dataclass
class TotpPages:
    """Handlers for ``/.gatehold/account/totp``, ``…/login/enrol/totp``, ``…/login/verify/*``."""

    pages: AuthPages
    authenticators: Authenticators
    recovery: RecoveryCodes
    public_url: str
    enrolment: bool = True
    """``auth.totp.enabled``: people may set up new apps (existing ones always verify)."""

    # ------------------------------------------------------------ shared checks

    def _audit(self, request: web.Request, kind: str, actor: str, **details: Any) -> None:
        self.pages.audit.record(
            event_entry(kind, actor=actor, client=self.pages.client_address(request), **details)
        )

    def _refused(self, status: int, reason: str) -> web.Response:
        """A sign-in that cannot go on (``auth_error.html``), or a refused form."""
        template = "auth_error.html" if reason.startswith("second-factor") else "totp_error.html"
        return self.pages.page(template, status=status, reason=reason)

    def _refused_cross_site(self, request: web.Request) -> web.Response:
        """A sign-in step another site's page sent: refused and audited as a forged
        form, not as a failed attempt (it does not count against the person, and the
        pending sign-in is not read, so the actor is unknown)."""
        self._audit(
            request,
            "csrf-rejected",
            "unknown",
            method="totp",
            decision="deny",
            reason="origin-mismatch",
            path=request.path,
        )
        return self._refused(403, "origin-mismatch")

    async def _signed_in_post(
        self, request: web.Request
    ) -> tuple[Principal, Any] | web.StreamResponse:
        """The signed-in person and their form, if the form carries their CSRF token."""
        principal = await self.pages.signed_in(request)
        form = await request.post()
        if principal is None or principal.session_hash is None:
            return see_other(f"/.gatehold/login?rd={ACCOUNT_PATH}")
        if not self.pages.csrf.valid(principal.session_hash, str(form.get("csrf", ""))):
            self._audit(request, "csrf-rejected", principal.email, path=request.path)
            return self._refused(403, "form-expired")
        return principal, form

    async def _recent_post(
        self, request: web.Request, back_to: str
    ) -> tuple[Principal, Any] | web.StreamResponse:
        """A signed-in POST (``_signed_in_post``) by a person who proved who they are
        lately: removing a factor or making new codes changes how they sign in."""
        checked = await self._signed_in_post(request)
        if isinstance(checked, tuple) and not proved_recently(checked[0], self.pages.clock()):
            return self._step_up(back_to)
        return checked

    def _step_up(self, rd: str) -> web.Response:
        return see_other(f"/.gatehold/login?rd={rd}&step_up=1")

    # ------------------------------------------------------------ account page

    async def account_setup(self, request: web.Request) -> web.StreamResponse:
        """Set up (or replace) an authenticator app from the account page."""
        principal = await self.pages.signed_in(request)
        if principal is None or principal.session_hash is None:
            return see_other(f"/.gatehold/login?rd={ACCOUNT_TOTP_PATH}")
        if not self.enrolment:
            return self._refused(404, "totp-disabled")
        user_id = int(principal.user_id)
        if not proved_recently(principal, self.pages.clock()):  # a factor changes sign-in
            return self._step_up(ACCOUNT_TOTP_PATH)
        factors = await factors_of(self.pages.sessions.engine, user_id)
        setup = self.authenticators.setup(
            user_id=user_id, email=principal.email, purpose=ACCOUNT_SETUP
        )
        return self._setup_page(
            setup,
            action=ACCOUNT_TOTP_PATH,
            csrf=self.pages.csrf.token(principal.session_hash),
            replacing=factors.totp,
        )

    async def account_confirm(self, request: web.Request) -> web.StreamResponse:
        checked = await self._signed_in_post(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        principal, form = checked
        if not self.enrolment:
            return self._refused(404, "totp-disabled")
        assert principal.session_hash is not None  # noqa: S101 - checked in _signed_in_post
        user_id = int(principal.user_id)
        if not proved_recently(principal, self.pages.clock()):  # a factor changes sign-in
            return self._step_up(ACCOUNT_TOTP_PATH)
        factors = await factors_of(self.pages.sessions.engine, user_id)
        refused = await self._confirm_setup(
            request,
            form,
            Setting(user_id, principal.email, ACCOUNT_SETUP, ACCOUNT_TOTP_PATH),
            csrf=self.pages.csrf.token(principal.session_hash),
            replacing=factors.totp,
        )
        if refused is not None:
            return refused
        self._audit(
            request,
            "totp-enrolled",
            principal.email,
            via="account",
            replaced="yes" if factors.totp else "no",
        )
        codes = await self._make_codes(request, principal.email, user_id)
        return self.pages.page(
            "recovery_codes.html", codes=codes, done=f"{ACCOUNT_PATH}?notice=totp-enrolled"
        )

    async def account_remove(self, request: web.Request) -> web.StreamResponse:
        checked = await self._recent_post(request, ACCOUNT_PATH)
        if isinstance(checked, web.StreamResponse):
            return checked
        principal, _ = checked
        user_id = int(principal.user_id)
        engine = self.pages.sessions.engine
        if await self.authenticators.remove(user_id):
            if not (await factors_of(engine, user_id)).second_factor:
                await code_store.drop_codes(engine, user_id)  # nothing left to recover
            self._audit(request, "totp-removed", principal.email, by="self")
        return see_other(f"{ACCOUNT_PATH}?notice=totp-removed")

    async def account_new_codes(self, request: web.Request) -> web.StreamResponse:
        checked = await self._recent_post(request, ACCOUNT_PATH)
        if isinstance(checked, web.StreamResponse):
            return checked
        principal, _ = checked
        user_id = int(principal.user_id)
        if not (await factors_of(self.pages.sessions.engine, user_id)).second_factor:
            return see_other(f"{ACCOUNT_PATH}?notice=recovery-codes-need-a-factor")
        codes = await self._make_codes(request, principal.email, user_id)
        return self.pages.page("recovery_codes.html", codes=codes, done=ACCOUNT_PATH)

    async def _make_codes(self, request: web.Request, email: str, user_id: int) -> list[str]:
        codes = await self.recovery.make(user_id)
        self._audit(request, "recovery-codes-made", email, count=len(codes))
        return codes

    def _setup_page(
        self, setup: Setup, *, action: str, status: int = 200, **context: Any
    ) -> web.Response:
        return self.pages.page(
            "totp_setup.html", status=status, setup=setup, action=action, **context
        )

    async def _confirm_setup(
        self, request: web.Request, form: Any, setting: Setting, **page: Any
    ) -> web.Response | None:
        """Confirm the set-up ``form`` carries with its code; ``None`` once confirmed,
        else the answer (the same secret shown again after a wrong code)."""
        secret = self.authenticators.candidate(
            str(form.get("setup", "")), user_id=setting.user_id, purpose=setting.purpose
        )
        if secret is None:
            self._audit(request, "totp-enrol-failed", setting.email, reason="setup-expired")
            return see_other(f"{setting.action}?error=setup-expired")
        code = str(form.get("code", ""))
        if await self.authenticators.confirm(setting.user_id, secret, code):
            return None
        self._audit(request, "totp-enrol-failed", setting.email, reason="code-wrong")
        setup = self.authenticators.setup(
            user_id=setting.user_id, email=setting.email, purpose=setting.purpose, secret=secret
        )
        return self._setup_page(
            setup, action=setting.action, status=400, error="code-wrong", **page
        )

    # ------------------------------------------------------------ enrolment in a sign-in

    async def _pending_without_factor(
        self, request: web.Request
    ) -> tuple[PendingSignIn, str] | web.StreamResponse:
        """The pending sign-in of a person with no second factor yet, and their email."""
        if not from_own_pages(request, origin_of(self.public_url)):
            return self._refused_cross_site(request)
        pending = await self.pages.pending_of(request)
        if pending is None:
            return self._refused(400, "second-factor-expired")
        if (await self.pages.pending_factors(pending)).second_factor:
            # Someone holding only the first factor must not add a factor of their own.
            return see_other(VERIFY_PATH)
        if not self.enrolment:
            return self._refused(404, "totp-disabled")
        user = await self._user_email(pending.user_id)
        if user is None:
            return self.pages.page("auth_error.html", status=400, reason="user-inactive")
        return pending, user

    async def _user_email(self, user_id: int) -> str | None:
        user = await user_store.get_user(self.pages.sessions.engine, user_id)
        return user.email if user is not None and user.active else None

    async def enrol_setup(self, request: web.Request) -> web.StreamResponse:
        found = await self._pending_without_factor(request)
        if isinstance(found, web.StreamResponse):
            return found
        pending, email = found
        setup = self.authenticators.setup(
            user_id=pending.user_id, email=email, purpose=SIGN_IN_SETUP
        )
        return self._setup_page(setup, action=ENROL_TOTP_PATH, error=request.query.get("error"))

    async def enrol_confirm(self, request: web.Request) -> web.StreamResponse:
        found = await self._pending_without_factor(request)
        if isinstance(found, web.StreamResponse):
            return found
        pending, email = found
        form = await request.post()
        setting = Setting(pending.user_id, email, SIGN_IN_SETUP, ENROL_TOTP_PATH)
        refused = await self._confirm_setup(request, form, setting)
        if refused is not None:
            return refused
        self._audit(request, "totp-enrolled", email, via="sign-in", replaced="no")
        codes = await self._make_codes(request, email, pending.user_id)
        enrolled = self.authenticators.seal.seal_for(
            pending.id_hash, user_id=pending.user_id, purpose=ENROLLED, now=self.pages.clock()
        )
        return self.pages.page("recovery_codes.html", codes=codes, proceed=enrolled)

    async def enrol_continue(self, request: web.Request) -> web.StreamResponse:
        """After the codes were shown: the sign-in that enrolled the app finishes."""
        if not from_own_pages(request, origin_of(self.public_url)):
            return self._refused_cross_site(request)
        pending = await self.pages.pending_of(request)
        if pending is None:
            return self._refused(400, "second-factor-expired")
        form = await request.post()
        enrolled = self.authenticators.seal.open_for(
            str(form.get("proceed", "")),
            user_id=pending.user_id,
            purpose=ENROLLED,
            now=self.pages.clock(),
        )
        factors = await self.pages.pending_factors(pending)
        if enrolled != pending.id_hash or not factors.totp:
            return self._refused(400, "second-factor-expired")
        return await self.pages.second_factor_done(request, pending, factor="totp")

    # ------------------------------------------------------------ second factor at sign-in

    async def verify_totp(self, request: web.Request) -> web.StreamResponse:
        return await self._verify(request, factor="totp")

    async def verify_recovery(self, request: web.Request) -> web.StreamResponse:
        return await self._verify(request, factor="recovery-code")

    async def _verify(self, request: web.Request, *, factor: str) -> web.StreamResponse:
        if not from_own_pages(request, origin_of(self.public_url)):
            return self._refused_cross_site(request)
        pending = await self.pages.pending_of(request)
        if pending is None:
            return self._refused(400, "second-factor-expired")
        form = await request.post()
        code = str(form.get("code", ""))[:64]
        factors = await self.pages.pending_factors(pending)
        if factor == "totp":
            accepted = factors.totp and await self.authenticators.verify(pending.user_id, code)
        else:
            accepted = factors.second_factor and await self._recovery_code_used(
                request, pending, code
            )
        if accepted:
            return await self.pages.second_factor_done(request, pending, factor=factor)
        alive = await self.pages.second_factor_failed(
            request, pending, factor=factor, reason="code-wrong"
        )
        if alive:
            return see_other(f"{VERIFY_PATH}?error=code-wrong")
        response = self._refused(400, "second-factor-exhausted")
        response.del_cookie(
            PENDING_COOKIE, path="/", secure=self.pages.cookie_secure, httponly=True
        )
        return response

    async def _recovery_code_used(
        self, request: web.Request, pending: PendingSignIn, code: str
    ) -> bool:
        left = await self.recovery.use(pending.user_id, code)
        if left is None:
            return False
        email = await self._user_email(pending.user_id) or "unknown"
        self._audit(request, "recovery-code-used", email, left=left)
        return True


def mount_totp(app: web.Application, totp: TotpPages) -> None:
    """Add the authenticator-app and recovery-code routes."""
    totp.pages.templates.globals["totp_enrolment"] = totp.enrolment  # for the partials
    app.router.add_get(ACCOUNT_TOTP_PATH, totp.account_setup)
    app.router.add_post(ACCOUNT_TOTP_PATH, totp.account_confirm)
    app.router.add_post(f"{ACCOUNT_TOTP_PATH}/remove", totp.account_remove)
    app.router.add_post(f"{ACCOUNT_PATH}/recovery-codes", totp.account_new_codes)
    app.router.add_get(ENROL_TOTP_PATH, totp.enrol_setup)
    app.router.add_post(ENROL_TOTP_PATH, totp.enrol_confirm)
    app.router.add_post(f"{ENROL_TOTP_PATH}/continue", totp.enrol_continue)
    app.router.add_post(f"{VERIFY_PATH}/totp", totp.verify_totp)
    app.router.add_post(f"{VERIFY_PATH}/recovery", totp.verify_recovery)
