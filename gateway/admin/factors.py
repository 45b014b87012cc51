"""Resetting a person's second factors: the help desk's answer to a lost phone or key.

Every second factor goes (authenticator app, recovery codes, passkeys); the password
stays, so the next sign-in still needs a first factor before a new second factor is
enrolled (a person whose tenant or role requires one is led to enrol at once). Every
session of the person ends and every sign-in they had begun is dropped, so nothing
started with an old factor outlives the reset.

A tenant admin resets only people who belong to their tenants alone, as for every
action on a person as a whole (sessions, deactivation): a second factor guards every
tenant the person reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admin import service
from gateway.admin.service import AdminContext, AdminError
from gateway.store import factors as factor_store
from gateway.store import pending_sign_ins as pending_store
from gateway.store.factors import Factors


@dataclass(frozen=True, slots=True)
class FactorsReset:
    """What a reset removed and ended."""

    email: str
    removed: Factors
    """The factors the person had (the password is kept)."""
    sessions: int
    """Sessions ended."""
    pending: int
    """Sign-ins begun and not finished, dropped."""


async def reset_second_factors(ctx: AdminContext, email: str) -> FactorsReset | AdminError:
    """Remove every second factor of a person, end their sessions, drop their pending
    sign-ins; audited as ``factors-reset`` (actor = the admin, subject = the person)."""
    user = await service.get_user(ctx, email)
    if isinstance(user, AdminError):
        return user
    refused = service._whole_person(ctx.actor, user)
    if refused is not None:
        return refused
    before = await factor_store.factors_of(ctx.engine, user.id)
    await factor_store.reset_second_factors(ctx.engine, user.id)
    pending = await pending_store.drop_pending_of(ctx.engine, user.id)
    ended = await ctx.revoke(user.id)
    await ctx.audit_event(
        "factors-reset",
        subject=user.email,
        before=_factors_state(before),
        after=_factors_state(Factors(password=before.password)),
        sessions=ended,
        pending_sign_ins=pending,
    )
    return FactorsReset(user.email, before, ended, pending)


def _factors_state(factors: Factors) -> dict[str, object]:
    return {
        "password": factors.password,
        "totp": factors.totp,
        "recovery_codes_left": factors.recovery_codes_left,
        "passkeys": factors.passkeys,
    }


async def factors_of_person(ctx: AdminContext, email: str) -> Factors | AdminError:
    """What a person the actor administers has enrolled (none of its secrets)."""
    user = await service.get_user(ctx, email)
    if isinstance(user, AdminError):
        return user
    return await factor_store.factors_of(ctx.engine, user.id)
