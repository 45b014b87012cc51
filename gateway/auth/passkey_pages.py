"""Passkey routes: JSON for ``static/passkeys.js``, one pair (options, answer) per use.

* ``/.gatehold/account/passkeys…``: the signed-in person adds (CSRF token in the
  ``X-CSRF-Token`` header, a sign-in within ten minutes) or removes (a form) a passkey;
* ``/.gatehold/login/enrol/passkey…``: a sign-in waiting for a second factor, of a
  person who has none, sets up a passkey and finishes with it;
* ``/.gatehold/login/verify/passkey…``: a passkey as the second factor;
* ``/.gatehold/login/passkey…``: a password-less sign-in with a discoverable passkey
  (with user verification it is two factors in itself).

Every JSON POST must be ``application/json`` (no cross-site form can send that without
a CORS preflight, which is never granted), and its ``Origin``, when sent, must be the
gateway's own. Every refusal is audited as ``passkey-refused`` with its reason.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.audit import event_entry
from gateway.auth.form_checks import from_own_pages, origin_of, proved_recently
from gateway.auth.handlers import ACCOUNT_PATH, PAGE_HEADERS, AuthPages
from gateway.auth.passkeys import Asserted, Passkeys, Refused, Registered
from gateway.auth.redirects import safe_next
from gateway.model import AuthMethod, Principal
from gateway.store import passkeys as store
from gateway.store import users as user_store
from gateway.store.pending_sign_ins import PendingSignIn

log = logging.getLogger("gatehold")
"""Adding or removing a passkey needs a sign-in or second factor this recent (seconds):
a stolen session cookie alone must not turn into a lasting credential."""
ACCOUNT_PASSKEYS = "/.gatehold/account/passkeys"
ENROL_PASSKEY = "/.gatehold/login/enrol/passkey"
VERIFY_PASSKEY = "/.gatehold/login/verify/passkey"
LOGIN_PASSKEY = "/.gatehold/login/passkey"
JSON_HEADERS = {k: v for k, v in PAGE_HEADERS.items() if k != "Content-Security-Policy"}
MESSAGES = {
    "passkey-malformed": "That was not a passkey answer. Reload the page and try again.",
    "json-invalid": "The request was not the JSON this page sends. Reload the page.",
    "challenge-unknown": "That passkey request expired or was already used. Try again.",
    "csrf-invalid": "The page expired. Reload it and try again.",
    "origin-header-mismatch": "This request came from another site.",
    "not-signed-in": "Sign in first.",
    "sign-in-again": "Sign in again to change your passkeys (it has been over ten minutes).",
    "sign-in-expired": "This sign-in expired. Start again.",
    "enrolment-closed": "A second step is already set up for this account.",
    "credential-exists": "This passkey is registered already.",
    "user-inactive": "This account cannot sign in.",
}
REFUSED_MESSAGE = "That passkey was not accepted. Try again, or use another way."


class PasskeyPages:
    """The passkey routes over the sign-in pages (``AuthPages``) and ``Passkeys``."""

    def __init__(self, pages: AuthPages, passkeys: Passkeys) -> None:
        self.pages = pages
        self.passkeys = passkeys

    # ------------------------------------------------------------ account: add, remove

    async def account_options(self, request: web.Request) -> web.Response:
        who = await self._account_holder(request, await self._body(request))
        if isinstance(who, web.Response):
            return who
        options = await self.passkeys.registration_options(
            user_id=int(who.user_id), email=who.email
        )
        return _options(options)

    async def account_register(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        who = await self._account_holder(request, body)
        if isinstance(who, web.Response):
            return who
        assert not isinstance(body, str)  # noqa: S101 - refused above
        outcome = await self.passkeys.register(
            body.get("credential"), user_id=int(who.user_id), name=_name(body)
        )
        if isinstance(outcome, Refused):
            return self._refused(request, outcome, actor=who.email, ceremony="register")
        self._registered(request, outcome, actor=who.email, via="account")
        return _go(f"{ACCOUNT_PATH}?notice=passkey-added")

    async def remove(self, request: web.Request) -> web.StreamResponse:
        principal = await self.pages.signed_in(request)
        form = await request.post()
        if principal is None or principal.session_hash is None:
            raise web.HTTPSeeOther(location=f"/.gatehold/login?rd={ACCOUNT_PATH}")
        if not self.pages.csrf.valid(principal.session_hash, str(form.get("csrf", ""))):
            self._audit_refused(request, "csrf-invalid", actor=principal.email, ceremony="remove")
            raise web.HTTPForbidden(text="The form expired. Reload the page and try again.")
        if not proved_recently(principal, self.pages.clock()):
            self._audit_refused(request, "sign-in-again", actor=principal.email, ceremony="remove")
            return _see_other(f"{ACCOUNT_PATH}?notice=passkey-sign-in-again")
        passkey_id = str(form.get("passkey", ""))
        removed = (
            await store.remove_passkey(
                self.pages.sessions.engine,
                user_id=int(principal.user_id),
                passkey_id=int(passkey_id),
            )
            if passkey_id.isascii() and passkey_id.isdigit() and len(passkey_id) < 12
            else None
        )
        if removed is None:
            return _see_other(f"{ACCOUNT_PATH}?notice=passkey-not-found")
        self.pages.audit.record(
            event_entry(
                "passkey-removed",
                actor=principal.email,
                passkey=removed.name,
                credential=removed.credential_id[:64],
                client=self.pages.client_address(request),
            )
        )
        return _see_other(f"{ACCOUNT_PATH}?notice=passkey-removed")

    async def account_context(self, principal: Principal) -> dict[str, Any]:
        """The account page's passkey list (dates in UTC, as a person reads them)."""
        engine = self.pages.sessions.engine
        rows = await store.passkeys_of(engine, int(principal.user_id))
        return {
            "passkeys": [
                {
                    "id": p.id,
                    "name": p.name,
                    "added": _when(p.created_at),
                    "last_used": "never" if p.last_used_at is None else _when(p.last_used_at),
                }
                for p in rows
            ]
        }

    async def _account_holder(
        self, request: web.Request, body: dict[str, Any] | str
    ) -> Principal | web.Response:
        principal = await self.pages.signed_in(request)
        if principal is None or principal.session_hash is None:
            return self._refusal(request, "not-signed-in", status=401, ceremony="register")
        actor = principal.email
        token = request.headers.get("X-CSRF-Token", "")
        if not self.pages.csrf.valid(principal.session_hash, token):
            return self._refusal(request, "csrf-invalid", status=403, actor=actor)
        if isinstance(body, str):
            return self._refusal(request, body, status=_status_of(body), actor=actor)
        if not proved_recently(principal, self.pages.clock()):
            return self._refusal(request, "sign-in-again", status=403, actor=actor)
        return principal

    # ------------------------------------------------------------ enrolment (pending)

    async def enrol_options(self, request: web.Request) -> web.Response:
        pending = await self._enrolling(request, await self._body(request))
        if isinstance(pending, web.Response):
            return pending
        user = await user_store.get_user(self.pages.sessions.engine, pending.user_id)
        email = user.email if user is not None else str(pending.user_id)
        return _options(
            await self.passkeys.registration_options(user_id=pending.user_id, email=email)
        )

    async def enrol_register(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        pending = await self._enrolling(request, body)
        if isinstance(pending, web.Response):
            return pending
        assert not isinstance(body, str)  # noqa: S101 - refused above
        actor = await self._email_of(pending.user_id)
        outcome = await self.passkeys.register(
            body.get("credential"), user_id=pending.user_id, name=_name(body)
        )
        if isinstance(outcome, Refused):
            return self._refused(request, outcome, actor=actor, ceremony="register")
        self._registered(request, outcome, actor=actor, via="enrol")
        finished = await self.pages.second_factor_done(request, pending, factor="passkey")
        return _as_json(finished)

    async def _enrolling(
        self, request: web.Request, body: dict[str, Any] | str
    ) -> PendingSignIn | web.Response:
        """The pending sign-in of a person with no second factor yet, or a refusal: a
        person who has one must show it, not add another in its place."""
        pending = await self._pending(request, body, ceremony="register")
        if isinstance(pending, web.Response):
            return pending
        if (await self.pages.pending_factors(pending)).second_factor:
            actor = await self._email_of(pending.user_id)
            return self._refusal(request, "enrolment-closed", status=403, actor=actor)
        return pending

    # ------------------------------------------------------------ second factor

    async def verify_options(self, request: web.Request) -> web.Response:
        pending = await self._pending(request, await self._body(request), ceremony="second-factor")
        if isinstance(pending, web.Response):
            return pending
        return _options(await self.passkeys.authentication_options(user_id=pending.user_id))

    async def verify(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        pending = await self._pending(request, body, ceremony="second-factor")
        if isinstance(pending, web.Response):
            return pending
        assert not isinstance(body, str)  # noqa: S101 - refused above
        outcome = await self.passkeys.authenticate(body.get("credential"), user_id=pending.user_id)
        if isinstance(outcome, Refused):
            actor = await self._email_of(pending.user_id)
            alive = await self.pages.second_factor_failed(
                request, pending, factor="passkey", reason=outcome.reason
            )
            answer = self._refused(request, outcome, actor=actor, ceremony="second-factor")
            if not alive:
                return _problem(
                    "sign-in-expired", MESSAGES["sign-in-expired"], 400, go="/.gatehold/login"
                )
            return answer
        return _as_json(await self.pages.second_factor_done(request, pending, factor="passkey"))

    async def _pending(
        self, request: web.Request, body: dict[str, Any] | str, *, ceremony: str
    ) -> PendingSignIn | web.Response:
        pending = await self.pages.pending_of(request)
        if pending is None:
            return self._refusal(request, "sign-in-expired", status=400, ceremony=ceremony)
        if isinstance(body, str):
            return self._refusal(request, body, status=_status_of(body), ceremony=ceremony)
        return pending

    # ------------------------------------------------------------ password-less

    async def login_options(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, str):
            return self._refusal(request, body, status=_status_of(body), ceremony="sign-in")
        return _options(await self.passkeys.authentication_options(user_id=None))

    async def login(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if isinstance(body, str):
            return self._refusal(request, body, status=_status_of(body), ceremony="sign-in")
        outcome = await self.passkeys.authenticate(body.get("credential"), user_id=None)
        if isinstance(outcome, Refused):
            self.pages.metrics.logged_in(AuthMethod.PASSKEY.value, succeeded=False)
            return self._refused(request, outcome, actor="unknown", ceremony="sign-in")
        return await self._start(request, outcome, rd=str(body.get("rd") or "/"))

    async def _start(self, request: web.Request, used: Asserted, *, rd: str) -> web.Response:
        user = await user_store.get_user(self.pages.sessions.engine, used.passkey.user_id)
        if user is None or not user.active:
            actor = user.email if user is not None else "unknown"
            refused = Refused("user-inactive")
            return self._refused(request, refused, actor=actor, ceremony="sign-in")
        now = self.pages.clock()
        started = await self.pages.start_session(
            request,
            user_id=user.id,
            email=user.email,
            rd=safe_next(rd),
            method=AuthMethod.PASSKEY,
            auth_time=now,
            mfa_time=now,  # possession of the device and its PIN or biometric
            details={"passkey": used.passkey.name},
        )
        return _as_json(started)

    # ------------------------------------------------------------ shared

    async def _body(self, request: web.Request) -> dict[str, Any] | str:
        """The JSON object sent, or why there is none (``json-invalid``, or
        ``origin-header-mismatch`` for a request another site's page made)."""
        if not from_own_pages(request, origin_of(self.passkeys.origin)):
            return "origin-header-mismatch"
        if request.content_type != "application/json":
            return "json-invalid"
        try:
            body = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            return "json-invalid"
        return body if isinstance(body, dict) else "json-invalid"

    async def _email_of(self, user_id: int) -> str:
        user = await user_store.get_user(self.pages.sessions.engine, user_id)
        return user.email if user is not None else "unknown"

    def _registered(self, request: web.Request, done: Registered, *, actor: str, via: str) -> None:
        self.pages.audit.record(
            event_entry(
                "passkey-registered",
                actor=actor,
                passkey=done.name,
                credential=done.credential_id[:64],
                via=via,
                client=self.pages.client_address(request),
            )
        )

    def _refused(
        self, request: web.Request, refused: Refused, *, actor: str, ceremony: str
    ) -> web.Response:
        status = 400 if refused.malformed or refused.reason == "challenge-unknown" else 403
        if refused.reason == "credential-exists":
            status = 409
        return self._refusal(request, refused.reason, status=status, actor=actor, ceremony=ceremony)

    def _refusal(
        self,
        request: web.Request,
        reason: str,
        *,
        status: int,
        actor: str = "unknown",
        ceremony: str = "register",
    ) -> web.Response:
        self._audit_refused(request, reason, actor=actor, ceremony=ceremony)
        return _problem(reason, MESSAGES.get(reason, REFUSED_MESSAGE), status)

    def _audit_refused(
        self, request: web.Request, reason: str, *, actor: str, ceremony: str
    ) -> None:
        self.pages.audit.record(
            event_entry(
                "passkey-refused",
                actor=actor,
                ceremony=ceremony,
                decision="deny",
                reason=reason,
                client=self.pages.client_address(request),
            )
        )


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _status_of(reason: str) -> int:
    return 403 if reason == "origin-header-mismatch" else 400


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    return name if isinstance(name, str) else ""


def _options(options_json: str) -> web.Response:
    return web.Response(text=options_json, content_type="application/json", headers=JSON_HEADERS)


def _go(location: str) -> web.Response:
    return web.json_response({"redirect": location}, headers=JSON_HEADERS)


def _problem(reason: str, message: str, status: int, *, go: str | None = None) -> web.Response:
    body: dict[str, Any] = {"type": reason, "title": message, "status": status}
    if go is not None:
        body["redirect"] = go
    return web.json_response(
        body, status=status, content_type="application/problem+json", headers=JSON_HEADERS
    )


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={**PAGE_HEADERS, "Location": location})


def _as_json(answer: web.StreamResponse) -> web.Response:
    """A sign-in step's answer (a 303 that sets cookies, or an error page) for a script:
    the same cookies, and where to go next as JSON."""
    if answer.status != 303:
        return _problem("sign-in-expired", MESSAGES["sign-in-expired"], 400, go="/.gatehold/login")
    converted = _go(answer.headers.get("Location", "/"))
    for name, morsel in answer.cookies.items():
        converted.cookies[name] = morsel
    return converted


def mount_passkeys(app: web.Application, pages: AuthPages, passkeys: Passkeys) -> None:
    """Add the passkey routes, and tell the templates passkeys are offered — unless
    browsers would refuse the RP id (the default ``http://127.0.0.1:8080``, say)."""
    if passkeys.problem is not None:
        log.warning("passkeys are off: %s", passkeys.problem)
        return
    pages.templates.globals["passkeys_enabled"] = True
    routes = PasskeyPages(pages, passkeys)
    pages.account_parts.append(routes.account_context)
    app.router.add_post(f"{ACCOUNT_PASSKEYS}/options", routes.account_options)
    app.router.add_post(ACCOUNT_PASSKEYS, routes.account_register)
    app.router.add_post(f"{ACCOUNT_PASSKEYS}/remove", routes.remove)
    app.router.add_post(f"{ENROL_PASSKEY}/options", routes.enrol_options)
    app.router.add_post(ENROL_PASSKEY, routes.enrol_register)
    app.router.add_post(f"{VERIFY_PASSKEY}/options", routes.verify_options)
    app.router.add_post(VERIFY_PASSKEY, routes.verify)
    app.router.add_post(f"{LOGIN_PASSKEY}/options", routes.login_options)
    app.router.add_post(LOGIN_PASSKEY, routes.login)
