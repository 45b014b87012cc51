"""Authenticator apps in tests: enrol a demo person, start their sign-in, compute codes.

``SignIns`` drives the magic-link first factor through a real SMTP inbox and returns the
pending sign-in's cookie, as a browser would hold it after the link's confirm button.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import pyotp
from aiohttp import ClientResponse

from gateway.app import ENGINE
from gateway.auth.keys import TOTP_KEY, load_or_create_secret
from gateway.auth.recovery_codes import RecoveryCodes
from gateway.auth.totp import Authenticators, SecretSeal, new_secret
from gateway.store import users as user_store
from tests.integration.test_magic_link import ask_for_link, follow_link
from tests.support.smtp import Inbox
from tests.support.stack import Stack

PENDING = "__Host-gatehold-pending"
SESSION = "__Host-gatehold"
ORIGIN = "http://gatehold.test"
"""The stack's public URL: what a browser on its pages sends as ``Origin``."""


def code_now(secret: str, *, offset: float = 0.0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset)


def cookies_of(response: ClientResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def authenticators_of(stack: Stack, *, clock: Any = time.time) -> Authenticators:
    """The stack's own authenticators: the same store and sealing key file."""
    key = load_or_create_secret(stack.settings.data_path / "keys" / TOTP_KEY)
    return Authenticators(stack.app[ENGINE], SecretSeal(key), issuer="Gatehold", clock=clock)


async def user_id_of(stack: Stack, email: str) -> int:
    user = await user_store.get_user_by_email(stack.app[ENGINE], email)
    assert user is not None
    return user.id


async def enrol(stack: Stack, email: str) -> str:
    """Give ``email`` a confirmed authenticator (confirmed 90 s ago); its secret."""
    secret = new_secret()
    earlier = time.time() - 90
    auth = authenticators_of(stack, clock=lambda: earlier)
    confirmed = await auth.confirm(
        await user_id_of(stack, email), secret, pyotp.TOTP(secret).at(earlier)
    )
    assert confirmed
    return secret


async def recovery_codes(stack: Stack, email: str) -> list[str]:
    return await RecoveryCodes(stack.app[ENGINE]).make(await user_id_of(stack, email))


@dataclass
class SignIns:
    """Magic-link first factors for several people through one inbox."""

    stack: Stack
    inbox: Inbox
    sent: dict[str, int] = field(default_factory=dict)

    async def first_factor(self, email: str, *, rd: str = "/api/invoices/7") -> ClientResponse:
        """The answer to the link's confirm button (a redirect to verify or enrol)."""
        answer = await ask_for_link(self.stack, email, rd=rd)
        assert answer.status == 200
        self.sent[email] = self.sent.get(email, 0) + 1
        mail = await self.inbox.wait_for(email, count=self.sent[email])
        return await follow_link(self.stack, Inbox.link_in(mail))

    async def pending(self, email: str, *, rd: str = "/api/invoices/7") -> str:
        """Start ``email``'s sign-in; the pending cookie (the second factor is due)."""
        confirmed = await self.first_factor(email, rd=rd)
        assert confirmed.status == 303, await confirmed.text()
        assert confirmed.headers["Location"] == "/.gatehold/login/verify"
        cookies = cookies_of(confirmed)
        assert SESSION not in cookies, "no session before the second factor"
        return cookies[PENDING]

    async def send_code(
        self, pending: str, code: str, *, kind: str = "totp", origin: str | None = ORIGIN
    ) -> ClientResponse:
        headers = {"Cookie": f"{PENDING}={pending}"}
        if origin is not None:
            headers["Origin"] = origin
        return await self.stack.client.post(
            f"/.gatehold/login/verify/{kind}",
            data={"code": code},
            headers=headers,
            allow_redirects=False,
        )


def mfa_settings(smtp_port: int, *, max_attempts: int = 5) -> dict[str, Any]:
    """Mail through ``smtp_port``, enough links per hour for a test's several sign-ins."""
    return {
        "mail": {"mode": "smtp", "host": "127.0.0.1", "port": smtp_port},
        "auth": {
            "magic_link": {"per_email_per_hour": 50, "per_client_per_hour": 1000},
            "mfa": {"max_attempts": max_attempts},
        },
    }
