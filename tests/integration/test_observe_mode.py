"""Observe mode against a real gateway and a real Ledger: what is forwarded anyway, what
never is, and that the window closes by itself.

The demo rules with the ``ledger`` upstream in ``mode: observe`` for a day, except
``invoice-delete`` (``mode: enforce``). Acme owns the odd invoices, globex the even ones.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.app import ENGINE, with_rules
from gateway.config.loader import load_rules
from gateway.config.observe_window import stamp
from gateway.context import GATEWAY
from gateway.live import LIVE
from tests.support.observing import observing_rules
from tests.support.rawhttp import raw_request
from tests.support.stack import DEMO_RULES, Stack, running_stack

DAY = 86400.0
JSON = {"Accept": "application/json"}
ATTACKS = (
    "/api/invoices/7%2F..%2F8",
    "/api/%2e%2e/invoices/8",
    "/api/invoices/8%5C..%5C7",
    "/api/invoices/%zz",
    "/api/invoices/8%00",
    "http://elsewhere.test/api/invoices/8",
)
"""Ambiguous targets (I2): refused at ingress, before any decision observe mode could
overrule."""


async def forwarded(stack: Stack) -> int:
    """Requests Ledger got from the gateway's pipeline (owner lookups carry no request id)."""
    return sum(
        count for request_id, count in (await stack.ledger_hits()).items() if request_id != "-"
    )


async def request_row(stack: Stack, request_id: str) -> dict[str, Any]:
    rows = await stack.audit_rows(request_id)
    row = next(r for r in rows if r["kind"] == "request")
    row["data"] = json.loads(row["data"])
    return row


async def test_a_cross_tenant_read_is_forwarded_and_audited_as_the_rules_would_decide(
    tmp_path: Path,
) -> None:
    until = time.time() + DAY
    async with running_stack(tmp_path, rules_text=observing_rules(until)) as stack:
        response = await stack.client.get(
            "/api/invoices/8", headers=stack.cookie("alice@acme.test") | JSON
        )
        # alice (acme) reads globex's invoice 8: the rules refuse it, observe forwards it
        assert response.status == 200
        assert (await response.json())["tenant"] == "globex"
        request_id = response.headers["X-Request-Id"]
        assert (await stack.ledger_hits())[request_id] == 1
        row = await request_row(stack, request_id)
        assert row["decision"] == "observed"
        assert row["reason"] == "tenant-foreign"
        assert row["tenant"] == "globex"
        assert row["route"] == "invoice-read"
        assert row["data"]["would_decide"] == "deny"
        assert row["data"]["forwarded"] is True
        assert row["data"]["observe_until"] == stamp(until)
        assert row["data"]["granted_by"] == []
        outcome = (await stack.audit_rows(request_id))[-1]
        assert outcome["kind"] == "outcome" and '"status":200' in outcome["data"]
        # what the app is told: the caller, their own tenant, and no granted role
        echoed = await stack.client.get(
            "/api/echo/t/globex", headers=stack.cookie("alice@acme.test") | JSON
        )
        assert echoed.status == 200
        headers = (await echoed.json())["headers"]
        assert headers["X-Gatehold-Email"] == "alice@acme.test"
        assert headers["X-Gatehold-Tenant"] == "acme"
        assert headers["X-Gatehold-Roles"] == ""
        assertion = jwt.decode(headers["X-Gatehold-Assertion"], options={"verify_signature": False})
        assert assertion["tenant"] == "acme" and assertion["roles"] == []
        # an allowed request is recorded as before
        own = await stack.client.get("/api/invoices/7", headers=stack.cookie("alice@acme.test"))
        assert own.status == 200
        assert (await request_row(stack, own.headers["X-Request-Id"]))["decision"] == "allow"
        metrics = stack.app[GATEWAY].metrics.exposition().decode()
        assert (
            'gatehold_observed_requests_total{route="invoice-read",would="tenant-foreign"} 1.0'
            in metrics
        )
        assert "gatehold_observing_routes " in metrics
        assert "gatehold_observing_routes 0.0" not in metrics


async def test_nobody_signed_in_ingress_attacks_and_enforcing_routes_stay_refused(
    tmp_path: Path,
) -> None:
    rules = observing_rules(time.time() + DAY, **{"invoice-delete": "enforce"})
    async with running_stack(tmp_path, rules_text=rules) as stack:
        before = await forwarded(stack)
        anonymous = await stack.client.get("/api/invoices/8", headers=JSON)
        assert anonymous.status == 401
        row = await request_row(stack, anonymous.headers["X-Request-Id"])
        assert (row["decision"], row["reason"]) == ("deny", "auth-required")
        forged = await stack.client.get(
            "/api/invoices/8", headers=JSON | {"Cookie": "__Host-gatehold=forged"}
        )
        assert forged.status == 401
        port = stack.client.server.port
        assert port is not None
        for target in ATTACKS:
            attack = await raw_request(
                "127.0.0.1", port, "GET", target, stack.cookie("alice@acme.test")
            )
            assert attack.status == 400, target
        unmatched = await stack.client.get("/admin/secret", headers=stack.cookie("alice@acme.test"))
        assert unmatched.status == 404
        wrong_type = await stack.client.get(
            "/api/search?invoice=x';--", headers=stack.cookie("alice@acme.test") | JSON
        )
        assert wrong_type.status in (400, 404)
        # a WebSocket would outlive the window: never let through
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused_socket:
            await stack.client.ws_connect(
                "/ws/globex/feed", headers=stack.cookie("alice@acme.test")
            )
        assert refused_socket.value.status == 404
        # the route that says mode: enforce refuses though its upstream observes
        delete = await stack.client.delete(
            "/api/invoices/8", headers=stack.cookie("carol@acme.test") | JSON
        )
        assert delete.status == 404
        row = await request_row(stack, delete.headers["X-Request-Id"])
        assert (row["decision"], row["reason"]) == ("deny", "tenant-foreign")
        assert await forwarded(stack) == before, "a refused request reached Ledger"


async def test_upload_checks_still_refuse_an_observed_upload(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=observing_rules(time.time() + DAY)) as stack:
        before = await forwarded(stack)
        # rita is readonly (the rules refuse her write), and the file is a program
        body = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
            b"Content-Type: application/pdf\r\n\r\nMZ\x90\x00\x03 not a pdf\r\n--b--\r\n"
        )
        response = await stack.client.post(
            "/files",
            data=body,
            headers=stack.cookie("rita@acme.test")
            | JSON
            | {"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert response.status == 415
        row = await request_row(stack, response.headers["X-Request-Id"])
        assert (row["decision"], row["reason"]) == ("deny", "file-type-refused")
        assert await forwarded(stack) == before


async def test_the_window_closes_by_itself_and_the_same_request_is_refused(
    tmp_path: Path,
) -> None:
    until = time.time() + 3600
    async with running_stack(tmp_path, rules_text=observing_rules(until)) as stack:
        cookie = stack.cookie("alice@acme.test") | JSON
        observed = await stack.client.get("/api/invoices/8", headers=cookie)
        assert observed.status == 200
        gateway = stack.app[LIVE].current
        gateway.clock = lambda: time.time() + 3601  # an hour later, with no reload
        before = await forwarded(stack)
        refused = await stack.client.get("/api/invoices/8", headers=cookie)
        assert refused.status == 404
        request_id = refused.headers["X-Request-Id"]
        assert request_id not in await stack.ledger_hits()
        assert await forwarded(stack) == before
        row = await request_row(stack, request_id)
        assert (row["decision"], row["reason"]) == ("deny", "tenant-foreign")
        assert "gatehold_observing_routes 0.0" in gateway.metrics.exposition().decode()


async def test_would_be_denials_feed_the_enumeration_block_which_is_enforced(
    tmp_path: Path,
) -> None:
    limits = {"enumeration": {"slow_after": 50, "block_after": 3, "window": "60s"}}
    rules = observing_rules(time.time() + DAY)
    async with running_stack(tmp_path, rules_text=rules, policy=limits) as stack:
        cookie = stack.cookie("alice@acme.test") | JSON
        statuses = [
            (await stack.client.get(f"/api/invoices/{n}", headers=cookie)).status
            for n in (2, 4, 6, 8)
        ]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3] == 429
        assert (await stack.events("enumeration-blocked"))[0]["actor"] == "alice@acme.test"


async def test_start_warns_of_every_observing_route_and_its_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    until = time.time() + 2 * DAY
    caplog.set_level(logging.WARNING, logger="gatehold")
    async with running_stack(tmp_path, rules_text=observing_rules(until)):
        warnings = [r.getMessage() for r in caplog.records if "observe mode" in r.getMessage()]
    assert any("'invoice-read'" in w and stamp(until) in w for w in warnings)
    assert all("enforces by itself" in w for w in warnings)


async def test_forward_auth_answers_2xx_for_an_observed_request_and_audits_it(
    tmp_path: Path,
) -> None:
    until = time.time() + DAY
    settings: dict[str, Any] = {
        "server": {"public_url": "http://gatehold.test", "trusted_proxies": ["127.0.0.1/32"]},
        "forward_auth": {"enabled": True},
    }
    async with running_stack(tmp_path, rules_text=observing_rules(until), **settings) as stack:
        asked = {"X-Original-Method": "GET", "X-Original-URI": "/api/invoices/8"}
        answer = await stack.client.get(
            "/.gatehold/auth", headers=asked | stack.cookie("alice@acme.test") | JSON
        )
        assert answer.status == 200
        assert answer.headers["X-Gatehold-Email"] == "alice@acme.test"
        assert answer.headers["X-Gatehold-Tenant"] == "acme", "never the foreign tenant"
        assert answer.headers["X-Gatehold-Roles"] == "", "no role was granted"
        row = await request_row(stack, answer.headers["X-Request-Id"])
        assert (row["decision"], row["reason"]) == ("observed", "tenant-foreign")
        assert row["data"]["via"] == "forward-auth" and row["data"]["would_decide"] == "deny"
        anonymous = await stack.client.get("/.gatehold/auth", headers=asked | JSON)
        assert anonymous.status == 401
        stack.app[LIVE].current.clock = lambda: until + 1
        closed = await stack.client.get(
            "/.gatehold/auth", headers=asked | stack.cookie("alice@acme.test") | JSON
        )
        assert closed.status == 404
        row = await request_row(stack, closed.headers["X-Request-Id"])
        assert (row["decision"], row["reason"]) == ("deny", "tenant-foreign")


async def test_a_reload_starts_and_ends_observing_and_warns_when_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path) as stack:
        live, settings, engine = stack.app[LIVE], stack.settings, stack.app[ENGINE]

        async def reload(text: str) -> None:
            rules = tmp_path / "reloaded.yaml"
            rules.write_text(text)
            assert await live.reload(
                str(rules),
                lambda: load_rules(rules, env=settings.rules_env),
                lambda gateway, ruleset: with_rules(gateway, settings, ruleset, engine),
            )

        cookie = stack.cookie("alice@acme.test") | JSON
        assert (await stack.client.get("/api/invoices/8", headers=cookie)).status == 404
        caplog.set_level(logging.WARNING, logger="gatehold")
        until = time.time() + DAY
        await reload(observing_rules(until))
        assert any(
            "'invoice-read'" in r.getMessage() and stamp(until) in r.getMessage()
            for r in caplog.records
        )
        assert (await stack.client.get("/api/invoices/8", headers=cookie)).status == 200
        metrics = live.current.metrics.exposition().decode()
        assert "gatehold_observing_routes 0.0" not in metrics
        await reload(DEMO_RULES.read_text())
        assert (await stack.client.get("/api/invoices/8", headers=cookie)).status == 404
        assert "gatehold_observing_routes 0.0" in live.current.metrics.exposition().decode()


async def test_an_observed_create_is_forwarded_but_teaches_the_registry_no_owner(
    tmp_path: Path,
) -> None:
    """rita is readonly: her create is refused (``role-forbidden``), observed, forwarded,
    and Ledger makes the report; only a create the rules allowed may register an owner,
    or an observed request would leave a lasting grant behind the window."""
    from gateway.store.registry import get_owner

    until = time.time() + DAY
    async with running_stack(tmp_path, rules_text=observing_rules(until)) as stack:
        rita = stack.cookie("rita@acme.test")
        created = await stack.client.post("/api/reports", json={"title": "seen"}, headers=rita)
        assert created.status == 201
        row = await request_row(stack, created.headers["X-Request-Id"])
        assert (row["decision"], row["reason"]) == ("observed", "role-forbidden")
        observed_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        assert await get_owner(stack.app[ENGINE], "report", observed_id) is None
        # the same create by someone the rules allow does register its owner
        alice = stack.cookie("alice@acme.test")
        allowed = await stack.client.post("/api/reports", json={"title": "ok"}, headers=alice)
        assert allowed.status == 201
        allowed_id = allowed.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        assert await get_owner(stack.app[ENGINE], "report", allowed_id) == "acme"
