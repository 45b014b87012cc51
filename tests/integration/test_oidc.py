"""OIDC sign-in against a real OpenID Provider (npm oidc-provider) on loopback.

The provider's login page is walked over HTTP here (the browser tests do it in
Chromium); each attack is then played against the gateway's callback and must fail
with a clear page, no session, and an audited ``login-failed``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import text

from gateway.admin import service as admin
from gateway.admin.service import AdminContext
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.store import users as user_store
from tests.support.openid_provider import openid_provider, sign_in_at_provider
from tests.support.servers_base import free_port
from tests.support.sso import ACCOUNTS, GRANTS, SESSION, Sso, sso
from tests.support.stack import running_stack


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def assert_refused(s: Sso, callback: str, flow: str | None, reason: str) -> None:
    """A 400 page naming ``reason``, no session, and that one failure audited."""
    status, body, session = await s.deliver(callback, flow)
    assert status == 400 and session is None and reason in body
    assert [f["reason"] for f in await s.failures()] == [reason]


async def test_sign_in_applies_the_claims_and_keys_the_account_by_issuer_and_subject(
    tmp_path: Path,
) -> None:
    async with sso(tmp_path) as s:
        authorize, flow = await s.start(rd="/api/invoices/7")
        query = dict(parse_qsl(urlsplit(authorize).query))
        assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
        assert "code_verifier" not in query  # the verifier never leaves the gateway

        callback = await sign_in_at_provider(authorize, "cora", until=s.callback())
        status, location, session = await s.deliver(callback, flow)
        assert (status, location) == (303, "/api/invoices/7") and session

        cookie = {"Cookie": f"{SESSION}={session}"}
        own = await s.stack.client.get("/api/invoices/7", headers=cookie)
        assert own.status == 200 and (await own.json())["tenant"] == "acme"
        foreign = await s.stack.client.get("/api/invoices/8", headers=cookie)
        assert foreign.status == 404
        hits = await s.stack.ledger_hits()
        assert hits.get(foreign.headers["X-Request-Id"], 0) == 0

        async with s.stack.app[ENGINE].connect() as conn:
            accounts = (await conn.execute(text("SELECT * FROM external_accounts"))).all()
        assert [(a.issuer, a.subject, a.provider) for a in accounts] == [
            (s.provider.issuer, "cora", "corp")
        ]
        login = (await s.stack.events("login"))[-1]
        assert login["actor"] == "cora@acme.test"
        assert login["method"] == "oidc" and login["data"]["provider"] == "corp"


async def test_a_callback_carried_to_another_browser_is_worthless_there(tmp_path: Path) -> None:
    async with sso(tmp_path) as s:
        callback, flow = await s.provider_callback("cora")

        status, body, session = await s.deliver(callback, flow=None)  # a second browser
        assert status == 400 and session is None
        assert "started in another browser" in body and "login-expired" in body

        status, _, session = await s.deliver(callback, flow)  # the browser that started it
        assert status == 303 and session
        assert [f["reason"] for f in await s.failures()] == ["login-expired"]


async def test_a_tampered_state_is_refused(tmp_path: Path) -> None:
    async with sso(tmp_path) as s:
        callback, flow = await s.provider_callback("cora")
        forged = with_query(callback, state="attacker-chosen-state")
        await assert_refused(s, forged, flow, "state-mismatch")


async def test_a_replayed_code_is_refused(tmp_path: Path) -> None:
    async with sso(tmp_path) as s:
        callback, flow = await s.provider_callback("cora")
        assert (await s.deliver(callback, flow))[0] == 303
        # The attacker replays the whole callback, flow cookie included.
        await assert_refused(s, callback, flow, "code-rejected")


async def test_a_response_naming_another_issuer_is_refused_mix_up(tmp_path: Path) -> None:
    async with sso(tmp_path) as s:
        callback, flow = await s.provider_callback("cora")
        mixed = with_query(callback, iss="http://127.0.0.1:1/other-provider")
        await assert_refused(s, mixed, flow, "issuer-mismatch")


async def test_a_nonce_other_than_the_one_sent_is_refused(tmp_path: Path) -> None:
    async with sso(tmp_path) as s:
        authorize, flow = await s.start()
        swapped = with_query(authorize, nonce="nonce-from-another-login")
        callback = await sign_in_at_provider(swapped, "cora", until=s.callback())
        await assert_refused(s, callback, flow, "nonce-mismatch")


async def test_invite_only_links_invited_people_and_refuses_others(tmp_path: Path) -> None:
    async with sso(tmp_path, provisioning="invite", group_grants={}) as s:
        callback, flow = await s.provider_callback("erin")
        status, body, session = await s.deliver(callback, flow)
        assert status == 400 and session is None and "not-invited" in body

        # alice exists, but her email alone does not tie corp's account to her
        callback, flow = await s.provider_callback("alice", rd="/api/invoices")
        status, body, session = await s.deliver(callback, flow)
        assert status == 400 and session is None and "not-invited" in body

        engine = s.stack.app[ENGINE]
        alice = await user_store.get_user_by_email(engine, "alice@acme.test")
        assert alice is not None
        ctx = AdminContext(
            engine, s.stack.app[GATEWAY].audit, admin.CLI_ADMIN, frozenset(s.stack.ruleset.roles)
        )
        assert await admin.invite_sso(ctx, alice, provider="corp", ttl=60) is None
        invited = await user_store.get_user(engine, alice.id)
        assert invited is not None and invited.state == "invited"
        callback, flow = await s.provider_callback("alice", rd="/api/invoices")
        status, location, session = await s.deliver(callback, flow)
        assert (status, location) == (303, "/api/invoices") and session  # alice was invited
        signed_in = await user_store.get_user(engine, alice.id)
        assert signed_in is not None and signed_in.state == "active"
        assert signed_in.first_login_at is not None
        failed = await s.failures()
        assert [(f["actor"], f["reason"]) for f in failed] == [
            ("erin@nowhere.test", "not-invited"),
            ("alice@acme.test", "account-not-linked"),
        ]


async def test_just_in_time_people_get_the_memberships_their_groups_grant(tmp_path: Path) -> None:
    async with sso(tmp_path) as s:
        callback, flow = await s.provider_callback("gus", rd="/api/invoices/8")
        status, _, session = await s.deliver(callback, flow)
        assert status == 303 and session
        cookie = {"Cookie": f"{SESSION}={session}"}
        assert (await s.stack.client.get("/api/invoices/8", headers=cookie)).status == 200
        # readonly in globex: reading is allowed, deleting is not.
        delete = await s.stack.client.delete("/api/invoices/8", headers=cookie)
        assert delete.status == 403
        # erin's groups grant nothing: just-in-time provisioning has nothing to give.
        callback, flow = await s.provider_callback("erin")
        assert (await s.deliver(callback, flow))[0] == 400
        assert [f["reason"] for f in await s.failures()] == ["no-memberships"]


async def test_several_providers_at_once_and_no_crossing_between_them(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    corp_cb, partner_cb = (f"{base}/.gatehold/oidc/{n}/callback" for n in ("corp", "partner"))
    async with (
        openid_provider(redirect_uris=[corp_cb], accounts=ACCOUNTS) as corp,
        openid_provider(redirect_uris=[partner_cb], accounts=ACCOUNTS) as partner,
    ):
        providers = [
            corp.provider_settings("corp", provisioning="jit", group_grants=GRANTS),
            # partner vouches for its emails, and is trusted to: it links by verified email
            partner.provider_settings(
                "partner", label="Partner IdP", group_grants=GRANTS, link_by_email=True
            ),
        ]
        async with running_stack(tmp_path, port=port, auth={"oidc": providers}) as stack:
            s = Sso(stack, base, corp)
            page = await (await stack.client.get("/.gatehold/login")).text()
            assert "Sign in with Corp" in page and "Sign in with Partner IdP" in page

            # A login started with corp, answered by corp, delivered to partner's callback.
            authorize, flow = await s.start("corp")
            callback = await sign_in_at_provider(authorize, "cora", until=corp_cb)
            crossed = callback.replace("/oidc/corp/", "/oidc/partner/")
            status, body, session = await s.deliver(crossed, flow)
            assert status == 400 and session is None and "state-mismatch" in body

            # Each provider on its own works, and the account is keyed per issuer.
            assert (await s.deliver(callback, flow))[0] == 303
            authorize, flow = await s.start("partner")
            callback = await sign_in_at_provider(authorize, "cora", until=partner_cb)
            assert (await s.deliver(callback, flow))[0] == 303
            async with stack.app[ENGINE].connect() as conn:
                keys = (
                    await conn.execute(
                        text("SELECT issuer, subject, user_id FROM external_accounts")
                    )
                ).all()
            assert {(k.issuer, k.subject) for k in keys} == {
                (corp.issuer, "cora"),
                (partner.issuer, "cora"),
            }
            assert len({k.user_id for k in keys}) == 1  # one person, two external accounts
