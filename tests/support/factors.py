"""Second factors put straight into the store, and demo rules that require them.

The enrolment pages are not needed to test what depends on a factor being there:
a TOTP secret (not sealed: the tests read it back with pyotp), recovery codes and a
passkey row count as enrolled for ``store.factors.factors_of``.
"""

from __future__ import annotations

import hashlib
import time

import pyotp
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import tables
from gateway.store import users as user_store
from tests.support.stack import DEMO_RULES

MFA_ROUTE = '  - name: invoice-list\n    match: {path: "/api/invoices", methods: [GET]}\n'


def mfa_rules(*, route: bool = True, tenants: tuple[str, ...] = ()) -> str:
    """The demo rules, with ``mfa: required`` on ``invoice-list`` (``GET /api/invoices``)
    and ``mfa: {tenants: …}`` at the top level."""
    text = DEMO_RULES.read_text()
    assert MFA_ROUTE in text, "the demo rules still have their invoice-list route"
    if route:
        text = text.replace(MFA_ROUTE, MFA_ROUTE + "    mfa: required\n")
    if tenants:
        text = text.replace("\nroutes:\n", f"\nmfa:\n  tenants: [{', '.join(tenants)}]\nroutes:\n")
    return text


async def user_id(engine: AsyncEngine, email: str) -> int:
    user = await user_store.get_user_by_email(engine, email)
    assert user is not None
    return user.id


async def enrol(
    engine: AsyncEngine,
    email: str,
    *,
    totp: bool = True,
    codes: int = 0,
    passkeys: int = 0,
    password: bool = False,
) -> str:
    """Give ``email`` confirmed factors; returns the TOTP secret (base32)."""
    uid = await user_id(engine, email)
    secret = pyotp.random_base32()
    now = time.time()
    async with engine.begin() as conn:
        if totp:
            await conn.execute(
                insert(tables.totp_factors).values(
                    user_id=uid, secret=secret, created_at=now, confirmed_at=now
                )
            )
        for n in range(codes):
            code_hash = hashlib.sha256(f"{email}-{n}".encode()).hexdigest()
            await conn.execute(
                insert(tables.recovery_codes).values(
                    user_id=uid, code_hash=code_hash, created_at=now
                )
            )
        for n in range(passkeys):
            await conn.execute(
                insert(tables.passkeys).values(
                    user_id=uid,
                    credential_id=f"{email}-key-{n}",
                    public_key=b"\x01\x02",
                    created_at=now,
                )
            )
        if password:
            await conn.execute(insert(tables.passwords).values(**_password_row(uid, now)))
    return secret


def _password_row(uid: int, now: float) -> dict[str, object]:
    """A password row with every column the table requires (the hash is never checked)."""
    row: dict[str, object] = {"user_id": uid}
    for column in tables.passwords.columns:
        if column.name == "user_id" or column.nullable or column.server_default is not None:
            continue
        row[column.name] = now if "_at" in column.name else "$argon2id$v=19$not-a-real-hash"
    return row
