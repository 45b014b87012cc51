"""``gatehold rules shadow start|stop|report|activate``: real processes over one store.

What the gateways found is written to the store as a gateway process writes it
(``shadow_runs.record``), then read back by each fresh ``gatehold`` run.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.store import shadow_runs as shadow_store
from gateway.store.engine import open_engine
from gateway.store.shadow_runs import Batch, GroupKey, PendingGroup, Sample
from tests.integration.test_cli_rules_lifecycle import READONLY, audit, write_config
from tests.support.cli import gatehold
from tests.support.stack import DEMO_RULES


def found(config: Path, batch_of: int, *, differing: int) -> None:
    """Record what a gateway would have flushed for the running shadow run."""

    async def write() -> None:
        engine = open_engine(f"sqlite:///{config.parent / 'gatehold.db'}")
        try:
            run = await shadow_store.running(engine)
            assert run is not None
            key = GroupKey(1, "invoice-list", "invoice-list", "allow", "role-allowed", "deny",
                           "role-forbidden")  # fmt: skip
            sample = Sample(time.time(), "r1", "GET", "/api/invoices", "rita@acme.test", "acme",
                            "allowed", "forbidden")  # fmt: skip
            groups = {key: PendingGroup(differing, time.time(), time.time(), [sample])}
            await shadow_store.record(
                engine,
                Batch(run.id, batch_of, batch_of - differing, 0, 0, groups if differing else {}),
            )
        finally:
            await engine.dispose()

    asyncio.run(write())


@pytest.mark.timeout(300)  # a dozen commands, each a fresh interpreter
def test_shadow_from_the_command_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "admin")
    texts = {
        "first": DEMO_RULES.read_text(),
        "write": DEMO_RULES.read_text().replace(READONLY, "  readonly: {can: [write]}\n"),
        "same": DEMO_RULES.read_text() + "# one comment more\n",
    }
    for name, text in texts.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        assert (
            gatehold("rules", "propose", str(tmp_path / f"{name}.yaml"), config=config).returncode
            == 0
        )
    assert gatehold("rules", "activate", "1", config=config).returncode == 0

    active = gatehold("rules", "shadow", "start", "1", config=config)
    assert active.returncode == 2 and "version 1 is the active version" in active.stderr
    unknown = gatehold("rules", "shadow", "start", "99", config=config)
    assert unknown.returncode == 2 and "no rules version 99" in unknown.stderr
    assert gatehold("rules", "shadow", "report", config=config).returncode == 2

    started = gatehold("rules", "shadow", "start", "2", "--comment", "try", config=config)
    assert started.stdout.startswith("rules version 2 runs in shadow (run 1)"), started.stderr
    fresh = gatehold("rules", "shadow", "report", config=config).stdout.splitlines()
    assert fresh[2] == "no request has been decided in shadow yet"
    found(config, 10, differing=4)
    report = gatehold("rules", "shadow", "report", config=config).stdout.splitlines()
    assert report[1:3] == ["decided 10, agreed 6, unjudged 0, dropped 0",
                           "4 of 10 decisions differ (1 group(s))"]  # fmt: skip
    assert report[3].split("\t")[:3] == [
        "4",
        "invoice-list -> invoice-list",
        "ALLOW role-allowed -> DENY role-forbidden",
    ]
    assert report[4].split("\t")[1:] == ["r1", "rita@acme.test", "GET /api/invoices"]
    document = json.loads(gatehold("rules", "shadow", "report", "--json", config=config).stdout)
    assert (document["clean"], document["differences"], document["version"]) == (False, 4, 2)
    assert document["groups"][0]["shadow"] == {"decision": "deny", "reason": "role-forbidden"}

    refused = gatehold("rules", "shadow", "activate", config=config)
    assert refused.returncode == 2 and "not clean: 4 of 10 decisions differ" in refused.stderr
    assert "--even-if-different" in refused.stderr
    assert gatehold("rules", "versions", config=config).stdout.startswith("  3")  # 1 active
    stopped = gatehold("rules", "shadow", "stop", config=config)
    assert stopped.stdout == "shadow run 1 of rules version 2 stopped after 10 decisions\n"

    assert gatehold("rules", "shadow", "start", "3", config=config).returncode == 0
    found(config, 5, differing=0)
    clean = gatehold("rules", "shadow", "report", config=config).stdout.splitlines()
    assert clean[2] == "clean: no differences over 5 decisions"
    activated = gatehold("rules", "shadow", "activate", config=config)
    assert activated.stdout == (
        "rules version 3 is active (clean: no differences over 5 decisions); shadow stopped\n"
    ), activated.stderr
    assert [e["data"]["version"] for e in audit(config, "rules-shadow-started")] == [2, 3]
    assert [e["data"]["why"] for e in audit(config, "rules-shadow-stopped")] == [
        "stopped",
        "activated",
    ]
    again = gatehold("rules", "shadow", "activate", "--even-if-different", config=config)
    assert again.returncode == 2 and "no rules version is in shadow" in again.stderr
