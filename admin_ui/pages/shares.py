"""Shares: the live share links of files an admin may see (their own and their
tenants'), a revoke button on each, and a form to share a file as oneself.

Minting asks the live decision whether the signed-in admin may download the file now
(``gateway.admin.shares``); the new link is shown once, on the answer to the form.
"""

from __future__ import annotations

from aiohttp import web

from admin_ui.pages.people_shown import when
from admin_ui.view import Page, View
from gateway.admin import shares
from gateway.admin.service import AdminError
from gateway.config.settings import SHARE_TTL_CEILING
from gateway.model import Principal


def _spoken(seconds: float) -> str:
    """``86400`` → ``24h``, ``1800`` → ``30m``: a lifetime as the settings spell it."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


async def shares_page(view: View) -> web.StreamResponse:
    return await _page(view, typed={"path": "", "email": "", "expires": ""})


async def _page(
    view: View,
    *,
    typed: dict[str, str],
    error: AdminError | None = None,
    minted: shares.Minted | None = None,
) -> web.StreamResponse:
    settings = view.ctx.settings
    return view.page(
        "shares.html",
        status=error.status if error is not None else 200,
        title="Shares",
        shares=await shares.list_shares(view.ctx),
        typed=typed,
        error=error,
        minted=minted,
        longest=_spoken(settings.share_max_ttl if settings is not None else SHARE_TTL_CEILING),
        when=when,
    )


async def create(view: View) -> web.StreamResponse:
    form = await view.form()
    typed = {name: form.get(name, "").strip() for name in ("path", "email", "expires")}
    minted = await _mint(view, typed)
    if isinstance(minted, AdminError):
        return await _page(view, typed=typed, error=minted)
    return await _page(view, typed={"path": "", "email": "", "expires": ""}, minted=minted)


async def _mint(view: View, typed: dict[str, str]) -> shares.Minted | AdminError:
    settings = view.ctx.settings
    minter = await view.gw.identity.resolve(view.request)
    if settings is None or not isinstance(minter, Principal):
        return AdminError("sign in again to share a file", "forbidden")
    ttl = shares.share_ttl(settings, typed["expires"] or None)
    if isinstance(ttl, AdminError):
        return ttl
    return await shares.mint_share(
        view.ctx,
        view.gw,
        minter=minter,
        path=typed["path"],
        recipient=typed["email"],
        ttl=ttl,
        public_url=settings.server.public_url,
    )


async def revoke(view: View) -> web.StreamResponse:
    share_id = view.request.match_info["share_id"]
    result: object = AdminError(f"no share link {share_id}", "not-found")
    if share_id.isdigit() and len(share_id) < 18:
        result = await shares.revoke_share(view.ctx, int(share_id))
    if isinstance(result, AdminError):
        return view.refused(result, title="Not found")
    return view.see_other("/shares", notice=f"Share link {share_id} revoked.")


PAGES = (
    Page("GET", "/shares", shares_page),
    Page("POST", "/shares", create),
    Page("POST", "/shares/{share_id}/revoke", revoke),
)
