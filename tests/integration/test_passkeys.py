"""Passkeys over HTTP: add one on the account page, sign in with it alone, use it as the
second step after an email link, set one up when the rules ask for a second step, and
remove it — against a real gateway and store, with a software authenticator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse

from gateway.auth.handlers import AUTH_PAGES
from tests.integration.test_magic_link import ask_for_link, cookies_set, follow_link, mail_settings
from tests.support.smtp import Inbox
from tests.support.soft_authenticator import SoftAuthenticator
from tests.support.stack import Stack, running_stack

ORIGIN = "http://gatehold.test"
RP_ID = "gatehold.test"
CSRF = re.compile(r'data-csrf="([^"]+)"')
PASSKEY_ID = re.compile(r'name="passkey" value="(\d+)"')


def device() -> SoftAuthenticator:
    return SoftAuthenticator(RP_ID, ORIGIN)


async def post_json(
    stack: Stack, path: str, body: Any, *, cookie: str = "", csrf: str = "", origin: str = ORIGIN
) -> ClientResponse:
    headers = {"Origin": origin, "Cookie": cookie}
    if csrf:
        headers["X-CSRF-Token"] = csrf
    return await stack.client.post(path, json=body, headers=headers, allow_redirects=False)


async def account_csrf(stack: Stack, session: str) -> str:
    page = await stack.client.get(
        "/.gatehold/account", headers={"Cookie": f"__Host-gatehold={session}"}
    )
    assert page.status == 200
    found = CSRF.search(await page.text())
    assert found
    return found.group(1)


async def add_passkey(
    stack: Stack, email: str, key: SoftAuthenticator, name: str = "Laptop"
) -> str:
    """Register ``key`` for ``email`` from the account page; returns the session used."""
    session = stack.cookies[email]
    cookie = f"__Host-gatehold={session}"
    csrf = await account_csrf(stack, session)
    options = await post_json(
        stack, "/.gatehold/account/passkeys/options", {}, cookie=cookie, csrf=csrf
    )
    assert options.status == 200, await options.text()
    answer = {"credential": key.register(await options.json()), "name": name}
    done = await post_json(stack, "/.gatehold/account/passkeys", answer, cookie=cookie, csrf=csrf)
    assert done.status == 200, await done.text()
    assert (await done.json()) == {"redirect": "/.gatehold/account?notice=passkey-added"}
    return session


async def pending_by_email_link(stack: Stack, inbox: Inbox, email: str, rd: str = "/") -> str:
    """Show the first factor (a mailed link); returns the pending sign-in's cookie."""
    assert (await ask_for_link(stack, email, rd=rd)).status == 200
    signed = await follow_link(stack, Inbox.link_in(await inbox.wait_for(email)))
    assert signed.status == 303
    return f"__Host-gatehold-pending={cookies_set(signed)['__Host-gatehold-pending']}"


async def password_less(stack: Stack, key: SoftAuthenticator, **forged: Any) -> ClientResponse:
    options = await post_json(stack, "/.gatehold/login/passkey/options", {})
    assert options.status == 200
    answer = key.sign_in(await options.json(), **forged)
    return await post_json(
        stack, "/.gatehold/login/passkey", {"credential": answer, "rd": "/api/invoices/7"}
    )


async def test_a_passkey_added_on_the_account_page_signs_in_alone(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = device()
        session = await add_passkey(stack, "alice@acme.test", key, name="Work <laptop>")
        page = await stack.client.get(
            "/.gatehold/account", headers={"Cookie": f"__Host-gatehold={session}"}
        )
        body = await page.text()
        assert "Work &lt;laptop&gt;" in body and "never" in body
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]

        signed = await password_less(stack, key)
        assert signed.status == 200, await signed.text()
        assert await signed.json() == {"redirect": "/api/invoices/7"}
        new_session = cookies_set(signed)["__Host-gatehold"]
        invoice = await stack.client.get(
            "/api/invoices/7", headers={"Cookie": f"__Host-gatehold={new_session}"}
        )
        assert invoice.status == 200
        (login,) = await stack.events("login")
        assert login["actor"] == "alice@acme.test"
        assert login["method"] == "passkey" and login["data"]["mfa"] == "yes"
        (added,) = await stack.events("passkey-registered")
        assert added["data"]["passkey"] == "Work <laptop>" and added["data"]["via"] == "account"


async def test_after_an_email_link_a_person_with_a_passkey_uses_it(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        key = device()
        await add_passkey(stack, "alice@acme.test", key)
        pending = await pending_by_email_link(stack, inbox, "alice@acme.test", rd="/api/invoices/7")
        page = await stack.client.get("/.gatehold/login/verify", headers={"Cookie": pending})
        assert "Use your passkey" in await page.text()
        options = await post_json(
            stack, "/.gatehold/login/verify/passkey/options", {}, cookie=pending
        )
        asked = await options.json()
        assert [c["id"] for c in asked["allowCredentials"]] == [key.id]
        done = await post_json(
            stack,
            "/.gatehold/login/verify/passkey",
            {"credential": key.sign_in(asked)},
            cookie=pending,
        )
        assert done.status == 200, await done.text()
        assert await done.json() == {"redirect": "/api/invoices/7"}
        cookies = cookies_set(done)
        assert cookies["__Host-gatehold"] and cookies["__Host-gatehold-pending"] == ""
        (login,) = await stack.events("login")
        assert login["method"] == "magic-link" and login["data"]["factor"] == "passkey"
        assert login["data"]["mfa"] == "yes"


async def test_when_the_rules_ask_for_a_second_step_a_passkey_is_set_up_and_finishes_the_sign_in(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        stack.app[AUTH_PAGES].mfa_required = lambda _: True
        pending = await pending_by_email_link(stack, inbox, "rita@acme.test")
        page = await stack.client.get("/.gatehold/login/enrol", headers={"Cookie": pending})
        assert "Set up a passkey" in await page.text()
        key = device()
        options = await post_json(
            stack, "/.gatehold/login/enrol/passkey/options", {}, cookie=pending
        )
        assert options.status == 200
        answer = {"credential": key.register(await options.json()), "name": "Phone"}
        done = await post_json(stack, "/.gatehold/login/enrol/passkey", answer, cookie=pending)
        assert done.status == 200, await done.text()
        assert await done.json() == {"redirect": "/"}
        assert cookies_set(done)["__Host-gatehold"]
        (added,) = await stack.events("passkey-registered")
        assert added["actor"] == "rita@acme.test" and added["data"]["via"] == "enrol"
        (login,) = await stack.events("login")
        assert login["data"]["factor"] == "passkey"


async def test_a_person_removes_a_passkey_and_it_signs_in_no_more(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = device()
        session = await add_passkey(stack, "alice@acme.test", key)
        cookie = {"Cookie": f"__Host-gatehold={session}"}
        page = await (await stack.client.get("/.gatehold/account", headers=cookie)).text()
        passkey_id = PASSKEY_ID.search(page)
        assert passkey_id
        removed = await stack.client.post(
            "/.gatehold/account/passkeys/remove",
            data={"csrf": await account_csrf(stack, session), "passkey": passkey_id.group(1)},
            headers=cookie,
            allow_redirects=False,
        )
        assert removed.status == 303
        assert removed.headers["Location"] == "/.gatehold/account?notice=passkey-removed"
        (event,) = await stack.events("passkey-removed")
        assert event["actor"] == "alice@acme.test"
        refused = await password_less(stack, key)
        assert refused.status == 403
        assert (await refused.json())["type"] == "credential-unknown"


async def test_passkeys_are_not_offered_where_browsers_would_refuse_them(tmp_path: Path) -> None:
    """An IP address is no RP id: no button that can only fail, no routes."""
    async with running_stack(tmp_path, server={"public_url": "http://127.0.0.1:8080"}) as stack:
        login = await (await stack.client.get("/.gatehold/login")).text()
        assert "Sign in with a passkey" not in login
        answer = await stack.client.post(
            "/.gatehold/login/passkey/options", json={}, headers={"Origin": "http://127.0.0.1:8080"}
        )
        assert answer.status != 200 and "challenge" not in await answer.text()


async def test_passkeys_switched_off_are_not_offered(tmp_path: Path) -> None:
    async with running_stack(tmp_path, auth={"passkeys": {"enabled": False}}) as stack:
        login = await (await stack.client.get("/.gatehold/login")).text()
        assert "Sign in with a passkey" not in login
        session = stack.cookies["alice@acme.test"]
        account = await stack.client.get(
            "/.gatehold/account", headers={"Cookie": f"__Host-gatehold={session}"}
        )
        assert "Add a passkey" not in await account.text()
