"""Which gateway person an OIDC sign-in is: found by (issuer, subject), or newly tied.

An email address is only what a provider says, and any configured provider can say
anyone's. So a returning account is found by (issuer, subject) alone, and a *new*
(issuer, subject) is tied to a person only when one of these vouches for it:

* ``signed-in``: the person, signed in here, asked to add this account to their own
  (``/.gatehold/oidc/{provider}/start?link=1``; the sealed flow names them);
* ``invite``: an invite addressed to this provider (``gatehold users add EMAIL … --sso
  PROVIDER``), consumed by the first sign-in whose verified email matches;
* ``email``: the provider opted in with ``link_by_email: true`` and says
  ``email_verified: true``;
* ``jit``: just-in-time provisioning creates a *new* person — never one whose email
  another person already has.

Anything else is refused as ``account-not-linked`` and audited; the page then shows
the same code as for an unknown person, so the refusal does not tell whether an
account exists (I9).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.oidc_values import Identified, OidcSignIn, Refused
from gateway.config.settings import OidcProviderSettings
from gateway.model import Membership
from gateway.store import external_accounts as account_store
from gateway.store import sso_invites as invite_store
from gateway.store import users as user_store

NOT_LINKED = "account-not-linked"
SHOWN_FOR_NEW = "not-invited"
"""What the page says for every refusal that depends on whether the email is known."""


async def sign_in_person(
    engine: AsyncEngine,
    who: Identified,
    *,
    settings: OidcProviderSettings,
    grants: tuple[Membership, ...],
    now: float,
) -> OidcSignIn | Refused:
    """The person ``who`` signs in as, with the memberships the provider's claims grant."""
    account = await account_store.find_account(engine, who.issuer, who.subject)
    before: tuple[Membership, ...] = ()
    linked_via = ""
    if account is not None:
        if who.link is not None and account.user_id != who.link.user_id:
            return Refused("account-linked-elsewhere", who.provider, who.email)
        user_id, before = account.user_id, account.granted
    else:
        tie = await _new_tie(engine, who, settings=settings, grants=grants, now=now)
        if isinstance(tie, Refused):
            return tie
        user_id, linked_via = tie
        if not await account_store.link_account(
            engine,
            issuer=who.issuer,
            subject=who.subject,
            user_id=user_id,
            provider=who.provider,
            now=now,
        ):
            return Refused("account-linked-elsewhere", who.provider, who.email)
    user = await user_store.get_user(engine, user_id)
    if user is None or not user.active:
        return Refused("user-inactive", who.provider, who.email)
    changed = await _apply_grants(engine, user, before, grants, settings)
    await account_store.record_login(
        engine,
        issuer=who.issuer,
        subject=who.subject,
        granted=grants if settings.group_grants else (),
        now=now,
    )
    return OidcSignIn(user.id, user.email, who.rd, who.auth_time, changed, linked_via)


async def _new_tie(
    engine: AsyncEngine,
    who: Identified,
    *,
    settings: OidcProviderSettings,
    grants: tuple[Membership, ...],
    now: float,
) -> tuple[int, str] | Refused:
    """(user id, how) for an (issuer, subject) seen for the first time, or the refusal."""
    if who.link is not None:
        return who.link.user_id, "signed-in"
    if settings.require_verified_email and not who.email_verified:
        # The email is about to decide who this is: a missing claim is no verification.
        return Refused("email-unverified", who.provider, who.email)
    invited = await invite_store.consume(engine, email=who.email, provider=who.provider, now=now)
    if invited is not None:
        return invited, "invite"
    existing = await user_store.get_user_by_email(engine, who.email)
    if existing is not None:
        if settings.link_by_email and who.email_verified:
            return existing.id, "email"
        return Refused(NOT_LINKED, who.provider, who.email, shown=SHOWN_FOR_NEW)
    if settings.provisioning != "jit":
        return Refused("not-invited", who.provider, who.email)
    if not grants:
        return Refused("no-memberships", who.provider, who.email, shown=SHOWN_FOR_NEW)
    created = await user_store.create_user(engine, who.email, memberships=grants)
    if created is None:  # someone took the email meanwhile: still never shared
        return Refused(NOT_LINKED, who.provider, who.email, shown=SHOWN_FOR_NEW)
    return created, "jit"


async def _apply_grants(
    engine: AsyncEngine,
    user: user_store.UserRow,
    before: tuple[Membership, ...],
    grants: tuple[Membership, ...],
    settings: OidcProviderSettings,
) -> bool:
    """Re-apply the claims' memberships; whether anything the person holds changed."""
    if not settings.group_grants:
        return False
    changed = False
    for stale in set(before) - set(grants):
        changed |= await user_store.remove_membership(engine, user.id, stale)
    new = [grant for grant in grants if grant not in user.memberships]
    if new:
        await user_store.add_user(engine, user.email, memberships=new)
        changed = True
    return changed
