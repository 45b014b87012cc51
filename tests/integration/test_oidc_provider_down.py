"""The OpenID Provider goes down, and comes back: a clear page, sessions unharmed, no restart.

A real provider (npm ``oidc-provider``) is stopped while the gateway runs. Starting a
sign-in with it then gets the gateway's own page (503, ``Retry-After``, "cannot be
reached", a way to sign in otherwise), audited, never a redirect to the dead provider
nor a 500; a callback whose code can no longer be exchanged gets the same page. A
session made by an OIDC sign-in before the outage keeps being forwarded. Once the
provider is back on its address (with its keys, as a real provider restarts), signing
in works again without restarting the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.openid_provider import (
    CLIENT_SECRET,
    OpenIdProvider,
    openid_provider,
    signing_keys,
)
from tests.support.servers_base import free_port
from tests.support.sso import ACCOUNTS, GRANTS, SESSION, Sso
from tests.support.stack import running_stack

HTML = {"Accept": "text/html"}


async def assert_unreachable_page(s: Sso, status: int, page: str, retry_after: str | None) -> None:
    assert status == 503, page[:300]
    assert "cannot be reached" in page and "sign in another way" in page
    assert 'href="/.gatehold/login"' in page
    assert "Traceback" not in page
    assert retry_after is not None and int(retry_after) > 0


async def test_provider_down_gets_a_clear_page_sessions_keep_working_and_sign_in_recovers(
    tmp_path: Path,
) -> None:
    port, provider_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    keys = signing_keys()
    callback = f"{base}/.gatehold/oidc/corp/callback"

    @asynccontextmanager
    async def provider_up() -> AsyncIterator[OpenIdProvider]:
        async with openid_provider(
            redirect_uris=[callback], accounts=ACCOUNTS, port=provider_port, jwks=keys
        ) as provider:
            yield provider

    issuer = OpenIdProvider(f"http://127.0.0.1:{provider_port}", "gatehold", CLIENT_SECRET)
    corp = issuer.provider_settings(
        "corp", provisioning="jit", group_grants=GRANTS, discovery_recheck="0s"
    )
    async with running_stack(tmp_path, port=port, auth={"oidc": [corp]}) as stack:
        s = Sso(stack, base, issuer)
        async with provider_up():
            status, _, session = await s.deliver(*await s.provider_callback("cora"))
            assert status == 303 and session is not None
            # A second sign-in gets as far as the provider's answer, then the provider dies.
            pending = await s.provider_callback("adam")
        # --- the provider is down ---
        started = await stack.client.get(
            "/.gatehold/oidc/corp/start", headers=HTML, allow_redirects=False
        )
        page = await started.text()
        await assert_unreachable_page(s, started.status, page, started.headers.get("Retry-After"))
        assert "Location" not in started.headers, "no redirect to a provider that is down"
        status, page, none = await s.deliver(*pending)  # its code cannot be exchanged now
        assert none is None
        await assert_unreachable_page(s, status, page, "5")
        failures = await s.failures()
        assert [f["reason"] for f in failures] == ["provider-unavailable"] * 2
        # A session from an OIDC sign-in before the outage is still forwarded.
        invoice = await stack.client.get(
            "/api/invoices/7", headers={"Cookie": f"{SESSION}={session}"}
        )
        assert invoice.status == 200
        rid = invoice.headers["X-Request-Id"]
        assert (await stack.ledger_hits()).get(rid) == 1, "the request reached Ledger once"
        assert [r["kind"] for r in await stack.audit_rows(rid)] == ["request", "outcome"]
        # --- the provider is back on its address: sign-in works, no gateway restart ---
        async with provider_up():
            status, location, again = await s.deliver(*await s.provider_callback("adam"))
            assert status == 303 and again is not None, location
            assert location == "/api/invoices/7"
