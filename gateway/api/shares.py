"""``/shares``: share links of files, for every signed-in person (not only admins).

A person mints links to files they may download now and lists and revokes their own;
an admin also lists and revokes those of the tenants they manage. Minting needs a
person: an API key shares nothing.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from gateway.admin import shares
from gateway.admin.service import AdminError
from gateway.admin.shares import share_ttl
from gateway.api.models import Strict, Text
from gateway.api.operations import API, Call, Empty
from gateway.store.share_links import ShareRow


class NewShare(Strict):
    """A link to one file for one person."""

    path: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    """The file's path on the gateway, as a download would ask for it (``/files/7``)."""
    email: Text
    """The one person who may open it; they sign in as this address."""
    expires_in: str | float | None = Field(None, examples=["1h", 900])
    """Lifetime (``30m``, ``2h`` or seconds); default ``files.share_default_ttl``, at
    most ``files.share_max_ttl``."""


class Share(BaseModel):
    id: int
    path: str
    route: str
    tenant: str
    resource_type: str
    resource_id: str
    email: str
    """Whom it is for."""
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None

    @classmethod
    def of(cls, row: ShareRow) -> Share:
        return cls(
            id=row.id,
            path=row.path,
            route=row.route,
            tenant=row.tenant,
            resource_type=row.object_type,
            resource_id=row.object_id,
            email=row.recipient,
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
        )


class CreatedShare(BaseModel):
    url: str
    """The link; shown only in this answer (the store keeps a hash of its token)."""
    share: Share


class Shares(BaseModel):
    items: list[Share]
    csrf_token: str | None
    """Send as ``X-CSRF-Token`` to mint or revoke with the session cookie."""


@API.get("/shares", response=Shares, people=True)
async def list_shares(call: Call[Empty, Empty]) -> Shares:
    """Live share links: the caller's own, and those of the tenants they manage."""
    rows = await shares.list_shares(call.ctx)
    return Shares(items=[Share.of(row) for row in rows], csrf_token=call.csrf_token)


@API.post("/shares", body=NewShare, response=CreatedShare, status=201, errors=(404,), people=True)
async def create_share(call: Call[NewShare, Empty]) -> CreatedShare | AdminError:
    """Mint a link to a file the caller may download now, for one person."""
    minter = call.caller.principal
    if minter is None:
        return AdminError("a person shares a file, signed in; an API key cannot", "forbidden")
    settings = call.ctx.settings
    if settings is None:
        return AdminError("share links need the gateway's settings", "conflict")
    ttl = share_ttl(settings, call.body.expires_in)
    if isinstance(ttl, AdminError):
        return ttl
    minted = await shares.mint_share(
        call.ctx,
        call.gateway,
        minter=minter,
        path=call.body.path,
        recipient=call.body.email,
        ttl=ttl,
        public_url=settings.server.public_url,
    )
    if isinstance(minted, AdminError):
        return minted
    return CreatedShare(url=minted.url, share=Share.of(minted.share))


@API.delete(
    "/shares/{share_id}",
    response=Share,
    integers=frozenset({"share_id"}),
    errors=(404,),
    people=True,
)
async def revoke_share(call: Call[Empty, Empty]) -> Share | AdminError:
    """Revoke a link now, on every replica (its minter, or an admin of its tenant)."""
    row = await shares.revoke_share(call.ctx, call.path["share_id"])
    return row if isinstance(row, AdminError) else Share.of(row)
