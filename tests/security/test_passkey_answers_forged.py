"""Forged and replayed passkey answers sign nobody in and register nothing.

A software authenticator changes one field at a time — the origin the browser saw, the
RP id the authenticator signed for, the counter, whose credential answers — or an
answer is sent twice, or a registration comes without the page's CSRF token. Each
attack is refused with its reason in the audit (``passkey-refused``), no session
cookie is set, and nothing reaches the upstream.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from gateway.app import ENGINE
from gateway.store import passkeys as passkey_store
from gateway.store import pending_sign_ins as pending_store
from gateway.store import users as user_store
from tests.integration.test_magic_link import cookies_set, mail_settings
from tests.integration.test_passkeys import (
    ORIGIN,
    account_csrf,
    add_passkey,
    device,
    password_less,
    pending_by_email_link,
    post_json,
)
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack


async def refused_with(stack: Stack, answer: ClientResponse, reason: str, status: int) -> None:
    """The answer is a refusal naming ``reason``, no session began, the audit says why."""
    assert answer.status == status, await answer.text()
    assert answer.content_type == "application/problem+json"
    assert (await answer.json())["type"] == reason
    assert "__Host-gatehold" not in cookies_set(answer)
    refusals = await stack.events("passkey-refused")
    assert refusals and refusals[-1]["reason"] == reason and refusals[-1]["decision"] == "deny"
    assert await stack.events("login") == []


async def test_a_replayed_assertion_signs_nobody_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = device()
        await add_passkey(stack, "alice@acme.test", key)
        options = await post_json(stack, "/.gatehold/login/passkey/options", {})
        answer = {"credential": key.sign_in(await options.json())}
        first = await post_json(stack, "/.gatehold/login/passkey", answer)
        assert first.status == 200 and cookies_set(first)["__Host-gatehold"]
        before = await stack.ledger_total()

        replayed = await post_json(stack, "/.gatehold/login/passkey", answer)
        assert replayed.status == 400
        assert (await replayed.json())["type"] == "challenge-unknown"
        assert "__Host-gatehold" not in cookies_set(replayed)
        (refusal,) = await stack.events("passkey-refused")
        assert refusal["reason"] == "challenge-unknown"
        assert len(await stack.events("login")) == 1  # the first one only
        assert await stack.ledger_total() == before


@pytest.mark.parametrize(
    ("forged", "reason"),
    [
        ({"origin": "http://gatehold.test.evil.example"}, "origin-mismatch"),
        ({"origin": "https://gatehold.test"}, "origin-mismatch"),
        ({"rp_id": "evil.example"}, "rp-id-mismatch"),
        ({"rp_id": "test"}, "rp-id-mismatch"),
        ({"verified": False}, "user-not-verified"),
    ],
    ids=[
        "made on a look-alike site",
        "made for another scheme of our host",
        "signed for another RP id",
        "signed for a parent domain",
        "without user verification, for a password-less sign-in",
    ],
)
async def test_a_password_less_assertion_with_one_forged_field_is_refused(
    tmp_path: Path, forged: dict[str, Any], reason: str
) -> None:
    async with running_stack(tmp_path) as stack:
        key = device()
        await add_passkey(stack, "alice@acme.test", key)
        before = await stack.ledger_total()
        await refused_with(stack, await password_less(stack, key, **forged), reason, 403)
        assert await stack.ledger_total() == before


@pytest.mark.parametrize(
    ("forged", "reason"),
    [
        ({"origin": "http://evil.example"}, "origin-mismatch"),
        ({"rp_id": "evil.example"}, "rp-id-mismatch"),
    ],
    ids=["made on another site", "for another RP id"],
)
async def test_a_registration_with_one_forged_field_stores_no_passkey(
    tmp_path: Path, forged: dict[str, Any], reason: str
) -> None:
    async with running_stack(tmp_path) as stack:
        session = stack.cookies["alice@acme.test"]
        cookie = f"__Host-gatehold={session}"
        csrf = await account_csrf(stack, session)
        path = "/.gatehold/account/passkeys"
        options = await post_json(stack, f"{path}/options", {}, cookie=cookie, csrf=csrf)
        answer = {"credential": device().register(await options.json(), **forged)}
        refused = await post_json(stack, path, answer, cookie=cookie, csrf=csrf)
        await refused_with(stack, refused, reason, 403)
        assert await stack.events("passkey-registered") == []
        assert await passkeys_of(stack, "alice@acme.test") == []


async def test_another_persons_passkey_is_no_second_factor(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    """Bob, holding his own passkey and Alice's mailed link, cannot finish as Alice."""
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        await add_passkey(stack, "alice@acme.test", device())
        bobs = device()
        await add_passkey(stack, "bob@globex.test", bobs)
        pending = await pending_by_email_link(stack, inbox, "alice@acme.test")
        options = await post_json(
            stack, "/.gatehold/login/verify/passkey/options", {}, cookie=pending
        )
        answer = {"credential": bobs.sign_in(await options.json())}
        refused = await post_json(stack, "/.gatehold/login/verify/passkey", answer, cookie=pending)
        await refused_with(stack, refused, "credential-not-yours", 403)
        (failed,) = await stack.events("login-failed")
        assert failed["actor"] == "alice@acme.test" and failed["reason"] == "credential-not-yours"
        assert failed["data"]["factor"] == "passkey"


async def test_a_cloned_authenticator_falling_behind_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = device()
        await add_passkey(stack, "alice@acme.test", key)
        assert (await password_less(stack, key, counter=5)).status == 200
        for behind in (5, 3, 0):  # the clone's counter: equal, lower, none at all
            refused = await password_less(stack, key, counter=behind)
            assert refused.status == 403
            assert (await refused.json())["type"] == "sign-count-regressed"
            assert "__Host-gatehold" not in cookies_set(refused)
        reasons = [r["reason"] for r in await stack.events("passkey-refused")]
        assert reasons == ["sign-count-regressed"] * 3
        assert len(await stack.events("login")) == 1
        (stored,) = await passkeys_of(stack, "alice@acme.test")
        assert stored.sign_count == 5


@pytest.mark.parametrize(
    "csrf",
    ["", "not-the-token"],
    ids=["without a CSRF token", "with a wrong CSRF token"],
)
async def test_a_registration_without_the_pages_csrf_token_is_refused(
    tmp_path: Path, csrf: str
) -> None:
    """Another site cannot make a signed-in browser register the attacker's key."""
    async with running_stack(tmp_path) as stack:
        session = stack.cookies["alice@acme.test"]
        cookie = f"__Host-gatehold={session}"
        path = "/.gatehold/account/passkeys"
        asked = await post_json(stack, f"{path}/options", {}, cookie=cookie, csrf=csrf)
        assert asked.status == 403 and (await asked.json())["type"] == "csrf-invalid"
        # Even with options got legitimately, the answer needs the token too.
        good = await account_csrf(stack, session)
        options = await post_json(stack, f"{path}/options", {}, cookie=cookie, csrf=good)
        answer = {"credential": device().register(await options.json())}
        refused = await post_json(stack, path, answer, cookie=cookie, csrf=csrf)
        assert refused.status == 403 and (await refused.json())["type"] == "csrf-invalid"
        reasons = [r["reason"] for r in await stack.events("passkey-refused")]
        assert reasons == ["csrf-invalid", "csrf-invalid"]
        assert await stack.events("passkey-registered") == []
        assert await passkeys_of(stack, "alice@acme.test") == []


async def test_a_cross_site_request_is_refused_before_anything_happens(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        session = stack.cookies["alice@acme.test"]
        cookie = f"__Host-gatehold={session}"
        csrf = await account_csrf(stack, session)
        foreign = await post_json(
            stack,
            "/.gatehold/account/passkeys/options",
            {},
            cookie=cookie,
            csrf=csrf,
            origin="http://evil.example",
        )
        assert foreign.status == 403
        assert (await foreign.json())["type"] == "origin-header-mismatch"
        as_form = await stack.client.post(
            "/.gatehold/login/passkey",
            data="{}",
            headers={"Content-Type": "text/plain", "Origin": ORIGIN},
        )
        assert as_form.status == 400 and (await as_form.json())["type"] == "json-invalid"


async def test_a_sign_in_waiting_for_its_second_step_cannot_add_a_passkey_in_its_place(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    """Whoever holds only Alice's mailed link must not enrol their own passkey and so
    skip the passkey she already has."""
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        await add_passkey(stack, "alice@acme.test", device())
        pending = await pending_by_email_link(stack, inbox, "alice@acme.test")
        path = "/.gatehold/login/enrol/passkey"
        refused = await post_json(stack, f"{path}/options", {}, cookie=pending)
        assert refused.status == 403
        assert (await refused.json())["type"] == "enrolment-closed"
        (refusal,) = await stack.events("passkey-refused")
        assert refusal["actor"] == "alice@acme.test" and refusal["reason"] == "enrolment-closed"
        assert len(await passkeys_of(stack, "alice@acme.test")) == 1
        assert await stack.events("login") == []


async def test_removing_a_passkey_needs_a_recent_sign_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await add_passkey(stack, "alice@acme.test", device())
        (stored,) = await passkeys_of(stack, "alice@acme.test")
        stale = await stack.mint("alice@acme.test", auth_age=601)
        cookie = {"Cookie": f"__Host-gatehold={stale}"}
        answer = await stack.client.post(
            "/.gatehold/account/passkeys/remove",
            data={"csrf": await account_csrf(stack, stale), "passkey": str(stored.id)},
            headers=cookie,
            allow_redirects=False,
        )
        assert answer.status == 303
        assert answer.headers["Location"].endswith("notice=passkey-sign-in-again")
        (refusal,) = await stack.events("passkey-refused")
        assert refusal["reason"] == "sign-in-again" and refusal["data"]["ceremony"] == "remove"
        assert await stack.events("passkey-removed") == []
        assert len(await passkeys_of(stack, "alice@acme.test")) == 1


async def test_another_persons_passkey_cannot_be_removed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await add_passkey(stack, "alice@acme.test", device())
        (alices,) = await passkeys_of(stack, "alice@acme.test")
        session = stack.cookies["bob@globex.test"]
        answer = await stack.client.post(
            "/.gatehold/account/passkeys/remove",
            data={"csrf": await account_csrf(stack, session), "passkey": str(alices.id)},
            headers={"Cookie": f"__Host-gatehold={session}"},
            allow_redirects=False,
        )
        assert answer.headers["Location"].endswith("notice=passkey-not-found")
        for odd in ("²", "-1", "1e3", "9" * 40, ""):
            answer = await stack.client.post(
                "/.gatehold/account/passkeys/remove",
                data={"csrf": await account_csrf(stack, session), "passkey": odd},
                headers={"Cookie": f"__Host-gatehold={session}"},
                allow_redirects=False,
            )
            assert answer.headers["Location"].endswith("notice=passkey-not-found"), odd
        assert len(await passkeys_of(stack, "alice@acme.test")) == 1


BAD_BODIES = [
    "not json",
    "[1, 2]",
    '"text"',
    "",
    '{"credential": 7}',
    '{"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}}',
    '{"credential": null, "rd": ["x"], "name": {"a": 1}}',
]


@pytest.mark.parametrize(
    "path",
    [
        "/.gatehold/login/passkey",
        "/.gatehold/login/passkey/options",
        "/.gatehold/login/verify/passkey",
        "/.gatehold/login/verify/passkey/options",
        "/.gatehold/login/enrol/passkey",
        "/.gatehold/account/passkeys",
        "/.gatehold/account/passkeys/options",
    ],
)
async def test_bad_bodies_get_a_clear_400_never_a_500(tmp_path: Path, path: str) -> None:
    async with running_stack(tmp_path) as stack:
        session = stack.cookies["alice@acme.test"]
        rita = await user_store.get_user_by_email(stack.app[ENGINE], "rita@acme.test")
        assert rita is not None
        pending = await pending_store.create_pending(
            stack.app[ENGINE],
            user_id=rita.id,
            method="magic-link",
            purpose=pending_store.SIGN_IN,
            rd="/",
            details={},
            now=time.time(),
            ttl=600,
        )
        headers = {
            "Origin": ORIGIN,
            "Cookie": f"__Host-gatehold={session}; __Host-gatehold-pending={pending}",
            "X-CSRF-Token": await account_csrf(stack, session),
        }
        bodies = BAD_BODIES[:4] if path.endswith("/options") else BAD_BODIES
        for body in bodies:
            answer = await stack.client.post(
                path, data=body.encode(), headers={**headers, "Content-Type": "application/json"}
            )
            assert answer.status == 400, (body, await answer.text())
            problem = await answer.json()
            assert problem["title"], problem
            assert problem["type"] in {"json-invalid", "passkey-malformed"}, problem
        assert await stack.events("login") == []


async def passkeys_of(stack: Stack, email: str) -> list[passkey_store.Passkey]:
    engine = stack.app[ENGINE]
    user = await user_store.get_user_by_email(engine, email)
    assert user is not None
    return await passkey_store.passkeys_of(engine, user.id)


async def test_wrong_passkeys_use_up_a_waiting_sign_in(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    """Guessing is bounded: after ``auth.mfa.max_attempts`` refusals the sign-in is gone,
    and even the right passkey then finishes nothing."""
    inbox, port = smtp_server
    settings = {**mail_settings(port)}
    settings["auth"]["mfa"] = {"max_attempts": 2}
    async with running_stack(tmp_path, **settings) as stack:
        alices = device()
        await add_passkey(stack, "alice@acme.test", alices)
        pending = await pending_by_email_link(stack, inbox, "alice@acme.test")
        path = "/.gatehold/login/verify/passkey"
        answers = []
        for _ in range(2):
            options = await post_json(stack, f"{path}/options", {}, cookie=pending)
            forged = alices.sign_in(await options.json(), origin="http://evil.example")
            answers.append(await post_json(stack, path, {"credential": forged}, cookie=pending))
        assert [a.status for a in answers] == [403, 400]
        last = await answers[-1].json()
        assert last["type"] == "sign-in-expired" and last["redirect"] == "/.gatehold/login"
        options = await post_json(stack, f"{path}/options", {}, cookie=pending)
        assert options.status == 400 and (await options.json())["type"] == "sign-in-expired"
        failed = await stack.events("login-failed")
        assert [f["data"]["attempts_left"] for f in failed] == ["yes", "no"]
        assert await stack.events("login") == []
