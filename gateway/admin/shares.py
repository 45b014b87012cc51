"""Share-link workflows, once for the API, the CLI and the admin UI.

Minting asks the live decision whether the minter may download the path right now
(``shares.downloadable``); listing and revoking are the minter's for their own links
and an admin's for the links of the tenants they manage. Each change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admin.explain import principal_for
from gateway.admin.rules import ruleset_of
from gateway.admin.service import AdminContext, AdminError
from gateway.auth.emails import normalize_email
from gateway.config.durations import parse_duration
from gateway.config.settings import Settings
from gateway.context import Deciders
from gateway.deciders import build_deciders
from gateway.model import Principal
from gateway.shares import SHARE_PATH, downloadable
from gateway.store import share_links as share_store
from gateway.store.share_links import NewShare, ShareRow


@dataclass(frozen=True, slots=True)
class Minted:
    """A new link: its row and its URL (the only time the token is seen)."""

    share: ShareRow
    url: str


def share_ttl(settings: Settings, expires: str | float | None) -> float | AdminError:
    """The lifetime asked for (the default when ``None``), within ``files.share_max_ttl``."""
    if expires is None:
        return settings.share_default_ttl
    try:
        ttl = parse_duration(expires)
    except ValueError as error:
        return AdminError(f"expires: {error}")
    longest = settings.share_max_ttl
    if not 0 < ttl <= longest:
        return AdminError(
            f"expires: a share link lives more than 0s and at most {longest:.0f}s "
            "(files.share_max_ttl)"
        )
    return ttl


async def mint_share(
    ctx: AdminContext,
    gw: Deciders,
    *,
    minter: Principal,
    path: str,
    recipient: str,
    ttl: float,
    public_url: str,
) -> Minted | AdminError:
    """A link to ``path`` for ``recipient``, if ``minter`` may download it right now.

    A refusal names no owner: it is the same for a file the minter may not see and
    one that does not exist (I3).
    """
    address = normalize_email(recipient)
    if address is None:
        return AdminError("email: give one plain address, like name@example.com")
    if not path.startswith("/") or len(path) > 2048:
        return AdminError("path: give the file's path on the gateway, like /files/7")
    found = await downloadable(gw, minter, path)
    if isinstance(found, str):
        await ctx.audit_event(
            "share-refused", path=path[:1024], recipient=address, decision="deny", reason=found
        )
        return AdminError(f"{minter.email} may not download {path}; nothing to share", "not-found")
    share, token = await share_store.create_share(
        ctx.engine,
        NewShare(
            route=found.match.route.name,
            path=found.path,
            object_type=found.object_type,
            object_id=found.object_id,
            tenant=found.tenant,
            recipient=address,
            created_by=minter.email,
        ),
        now=ctx.clock(),
        ttl=ttl,
    )
    await ctx.audit_event(
        "share-created",
        tenant=share.tenant,
        share=share.id,
        path=share.path,
        recipient=address,
        minter=minter.email,
        expires_at=share.expires_at,
        resource_type=share.object_type,
        resource_id=share.object_id,
    )
    return Minted(share, f"{public_url.rstrip('/')}{SHARE_PATH}{token}")


def _sees(ctx: AdminContext, share: ShareRow) -> bool:
    actor = ctx.actor
    return share.created_by == actor.name or actor.manages(share.tenant)


async def list_shares(ctx: AdminContext) -> list[ShareRow]:
    """Live links the actor minted, and those of the tenants they manage."""
    actor = ctx.actor
    now = ctx.clock()
    if actor.superadmin:
        return await share_store.list_shares(ctx.engine, now=now)
    return await share_store.list_shares(
        ctx.engine, now=now, created_by=actor.name, tenants=actor.tenants
    )


async def revoke_share(ctx: AdminContext, share_id: int) -> ShareRow | AdminError:
    """Revoke a link at once (its minter, or an admin of its tenant)."""
    share = await share_store.get_share(ctx.engine, share_id)
    if share is None or not _sees(ctx, share):
        return AdminError(f"no share link {share_id}", "not-found")
    revoked = await share_store.revoke_share(
        ctx.engine, share_id, now=ctx.clock(), by=ctx.actor.name
    )
    if revoked:
        await ctx.audit_event(
            "share-revoked",
            tenant=share.tenant,
            share=share.id,
            path=share.path,
            recipient=share.recipient,
            minter=share.created_by,
        )
    return await share_store.get_share(ctx.engine, share_id) or share


async def mint_share_as(
    ctx: AdminContext, settings: Settings, *, minter: str, path: str, recipient: str, ttl: float
) -> Minted | AdminError:
    """``mint_share`` outside a gateway (the CLI): as the user ``minter`` right after
    signing in, under the active rules."""
    ruleset = await ruleset_of(ctx.engine, settings, None)
    if isinstance(ruleset, AdminError):
        return ruleset
    deciders = build_deciders(settings, ruleset, ctx.engine)
    person = await principal_for(deciders, minter, active_only=True)
    if person is None:
        return AdminError(f"no active user {minter!r}", "not-found")
    await deciders.ownership.start()
    try:
        return await mint_share(
            ctx,
            deciders,
            minter=person,
            path=path,
            recipient=recipient,
            ttl=ttl,
            public_url=settings.server.public_url,
        )
    finally:
        await deciders.ownership.close()
