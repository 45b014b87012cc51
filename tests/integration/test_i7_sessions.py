"""I7: session lifecycle — new id at login, timeouts, logout, revocation everywhere."""

from __future__ import annotations

import asyncio
import re
import time
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse

from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.identity import COOKIE_NAME
from gateway.model import Membership
from gateway.store import sessions as session_store
from gateway.store import users as user_store
from tests.integration.test_magic_link import ask_for_link, follow_link, mail_settings
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
API = {"Accept": "application/json"}


def as_cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"__Host-gatehold={token}"}


async def status(stack: Stack, token: str, path: str = "/api/invoices/7") -> int:
    response = await stack.client.get(path, headers=as_cookie(token) | API)
    await response.read()
    return response.status


def session_cookie(response: ClientResponse) -> Morsel[str]:
    """The one ``Set-Cookie`` of the session cookie in ``response``."""
    headers = [
        h for h in response.headers.getall("Set-Cookie", []) if h.startswith(COOKIE_NAME + "=")
    ]
    assert len(headers) == 1, headers
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    return jar[COOKIE_NAME]


def assert_host_cookie(morsel: Morsel[str]) -> None:
    """A ``__Host-`` cookie is only stored (or deleted) with Secure, Path=/ and no Domain."""
    assert morsel["path"] == "/"
    assert morsel["secure"] and morsel["httponly"]
    assert not morsel["domain"]


async def ended(stack: Stack, token: str, path: str = "/api/invoices/7") -> None:
    """``token`` no longer works: 401 ``session-invalid``, the cookie cleared, nothing
    forwarded, and the refusal audited with its reason."""
    response = await stack.client.get(path, headers=as_cookie(token) | API)
    assert response.status == 401
    problem = await response.json(content_type="application/problem+json")
    assert problem["type"].endswith("/session-invalid")
    request_id = response.headers["X-Request-Id"]
    assert problem["request_id"] == request_id
    cleared = session_cookie(response)
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert_host_cookie(cleared)
    assert request_id not in await stack.ledger_hits()
    (row, *_) = await stack.audit_rows(request_id)
    assert (row["decision"], row["reason"]) == ("deny", "session-invalid")


async def csrf_for(stack: Stack, token: str) -> str:
    page = await stack.client.get("/.gatehold/sessions", headers=as_cookie(token))
    assert page.status == 200
    found = CSRF.search(await page.text())
    assert found
    return found.group(1)


async def test_a_planted_session_cookie_is_worthless_after_login(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        planted = await stack.mint("bob@globex.test")  # the attacker's own session
        await ask_for_link(stack, "alice@acme.test")
        link = Inbox.link_in(await inbox.wait_for("alice@acme.test"))
        stack.client.session.cookie_jar.clear()
        signed_in = await follow_link(stack, link, cookie=f"__Host-gatehold={planted}")
        set_cookie = session_cookie(signed_in)
        fresh = set_cookie.value
        assert fresh and fresh != planted
        assert_host_cookie(set_cookie)
        assert set_cookie["samesite"] == "Lax"
        assert set_cookie["max-age"] == str(int(stack.settings.session_absolute_timeout))
        assert await status(stack, fresh) == 200, "alice is signed in with a new id"
        await ended(stack, planted)  # the planted id no longer works


async def test_idle_sessions_end(tmp_path: Path) -> None:
    async with running_stack(tmp_path, sessions={"idle_timeout": "1s"}) as stack:
        token = await stack.mint("alice@acme.test")
        assert await status(stack, token) == 200
        await asyncio.sleep(1.3)
        await ended(stack, token)


async def test_sessions_end_at_their_absolute_limit(tmp_path: Path) -> None:
    async with running_stack(tmp_path, sessions={"absolute_timeout": "1s"}) as stack:
        token = await stack.mint("alice@acme.test")
        assert await status(stack, token) == 200
        await asyncio.sleep(1.3)
        await ended(stack, token)


async def test_logout_needs_the_csrf_token_and_ends_the_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        token = await stack.mint("alice@acme.test")
        forged = await stack.client.post(
            "/.gatehold/logout", data={"csrf": "forged"}, headers=as_cookie(token)
        )
        assert forged.status == 403
        assert await status(stack, token) == 200
        out = await stack.client.post(
            "/.gatehold/logout",
            data={"csrf": await csrf_for(stack, token)},
            headers=as_cookie(token),
            allow_redirects=False,
        )
        assert out.status == 303
        assert out.headers["Location"].startswith("/.gatehold/login")
        cleared = session_cookie(out)
        assert cleared.value == "" and cleared["max-age"] == "0"
        assert_host_cookie(cleared)
        await ended(stack, token)


async def test_logout_everywhere_ends_every_session_of_the_person(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        laptop, phone = await stack.mint("alice@acme.test"), await stack.mint("alice@acme.test")
        other = stack.cookies["bob@globex.test"]
        await stack.client.post(
            "/.gatehold/logout",
            data={"csrf": await csrf_for(stack, laptop), "everywhere": "1"},
            headers=as_cookie(laptop),
            allow_redirects=False,
        )
        await ended(stack, laptop)
        await ended(stack, phone)
        assert await status(stack, other, "/api/invoices/8") == 200, "bob is unaffected"


async def test_a_person_sees_their_sessions_and_ends_one(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        laptop, phone = await stack.mint("alice@acme.test"), await stack.mint("alice@acme.test")
        page = await stack.client.get("/.gatehold/sessions", headers=as_cookie(laptop))
        text = await page.text()
        assert text.count('action="/.gatehold/sessions/end"') >= 2
        assert "127.0.0.1" in text and "(this one)" in text
        phone_hash = session_store.token_hash(phone)
        assert phone_hash in text
        ended = await stack.client.post(
            "/.gatehold/sessions/end",
            data={"csrf": await csrf_for(stack, laptop), "session": phone_hash},
            headers=as_cookie(laptop),
            allow_redirects=False,
        )
        assert ended.status == 303
        assert await status(stack, phone) == 401
        assert await status(stack, laptop) == 200


async def test_someone_elses_session_cannot_be_ended(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        mine, bobs = await stack.mint("alice@acme.test"), stack.cookies["bob@globex.test"]
        await stack.client.post(
            "/.gatehold/sessions/end",
            data={"csrf": await csrf_for(stack, mine), "session": session_store.token_hash(bobs)},
            headers=as_cookie(mine),
            allow_redirects=False,
        )
        assert await status(stack, bobs, "/api/invoices/8") == 200


async def test_deactivation_and_membership_changes_revoke_at_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        rita, bob = stack.cookies["rita@acme.test"], stack.cookies["bob@globex.test"]
        assert await status(stack, rita) == 200
        assert await status(stack, bob, "/api/invoices/8") == 200
        # What `gatehold users deactivate` and a membership change do, from another process's
        # point of view: only the store changes; this gateway must notice on its own.
        user = await user_store.get_user_by_email(engine, "rita@acme.test")
        assert user is not None
        await user_store.set_active(engine, user.id, False)
        await session_store.revoke_user_sessions(engine, user.id, time.time())
        bob_user = await user_store.get_user_by_email(engine, "bob@globex.test")
        assert bob_user is not None
        await user_store.remove_membership(engine, bob_user.id, Membership("globex", "standard"))
        await session_store.revoke_user_sessions(engine, bob_user.id, time.time())
        await stack.revocations_noticed(sessions=[rita, bob])
        await ended(stack, rita)
        await ended(stack, bob, "/api/invoices/8")


async def test_a_revocation_stamped_by_a_slower_clock_is_still_noticed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        alice, rita = stack.cookies["alice@acme.test"], stack.cookies["rita@acme.test"]
        assert await status(stack, alice) == 200 and await status(stack, rita) == 200
        admin = await user_store.get_user_by_email(engine, "admin@example.test")
        assert admin is not None
        await session_store.revoke_user_sessions(engine, admin.id, time.time())
        await stack.revocations_noticed(sessions=[stack.cookies["admin@example.test"]])
        # Another replica, whose clock is 30 s behind, revokes rita: an older timestamp
        # than the newest revocation this process has already seen.
        user = await user_store.get_user_by_email(engine, "rita@acme.test")
        assert user is not None
        await session_store.revoke_user_sessions(engine, user.id, time.time() - 30)
        await stack.revocations_noticed(sessions=[rita])
        assert await status(stack, rita) == 401
        assert await status(stack, alice) == 200


async def test_a_burst_on_a_cold_session_loads_it_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        sessions = stack.app[GATEWAY].sessions
        token = await stack.mint("alice@acme.test")
        loads = 0
        load = sessions._load

        async def counted(id_hash: str) -> Any:
            nonlocal loads
            loads += 1
            await asyncio.sleep(0.05)  # a slow store: every request arrives meanwhile
            return await load(id_hash)

        sessions._load = counted  # type: ignore[method-assign]
        statuses = await asyncio.gather(*(status(stack, token) for _ in range(40)))
        assert statuses == [200] * 40
        assert loads == 1
