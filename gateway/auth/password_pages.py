"""The password pages: sign in with one, forgot it, choose or change it.

``POST /.gatehold/login/password`` answers an unknown address, a wrong password and a
deactivated account with the same page, status and work (``passwords``). Choosing a
password needs the current one, except right after an email link proved the person
(``FRESH_MAGIC_LINK``), or when they have none yet and signed in by email link. A new
password ends every other session of the person.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.audit import event_entry
from gateway.auth.emails import normalize_email
from gateway.auth.form_checks import from_own_pages, origin_of
from gateway.auth.handlers import ACCOUNT_PATH, PAGE_HEADERS, AuthPages, see_other
from gateway.auth.passwords import (
    FRESH_MAGIC_LINK,
    SET_PASSWORD_PATH,
    Matched,
    Mismatch,
    Passwords,
    Throttled,
)
from gateway.auth.redirects import safe_next
from gateway.auth.sign_in_limits import Unavailable
from gateway.model import AuthMethod, Principal

MISMATCH = "That email and password do not match."
FORGOT_PATH = "/.gatehold/login/forgot-password"
SAVED_PATH = "/.gatehold/account/password/saved"
UNAVAILABLE = "Signing in with a password is not possible right now. Try again in a minute."
"""The store cannot count tries: nobody tries (fail closed)."""


def waiting(seconds: int) -> str:
    span = f"{seconds} seconds" if seconds < 120 else f"{-(-seconds // 60)} minutes"
    return (
        f"Too many password tries. Wait {span} and try again, "
        "or sign in with an email link instead."
    )


class PasswordPages:
    """Handlers over ``AuthPages`` (sessions, audit, CSRF) and ``Passwords``."""

    def __init__(self, pages: AuthPages, passwords: Passwords, *, public_url: str) -> None:
        self.pages = pages
        self.passwords = passwords
        self.origin = origin_of(public_url)

    # ------------------------------------------------------------ sign in

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        email = normalize_email(str(form.get("email", "")).strip())
        password = str(form.get("password", ""))
        rd = safe_next(str(form.get("rd", "/")))
        client = self.pages.client_address(request)
        shown = str(form.get("email", ""))[:320]
        if not from_own_pages(request, self.origin):
            self._failed(request, actor=email or "unknown", reason="origin-mismatch")
            return self._login(rd, shown, "This form came from another site.", status=403)
        if email is None or not password:
            return self._login(rd, shown, "Enter your email address and your password.")
        outcome = await self.passwords.sign_in(email, password, client=client)
        if isinstance(outcome, Matched):
            return await self.pages.first_factor_done(
                request,
                user_id=outcome.user_id,
                email=outcome.email,
                rd=rd,
                method=AuthMethod.PASSWORD,
            )
        return self._refused(request, outcome, email=email, rd=rd, shown=shown)

    def _refused(
        self,
        request: web.Request,
        outcome: Mismatch | Throttled | Unavailable,
        *,
        email: str,
        rd: str,
        shown: str,
    ) -> web.Response:
        if isinstance(outcome, Unavailable):
            response = self._login(rd, shown, UNAVAILABLE, status=503)
            response.headers["Retry-After"] = str(outcome.retry_after)
            return response
        if isinstance(outcome, Throttled):
            self._failed(request, actor=email, reason="password-throttled")
            response = self._login(rd, shown, waiting(outcome.retry_after), status=429)
            response.headers["Retry-After"] = str(outcome.retry_after)
            return response
        self._failed(request, actor=email, reason=outcome.reason)
        return self._login(rd, shown, MISMATCH)

    def _login(self, rd: str, email: str, error: str, *, status: int = 400) -> web.Response:
        pages = self.pages
        return pages.page(
            "login.html",
            status=status,
            rd=rd,
            providers=pages.providers,
            magic=pages.magic_links.settings.enabled,
            password_error=error,
            password_email=email,
        )

    def _failed(self, request: web.Request, *, actor: str, reason: str) -> None:
        self.pages.metrics.logged_in(AuthMethod.PASSWORD.value, succeeded=False)
        self.pages.audit.record(
            event_entry(
                "login-failed",
                actor=actor,
                method=AuthMethod.PASSWORD.value,
                decision="deny",
                reason=reason,
                client=self.pages.client_address(request),
            )
        )

    # ------------------------------------------------------------ forgot it

    async def forgot(self, request: web.Request) -> web.Response:
        """An email link whose sign-in leads to choosing a new password."""
        if not self.pages.magic_links.settings.enabled:
            raise web.HTTPNotFound()
        rd = safe_next(request.query.get("rd"))
        after = f"{SET_PASSWORD_PATH}?rd={quote(rd, safe='')}"
        return self.pages.page("password_forgot.html", rd=rd, next=after)

    # ------------------------------------------------------------ choose or change

    def mode(self, principal: Principal, has_password: bool) -> str:
        """``fresh`` (no current password asked), ``current`` or ``email-first``."""
        by_link = principal.auth_method == AuthMethod.MAGIC_LINK
        age = self.pages.clock() - (principal.auth_time or 0.0)
        if by_link and (not has_password or age <= FRESH_MAGIC_LINK):
            return "fresh"
        return "current" if has_password else "email-first"

    async def form(self, request: web.Request) -> web.Response:
        principal = await self.pages.signed_in(request)
        if principal is None or principal.session_hash is None:
            raise web.HTTPSeeOther(
                location=f"/.gatehold/login?rd={quote(request.path_qs, safe='')}",
                headers=PAGE_HEADERS,
            )
        rd = request.query.get("rd")
        return await self._form_page(
            principal, rd=safe_next(rd or ACCOUNT_PATH), offered=rd is not None
        )

    async def _form_page(
        self,
        principal: Principal,
        *,
        rd: str,
        offered: bool = False,
        status: int = 200,
        errors: tuple[str, ...] = (),
    ) -> web.Response:
        assert principal.session_hash is not None  # noqa: S101 - a signed-in page
        has = await self.passwords.has_password(int(principal.user_id))
        return self.pages.page(
            "password.html",
            status=status,
            principal=principal,
            has_password=has,
            mode=self.mode(principal, has),
            csrf=self.pages.csrf.token(principal.session_hash),
            rd=rd,
            offered=offered,
            password_errors=errors,
        )

    async def save(self, request: web.Request) -> web.StreamResponse:
        principal = await self.pages.signed_in(request)
        form = await request.post()
        if principal is None or principal.session_hash is None:
            raise web.HTTPSeeOther(location="/.gatehold/login", headers=PAGE_HEADERS)
        rd = safe_next(str(form.get("rd", ACCOUNT_PATH)))
        if not self.pages.csrf.valid(principal.session_hash, str(form.get("csrf", ""))):
            self.pages.audit.record(
                event_entry("csrf-rejected", actor=principal.email, path=request.path)
            )
            expired = ("The form expired. Reload the page and try again.",)
            return await self._form_page(principal, rd=rd, status=403, errors=expired)
        user_id = int(principal.user_id)
        has = await self.passwords.has_password(user_id)
        mode = self.mode(principal, has)
        refused = await self._refusal(request, principal, form, mode)
        if refused is not None:
            reason, status, messages = refused
            self._audit_refused(request, principal, reason)
            response = await self._form_page(
                principal, rd=rd, offered=rd != ACCOUNT_PATH, status=status, errors=messages
            )
            if status in (429, 503):
                response.headers["Retry-After"] = "60"
            return response
        await self.passwords.set_password(user_id, str(form.get("new_password", "")))
        await self._saved(request, principal, kind=_event_of(had_one=has, mode=mode))
        if rd == ACCOUNT_PATH:
            return see_other(f"{ACCOUNT_PATH}?notice=password-saved")
        return see_other(f"{SAVED_PATH}?rd={quote(rd, safe='')}")

    async def _saved(self, request: web.Request, principal: Principal, *, kind: str) -> None:
        """A new password ends every other session of the person; audited durably."""
        ended = await self.pages.sessions.revoke_user_except(
            int(principal.user_id), principal.session_hash
        )
        await self.pages.audit.begin(
            event_entry(
                kind,
                actor=principal.email,
                sessions_ended=ended,
                client=self.pages.client_address(request),
            )
        )

    async def _refusal(
        self, request: web.Request, principal: Principal, form: Any, mode: str
    ) -> tuple[str, int, tuple[str, ...]] | None:
        """Why the form cannot be saved (audit reason, status, messages), or ``None``."""
        if mode == "email-first":
            return (
                "email-sign-in-needed",
                403,
                ("To set a password, first sign in with an email link.",),
            )
        if mode == "current":
            checked = await self._current_checked(request, principal, form)
            if checked is not None:
                return checked
        new, repeat = str(form.get("new_password", "")), str(form.get("repeat_password", ""))
        if new != repeat:
            return "passwords-differ", 400, ("The two new passwords differ. Type it twice.",)
        verdict = self.passwords.policy.check(new, email=principal.email)
        if not verdict.ok:
            return ",".join(verdict.reasons), 400, verdict.messages
        return None

    async def _current_checked(
        self, request: web.Request, principal: Principal, form: Any
    ) -> tuple[str, int, tuple[str, ...]] | None:
        current = str(form.get("current_password", ""))
        if not current:
            return "current-password-missing", 400, ("Enter your current password.",)
        checked = await self.passwords.check_current(
            int(principal.user_id),
            principal.email,
            current,
            client=self.pages.client_address(request),
        )
        if isinstance(checked, Unavailable):
            return "password-unavailable", 503, (UNAVAILABLE,)
        if isinstance(checked, Throttled):
            return "password-throttled", 429, (waiting(checked.retry_after),)
        if not checked:
            return "current-password-wrong", 400, ("That is not your current password.",)
        return None

    def _audit_refused(self, request: web.Request, principal: Principal, reason: str) -> None:
        self.pages.audit.record(
            event_entry(
                "password-refused",
                actor=principal.email,
                decision="deny",
                reason=reason,
                client=self.pages.client_address(request),
            )
        )

    async def saved(self, request: web.Request) -> web.Response:
        return self.pages.page("password_saved.html", rd=safe_next(request.query.get("rd")))


def _event_of(*, had_one: bool, mode: str) -> str:
    """``password-set`` (a first one), ``password-changed`` (the current one shown) or
    ``password-reset`` (replaced on the strength of a fresh email link)."""
    if not had_one:
        return "password-set"
    return "password-changed" if mode == "current" else "password-reset"


def mount_passwords(app: web.Application, pages: AuthPages) -> None:
    """The password routes, when ``auth.passwords.enabled`` built a ``Passwords``."""
    passwords = pages.passwords
    if passwords is None:
        return
    handlers = PasswordPages(pages, passwords, public_url=passwords.public_url)
    pages.templates.globals.update(
        passwords_enabled=True,
        password_mode=handlers.mode,
        password_min_length=passwords.settings.min_length,
    )
    app.router.add_post("/.gatehold/login/password", handlers.sign_in)
    app.router.add_get(FORGOT_PATH, handlers.forgot)
    app.router.add_get(SET_PASSWORD_PATH, handlers.form)
    app.router.add_post(SET_PASSWORD_PATH, handlers.save)
    app.router.add_get(SAVED_PATH, handlers.saved)
