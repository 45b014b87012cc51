"""Observe mode in the audit trail, against a real gateway: each load of observing rules
is recorded once (at start, on a reload, when following a stored version), so is the end
of a window (it passed, or a load dropped it), and the chain still verifies."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from gateway.app import ENGINE, with_rules
from gateway.audit_keys import audit_key
from gateway.config.loader import load_rules
from gateway.config.observe_window import stamp
from gateway.live import LIVE
from gateway.store import rule_versions
from gateway.store.audit_log import verify_chain
from tests.support.observing import observing_rules
from tests.support.stack import DEMO_RULES, Stack, running_stack

DAY = 86400.0
JSON = {"Accept": "application/json"}


def routes_of(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A record's windows: route → (upstream, observe_until)."""
    return {w["route"]: (w["upstream"], w["observe_until"]) for w in record["data"]["windows"]}


async def chain_problems(stack: Stack) -> list[str]:
    await stack.settled()
    key = audit_key(stack.settings, create=False)
    return await verify_chain(stack.app[ENGINE], key=key.chain)


async def reload(stack: Stack, tmp_path: Path, text: str) -> None:
    """Load ``text`` as rules in this process, as SIGHUP does."""
    live, settings, engine = stack.app[LIVE], stack.settings, stack.app[ENGINE]
    rules = tmp_path / "reloaded.yaml"
    rules.write_text(text)
    assert await live.reload(
        str(rules),
        lambda: load_rules(rules, env=settings.rules_env),
        lambda gateway, ruleset: with_rules(gateway, settings, ruleset, engine),
    )


async def test_a_start_with_observing_rules_is_audited_once_naming_each_window(
    tmp_path: Path,
) -> None:
    until = time.time() + DAY
    rules = observing_rules(until, **{"invoice-delete": "enforce"})
    async with running_stack(tmp_path, rules_text=rules) as stack:
        cookie = stack.cookie("alice@acme.test") | JSON
        for _ in range(3):
            assert (await stack.client.get("/api/invoices/8", headers=cookie)).status == 200
        (record,) = await stack.events("rules-observing")
        assert (record["actor"], record["tenant"]) == ("gatehold", "")
        windows = routes_of(record)
        assert windows["invoice-read"] == ("ledger", stamp(until))
        assert windows["tenant-echo"] == ("ledger", stamp(until))
        assert "invoice-delete" not in windows, "a route that enforces is not observing"
        assert "public-assets" not in windows, "a public route has nothing to observe"
        assert record["data"]["digest"] == stack.ruleset.digest
        assert record["data"]["pid"] == os.getpid()
        assert await stack.events("rules-observe-ended") == []
        assert await chain_problems(stack) == []


async def test_rules_that_observe_nothing_write_no_observing_record(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await reload(stack, tmp_path, DEMO_RULES.read_text())
        assert await stack.events("rules-observing") == []
        assert await stack.events("rules-observe-ended") == []


async def test_a_window_that_passes_is_audited_once_as_ended_and_then_enforced(
    tmp_path: Path,
) -> None:
    until = time.time() + 2.0
    async with running_stack(tmp_path, rules_text=observing_rules(until)) as stack:
        assert len(await stack.events("rules-observing")) == 1
        assert await stack.events("rules-observe-ended") == []
        while time.time() < until + 1.5:  # the window's end, and a second more
            await asyncio.sleep(0.1)
        (ended,) = await stack.events("rules-observe-ended")
        assert ended["data"]["why"] == "expired"
        assert routes_of(ended)["invoice-read"] == ("ledger", stamp(until))
        assert ended["ts"] >= int(until), "not before the (whole) second the rules name"
        refused = await stack.client.get(
            "/api/invoices/8", headers=stack.cookie("alice@acme.test") | JSON
        )
        assert refused.status == 404
        await asyncio.sleep(0.5)
        assert len(await stack.events("rules-observe-ended")) == 1, "recorded once"
        assert await chain_problems(stack) == []


async def test_each_reload_records_its_windows_and_the_end_of_those_it_drops(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        assert await stack.events("rules-observing") == []
        first, later = time.time() + DAY, time.time() + 2 * DAY
        await reload(stack, tmp_path, observing_rules(first))
        await reload(stack, tmp_path, observing_rules(later, **{"invoice-read": "enforce"}))
        opened = await stack.events("rules-observing")
        assert len(opened) == 2, "once per load"
        assert routes_of(opened[0])["invoice-read"] == ("ledger", stamp(first))
        assert routes_of(opened[1])["tenant-echo"] == ("ledger", stamp(later))
        assert opened[1]["data"]["source"] == str(tmp_path / "reloaded.yaml")
        (dropped,) = await stack.events("rules-observe-ended")
        assert dropped["data"]["why"] == "rules-changed"
        assert list(routes_of(dropped)) == ["invoice-read"]
        assert dropped["seq"] < opened[1]["seq"]

        await reload(stack, tmp_path, DEMO_RULES.read_text())
        assert len(await stack.events("rules-observing")) == 2
        ended = await stack.events("rules-observe-ended")
        assert len(ended) == 2 and ended[1]["data"]["why"] == "rules-changed"
        assert "tenant-echo" in routes_of(ended[1]) and "invoice-read" not in routes_of(ended[1])
        assert await chain_problems(stack) == []


async def test_following_a_newly_activated_version_records_its_windows(tmp_path: Path) -> None:
    async with running_stack(tmp_path, follow=True) as stack:
        until = time.time() + DAY
        activation = await rule_versions.store_and_activate(
            stack.app[ENGINE], observing_rules(until), author="test", comment="", now=time.time()
        )
        assert await stack.follower.apply(activation.version.id)
        (applied,) = await stack.events("rules-applied")
        (record,) = await stack.events("rules-observing")
        assert record["data"]["version"] == activation.version.id
        assert record["data"]["source"] == f"rules version {activation.version.id}"
        assert routes_of(record)["invoice-read"] == ("ledger", stamp(until))
        assert applied["seq"] < record["seq"]
        assert await chain_problems(stack) == []
