"""Thin aiohttp handlers for ``/.gatehold/login``, magic links, logout and "your sessions"."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
from aiohttp import web

from gateway.audit import AuditWriter, event_entry
from gateway.auth.keys import CsrfTokens
from gateway.auth.magic_link import MagicLinks, SignIn
from gateway.auth.oidc import FLOW_LIFETIME, LinkRequest, OidcLogins, OidcSignIn, Refused
from gateway.auth.redirects import safe_next
from gateway.auth.sessions import SessionManager
from gateway.auth.sign_in_limits import Unavailable
from gateway.identity import COOKIE_NAME, Identity, unless_store_down
from gateway.metrics import Metrics
from gateway.model import AuthMethod, Principal
from gateway.store import external_accounts as account_store
from gateway.store import sessions as session_store

CONFIRM_COOKIE = "__Host-gatehold-confirm"
BIND_COOKIE = "__Host-gatehold-bind"
OIDC_FLOW_COOKIE = "__Host-gatehold-oidc"
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}


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
        the page names the address (a share link's page shows only a hint of it).
        """
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
        response = self.page("magic_sent.html", email=shown)
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
        response = await self._start_session(
            request, user_id=who.user_id, email=who.email, rd=who.rd, method=AuthMethod.MAGIC_LINK
        )
        response.del_cookie(CONFIRM_COOKIE, path="/", secure=self.cookie_secure, httponly=True)
        return response

    async def _start_session(
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
        """A fresh session id for a person who just proved who they are (I7)."""
        old = await self.signed_in(request)
        token, id_hash = await self.sessions.create(
            user_id=user_id,
            auth_method=method,
            client_ip=self.client_address(request),
            user_agent=request.headers.get("User-Agent", ""),
            auth_time=auth_time,
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
                **details,
            )
        )
        response = see_other(safe_next(rd))
        self.set_session_cookie(response, token)
        return response

    async def _failed(
        self,
        request: web.Request,
        reason: str,
        *,
        method: str = "magic-link",
        actor: str = "unknown",
        shown: str = "",
        **details: str,
    ) -> web.Response:
        """Audit the precise reason; the page shows ``shown`` instead when it is given."""
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
        return self.page("auth_error.html", status=400, reason=shown or reason, method=method)

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
        response = await self._start_session(
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
    app.router.add_get("/.gatehold/sessions", pages.my_sessions)
    app.router.add_post("/.gatehold/sessions/end", pages.end_session)
    app.router.add_post("/.gatehold/logout", pages.logout)
