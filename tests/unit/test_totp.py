"""Authenticator-app codes: the window, one use per code, never an older one, sealed at rest."""

from __future__ import annotations

import asyncio
import secrets

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.totp import (
    PERIOD,
    Authenticators,
    SecretSeal,
    grouped,
    matching_step,
    new_secret,
    provisioning_uri,
    qr_svg,
)
from gateway.store import tables
from gateway.store.factors import factors_of
from gateway.store.users import add_user
from tests.support.store_backends import StoreUnderTest

NOW = 1_800_000_015.0
"""Half-way through a 30-second step."""


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def authenticators(engine: AsyncEngine, clock: Clock, key: bytes | None = None) -> Authenticators:
    seal = SecretSeal(key or secrets.token_bytes(32))
    return Authenticators(engine, seal, issuer="Acme Portal", clock=clock)


async def enrolled(
    engine: AsyncEngine, clock: Clock, email: str
) -> tuple[int, str, Authenticators]:
    """A person with a confirmed authenticator whose confirming code was of ``NOW - 60``."""
    user = await add_user(engine, email, memberships=[])
    auth = authenticators(engine, clock)
    secret = new_secret()
    saved = clock.now
    clock.now = NOW - 60
    assert await auth.confirm(user, secret, code_at(secret, clock.now))
    clock.now = saved
    return user, secret, auth


def test_a_new_secret_has_160_bits_and_the_uri_names_issuer_account_and_defaults() -> None:
    secret = new_secret()
    assert len(secret) == 32 and secret != new_secret()
    uri = provisioning_uri(secret, email="alice@acme.test", issuer="Acme Portal")
    assert uri.startswith("otpauth://totp/Acme%20Portal:alice%40acme.test?")
    assert f"secret={secret}" in uri and "issuer=Acme%20Portal" in uri
    totp = pyotp.parse_uri(uri)
    assert (totp.digits, totp.interval, totp.digest().name) == (6, 30, "sha1")
    assert grouped(secret).replace(" ", "") == secret and len(grouped(secret).split()) == 8


def test_the_qr_code_is_inline_svg_with_no_external_reference() -> None:
    svg = qr_svg(provisioning_uri(new_secret(), email="a@acme.test", issuer="Gatehold"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "href" not in svg and "http" not in svg and "style=" not in svg


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (0, True),
        (-PERIOD, True),
        (PERIOD, True),
        (-2 * PERIOD, False),
        (2 * PERIOD, False),
    ],
    ids=[
        "the current step is accepted",
        "one step behind is accepted",
        "one step ahead is accepted",
        "two steps behind is refused",
        "two steps ahead is refused",
    ],
)
def test_codes_are_accepted_one_step_either_side(offset: int, accepted: bool) -> None:
    secret = new_secret()
    step = matching_step(secret, code_at(secret, NOW + offset), NOW)
    assert (step is not None) is accepted
    if accepted:
        assert step == int(NOW + offset) // PERIOD


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"],
    ids=["empty", "5", "7", "letters", "arabic digits"],
)
def test_malformed_codes_never_match(code: str) -> None:
    assert matching_step(new_secret(), code, NOW) is None


async def test_a_code_is_accepted_once(engine: AsyncEngine) -> None:
    clock = Clock(NOW)
    user, secret, auth = await enrolled(engine, clock, "ann@acme.test")
    code = code_at(secret, NOW)
    assert await auth.verify(user, code)
    assert not await auth.verify(user, code), "a used code must be refused"


async def test_an_older_code_is_refused_after_a_newer_one(engine: AsyncEngine) -> None:
    clock = Clock(NOW)
    user, secret, auth = await enrolled(engine, clock, "bo@acme.test")
    assert await auth.verify(user, code_at(secret, NOW + PERIOD))  # a fast phone clock
    assert not await auth.verify(user, code_at(secret, NOW))
    assert not await auth.verify(user, code_at(secret, NOW - PERIOD))
    clock.now = NOW + 2 * PERIOD
    assert await auth.verify(user, code_at(secret, clock.now))


async def test_the_confirming_code_cannot_sign_in(engine: AsyncEngine) -> None:
    clock = Clock(NOW - 60)
    user = await add_user(engine, "cy@acme.test", memberships=[])
    auth = authenticators(engine, clock)
    secret = new_secret()
    code = code_at(secret, clock.now)
    assert await auth.confirm(user, secret, code)
    assert not await auth.verify(user, code)


async def test_concurrent_uses_of_one_code_let_exactly_one_through(
    store_under_test: StoreUnderTest,
) -> None:
    engine = store_under_test.engine
    other = store_under_test.open_engine()  # as another replica would
    try:
        clock = Clock(NOW)
        user, secret, auth = await enrolled(engine, clock, "di@acme.test")
        twin = Authenticators(other, auth.seal, issuer="Acme Portal", clock=clock)
        code = code_at(secret, NOW)
        results = await asyncio.gather(
            *(checker.verify(user, code) for checker in [auth, twin] * 4)
        )
        assert sorted(results) == [False] * 7 + [True]
    finally:
        await other.dispose()


async def test_the_stored_secret_is_sealed_and_useless_without_the_key(engine: AsyncEngine) -> None:
    clock = Clock(NOW)
    user, secret, auth = await enrolled(engine, clock, "ed@acme.test")
    async with engine.connect() as conn:
        row = (await conn.execute(select(tables.totp_factors))).one()
    stored = " ".join(str(value) for value in row)
    assert secret not in stored and secret.lower() not in stored
    assert grouped(secret) not in stored
    stranger = authenticators(engine, clock)  # the database without the key file
    assert not await stranger.verify(user, code_at(secret, NOW))
    assert await auth.verify(user, code_at(secret, NOW))


async def test_a_set_up_is_no_factor_until_confirmed_and_binds_person_and_purpose(
    engine: AsyncEngine,
) -> None:
    clock = Clock(NOW)
    user = await add_user(engine, "fy@acme.test", memberships=[])
    other = await add_user(engine, "gi@acme.test", memberships=[])
    auth = authenticators(engine, clock)
    setup = auth.setup(user_id=user, email="fy@acme.test", purpose="account")
    assert not (await factors_of(engine, user)).totp
    assert auth.candidate(setup.sealed, user_id=other, purpose="account") is None
    assert auth.candidate(setup.sealed, user_id=user, purpose="sign-in") is None
    middle = len(setup.sealed) // 2
    flipped = "A" if setup.sealed[middle] != "A" else "B"
    forged = setup.sealed[:middle] + flipped + setup.sealed[middle + 1 :]
    assert auth.candidate(forged, user_id=user, purpose="account") is None
    secret = auth.candidate(setup.sealed, user_id=user, purpose="account")
    assert secret is not None and grouped(secret) == setup.secret_text
    assert not await auth.confirm(
        user, secret, "000000" if code_at(secret, NOW) != "000000" else "111111"
    )
    assert not (await factors_of(engine, user)).totp
    clock.now = NOW + 16 * 60
    assert auth.candidate(setup.sealed, user_id=user, purpose="account") is None, "expired"
    clock.now = NOW
    assert await auth.confirm(user, secret, code_at(secret, NOW))
    assert (await factors_of(engine, user)).totp


async def test_a_new_app_replaces_the_old_one(engine: AsyncEngine) -> None:
    clock = Clock(NOW)
    user, old, auth = await enrolled(engine, clock, "hu@acme.test")
    new = new_secret()
    assert await auth.confirm(user, new, code_at(new, NOW - PERIOD))
    assert not await auth.verify(user, code_at(old, NOW))
    assert await auth.verify(user, code_at(new, NOW))
    assert await auth.remove(user)
    assert not await auth.verify(user, code_at(new, NOW + PERIOD))
    assert not (await factors_of(engine, user)).totp
