"""Passkey ceremonies against a software authenticator, on both store backends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.passkeys import (
    Asserted,
    Passkeys,
    Refused,
    Registered,
    rp_id_of,
    rp_id_problem,
    user_handle,
)
from gateway.config.settings import PasskeySettings
from gateway.store import passkeys as store
from gateway.store.users import add_user
from tests.support.soft_authenticator import SoftAuthenticator

ORIGIN = "https://gate.acme.test"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def ceremonies(engine: AsyncEngine, clock: Clock | None = None) -> Passkeys:
    return Passkeys(PasskeySettings(), engine=engine, public_url=ORIGIN, clock=clock or Clock())


async def registered(
    passkeys: Passkeys, user: int, device: SoftAuthenticator, name: str = "Laptop"
) -> Registered:
    options = json.loads(await passkeys.registration_options(user_id=user, email="x@acme.test"))
    done = await passkeys.register(device.register(options), user_id=user, name=name)
    assert isinstance(done, Registered), done
    return done


async def options_for(passkeys: Passkeys, user: int | None) -> dict[str, Any]:
    options: dict[str, Any] = json.loads(await passkeys.authentication_options(user_id=user))
    return options


def test_the_rp_id_is_the_public_hosts_unless_configured() -> None:
    assert rp_id_of(PasskeySettings(), "https://gate.acme.test:8443") == "gate.acme.test"
    assert rp_id_of(PasskeySettings(rp_id="acme.test"), "https://gate.acme.test") == "acme.test"


async def test_a_registered_passkey_signs_in_and_its_use_is_recorded(engine: AsyncEngine) -> None:
    clock = Clock()
    passkeys = ceremonies(engine, clock)
    user = await add_user(engine, "ann@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN)
    options = json.loads(await passkeys.registration_options(user_id=user, email="ann@acme.test"))
    assert options["rp"] == {"id": "gate.acme.test", "name": "Gatehold"}
    assert options["user"]["name"] == "ann@acme.test"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    done = await registered(passkeys, user, device, name="  Work laptop  ")
    assert done.name == "Work laptop" and done.credential_id == device.id
    assert device.user_handle == user_handle(user)

    again = json.loads(await passkeys.registration_options(user_id=user, email="ann@acme.test"))
    assert [c["id"] for c in again["excludeCredentials"]] == [device.id]

    clock.now += 30
    asked = await options_for(passkeys, user)
    assert [c["id"] for c in asked["allowCredentials"]] == [device.id]
    used = await passkeys.authenticate(device.sign_in(asked), user_id=user)
    assert isinstance(used, Asserted) and used.passkey.user_id == user
    (stored,) = await store.passkeys_of(engine, user)
    assert stored.sign_count == 1 and stored.last_used_at == NOW + 30


async def test_an_answer_is_accepted_once(engine: AsyncEngine) -> None:
    passkeys = ceremonies(engine)
    user = await add_user(engine, "bo@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN)
    await registered(passkeys, user, device)
    answer = device.sign_in(await options_for(passkeys, user))
    assert isinstance(await passkeys.authenticate(answer, user_id=user), Asserted)
    assert await passkeys.authenticate(answer, user_id=user) == Refused("challenge-unknown")


async def test_a_password_less_sign_in_needs_user_verification(engine: AsyncEngine) -> None:
    passkeys = ceremonies(engine)
    user = await add_user(engine, "cy@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN)
    await registered(passkeys, user, device)
    options = await options_for(passkeys, None)
    assert options["userVerification"] == "required" and options["allowCredentials"] == []
    touched = device.sign_in(options, verified=False)
    assert await passkeys.authenticate(touched, user_id=None) == Refused("user-not-verified")
    verified = device.sign_in(await options_for(passkeys, None))
    used = await passkeys.authenticate(verified, user_id=None)
    assert isinstance(used, Asserted) and used.passkey.user_id == user and used.user_verified
    # As a second factor, presence is enough: the first factor was shown already.
    second = device.sign_in(await options_for(passkeys, user), verified=False)
    assert isinstance(await passkeys.authenticate(second, user_id=user), Asserted)


async def test_an_authenticator_without_a_counter_may_stay_at_zero(engine: AsyncEngine) -> None:
    passkeys = ceremonies(engine)
    user = await add_user(engine, "di@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN, counts=False)
    await registered(passkeys, user, device)
    for _ in range(2):
        answer = device.sign_in(await options_for(passkeys, user))
        assert isinstance(await passkeys.authenticate(answer, user_id=user), Asserted)


async def test_a_challenge_serves_its_purpose_and_person_only(engine: AsyncEngine) -> None:
    passkeys = ceremonies(engine)
    ann = await add_user(engine, "ed@acme.test", memberships=[])
    bob = await add_user(engine, "fi@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN)
    await registered(passkeys, ann, device)
    for_bob = device.sign_in(await options_for(passkeys, bob))
    assert await passkeys.authenticate(for_bob, user_id=ann) == Refused("challenge-unknown")
    register = json.loads(await passkeys.registration_options(user_id=ann, email="ed@acme.test"))
    as_login = device.sign_in(register)
    assert await passkeys.authenticate(as_login, user_id=ann) == Refused("challenge-unknown")


async def test_only_one_of_many_concurrent_consumers_gets_a_challenge(engine: AsyncEngine) -> None:
    challenge = await store.issue_challenge(
        engine, purpose=store.AUTHENTICATE, user_id=None, now=NOW
    )
    won = await asyncio.gather(
        *(
            store.consume_challenge(
                engine, challenge, purpose=store.AUTHENTICATE, user_id=None, now=NOW + 1
            )
            for _ in range(5)
        )
    )
    assert sorted(won) == [False, False, False, False, True]
    late = await store.issue_challenge(engine, purpose=store.AUTHENTICATE, user_id=None, now=NOW)
    assert not await store.consume_challenge(
        engine, late, purpose=store.AUTHENTICATE, user_id=None, now=NOW + store.CHALLENGE_TTL + 1
    )


async def test_a_credential_is_registered_once(engine: AsyncEngine) -> None:
    passkeys = ceremonies(engine)
    ann = await add_user(engine, "gu@acme.test", memberships=[])
    bob = await add_user(engine, "ha@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN)
    await registered(passkeys, ann, device)
    options = json.loads(await passkeys.registration_options(user_id=bob, email="ha@acme.test"))
    taken = await passkeys.register(device.register(options), user_id=bob, name="")
    assert taken == Refused("credential-exists")
    assert await store.passkeys_of(engine, bob) == []


async def test_a_person_removes_only_their_own_passkey(engine: AsyncEngine) -> None:
    passkeys = ceremonies(engine)
    ann = await add_user(engine, "io@acme.test", memberships=[])
    bob = await add_user(engine, "jo@acme.test", memberships=[])
    done = await registered(passkeys, ann, SoftAuthenticator("gate.acme.test", ORIGIN))
    assert await store.remove_passkey(engine, user_id=bob, passkey_id=done.passkey_id) is None
    removed = await store.remove_passkey(engine, user_id=ann, passkey_id=done.passkey_id)
    assert removed is not None and removed.name == "Laptop"
    assert await store.passkeys_of(engine, ann) == []


def _mangled(answer: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(answer))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("response",), None),
        (("response", "clientDataJSON"), "not base64!"),
        (("response", "clientDataJSON"), "bm90IGpzb24"),
        (("response", "authenticatorData"), "AAAA"),
        (("response", "signature"), 7),
        (("rawId",), "AAAA"),
        (("type",), "password"),
    ],
    ids=[
        "without a response",
        "with client data that is not base64url",
        "with client data that is not JSON",
        "with authenticator data too short",
        "with a signature that is a number",
        "whose raw id differs from its id",
        "of another type",
    ],
)
async def test_a_malformed_assertion_is_refused_as_malformed(
    engine: AsyncEngine, path: tuple[str, ...], value: Any
) -> None:
    passkeys = ceremonies(engine)
    user = await add_user(engine, "ka@acme.test", memberships=[])
    device = SoftAuthenticator("gate.acme.test", ORIGIN)
    await registered(passkeys, user, device)
    answer = _mangled(device.sign_in(await options_for(passkeys, user)), path, value)
    assert await passkeys.authenticate(answer, user_id=user) == Refused(
        "passkey-malformed", malformed=True
    )


@pytest.mark.parametrize("answer", [None, "text", 7, [], {}], ids=repr)
async def test_what_is_not_a_credential_is_refused_as_malformed(
    engine: AsyncEngine, answer: Any
) -> None:
    passkeys = ceremonies(engine)
    user = await add_user(engine, "le@acme.test", memberships=[])
    refused = Refused("passkey-malformed", malformed=True)
    assert await passkeys.authenticate(answer, user_id=user) == refused
    assert await passkeys.register(answer, user_id=user, name="x") == refused


@pytest.mark.parametrize(
    ("rp_id", "public_url", "problem"),
    [
        ("gate.acme.test", "https://gate.acme.test", None),
        ("acme.test", "https://gate.acme.test", None),
        ("localhost", "http://localhost:8080", None),
        ("127.0.0.1", "http://127.0.0.1:8080", "is an IP address"),
        ("evil.test", "https://gate.acme.test", "is not the host"),
        ("cme.test", "https://gate.acme.test", "is not the host"),
    ],
    ids=[
        "the public host",
        "a parent domain",
        "localhost",
        "an IP address",
        "another domain",
        "a suffix that is no parent domain",
    ],
)
def test_an_rp_id_browsers_would_refuse_is_named(
    rp_id: str, public_url: str, problem: str | None
) -> None:
    found = rp_id_problem(rp_id, public_url)
    assert (found is None) if problem is None else (found is not None and problem in found)
