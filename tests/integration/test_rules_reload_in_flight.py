"""A rules reload never changes the rules of a request already under way.

In process: the real gateway in front of the real Ledger, a slow upstream answer in
flight while new rules are activated. The request that started first finishes under
the rules it started with, through the pool it started on; the next one follows the
new rules; the old pools close only once the old request has ended.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.app import ENGINE, with_rules
from gateway.config.loader import load_rules
from gateway.live import LIVE
from tests.support.stack import DEMO_RULES, Stack, running_stack
from tests.support.waiting import until

SLOW_ROUTE = '  - name: slow\n    match: {path: "/slow", methods: [GET]}\n    upstream: ledger\n'


async def _reload(stack: Stack, rules: Path) -> bool:
    live, settings, engine = stack.app[LIVE], stack.settings, stack.app[ENGINE]
    return await live.reload(
        str(rules),
        lambda: load_rules(rules, env=settings.rules_env),
        lambda gateway, ruleset: with_rules(gateway, settings, ruleset, engine),
    )


async def test_a_request_begun_before_a_reload_finishes_under_the_old_rules(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, rules_text=DEMO_RULES.read_text() + SLOW_ROUTE) as stack:
        alice = stack.cookie("alice@acme.test")
        old = stack.app[LIVE].current
        begun = asyncio.create_task(stack.client.get("/slow?seconds=1.5", headers=alice))
        await stack.ledger_reaches(1)

        rules = tmp_path / "rules.yaml"
        rules.write_text(DEMO_RULES.read_text())  # the slow route is gone
        assert await _reload(stack, rules)
        assert stack.app[LIVE].current is not old

        after = await stack.client.get("/slow?seconds=0", headers=alice)
        assert after.status == 404
        assert (await after.json())["type"] == "/.gatehold/problems/route-not-found"
        refused = await stack.audit_rows(after.headers["X-Request-Id"])
        assert refused[0]["decision"] == "deny" and refused[0]["reason"] == "route-not-found"
        assert await stack.ledger_total() == 1, "a request refused by the new rules was forwarded"

        first = await begun
        assert first.status == 200, await first.text()
        assert await first.json() == {"slept": True}
        request_id = first.headers["X-Request-Id"]
        rows = await stack.audit_rows(request_id)
        assert rows[0]["decision"] == "allow" and rows[0]["route"] == "slow"

        await until(  # the old version's pools close once its request ended
            lambda: all(session.closed for session in old.forward._sessions.values()),
            "the old version's pools close",
        )
        assert not any(s.closed for s in stack.app[LIVE].current.forward._sessions.values())

        activated = await stack.events("rules-activated")
        assert [e["data"]["digest"] for e in activated] == [
            load_rules(rules, env=stack.settings.rules_env).digest
        ]


async def test_old_pools_stay_open_while_a_request_uses_them(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rules_text=DEMO_RULES.read_text() + SLOW_ROUTE) as stack:
        alice = stack.cookie("alice@acme.test")
        old = stack.app[LIVE].current
        # Slow enough to be under way through the reload, however busy the machine.
        begun = asyncio.create_task(stack.client.get("/slow?seconds=3", headers=alice))
        await stack.ledger_reaches(1)
        rules = tmp_path / "rules.yaml"
        rules.write_text(DEMO_RULES.read_text())
        assert await _reload(stack, rules)
        await asyncio.sleep(0.2)
        assert not any(session.closed for session in old.forward._sessions.values())
        assert (await begun).status == 200
