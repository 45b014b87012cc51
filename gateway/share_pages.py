"""``/.gatehold/share/<token>``: opening a share link (``shares.py``).

``GET``/``HEAD`` open it: a dead link (unknown, changed, revoked, expired, its minter
without access now, its object moved) and a signed-in person other than its recipient
get the same 404 as any unknown address; nobody signed in gets a page offering a
sign-in link to the recipient's address, named only by a hint. The recipient, signed
in, gets the file through the pipeline's own forwarding (``pipeline.deliver``): the
audit record is committed first and names the recipient, the link and its minter.
``POST`` mails that sign-in link (``AuthPages.mail_link``: same limits, same answer
whoever the address belongs to) and comes back to the link after sign-in.

Every open, allowed or refused, leaves an audit record with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.audit import event_entry, request_entry
from gateway.auth.handlers import AuthPages, see_other
from gateway.context import Gateway
from gateway.identity import unless_store_down
from gateway.live import LIVE
from gateway.model import Admitted, Anonymous, Principal, Reason, Rejection
from gateway.pipeline import deliver
from gateway.refusals import refuse, reject_unadmitted
from gateway.responses import LOGIN_PATH
from gateway.shares import (
    SHARE_PATH,
    Download,
    Opens,
    ShareRefusal,
    judge_open,
    masked,
    still_downloadable,
)
from gateway.store import share_links as share_store
from gateway.store.share_links import ShareRow

MAX_TOKEN = 100
"""Longer tokens are nobody's (a minted one has 43 characters); not even hashed."""
NOTHING_HERE = "There is nothing at this address."

Caller = Principal | Anonymous | Rejection


@dataclass(frozen=True, slots=True)
class _Live:
    """A link that opens: its one download, and its recipient if signed in."""

    share: ShareRow
    download: Download
    recipient: Principal | None
    """``None`` while nobody is signed in (then a sign-in link is offered)."""
    second_factor: bool = False
    """The recipient is signed in but the file needs a second factor they have not
    shown in this session: they are offered to confirm with one (or set one up)."""


@dataclass(frozen=True, slots=True)
class _Judged:
    """One request for a link: who asks, the link, and whether it opens for them."""

    admitted: Admitted
    caller: Caller
    share: ShareRow | None
    outcome: _Live | ShareRefusal


class SharePages:
    """The share-link pages; built by ``app.py`` over the sign-in pages."""

    def __init__(self, auth: AuthPages) -> None:
        self._auth = auth

    async def open(self, request: web.Request) -> web.StreamResponse:
        """``GET``/``HEAD``: the file, the sign-in offer, or 404."""
        return await _under_rules_in_force(request, self._open)

    async def mail(self, request: web.Request) -> web.StreamResponse:
        """``POST``: mail the recipient a sign-in link that leads back here."""
        return await _under_rules_in_force(request, self._mail)

    async def _judged(self, gw: Gateway, request: web.Request) -> _Judged | Rejection:
        """The link a request names and whether it opens for its caller; the minter's
        access is asked last, so a dead link answers alike for everyone."""
        admitted = gw.ingress.admit(request)
        if isinstance(admitted, Rejection):
            return admitted
        token = request.match_info["token"]
        engine = gw.sessions.engine
        share = await share_store.find_share(engine, token) if len(token) <= MAX_TOKEN else None
        caller = unless_store_down(await gw.identity.resolve(request))
        verdict = judge_open(share, caller, now=gw.clock())
        if share is None or isinstance(verdict, ShareRefusal):
            refused = verdict if isinstance(verdict, ShareRefusal) else ShareRefusal.UNKNOWN
            return _Judged(admitted, caller, share, refused)
        found = await still_downloadable(gw, share)
        if isinstance(found, ShareRefusal):
            return _Judged(admitted, caller, share, found)
        recipient = verdict.recipient if isinstance(verdict, Opens) else None
        if recipient is not None and _sign_in_too_old(found, recipient, now=gw.clock()):
            recipient = None  # a step-up route: the recipient signs in again, as anyone would
        if (
            recipient is not None
            and recipient.mfa_time is None
            and gw.policy.shared_file_needs_mfa(found.match.route, found.tenant)
        ):
            return _Judged(admitted, caller, share, _Live(share, found, None, second_factor=True))
        return _Judged(admitted, caller, share, _Live(share, found, recipient))

    async def _open(self, gw: Gateway, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        judged = await self._judged(gw, request)
        if isinstance(judged, Rejection):
            return await reject_unadmitted(gw, request, judged)
        live = judged.outcome
        if isinstance(live, ShareRefusal):
            return self._refuse(gw, request, judged, live)
        if live.recipient is None:
            login = f"{LOGIN_PATH}?rd={quote(request.path, safe='/')}"
            if live.second_factor:
                self._record(gw, judged, "deny", "share-second-factor-offered")
                return self._auth.page(
                    "share_sign_in.html", second_factor=True, login=f"{login}&step_up=1&mfa=1"
                )
            self._record(gw, judged, "deny", "share-sign-in-offered")
            return self._auth.page(
                "share_sign_in.html",
                hint=masked(live.share.recipient),
                action=request.path,
                magic=self._auth.magic_links.settings.enabled,
                login=login,
            )
        if request.body_exists or "Upgrade" in request.headers:
            return self._refuse(gw, request, judged, ShareRefusal.NOT_A_DOWNLOAD)
        busy = gw.in_flight.enter(request, live.recipient, judged.admitted)
        if busy is not None:  # counted as any request of theirs; released by app.guarded
            self._record(gw, judged, "deny", busy.reason.value)
            return refuse(gw, request, judged.admitted, busy, receipt=None)
        return await self._serve(gw, request, judged.admitted, live, live.recipient, started)

    async def _mail(self, gw: Gateway, request: web.Request) -> web.StreamResponse:
        judged = await self._judged(gw, request)
        if isinstance(judged, Rejection):
            return await reject_unadmitted(gw, request, judged)
        live = judged.outcome
        if isinstance(live, ShareRefusal):
            return self._refuse(gw, request, judged, live)
        if live.recipient is not None:  # signed in as the recipient already
            return see_other(request.path)
        if not self._auth.magic_links.settings.enabled:
            return see_other(f"{LOGIN_PATH}?rd={quote(request.path, safe='/')}")
        if not self._auth.from_own_site(request):  # another site's page: mail nothing
            self._record(gw, judged, "deny", "origin-mismatch")
            return self._auth.page("auth_error.html", status=403, reason="origin-mismatch")
        self._record(gw, judged, "allow", "share-sign-in-mailed")
        recipient = live.share.recipient
        return await self._auth.mail_link(
            request, recipient, rd=request.path, shown=masked(recipient)
        )

    async def _serve(
        self,
        gw: Gateway,
        request: web.Request,
        admitted: Admitted,
        live: _Live,
        recipient: Principal,
        started: float,
    ) -> web.StreamResponse:
        """Audit, then forward the link's one path as the recipient.

        The recipient holds no role of the minter's: the upstream is told the object's
        tenant and no roles, and the record says which link and minter granted it.
        """
        found = live.download
        shared = replace(admitted, target=replace(admitted.target, path=found.path, query=""))
        decision = replace(
            found.decision,
            roles=(),
            explain=(*found.decision.explain, f"shared with {recipient.email} by share link"),
        )
        entry = request_entry(
            admitted=shared,
            method=request.method,
            user_agent=request.headers.get("User-Agent", ""),
            principal=recipient,
            match=found.match,
            decision=decision,
            upstream=found.match.route.upstream,
        )
        entry.data["share"] = _share_data(live.share)
        receipt = await gw.audit.begin(entry)
        return await deliver(
            gw, request, shared, recipient, found.match, decision, None, receipt, arrived=started
        )

    def _refuse(
        self, gw: Gateway, request: web.Request, judged: _Judged, refusal: ShareRefusal
    ) -> web.Response:
        """The 404 of a link that does not open for this caller, audited with the reason."""
        self._record(gw, judged, "deny", refusal.value)
        gw.metrics.decided("", "deny", refusal.value, None)
        problem = gw.renderer.problem(
            Reason.ROUTE_NOT_FOUND,
            detail=NOTHING_HERE,
            request_id=judged.admitted.request_id,
            target="/",
        )
        return gw.renderer.render(request, problem)

    def _record(self, gw: Gateway, judged: _Judged, decision: str, reason: str) -> None:
        share, caller = judged.share, judged.caller
        data: dict[str, Any] = {"client": judged.admitted.client_ip}
        if share is not None:
            data["share"] = _share_data(share)
        gw.audit.record(
            event_entry(
                "share-open",
                actor=caller.email if isinstance(caller, Principal) else "anonymous",
                tenant=share.tenant if share is not None else "",
                request_id=judged.admitted.request_id,
                decision=decision,
                reason=reason,
                path=share.path if share is not None else SHARE_PATH,
                **data,
            )
        )


async def _under_rules_in_force(
    request: web.Request, work: Callable[[Gateway, web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run ``work`` with the gateway of the rules in force when the request arrived."""
    live = request.app[LIVE]
    gw = live.enter()
    try:
        return await work(gw, request)
    finally:
        live.leave(gw)


def _sign_in_too_old(found: Download, recipient: Principal, *, now: float) -> bool:
    """Whether the route asks for a recent sign-in (``step_up``) that the recipient's is
    not: the minter's decision was made as of now, the recipient's sign-in is their own."""
    limit = found.match.route.step_up_seconds
    return limit is not None and now - recipient.auth_time > limit


def _share_data(share: ShareRow) -> dict[str, Any]:
    return {
        "id": share.id,
        "minter": share.created_by,
        "recipient": share.recipient,
        "expires_at": share.expires_at,
    }


def mount_shares(app: web.Application, pages: SharePages) -> None:
    """Add the share-link routes (the gateway's own pages, outside the rules)."""
    app.router.add_get(SHARE_PATH + "{token}", pages.open)
    app.router.add_post(SHARE_PATH + "{token}", pages.mail)
