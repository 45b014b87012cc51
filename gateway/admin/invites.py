"""Inviting a person: memberships now, a mailed sign-in link, ``invited`` until they sign in.

The person is created (or found) with the memberships the invite grants, so the link
signs them straight into what they were invited to. They stay ``invited`` until their
first magic-link or SSO sign-in (``store.sessions.create_session`` records it). A tenant
admin invites only into the tenants they administer; a refused invite stores nothing
and mails nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.admin.service import (
    CLI_ADMIN,
    Admin,
    AdminContext,
    AdminError,
    _address,
    _check_grants,
    _end_sessions,
    _grants,
    _present,
    _user_state,
)
from gateway.auth.magic_link import Invitation
from gateway.errors import StoreUnavailable
from gateway.model import GLOBAL_TENANT, Membership
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.users import UserRow

DAY = 86400.0
DEFAULT_VALID_FOR = 3 * DAY
"""How long an invite's link works; afterwards the person asks for one on the sign-in page."""
MAX_VALID_FOR = 14 * DAY
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class InvitedUser(UserRow):
    """The invited person, and whether their mail waits in the outbox (the mail server
    could not be reached; it is sent when it is back, while the link still works)."""

    queued: bool = False

    @classmethod
    def of(cls, row: UserRow, *, queued: bool) -> InvitedUser:
        fields = {f.name: getattr(row, f.name) for f in dataclasses.fields(UserRow)}
        return cls(**fields, queued=queued)


QUEUED_NOTE = (
    "the mail server cannot be reached now: the invitation waits in the outbox "
    "and is sent when it is back"
)


async def invite_user(
    ctx: AdminContext,
    email: str,
    memberships: Sequence[Membership],
    *,
    valid_for: float = DEFAULT_VALID_FOR,
    inviter: str = "",
    display_name: str = "",
) -> InvitedUser | AdminError:
    """Grant ``memberships`` to ``email`` (created if new) and mail them a sign-in link.

    ``inviter`` is how the mail names who invited them (default: the acting admin); a
    non-empty ``display_name`` becomes the person's name.
    Returns the person, ``queued`` when the mail server could not take the mail now
    (it waits in the outbox and goes out when the server is back); if the mail could
    not even be queued, an ``AdminError`` saying so (the invite is stored and audited,
    and inviting again sends a new link).
    """
    address = _address(email)
    if isinstance(address, AdminError):
        return address
    refused = await _invitable(ctx, memberships, valid_for)
    if refused is not None:
        return refused
    before = await user_store.get_user_by_email(ctx.engine, address)
    if before is not None and not before.active:
        return AdminError(f"{address} is deactivated; reactivate them instead of inviting")
    name = display_name.strip()
    if len(name) > MAX_NAME:
        return AdminError(f"a display name has at most {MAX_NAME} characters")
    user_id = await user_store.add_user(
        ctx.engine, address, memberships=memberships, display_name=name
    )
    await user_store.mark_invited(ctx.engine, user_id, by=ctx.actor.name, now=ctx.clock())
    after = _present(await user_store.get_user(ctx.engine, user_id))
    invitation = Invitation(
        email=address,
        inviter=inviter.strip() or _name(ctx.actor),
        tenants=await _tenant_names(ctx, memberships),
        valid_for=valid_for,
    )
    problem = await _mail(ctx, invitation)
    queued = problem == _QUEUED
    tenants = {m.tenant for m in memberships}
    await ctx.audit_event(
        "user-invited",
        tenant=next(iter(tenants)) if len(tenants) == 1 else "",
        subject=address,
        grants=_grants(memberships),
        valid_for=valid_for,
        mailed=problem is None,
        queued=queued,
        before=None if before is None else _user_state(before),
        after=_user_state(after),
    )
    if before is not None and before.memberships != after.memberships:
        await _end_sessions(ctx, after, "membership-changed")
    if problem is not None and not queued:
        return AdminError(
            f"{address} is invited, but the mail could not be sent ({problem}); "
            "check the mail settings and invite again"
        )
    return InvitedUser.of(after, queued=queued)


async def _invitable(
    ctx: AdminContext, memberships: Sequence[Membership], valid_for: float
) -> AdminError | None:
    if ctx.send_invite is None:
        return AdminError("this process cannot send mail; invite from a configured gatehold")
    if not memberships:
        return AdminError("an invite grants at least one membership, e.g. --grant standard@acme")
    if not 0 < valid_for <= MAX_VALID_FOR:
        return AdminError("an invite's link must work for a positive time of at most 14 days")
    return await _check_grants(ctx, memberships)


_QUEUED = "queued"


async def _mail(ctx: AdminContext, invitation: Invitation) -> str | None:
    """``None`` once the mail is handed to the mail server, ``_QUEUED`` when it waits in
    the outbox for the server to come back, else what went wrong."""
    assert ctx.send_invite is not None  # noqa: S101 (checked by _invitable)
    try:
        delivered = await ctx.send_invite(invitation)
    except StoreUnavailable:
        raise
    except Exception as error:  # the message could not even be queued: reported
        return f"{type(error).__name__}: {error}"
    return None if delivered else _QUEUED


def _name(actor: Admin) -> str:
    return "An administrator" if actor == CLI_ADMIN else actor.name


async def _tenant_names(ctx: AdminContext, memberships: Sequence[Membership]) -> tuple[str, ...]:
    names: list[str] = []
    for tenant in dict.fromkeys(m.tenant for m in memberships):
        if tenant == GLOBAL_TENANT:
            names.append("every tenant")
            continue
        row = await tenant_store.get_tenant(ctx.engine, tenant)
        shown = row.display_name if row is not None else tenant
        names.append(shown if shown == tenant else f"{shown} ({tenant})")
    return tuple(names)
