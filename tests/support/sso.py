"""A gateway in front of Ledger with a real OpenID Provider configured as ``corp``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.openid_provider import OpenIdProvider, openid_provider, sign_in_at_provider
from tests.support.servers_base import free_port
from tests.support.stack import Stack, running_stack

FLOW = "__Host-gatehold-oidc"
SESSION = "__Host-gatehold"
ACCOUNTS = {
    "cora": {"email": "cora@acme.test", "groups": ["acme-staff"]},
    "adam": {"email": "adam@acme.test", "groups": ["acme-admins"]},
    "gus": {"email": "gus@globex.test", "groups": ["globex-readers"]},
    "alice": {"email": "alice@acme.test", "groups": []},
    "erin": {"email": "erin@nowhere.test", "groups": []},
}
"""Login names at the provider and the claims it vouches for."""
GRANTS = {
    "acme-staff": [{"tenant": "acme", "role": "standard"}],
    "acme-admins": [{"tenant": "acme", "role": "admin"}],
    "globex-readers": [{"tenant": "globex", "role": "readonly"}],
}


@dataclass
class Sso:
    stack: Stack
    base: str
    provider: OpenIdProvider

    def callback(self, provider: str = "corp") -> str:
        return f"{self.base}/.gatehold/oidc/{provider}/callback"

    async def start(
        self,
        provider: str = "corp",
        rd: str = "/api/invoices/7",
        *,
        session: str | None = None,
        **params: str,
    ) -> tuple[str, str]:
        """(the provider's authorization URL, the flow cookie this browser got)."""
        response = await self.stack.client.get(
            f"/.gatehold/oidc/{provider}/start",
            params={"rd": rd, **params},
            headers={"Cookie": f"{SESSION}={session}"} if session else {},
            allow_redirects=False,
        )
        assert response.status == 303, await response.text()
        return response.headers["Location"], response.cookies[FLOW].value

    async def provider_callback(
        self, login: str, *, provider: str = "corp", rd: str = "/api/invoices/7"
    ) -> tuple[str, str]:
        """Start a login and sign in at the provider: (its callback URL, unopened; the flow)."""
        authorize, flow = await self.start(provider, rd)
        return await sign_in_at_provider(authorize, login, until=self.callback(provider)), flow

    async def deliver(
        self, callback_url: str, flow: str | None, *, session: str | None = None
    ) -> tuple[int, str, str | None]:
        """Open the callback in a browser holding ``flow`` (and ``session``, if given):
        (status, body or Location, the new session)."""
        parts = urlsplit(callback_url)
        cookies = [f"{FLOW}={flow}"] if flow else []
        cookies += [f"{SESSION}={session}"] if session else []
        headers = {"Cookie": "; ".join(cookies)} if cookies else {}
        response = await self.stack.client.get(
            f"{parts.path}?{parts.query}", headers=headers, allow_redirects=False
        )
        session = response.cookies[SESSION].value if SESSION in response.cookies else None
        body = response.headers.get("Location", "") if response.status == 303 else ""
        return response.status, body or await response.text(), session

    async def failures(self) -> list[dict[str, Any]]:
        return [e for e in await self.stack.events("login-failed") if e["method"] == "oidc"]


@asynccontextmanager
async def sso(tmp_path: Path, *, rules_text: str | None = None, **corp: Any) -> AsyncIterator[Sso]:
    """The stack on a loopback port, ``corp`` just-in-time with ``GRANTS`` unless overridden."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with openid_provider(
        redirect_uris=[f"{base}/.gatehold/oidc/corp/callback"], accounts=ACCOUNTS
    ) as provider:
        settings = provider.provider_settings(
            "corp", **{"provisioning": "jit", "group_grants": GRANTS, **corp}
        )
        async with running_stack(
            tmp_path, port=port, rules_text=rules_text, auth={"oidc": [settings]}
        ) as stack:
            yield Sso(stack, base, provider)
