"""``mfa: required`` holds on live traffic: a one-factor caller is refused, nothing reaches
the app behind, and the refusal is audited with reason ``mfa-required``.

Through the real gateway and Ledger, with the demo rules plus ``mfa: required`` on
``GET /api/invoices`` and ``mfa: {tenants: [globex]}``. A session that has shown a
second factor passes; an API key never does on an MFA route (it cannot show one);
a tenant admin cannot reset the second factors of someone outside their tenants.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.model import AuthMethod, Membership
from gateway.store import api_keys as key_store
from gateway.store import users as user_store
from gateway.store.factors import factors_of
from tests.support.admin_api import as_person
from tests.support.factors import enrol, mfa_rules, user_id
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html"}
MFA_ROUTE = "/api/invoices"
PLAIN_ROUTE = "/documents"
"""``document-list``: no ``mfa`` of its own; only the tenant's can ask for a second factor."""


async def two_factor_session(stack: Stack, email: str) -> dict[str, str]:
    """A session whose sign-in showed a second factor a minute ago."""
    engine = stack.app[ENGINE]
    token, _ = await stack.app[GATEWAY].sessions.create(
        user_id=await user_id(engine, email),
        auth_method=AuthMethod.MAGIC_LINK,
        client_ip="127.0.0.1",
        user_agent="tests",
        auth_time=time.time() - 60,
        mfa_time=time.time() - 60,
    )
    return {"Cookie": f"__Host-gatehold={token}"}


async def refused_for_mfa(stack: Stack, headers: dict[str, str], path: str) -> dict[str, Any]:
    """Send ``GET path``: 401 ``mfa-required``, nothing at Ledger, an audited denial."""
    before = await stack.ledger_total()
    response = await stack.client.get(path, headers=headers | API)
    body = await response.json(content_type=None)
    assert response.status == 401, body
    assert body["type"] == "/.gatehold/problems/mfa-required"
    assert await stack.ledger_total() == before, "nothing reached the app"
    request_id = response.headers["X-Request-Id"]
    (row, *_) = await stack.audit_rows(request_id)
    assert (row["decision"], row["reason"]) == ("deny", "mfa-required")
    assert row["path"] == path
    return body


async def passes(stack: Stack, headers: dict[str, str], path: str) -> None:
    before = await stack.ledger_total()
    response = await stack.client.get(path, headers=headers | API)
    assert response.status == 200, await response.text()
    assert await stack.ledger_total() == before + 1


async def test_an_mfa_route_refuses_a_one_factor_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules(tenants=("globex",))) as stack:
        body = await refused_for_mfa(stack, stack.cookie("alice@acme.test"), MFA_ROUTE)
        login = urlsplit(body["login"])
        assert parse_qs(login.query) == {"rd": [MFA_ROUTE], "step_up": ["1"], "mfa": ["1"]}

        browser = await stack.client.get(
            MFA_ROUTE, headers=stack.cookie("alice@acme.test") | BROWSER, allow_redirects=False
        )
        assert browser.status == 302
        assert browser.headers["Location"] == f"/.gatehold/login?rd={MFA_ROUTE}&step_up=1&mfa=1"


async def test_a_session_that_showed_a_second_factor_passes(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules(tenants=("globex",))) as stack:
        await passes(stack, await two_factor_session(stack, "alice@acme.test"), MFA_ROUTE)


async def test_a_person_without_access_is_not_told_the_route_needs_mfa(tmp_path: Path) -> None:
    rules = mfa_rules().replace("  readonly: {can: [read]}", "  readonly: {can: [download]}")
    async with running_stack(tmp_path, rules_text=rules) as stack:
        before = await stack.ledger_total()
        response = await stack.client.get(MFA_ROUTE, headers=stack.cookie("rita@acme.test") | API)
        body = await response.json(content_type=None)
        assert response.status == 403 and body["type"].endswith("/role-forbidden")
        assert await stack.ledger_total() == before


async def test_an_mfa_tenant_refuses_a_one_factor_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules(tenants=("globex",))) as stack:
        await refused_for_mfa(stack, stack.cookie("bob@globex.test"), PLAIN_ROUTE)
        await passes(stack, stack.cookie("alice@acme.test"), PLAIN_ROUTE)  # acme asks nothing
        await passes(stack, await two_factor_session(stack, "bob@globex.test"), PLAIN_ROUTE)


async def test_an_api_key_is_refused_on_an_mfa_route(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=mfa_rules(tenants=("globex",))) as stack:
        engine = stack.app[ENGINE]
        _, acme_key = await key_store.create_key(
            engine, tenant="acme", role="standard", label="t", ttl=3600, now=time.time()
        )
        await refused_for_mfa(stack, {"Authorization": f"Bearer {acme_key}"}, MFA_ROUTE)
        # In an MFA tenant a key is judged by its grant: a machine cannot show a factor.
        _, globex_key = await key_store.create_key(
            engine, tenant="globex", role="standard", label="t", ttl=3600, now=time.time()
        )
        await passes(stack, {"Authorization": f"Bearer {globex_key}"}, PLAIN_ROUTE)


async def test_a_tenant_admin_cannot_reset_factors_outside_their_tenants(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        await enrol(engine, "bob@globex.test", codes=2, passkeys=1)
        carol = await as_person(stack, "carol@acme.test")
        answer = await carol.call("POST", "/users/bob@globex.test/factors/reset")
        assert answer.status == 404, answer.body
        assert answer.body["detail"] == "no user 'bob@globex.test'", "as if nobody were there"
        assert (await factors_of(engine, await user_id(engine, "bob@globex.test"))).totp
        assert await stack.events("factors-reset") == []
        bob = await stack.client.get("/documents", headers=stack.cookie("bob@globex.test") | API)
        assert bob.status == 200, "bob's session lives on"
        (row,) = [
            r
            for r in await stack.events("admin-api")
            if r["path"].endswith("/users/bob@globex.test/factors/reset")
        ]
        assert (row["actor"], row["decision"]) == ("carol@acme.test", "deny")

        # Someone in her tenant who also belongs to globex: refused as a whole person.
        await user_store.add_user(
            engine, "alice@acme.test", memberships=[Membership("globex", "readonly")]
        )
        await enrol(engine, "alice@acme.test")
        carol = await as_person(stack, "carol@acme.test")
        answer = await carol.call("POST", "/users/alice@acme.test/factors/reset")
        assert answer.status == 403 and "ask a superadmin" in answer.body["detail"]
        assert (await factors_of(engine, await user_id(engine, "alice@acme.test"))).totp
        assert await stack.events("factors-reset") == []
