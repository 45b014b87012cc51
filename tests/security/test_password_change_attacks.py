"""Attacks on choosing a password: each is refused, the stored hash stays, the audit says so.

* a common password (from zxcvbn's list) is refused with a clear message;
* someone holding a session (stolen cookie, minted, or a stale email-link sign-in)
  cannot replace the password without the current one; only a fresh email link may;
* a form without the session's CSRF token is refused;
* a new password ends every other session of the person: a stolen cookie stops working.
"""

from __future__ import annotations

from pathlib import Path

from gateway.model import AuthMethod
from tests.support.passwords import (
    ALICE_PASSWORD,
    change_password,
    give_password,
    password_settings,
    session_by,
    stored_hash,
)
from tests.support.stack import running_stack

NEW = "Blue kettles argue quietly at dawn"
API = {"Accept": "application/json"}


async def test_a_common_password_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        cookie = await session_by(stack, "alice@acme.test", method=AuthMethod.MAGIC_LINK)
        refused = await change_password(stack, cookie, "qwerty123456")
        assert refused.status == 400
        page = await refused.text()
        assert "The password was not saved" in page and "common passwords" in page
        assert await stored_hash(stack, "alice@acme.test") is None
        [event] = await stack.events("password-refused")
        assert event["reason"] == "password-common" and event["actor"] == "alice@acme.test"


async def test_a_change_without_the_current_password_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        before = await stored_hash(stack, "alice@acme.test")
        minted = stack.cookie("alice@acme.test")  # a session that proved nothing just now
        stale = await session_by(
            stack, "alice@acme.test", method=AuthMethod.MAGIC_LINK, auth_age=16 * 60
        )
        for cookie in (minted, stale):
            refused = await change_password(stack, cookie, NEW)
            assert refused.status == 400
            assert "Enter your current password." in await refused.text()
            wrong = await change_password(stack, cookie, NEW, current="a wrong guess here")
            assert wrong.status == 400
        assert await stored_hash(stack, "alice@acme.test") == before
        reasons = [e["reason"] for e in await stack.events("password-refused")]
        assert reasons == ["current-password-missing", "current-password-wrong"] * 2
        # With the current password it works; so does a fresh email-link sign-in without.
        assert (await change_password(stack, minted, NEW, current=ALICE_PASSWORD)).status == 303
        fresh = await session_by(
            stack, "alice@acme.test", method=AuthMethod.MAGIC_LINK, auth_age=60
        )
        assert (
            await change_password(stack, fresh, "Seven lanterns over the harbour")
        ).status == 303
        kinds = [e["kind"] for e in await stack.events("password-changed")]
        kinds += [e["kind"] for e in await stack.events("password-reset")]
        assert kinds == ["password-changed", "password-reset"]


async def test_a_session_from_sso_cannot_set_a_first_password_without_an_email_link(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        cookie = await session_by(stack, "alice@acme.test", method=AuthMethod.OIDC)
        refused = await change_password(stack, cookie, NEW)
        assert refused.status == 403
        assert await stored_hash(stack, "alice@acme.test") is None
        [event] = await stack.events("password-refused")
        assert event["reason"] == "email-sign-in-needed"


async def test_a_change_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        cookie = await session_by(stack, "alice@acme.test", method=AuthMethod.MAGIC_LINK)
        for token in ("", "forged-token"):
            forged = await stack.client.post(
                "/.gatehold/account/password",
                data={"csrf": token, "new_password": NEW, "repeat_password": NEW},
                headers=cookie,
                allow_redirects=False,
            )
            assert forged.status == 403
            assert "The form expired" in await forged.text()
        assert await stored_hash(stack, "alice@acme.test") is None
        assert len(await stack.events("csrf-rejected")) == 2
        assert await stack.events("password-set") == []


async def test_a_new_password_ends_every_other_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        stolen = stack.cookie("alice@acme.test")
        assert (await stack.client.get("/api/invoices/7", headers=stolen | API)).status == 200
        own = await session_by(stack, "alice@acme.test", method=AuthMethod.PASSWORD)
        changed = await change_password(stack, own, NEW, current=ALICE_PASSWORD)
        assert changed.status == 303
        reached = await stack.ledger_total()
        after = await stack.client.get("/api/invoices/7", headers=stolen | API)
        assert after.status == 401, "the other session ended"
        assert await stack.ledger_total() == reached, "nothing reached Ledger with it"
        assert (await stack.client.get("/api/invoices/7", headers=own | API)).status == 200
        [event] = await stack.events("password-changed")
        assert event["data"]["sessions_ended"] >= 1
