"""What a person has enrolled to prove who they are, read in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, writing


@dataclass(frozen=True, slots=True)
class Factors:
    """A person's enrolled credentials (none of their secrets)."""

    password: bool = False
    totp: bool = False
    """A confirmed authenticator app (an unconfirmed enrolment does not count)."""
    recovery_codes_left: int = 0
    passkeys: int = 0

    @property
    def second_factor(self) -> bool:
        """Whether a sign-in of theirs must show a second factor: they have one."""
        return self.totp or self.passkeys > 0


async def factors_of(engine: AsyncEngine, user_id: int) -> Factors:
    """The factors ``user_id`` has enrolled (one round trip)."""
    t = tables
    password = select(func.count()).where(t.passwords.c.user_id == user_id).scalar_subquery()
    totp = (
        select(func.count())
        .where(t.totp_factors.c.user_id == user_id, t.totp_factors.c.confirmed_at.is_not(None))
        .scalar_subquery()
    )
    codes = (
        select(func.count())
        .where(t.recovery_codes.c.user_id == user_id, t.recovery_codes.c.used_at.is_(None))
        .scalar_subquery()
    )
    passkeys = select(func.count()).where(t.passkeys.c.user_id == user_id).scalar_subquery()
    async with reading(engine) as conn:
        row = (
            await conn.execute(
                select(
                    password.label("password"),
                    totp.label("totp"),
                    codes.label("codes"),
                    passkeys.label("passkeys"),
                )
            )
        ).one()
    return Factors(
        password=bool(row.password),
        totp=bool(row.totp),
        recovery_codes_left=int(row.codes),
        passkeys=int(row.passkeys),
    )


async def reset_second_factors(engine: AsyncEngine, user_id: int) -> None:
    """Remove every second factor of ``user_id``: the authenticator app (enrolled or
    half-enrolled), all recovery codes, every passkey and passkey challenge.

    The password stays: it is a first factor. Whoever talked an admin into the reset
    (the person who lost a phone, or someone pretending to be them) must still show it,
    or a sign-in link from their mailbox, before enrolling a new second factor.
    """
    t = tables
    async with writing(engine) as conn:
        await conn.execute(delete(t.totp_factors).where(t.totp_factors.c.user_id == user_id))
        await conn.execute(delete(t.recovery_codes).where(t.recovery_codes.c.user_id == user_id))
        await conn.execute(delete(t.passkeys).where(t.passkeys.c.user_id == user_id))
        await conn.execute(
            delete(t.webauthn_challenges).where(t.webauthn_challenges.c.user_id == user_id)
        )
