"""Shadow mode: a second rules version decides every live request beside the active one.

A real gateway following the store, in front of the real Ledger. The shadow version
lets ``readonly`` write but not read: the answers stay exactly the active version's
(status, what reached Ledger), Ledger sees no extra request (owner lookups included:
its hit counter counts every call), and each difference is recorded with both
decisions and reasons, grouped by route and reason pair. A report with differences
refuses activation; a clean one activates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from gateway.admin import rules as lifecycle
from gateway.admin import service as admin
from gateway.admin import shadow as shadow_admin
from gateway.admin.service import AdminContext, AdminError
from gateway.admin.shadow import ShadowReport
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.shadow import SHADOW
from gateway.shadow_sync import SHADOW_FOLLOWER
from gateway.store import rule_versions as version_store
from gateway.store.rule_versions import VersionRow
from gateway.store.shadow_runs import ShadowRun
from tests.support.stack import DEMO_RULES, Stack, running_stack

READONLY = "  readonly: {can: [read]}\n"
WRITE_NOT_READ = DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [write]}\n")
SAME_DECISIONS = DEMO_RULES.read_text() + "# the same rules, one comment more\n"
INVOICE_OWNER = 'owner: {http: "GET {upstream}/internal/invoices/{id}", tenant_field: /tenant}'
OTHER_LOOKUP = DEMO_RULES.read_text().replace(
    INVOICE_OWNER,
    'owner: {http: "GET {upstream}/internal/invoices/{id}?v=2", tenant_field: /tenant}',
)
ADMIN_MANAGED = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}


def context(stack: Stack) -> AdminContext:
    return AdminContext(
        stack.app[ENGINE],
        stack.app[GATEWAY].audit,
        admin.CLI_ADMIN,
        frozenset(stack.ruleset.roles),
        settings=stack.settings,
    )


async def propose(stack: Stack, text: str) -> VersionRow:
    version = await lifecycle.propose_version(context(stack), text, "shadow candidate")
    assert isinstance(version, VersionRow), version
    return version


async def start(stack: Stack, text: str) -> VersionRow:
    """Propose ``text``, start it in shadow and have this process pick it up now."""
    version = await propose(stack, text)
    run = await shadow_admin.start_shadow(context(stack), version.id, "try it")
    assert isinstance(run, ShadowRun), run
    await stack.app[SHADOW_FOLLOWER].step()
    assert stack.app[SHADOW].current is not None
    return version


async def answer(
    stack: Stack, method: str, target: str, email: str, body: object = None
) -> tuple[int, int]:
    """The status of one request and how many calls Ledger received meanwhile."""
    before = await stack.ledger_total()
    async with stack.client.request(
        method, target, headers=stack.cookie(email), json=body
    ) as reply:
        await reply.read()
        status = reply.status
    await stack.settled()
    return status, await stack.ledger_total() - before


async def report(stack: Stack) -> ShadowReport:
    await stack.app[SHADOW].writer.flush()
    found = await shadow_admin.shadow_report(context(stack))
    assert isinstance(found, ShadowReport), found
    return found


def groups(found: ShadowReport) -> dict[tuple[str, ...], int]:
    return {
        (
            g.key.live_route,
            g.key.live_decision,
            g.key.live_reason,
            g.key.shadow_decision,
            g.key.shadow_reason,
        ): g.count
        for g in found.groups
    }


async def test_a_shadow_never_changes_an_answer_nor_calls_ledger_and_records_differences(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        active = stack.follower.applied
        draft = await start(stack, WRITE_NOT_READ)
        rita, alice = "rita@acme.test", "alice@acme.test"

        # (status, Ledger calls): exactly what the active version alone does.
        assert await answer(stack, "GET", "/api/invoices", rita) == (200, 1)
        assert await answer(stack, "POST", "/api/invoices", rita, {"customer": "x"}) == (403, 0)
        patched = await answer(stack, "PATCH", "/api/invoices/1", rita, {"related_invoice": 3})
        assert patched == (403, 0)
        # alice reads invoice 1: one owner lookup and one forward, none for the shadow,
        # which decides from the owner the live lookup just cached (and agrees).
        assert await answer(stack, "GET", "/api/invoices/1", alice) == (200, 2)
        assert await answer(stack, "GET", "/api/invoices/1", alice) == (200, 1)
        # alice's write names invoice 3 in its body: the live decision read the body and
        # looked 3 up; the shadow judges the ids of that same body (and agrees).
        body = {"related_invoice": 3}
        assert await answer(stack, "PATCH", "/api/invoices/1", alice, body) == (200, 2)
        for _ in range(7):  # a hot differing endpoint: counted, samples capped
            assert await answer(stack, "GET", "/api/invoices", rita) == (200, 1)

        found = await report(stack)
        assert (found.run.version_id, found.active) == (draft.id, active)
        assert (found.run.decided, found.run.agreed, found.run.unjudged) == (13, 3, 1)
        assert groups(found) == {
            ("invoice-list", "allow", "role-allowed", "deny", "role-forbidden"): 8,
            ("invoice-create", "deny", "role-forbidden", "allow", "role-allowed"): 1,
            # the live decision refused before reading the body: the shadow did not read it
            ("invoice-update", "deny", "role-forbidden", "unjudged", "body-not-read"): 1,
        }
        listing = next(g for g in found.groups if g.key.live_route == "invoice-list")
        assert len(listing.samples) == 5, "at most five samples per group"
        sample = listing.samples[0]
        assert (sample.principal, sample.method, sample.target, sample.tenant) == (
            rita,
            "GET",
            "/api/invoices",
            "acme",
        )
        assert sample.live_detail and sample.shadow_detail
        assert not found.clean and "10 of 13 decisions differ" in found.verdict
        rows = await stack.audit_rows(sample.request_id)
        assert rows and rows[0]["decision"] == "allow", "the audit keeps the live decision"
        scraped = stack.app[GATEWAY].metrics.exposition().decode()
        for line in (
            'gatehold_shadow_decisions_total{agree="yes"} 3.0',
            'gatehold_shadow_decisions_total{agree="no"} 9.0',
            'gatehold_shadow_decisions_total{agree="unjudged"} 1.0',
            "gatehold_shadow_differences_dropped_total 0.0",
        ):
            assert line in scraped, line

        refused = await shadow_admin.activate_shadow(context(stack))
        assert isinstance(refused, AdminError) and refused.code == "conflict"
        assert "not clean" in refused.message
        assert await version_store.active_id(stack.app[ENGINE]) == active

        forced = await shadow_admin.activate_shadow(context(stack), even_if_different=True)
        assert isinstance(forced, ShadowReport)
        assert await version_store.active_id(stack.app[ENGINE]) == draft.id
        await stack.app[SHADOW_FOLLOWER].step()
        assert stack.app[SHADOW].current is None, "activation stopped the shadow"
        (started,) = await stack.events("rules-shadow-started")
        (stopped,) = await stack.events("rules-shadow-stopped")
        assert started["data"]["version"] == draft.id and started["actor"] == "cli"
        assert stopped["data"]["why"] == "activated"


async def test_a_clean_report_activates_the_shadow_version(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        ctx = context(stack)
        draft = await start(stack, SAME_DECISIONS)
        empty = await shadow_admin.activate_shadow(ctx)
        assert isinstance(empty, AdminError) and "no request" in empty.message
        for email, target, status in [
            ("rita@acme.test", "/api/invoices", 200),
            ("alice@acme.test", "/api/invoices/3", 200),
            ("alice@acme.test", "/api/invoices/2", 404),  # globex's: refused alike
            ("bob@globex.test", "/api/invoices/2", 200),
        ]:
            assert (await answer(stack, "GET", target, email))[0] == status
        found = await report(stack)
        assert found.clean and found.verdict == "clean: no differences over 4 decisions"
        rules = stack.app[SHADOW].current
        assert rules is not None and rules.compared_with == stack.follower.applied
        assert {"invoice-list", "invoice-read"} <= rules.same_routes, "judged as the live"
        activated = await shadow_admin.activate_shadow(ctx)
        assert isinstance(activated, ShadowReport) and activated.clean
        assert await version_store.active_id(stack.app[ENGINE]) == draft.id


async def test_an_uncached_owner_is_recorded_as_unknown_not_looked_up(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        await start(stack, OTHER_LOOKUP)  # the shadow asks another URL: not in the cache
        assert await answer(stack, "GET", "/api/invoices/5", "alice@acme.test") == (200, 2)
        hits = await stack.ledger_hits()
        assert hits.get("-", 0) == 1, f"one owner lookup (the live one): {hits}"
        found = await report(stack)
        assert groups(found) == {
            ("invoice-read", "allow", "role-allowed", "unjudged", "owner-unknown"): 1
        }
        assert found.groups[0].samples[0].shadow_detail == (
            "owner unknown (not looked up in shadow)"
        )


async def test_starting_a_shadow_is_refused_clearly_when_it_cannot_run(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        ctx, engine = context(stack), stack.app[ENGINE]
        active = stack.follower.applied
        cases: list[tuple[int, str, str]] = [
            (active, "invalid", "is the active version"),
            (999, "not-found", "no rules version 999"),
        ]
        unset = WRITE_NOT_READ.replace("${LEDGER_URL:-http://127.0.0.1:9001}", "${NOT_SET_HERE}")
        broken = await version_store.add_version(
            engine, unset, author="elsewhere", comment="", now=time.time()
        )
        cases.append((broken.id, "invalid", "does not compile here"))
        for version_id, code, words in cases:
            refused = await shadow_admin.start_shadow(ctx, version_id)
            assert isinstance(refused, AdminError), version_id
            assert (refused.code, words in refused.message) == (code, True), refused
        stopped = await shadow_admin.stop_shadow(ctx)
        assert isinstance(stopped, AdminError) and stopped.code == "not-found"
        first = await propose(stack, WRITE_NOT_READ)
        assert isinstance(await shadow_admin.start_shadow(ctx, first.id), ShadowRun)
        second = await propose(stack, SAME_DECISIONS)
        busy = await shadow_admin.start_shadow(ctx, second.id)
        assert isinstance(busy, AdminError) and busy.code == "conflict"
        assert f"version {first.id} is in shadow already" in busy.message
        assert await stack.events("rules-shadow-started") != []
        assert len(await stack.events("rules-shadow-started")) == 1


async def test_forward_auth_decisions_are_judged_in_shadow_too(tmp_path: Path) -> None:
    fa: dict[str, Any] = {
        "server": {"public_url": "http://gatehold.test", "trusted_proxies": ["127.0.0.1/32"]},
        "forward_auth": {"enabled": True},
    }
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED, **fa) as stack:
        await start(stack, WRITE_NOT_READ)
        before = await stack.ledger_total()
        for method, uri, status in [
            ("GET", "/api/invoices/1", 200),
            # its answer is checked: forward-auth cannot decide it, live or in shadow (agreed)
            ("GET", "/api/invoices", 403),
        ]:
            headers = {"X-Original-Method": method, "X-Original-URI": uri, "Accept": "*/*"}
            headers |= stack.cookie("rita@acme.test")
            async with stack.client.get("/.gatehold/auth", headers=headers) as reply:
                assert reply.status == status, await reply.text()
        assert await stack.ledger_total() == before + 1, "the live owner lookup alone"
        found = await report(stack)
        assert (found.run.decided, found.run.agreed) == (2, 1)
        assert groups(found) == {
            ("invoice-read", "allow", "role-allowed", "deny", "role-forbidden"): 1
        }


async def test_on_an_observing_route_the_shadow_compares_the_rules_own_decision(
    tmp_path: Path,
) -> None:
    """The active rules observe: rita's create (readonly: ``role-forbidden``) is
    forwarded anyway. A shadow that refuses it too agrees with the active rules, which
    refused it; the forwarding observe mode allowed is not the rules' decision."""
    from tests.support.observing import observing_rules

    observing = observing_rules(time.time() + 86400)
    async with running_stack(tmp_path, follow=True, **ADMIN_MANAGED) as stack:
        version = await propose(stack, observing)
        activated = await lifecycle.activate_version(context(stack), version.id, "observe")
        assert isinstance(activated, VersionRow), activated
        assert await stack.follower.apply(version.id)
        # one more role: no route is alike, so every request is decided again in full
        shadow = yaml.safe_load(observing)
        shadow["roles"]["visitor"] = {"can": ["read"]}
        await start(stack, yaml.safe_dump(shadow, sort_keys=False))
        status, calls = await answer(stack, "POST", "/api/invoices", "rita@acme.test", {"c": 1})
        assert (status, calls) == (201, 1), "observe mode forwarded it"
        found = await report(stack)
        assert (found.run.decided, found.run.agreed) == (1, 1), groups(found)
