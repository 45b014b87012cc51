"""Helpers for tests of local passwords: settings, setting one, signing in with one."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import ClientResponse

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.auth.passwords import Passwords
from gateway.context import GATEWAY
from gateway.model import AuthMethod
from gateway.store import passwords as password_store
from tests.support.stack import Stack
from tests.support.totp import user_id_of

__all__ = ["user_id_of"]

CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 9216, "parallelism": 1}
"""Cheaper than production, the same for every case a test compares."""
ALICE_PASSWORD = "kettle harbour under seven lanterns"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SESSION_COOKIE = "__Host-gatehold"


def password_settings(smtp_port: int | None = None, **passwords: Any) -> dict[str, Any]:
    """Settings overrides: passwords on (cheap Argon2), magic links by ``smtp_port``."""
    auth: dict[str, Any] = {
        "passwords": {"enabled": True, "argon2": CHEAP_ARGON2, **passwords},
        "magic_link": {"per_email_per_hour": 100, "per_client_per_hour": 1000},
    }
    settings: dict[str, Any] = {"auth": auth}
    if smtp_port is not None:
        settings["mail"] = {"mode": "smtp", "host": "127.0.0.1", "port": smtp_port}
    return settings


def passwords_of(stack: Stack) -> Passwords:
    found = stack.app[AUTH_PAGES].passwords
    assert found is not None, "passwords are not enabled in this stack"
    return found


async def give_password(stack: Stack, email: str, password: str = ALICE_PASSWORD) -> int:
    """Set ``email``'s password as the pages would (the user exists); returns the user id."""
    user_id = await user_id_of(stack, email)
    await passwords_of(stack).set_password(user_id, password)
    return user_id


async def stored_hash(stack: Stack, email: str) -> str | None:
    return await password_store.hash_of(stack.app[ENGINE], await user_id_of(stack, email))


async def sign_in(
    stack: Stack,
    email: str,
    password: str,
    *,
    rd: str = "/",
    client: str | None = None,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    """POST the password form; ``client`` is named through the trusted proxy."""
    sent = dict(headers or {})
    if client is not None:
        sent["X-Forwarded-For"] = client
    return await stack.client.post(
        "/.gatehold/login/password",
        data={"email": email, "password": password, "rd": rd},
        headers=sent,
        allow_redirects=False,
    )


async def session_by(
    stack: Stack, email: str, *, method: AuthMethod, auth_age: float = 0.0
) -> dict[str, str]:
    """Cookie headers of a new session of ``email`` signed in by ``method`` that long ago."""
    token, _ = await stack.app[GATEWAY].sessions.create(
        user_id=await user_id_of(stack, email),
        auth_method=method,
        client_ip="127.0.0.1",
        user_agent="tests",
        auth_time=time.time() - auth_age,
    )
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


async def csrf_of(stack: Stack, cookie: dict[str, str]) -> str:
    page = await stack.client.get("/.gatehold/sessions", headers=cookie)
    assert page.status == 200, await page.text()
    found = CSRF.search(await page.text())
    assert found
    return found.group(1)


async def change_password(
    stack: Stack, cookie: dict[str, str], new: str, *, current: str | None = None, **form: str
) -> ClientResponse:
    """POST the set/change form of the signed-in ``cookie`` (its CSRF token read first)."""
    data = {"csrf": await csrf_of(stack, cookie), "new_password": new, "repeat_password": new}
    if current is not None:
        data["current_password"] = current
    data.update(form)
    return await stack.client.post(
        "/.gatehold/account/password", data=data, headers=cookie, allow_redirects=False
    )


def session_cookie(response: ClientResponse) -> str | None:
    for header in response.headers.getall("Set-Cookie", []):
        if header.startswith(f"{SESSION_COOKIE}="):
            return header.split(";", 1)[0].split("=", 1)[1]
    return None
