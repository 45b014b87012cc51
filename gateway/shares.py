"""Share links of files (SPEC §7): who may mint one, and whether one opens now.

A link is ``/.gatehold/share/<token>``; the token is 256 random bits and the store
keeps only its SHA-256 (``store/share_links.py``). No signature is needed: a token
nobody minted names no row, so a changed or made-up token answers like any unknown
address, and revoking is one ``UPDATE`` that every replica sees on its next open
because the row is read on every open, never cached.

Whether someone may download a path is never judged here: ``downloadable`` asks
``pipeline.decide`` — the very decision of a live ``GET`` of that path — as the
person in question. A link is minted only by someone it allows, and on every open it
is asked again for the minter: a minter who lost access, or an object that moved to
another tenant, kills the link. The share itself is the recipient's only grant: that
one path, ``GET``/``HEAD`` only, until the expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.admin.actors import SYSTEM_CREDENTIALS
from gateway.admin.explain import principal_for, simulated_request
from gateway.context import Deciders
from gateway.model import GLOBAL_TENANT, Anonymous, Decision, Principal, Rejection, RouteMatch
from gateway.pipeline import decide
from gateway.store.share_links import ShareRow

SHARE_PATH = "/.gatehold/share/"
"""Where share links live on the gateway."""


class ShareRefusal(StrEnum):
    """Why a link does not open (the audit reason; every one answers 404)."""

    UNKNOWN = "share-unknown"
    REVOKED = "share-revoked"
    EXPIRED = "share-expired"
    FOREIGN_PERSON = "share-foreign-person"
    MINTER_LOST_ACCESS = "share-minter-lost-access"
    OBJECT_MOVED = "share-object-moved"
    NOT_A_DOWNLOAD = "share-not-a-download"


@dataclass(frozen=True, slots=True)
class Download:
    """A path a person may download now, and what it names."""

    path: str
    """The canonical path (what the upstream gets)."""
    match: RouteMatch
    decision: Decision
    tenant: str
    object_type: str = ""
    object_id: str = ""


@dataclass(frozen=True, slots=True)
class SignInFirst:
    """The link is live, but nobody is signed in: offer a sign-in link to its recipient."""


@dataclass(frozen=True, slots=True)
class Opens:
    """The link is live and its recipient is signed in."""

    recipient: Principal


def judge_open(
    share: ShareRow | None, caller: Principal | Anonymous | Rejection, *, now: float
) -> Opens | SignInFirst | ShareRefusal:
    """Whether ``caller`` may open ``share`` now, before the minter's access is asked.

    A link that is dead answers the same to everyone; only then does the caller matter.
    A signed-in person with another email is refused, never offered to sign in: the
    page offering a link is for whoever is not signed in at all.
    """
    if share is None:
        return ShareRefusal.UNKNOWN
    if share.revoked_at is not None:
        return ShareRefusal.REVOKED
    if now >= share.expires_at:
        return ShareRefusal.EXPIRED
    if not isinstance(caller, Principal):
        return SignInFirst()
    if caller.auth_method in SYSTEM_CREDENTIALS or caller.email != share.recipient:
        return ShareRefusal.FOREIGN_PERSON
    return Opens(caller)


def masked(email: str) -> str:
    """A hint of an address for the page that offers a sign-in link: ``b***@p***.test``.

    Enough for the right person to recognise their address, not enough for anyone
    else who holds the link to learn it.
    """
    local, _, domain = email.partition("@")
    host, dot, suffix = domain.rpartition(".")
    if not dot:
        host, suffix = domain, ""
    return f"{local[:1]}***@{host[:1]}***{dot}{suffix}"


async def downloadable(gw: Deciders, principal: Principal, path: str) -> Download | str:
    """The download of ``GET path`` by ``principal`` if live traffic would allow it now,
    else the reason code it would be refused with.

    Only a file route's answer can be shared, and only a path without a query: the
    link serves exactly one canonical target.
    """
    if "?" in path or "#" in path:
        return "path-has-query"
    verdict = await decide(gw, simulated_request("GET", path), principal=principal)
    if isinstance(verdict.admitted, Rejection):
        return verdict.admitted.reason.value
    decision, match = verdict.decision, verdict.match
    if not decision.allowed:
        return decision.reason.value
    if not isinstance(match, RouteMatch) or match.route.file_disposition is None:
        return ShareRefusal.NOT_A_DOWNLOAD.value
    if match.route.public or decision.tenant is None or decision.tenant == GLOBAL_TENANT:
        return ShareRefusal.NOT_A_DOWNLOAD.value
    resource = decision.resource
    return Download(
        path=verdict.admitted.target.path,
        match=match,
        decision=decision,
        tenant=decision.tenant,
        object_type=resource.type if resource else "",
        object_id=resource.id if resource else "",
    )


async def still_downloadable(gw: Deciders, share: ShareRow) -> Download | ShareRefusal:
    """The minter's download of the link's path, asked again now; or why the link died.

    What is asked is the minter's standing (memberships, roles, the object's owner), not
    their session: a second factor they showed when minting counts as still shown, and
    the recipient must show their own where the file needs one (``share_pages``).
    """
    minter = await principal_for(gw, share.created_by, active_only=True, mfa=True)
    if minter is None:
        return ShareRefusal.MINTER_LOST_ACCESS
    found = await downloadable(gw, minter, share.path)
    if isinstance(found, str):
        return ShareRefusal.MINTER_LOST_ACCESS
    named = (found.match.route.name, found.tenant, found.object_type, found.object_id)
    if named != (share.route, share.tenant, share.object_type, share.object_id):
        return ShareRefusal.OBJECT_MOVED
    return found
