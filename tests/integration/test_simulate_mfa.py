"""``gatehold rules simulate`` shows ``mfa-required`` and why, as live traffic decides it:
by default a user is simulated as their sign-in would be (with a second factor once
they have one enrolled, or the rules ask them for one); ``--mfa`` and ``--one-factor``
say so explicitly."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import yaml

from gateway.config.settings import load_settings
from gateway.store.engine import open_engine
from tests.integration.test_cli import config, gatehold  # noqa: F401 - the CLI fixture
from tests.support.factors import enrol, mfa_rules

ALICE = "alice@acme.test"


def with_mfa_rules(config: Path) -> None:  # noqa: F811
    rules = config.parent / "mfa-rules.yaml"
    rules.write_text(mfa_rules(tenants=("globex",)))
    settings = yaml.safe_load(config.read_text())
    settings["rules"] = str(rules)
    config.write_text(yaml.safe_dump(settings))


def simulate(config: Path, *options: str) -> tuple[int, str]:  # noqa: F811
    done = gatehold("rules", "simulate", *options, "GET", "/api/invoices", config=config)
    return done.returncode, done.stdout + done.stderr


def test_simulate_explains_the_second_factor(config: Path) -> None:  # noqa: F811
    with_mfa_rules(config)
    for who in (ALICE, "bob@globex.test"):
        tenant = who.split("@")[1].split(".")[0]
        added = gatehold(
            "users", "add", who, "--tenant", tenant, "--role", "standard", config=config
        )
        assert added.returncode == 0, added.stderr

    status, out = simulate(config, "--user", ALICE)
    assert status == 1 and out.startswith("DENY mfa-required"), out
    assert "route 'invoice-list' requires a second factor" in out
    assert "no second factor was shown in this session" in out
    status, out = simulate(config, "--user", ALICE, "--mfa")
    assert status == 0 and out.startswith("ALLOW role-allowed"), out
    assert "a second factor was shown in this session" in out

    # bob's tenant asks for a second factor at sign-in: simulated as he would sign in.
    status, out = simulate(config, "--user", "bob@globex.test")
    assert status == 0 and "tenant 'globex' requires a second factor" in out, out
    status, out = simulate(config, "--user", "bob@globex.test", "--one-factor")
    assert status == 1 and out.startswith("DENY mfa-required"), out

    settings = load_settings(config, env=os.environ, cwd=config.parent)

    async def enrol_alice() -> None:
        engine = open_engine(settings.store_dsn)
        try:
            await enrol(engine, ALICE)
        finally:
            await engine.dispose()

    asyncio.run(enrol_alice())
    status, out = simulate(config, "--user", ALICE)
    assert status == 0, "with a factor enrolled, her sign-in shows it"
    status, out = simulate(config, "--api-key", "1", "--mfa")
    assert status == 2 and "an API key never shows a second factor" in out
