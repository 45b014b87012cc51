"""Thin aiohttp handlers for ``/.gatehold/login``, magic links, logout and "your sessions"."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from aiohttp import web

from gateway.audit import AuditWriter, event_entry
from gateway.auth.form_checks import from_own_pages, origin_of
from gateway.auth.keys import CsrfTokens
from gateway.auth.magic_link import MagicLinks, SignIn
from gateway.auth.oidc import FLOW_LIFETIME, LinkRequest, OidcLogins, OidcSignIn, Refused
from gateway.auth.passwords import Passwords
from gateway.auth.redirects import safe_next
from gateway.auth.sessions import SessionManager
from gateway.auth.sign_in_limits import Unavailable
from gateway.config.settings import MfaSettings
from gateway.identity import COOKIE_NAME, Identity, unless_store_down
from gateway.metrics import Metrics
from gateway.model import AuthMethod, Membership, Principal
from gateway.responses import RETRY_UNAVAILABLE_SECONDS
from gateway.store import external_accounts as account_store
from gateway.store import pending_sign_ins as pending_store
from gateway.store import sessions as session_store
from gateway.store import users as user_store
from gateway.store.factors import Factors, factors_of
from gateway.store.pending_sign_ins import PendingSignIn

CONFIRM_COOKIE = "__Host-gatehold-confirm"
BIND_COOKIE = "__Host-gatehold-bind"
OIDC_FLOW_COOKIE = "__Host-gatehold-oidc"
PROVIDER_UNAVAILABLE = "provider-unavailable"
"""Why a sign-in with a provider that cannot be reached now failed (a 503 page)."""
PENDING_COOKIE = "__Host-gatehold-pending"
"""A sign-in that has shown its first factor and waits for the second."""
VERIFY_PATH = "/.gatehold/login/verify"
ENROL_PATH = "/.gatehold/login/enrol"
ACCOUNT_PATH = "/.gatehold/account"
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}


async def _no_offer(request: web.Request) -> None:
    return None


@dataclass
class AuthPages:
    """Everything the sign-in pages need; built by ``app.py``."""

    templates: jinja2.Environment
    identity: Identity
    sessions: SessionManager
    magic_links: MagicLinks
    csrf: CsrfTokens
    audit: AuditWriter
    cookie_secure: bool
    client_address: Callable[[web.BaseRequest], str]
    """The client as ingress resolves it through ``server.trusted_proxies``."""
    oidc: OidcLogins | None = None
    metrics: Metrics = field(default_factory=Metrics)
    """Counts sign-ins (``gatehold_logins``); the gateway's own in ``build_auth_pages``."""
    mfa: MfaSettings = field(default_factory=MfaSettings)
    mfa_required: Callable[[Sequence[Membership]], bool] = field(default=lambda _: False)
    """Whether the rules ask a person holding these memberships for a second factor
    (a tenant or role with ``mfa: required``), enrolled or not."""
    clock: Callable[[], float] = time.time
    account_parts: list[Callable[[Principal], Awaitable[Mapping[str, Any]]]] = field(
        default_factory=list
    )
    """What the account page's partials need beyond ``factors`` (e.g. the passkey list)."""
    step_up_offer: Callable[[web.Request], Awaitable[object | None]] = field(default=_no_offer)
    """What the login page offers a signed-in person a step-up sent back (``step_up.py``)."""
    passwords: Passwords | None = None
    """Local passwords (``auth.passwords.enabled``); their pages in ``password_pages``."""

    @property
    def providers(self) -> list[tuple[str, str]]:
        """(name, label) of each configured OIDC provider, for the login page."""
        if self.oidc is None:
            return []
        return [(p.name, p.settings.label or p.name) for p in self.oidc.providers.values()]

    def page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        body = self.templates.get_template(template).render(**context)
        return web.Response(
            status=status, text=body, content_type="text/html", headers=PAGE_HEADERS
        )

    def set_session_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            token,
            path="/",
            secure=self.cookie_secure,
            httponly=True,
            samesite="Lax",
            max_age=int(self.sessions.absolute_timeout),
        )

    async def signed_in(self, request: web.Request) -> Principal | None:
        principal = unless_store_down(await self.identity.resolve(request))
        return principal if isinstance(principal, Principal) else None

    # ------------------------------------------------------------ login

    async def login(self, request: web.Request) -> web.Response:
        rd = safe_next(request.query.get("rd"))
        return self.page(
            "login.html",
            rd=rd,
            step_up=request.query.get("step_up") == "1",
            providers=self.providers,
            magic=self.magic_links.settings.enabled,
            second_step=await self.step_up_offer(request),
        )

    async def request_link(self, request: web.Request) -> web.Response:
        form = await request.post()
        email = str(form.get("email", "")).strip()
        rd = safe_next(str(form.get("rd", "/")))
        if not self.magic_links.valid_email(email):
            return self.page(
                "login.html",
                status=400,
                rd=rd,
                providers=self.providers,
                magic=True,
                error="Enter an email address like name@example.com.",
                email=email,
            )
        return await self.mail_link(request, email, rd=rd, shown=email)

    async def mail_link(
        self, request: web.Request, email: str, *, rd: str, shown: str
    ) -> web.Response:
        """Answer a request for a sign-in link to ``email`` (valid), then mail it.

        The answer is the same whether or not ``email`` may sign in; ``shown`` is how
        the page names the address (a share link's page shows only a hint of it). A
        request another site's page made is refused: it would mail links from the
        victim's browser and give that browser the binding of the attacker's link.
        """
        if not self.from_own_site(request):
            return await self._failed(request, "origin-mismatch", status=403)
        binding = (
            request.cookies.get(BIND_COOKIE) if self.magic_links.settings.bind_browser else None
        )
        if self.magic_links.settings.bind_browser and binding is None:
            binding = secrets.token_urlsafe(32)
        client_ip = self.client_address(request)
        wait = await self.magic_links.admit(email, client_ip=client_ip)
        if isinstance(wait, Unavailable):  # the same for every address: the store is down
            response = self.page("auth_error.html", status=503, reason="sign-in-unavailable")
            response.headers["Retry-After"] = str(wait.retry_after)
            return response
        if wait:
            response = self.page("magic_throttled.html", status=429, minutes=max(1, wait // 60))
            response.headers["Retry-After"] = str(wait)
            return response
        # ``delayed`` is the same for every address: mail is failing for everyone.
        delayed = self.magic_links.mail_delayed
        response = self.page("magic_sent.html", email=shown, delayed=delayed)
        if binding is not None:
            response.set_cookie(
                BIND_COOKIE,
                binding,
                path="/",
                secure=self.cookie_secure,
                httponly=True,
                samesite="Lax",
                max_age=3600,
            )
        # The same answer for every address leaves first; only then does the work that
        # differs (lookup, link, mail) start, so it cannot show in the answer's timing.
        await response.prepare(request)
        await response.write_eof()
        self.magic_links.issue(email, client_ip=client_ip, rd=rd, binding=binding)
        return response

    async def confirm_page(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        email = await self.magic_links.peek(token) if token else None
        if email is None:
            return self.page("auth_error.html", status=400, reason="link-invalid")
        nonce = secrets.token_urlsafe(24)
        # Naming the account makes a link someone else asked for visible as such.
        response = self.page("magic_confirm.html", token=token, nonce=nonce, email=email)
        response.set_cookie(
            CONFIRM_COOKIE,
            nonce,
            path="/",
            secure=self.cookie_secure,
            httponly=True,
            samesite="Strict",
            max_age=900,
        )
        return response

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not self.from_own_site(request):
            return await self._failed(request, "origin-mismatch", status=403)
        nonce = str(form.get("nonce", ""))
        cookie = request.cookies.get(CONFIRM_COOKIE, "")
        if not nonce or not secrets.compare_digest(nonce.encode(), cookie.encode()):
            return await self._failed(request, "confirm-mismatch")
        outcome = await self.magic_links.redeem(
            str(form.get("token", "")), binding=request.cookies.get(BIND_COOKIE)
        )
        if isinstance(outcome, str):
            return await self._failed(request, outcome)
        return await self._sign_in(request, outcome)

    async def _sign_in(self, request: web.Request, who: SignIn) -> web.StreamResponse:
        rd = who.rd if self.passwords is None else await self.passwords.after_magic_link(who)
        response = await self.first_factor_done(
            request, user_id=who.user_id, email=who.email, rd=rd, method=AuthMethod.MAGIC_LINK
        )
        response.del_cookie(CONFIRM_COOKIE, path="/", secure=self.cookie_secure, httponly=True)
        return response

    # ------------------------------------------------------------ two factors

    async def first_factor_done(
        self,
        request: web.Request,
        *,
        user_id: int,
        email: str,
        rd: str,
        method: AuthMethod,
        auth_time: float | None = None,
        **details: str,
    ) -> web.StreamResponse:
        """A person has shown one factor: a session now, or first a second factor.

        A second factor is asked whenever the person has one enrolled, and whenever the
        rules require one of them (then, with none enrolled, they enrol first).
        """
        factors = await factors_of(self.sessions.engine, user_id)
        if not factors.second_factor and not await self._mfa_required_of(user_id):
            return await self.start_session(
                request,
                user_id=user_id,
                email=email,
                rd=rd,
                method=method,
                auth_time=auth_time,
                details=details,
            )
        kept: dict[str, Any] = dict(details)
        if auth_time is not None:
            kept["auth_time"] = auth_time
        token = await pending_store.create_pending(
            self.sessions.engine,
            user_id=user_id,
            method=method.value,
            purpose=pending_store.SIGN_IN,
            rd=safe_next(rd),
            details=kept,
            now=self.clock(),
            ttl=self.mfa.pending_seconds,
        )
        self.audit.record(
            event_entry(
                "login-first-factor",
                actor=email,
                method=method.value,
                client=self.client_address(request),
                next="verify" if factors.second_factor else "enrol",
            )
        )
        response = see_other(VERIFY_PATH if factors.second_factor else ENROL_PATH)
        self.set_pending_cookie(response, token)
        return response

    async def _mfa_required_of(self, user_id: int) -> bool:
        user = await user_store.get_user(self.sessions.engine, user_id)
        return user is not None and self.mfa_required(user.memberships)

    def set_pending_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            PENDING_COOKIE,
            token,
            path="/",
            secure=self.cookie_secure,
            httponly=True,
            samesite="Lax",  # set on an SSO provider's redirect back, read on the next page
            max_age=int(self.mfa.pending_seconds),
        )

    async def pending_of(self, request: web.Request) -> PendingSignIn | None:
        """The sign-in this browser has begun and not finished, if it is still live."""
        token = request.cookies.get(PENDING_COOKIE, "")
        if not token or len(token) > 64:
            return None
        return await pending_store.get_pending(self.sessions.engine, token, self.clock())

    async def pending_factors(self, pending: PendingSignIn) -> Factors:
        return await factors_of(self.sessions.engine, pending.user_id)

    async def second_factor_done(
        self, request: web.Request, pending: PendingSignIn, *, factor: str
    ) -> web.StreamResponse:
        """The second factor (``totp``, ``recovery-code``, ``passkey``) was shown: the
        session starts, its second factor recorded. A pending sign-in serves once."""
        now = self.clock()
        if not await pending_store.consume_pending(self.sessions.engine, pending.id_hash, now):
            return await self._failed(request, "second-factor-expired", method=pending.method)
        user = await user_store.get_user(self.sessions.engine, pending.user_id)
        if user is None or not user.active:
            return await self._failed(request, "user-inactive", method=pending.method)
        if pending.purpose == pending_store.STEP_UP and not await self._stepping_up(
            request, pending
        ):
            return await self._failed(request, "step-up-session-ended", method=pending.method)
        details = {k: str(v) for k, v in pending.details.items() if k != "auth_time"}
        auth_time = pending.details.get("auth_time")
        if pending.purpose == pending_store.STEP_UP:
            auth_time = now  # the second factor is the fresh proof a step-up asks for
        response = await self.start_session(
            request,
            user_id=user.id,
            email=user.email,
            rd=pending.rd,
            method=AuthMethod(pending.method),
            auth_time=None if auth_time is None else float(auth_time),
            mfa_time=now,
            details={**details, "factor": factor},
        )
        response.del_cookie(PENDING_COOKIE, path="/", secure=self.cookie_secure, httponly=True)
        return response

    async def _stepping_up(self, request: web.Request, pending: PendingSignIn) -> bool:
        """A step-up ends in the very session that began it, still live (``step_up.py``)."""
        current = await self.signed_in(request)
        replaces = pending.details.get("replaces")
        return current is not None and replaces is not None and current.session_hash == replaces

    async def second_factor_failed(
        self, request: web.Request, pending: PendingSignIn, *, factor: str, reason: str
    ) -> bool:
        """Audit a wrong second factor; ``False`` once the pending sign-in is used up."""
        alive = await pending_store.note_failure(
            self.sessions.engine, pending.id_hash, max_attempts=self.mfa.max_attempts
        )
        user = await user_store.get_user(self.sessions.engine, pending.user_id)
        self.metrics.logged_in(pending.method, succeeded=False)
        self.audit.record(
            event_entry(
                "login-failed",
                actor=user.email if user else "unknown",
                method=pending.method,
                factor=factor,
                decision="deny",
                reason=reason,
                client=self.client_address(request),
                attempts_left="yes" if alive else "no",
            )
        )
        return alive

    async def verify_page(self, request: web.Request) -> web.Response:
        """Choose and show the second factor for the sign-in this browser has begun."""
        pending = await self.pending_of(request)
        if pending is None:
            return self.page("auth_error.html", status=400, reason="second-factor-expired")
        factors = await self.pending_factors(pending)
        if not factors.second_factor:
            raise web.HTTPSeeOther(location=ENROL_PATH, headers=PAGE_HEADERS)
        return self.page(
            "verify.html", pending=pending, factors=factors, error=request.query.get("error")
        )

    async def enrol_page(self, request: web.Request) -> web.Response:
        """A person the rules ask for a second factor and who has none sets one up."""
        pending = await self.pending_of(request)
        if pending is None:
            return self.page("auth_error.html", status=400, reason="second-factor-expired")
        factors = await self.pending_factors(pending)
        if factors.second_factor:
            raise web.HTTPSeeOther(location=VERIFY_PATH, headers=PAGE_HEADERS)
        return self.page("enrol.html", pending=pending, factors=factors)

    async def account_page(self, request: web.Request) -> web.Response:
        """The signed-in person's own credentials: password, authenticator app, passkeys."""
        principal = await self.signed_in(request)
        if principal is None or principal.session_hash is None:
            raise web.HTTPSeeOther(location=f"/.gatehold/login?rd={ACCOUNT_PATH}")
        factors = await factors_of(self.sessions.engine, int(principal.user_id))
        extra: dict[str, Any] = {}
        for part in self.account_parts:
            extra.update(await part(principal))
        return self.page(
            "account.html",
            **extra,
            principal=principal,
            factors=factors,
            csrf=self.csrf.token(principal.session_hash),
            notice=request.query.get("notice"),
        )

    async def start_session(
        self,
        request: web.Request,
        *,
        user_id: int,
        email: str,
        rd: str,
        method: AuthMethod,
        auth_time: float | None = None,
        mfa_time: float | None = None,
        details: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """A fresh session id for a person who just proved who they are (I7).

        ``details`` go into the login's audit record (provider, subject, factor)."""
        old = await self.signed_in(request)
        token, id_hash = await self.sessions.create(
            user_id=user_id,
            auth_method=method,
            client_ip=self.client_address(request),
            user_agent=request.headers.get("User-Agent", ""),
            auth_time=auth_time,
            mfa_time=mfa_time,
        )
        if old is not None and old.session_hash:
            await self.sessions.revoke(old.session_hash)  # a login never keeps an old id
        self.metrics.logged_in(method.value, succeeded=True)
        await self.audit.begin(
            event_entry(
                "login",
                actor=email,
                method=method.value,
                session=id_hash,
                client=self.client_address(request),
                mfa="yes" if mfa_time is not None else "no",
                **(details or {}),
            )
        )
        response = see_other(safe_next(rd))
        self.set_session_cookie(response, token)
        return response

    def from_own_site(self, request: web.Request) -> bool:
        """Whether a sign-in POST may have come from the gateway's own pages."""
        return from_own_pages(request, origin_of(self.magic_links.public_url))

    async def _failed(
        self,
        request: web.Request,
        reason: str,
        *,
        method: str = "magic-link",
        actor: str = "unknown",
        shown: str = "",
        status: int = 400,
        **details: str,
    ) -> web.Response:
        """Audit the precise reason; the page shows ``shown`` instead when it is given.

        A sign-in service that cannot be reached is a 503 with ``Retry-After``: nothing
        the person did was wrong, and trying again later (or another way) will do.
        """
        self.metrics.logged_in(method, succeeded=False)
        self.audit.record(
            event_entry(
                "login-failed",
                actor=actor,
                method=method,
                decision="deny",
                reason=reason,
                client=self.client_address(request),
                **details,
            )
        )
        if reason == PROVIDER_UNAVAILABLE:
            response = self.page("auth_error.html", status=503, reason=reason, method=method)
            response.headers["Retry-After"] = RETRY_UNAVAILABLE_SECONDS
            return response
        return self.page("auth_error.html", status=status, reason=shown or reason, method=method)

    # ------------------------------------------------------------ OIDC

    async def oidc_start(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        if self.oidc is None:
            raise web.HTTPNotFound()
        link: LinkRequest | None = None
        if request.query.get("link") == "1":
            asked = await self._link_request(request)
            if isinstance(asked, str):
                return await self._failed(request, asked, method="oidc", provider=name)
            link = asked
        started = await self.oidc.begin(
            name,
            rd=safe_next(request.query.get("rd")),
            step_up=request.query.get("step_up") == "1",
            link=link,
        )
        if isinstance(started, Refused):
            return await self._failed(request, started.reason, method="oidc", provider=name)
        url, sealed = started
        response = web.Response(status=303, headers={**PAGE_HEADERS, "Location": url})
        response.set_cookie(
            OIDC_FLOW_COOKIE,
            sealed,
            path="/",
            secure=self.cookie_secure,
            httponly=True,
            samesite="Lax",  # sent on the provider's top-level redirect back to us
            max_age=FLOW_LIFETIME,
        )
        return response

    async def _link_request(self, request: web.Request) -> LinkRequest | str:
        """The signed-in person adding an account to their own, or why they may not.

        Only from a page of theirs (the CSRF token of their session), so no other site
        can make a browser tie the account it is signed in to at the provider to them.
        """
        principal = await self.signed_in(request)
        if principal is None or principal.session_hash is None:
            return "link-not-signed-in"
        if not self.csrf.valid(principal.session_hash, request.query.get("csrf", "")):
            return "link-csrf"
        return LinkRequest(int(principal.user_id), principal.session_hash)

    async def _link_still_valid(self, request: web.Request, link: LinkRequest) -> bool:
        """The session that asked to link is the one delivering the callback, still live."""
        principal = await self.signed_in(request)
        return (
            principal is not None
            and principal.session_hash == link.session_hash
            and int(principal.user_id) == link.user_id
        )

    async def oidc_callback(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        if self.oidc is None:
            raise web.HTTPNotFound()
        query = {key: value for key, value in request.query.items()}
        identified = await self.oidc.finish(name, query, request.cookies.get(OIDC_FLOW_COOKIE))
        if isinstance(identified, Refused):
            return await self._oidc_failed(request, identified)
        if identified.link is not None and not await self._link_still_valid(
            request, identified.link
        ):
            refused = Refused("link-session-ended", name, identified.email)
            return await self._oidc_failed(request, refused)
        signed = await self.oidc.provision(identified)
        if isinstance(signed, Refused):
            return await self._oidc_failed(request, signed)
        if signed.linked_via:
            self._account_linked(request, signed, provider=name, subject=identified.subject)
        if signed.memberships_changed:  # what the old sessions were allowed has changed
            ended = await self.sessions.revoke_user(signed.user_id)
            self.audit.record(
                event_entry(
                    "memberships-changed", actor=signed.email, provider=name, sessions=ended
                )
            )
        response = await self.first_factor_done(
            request,
            user_id=signed.user_id,
            email=signed.email,
            rd=signed.rd,
            method=AuthMethod.OIDC,
            auth_time=signed.auth_time,
            provider=name,
            subject=identified.subject,
        )
        response.del_cookie(OIDC_FLOW_COOKIE, path="/", secure=self.cookie_secure)
        return response

    def _account_linked(
        self, request: web.Request, signed: OidcSignIn, *, provider: str, subject: str
    ) -> None:
        self.audit.record(
            event_entry(
                "account-linked",
                actor=signed.email,
                provider=provider,
                subject=subject,
                via=signed.linked_via,
                client=self.client_address(request),
            )
        )

    async def _oidc_failed(self, request: web.Request, refused: Refused) -> web.StreamResponse:
        response = await self._failed(
            request,
            refused.reason,
            method="oidc",
            actor=refused.actor,
            shown=refused.shown,
            provider=refused.provider,
        )
        response.del_cookie(OIDC_FLOW_COOKIE, path="/", secure=self.cookie_secure)
        return response

    # ------------------------------------------------------------ sessions and logout

    async def my_sessions(self, request: web.Request) -> web.Response:
        principal = await self.signed_in(request)
        if principal is None or principal.session_hash is None:
            raise web.HTTPSeeOther(location="/.gatehold/login?rd=/.gatehold/sessions")
        user_id = int(principal.user_id)
        rows = await session_store.list_user_sessions(self.sessions.engine, user_id)
        linked = await account_store.accounts_of(self.sessions.engine, user_id)
        return self.page(
            "sessions.html",
            principal=principal,
            rows=rows,
            current=principal.session_hash,
            csrf=self.csrf.token(principal.session_hash),
            providers=self.providers,
            linked={account.provider for account in linked},
        )

    async def end_session(self, request: web.Request) -> web.StreamResponse:
        principal, form = await self._checked_post(request)
        target = str(form.get("session", ""))
        rows = await session_store.list_user_sessions(self.sessions.engine, int(principal.user_id))
        if any(row.id_hash == target for row in rows):  # only one's own sessions
            await self.sessions.revoke(target)
            self.audit.record(
                event_entry("session-revoked", actor=principal.email, session=target, by="self")
            )
        raise web.HTTPSeeOther(location="/.gatehold/sessions", headers=PAGE_HEADERS)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        principal, form = await self._checked_post(request)
        assert principal.session_hash is not None  # noqa: S101 - checked in _checked_post
        if form.get("everywhere") == "1":
            count = await self.sessions.revoke_user(int(principal.user_id))
            entry = event_entry("logout-everywhere", actor=principal.email, sessions=count)
        else:
            await self.sessions.revoke(principal.session_hash)
            entry = event_entry("logout", actor=principal.email, session=principal.session_hash)
        await self.audit.begin(entry)
        response = see_other(f"/.gatehold/login?rd={safe_next(str(form.get('rd', '/')))}")
        response.del_cookie(COOKIE_NAME, path="/", secure=self.cookie_secure, httponly=True)
        return response

    async def _checked_post(self, request: web.Request) -> tuple[Principal, Any]:
        principal = await self.signed_in(request)
        form = await request.post()
        if principal is None or principal.session_hash is None:
            raise web.HTTPSeeOther(location="/.gatehold/login")
        if not self.csrf.valid(principal.session_hash, str(form.get("csrf", ""))):
            self.audit.record(
                event_entry("csrf-rejected", actor=principal.email, path=request.path)
            )
            raise web.HTTPForbidden(text="The form expired. Reload the page and try again.")
        return principal, form


def see_other(location: str) -> web.Response:
    """303 to a same-origin path (callers pass it through ``safe_next``)."""
    return web.Response(status=303, headers={**PAGE_HEADERS, "Location": location})


AUTH_PAGES = web.AppKey("auth_pages", AuthPages)


def mount_auth(app: web.Application, pages: AuthPages) -> None:
    """Add the sign-in routes (the gateway's own pages, outside the rules)."""
    app[AUTH_PAGES] = pages
    app.router.add_get("/.gatehold/login", pages.login)
    app.router.add_post("/.gatehold/login/magic", pages.request_link)
    app.router.add_get("/.gatehold/login/magic/confirm", pages.confirm_page)
    app.router.add_post("/.gatehold/login/magic/confirm", pages.confirm)
    app.router.add_get("/.gatehold/oidc/{provider}/start", pages.oidc_start)
    app.router.add_get("/.gatehold/oidc/{provider}/callback", pages.oidc_callback)
    app.router.add_get(VERIFY_PATH, pages.verify_page)
    app.router.add_get(ENROL_PATH, pages.enrol_page)
    app.router.add_get(ACCOUNT_PATH, pages.account_page)
    app.router.add_get("/.gatehold/sessions", pages.my_sessions)
    app.router.add_post("/.gatehold/sessions/end", pages.end_session)
    app.router.add_post("/.gatehold/logout", pages.logout)
