"""What a starting gateway runs: the store's active version, the file synced as the mode says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.rules_sync import initial_rules
from gateway.store import rule_versions as version_store
from gateway.store.engine import open_engine

RULES = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  viewer: {can: [read]}
routes:
  - name: reports
    match: {path: /api/reports, methods: [GET]}
    upstream: app
"""
CHANGED = RULES.replace("[read]", "[read, list]")
INVALID = RULES.replace("upstream: app", "upstream: nowhere")


def settings_for(tmp_path: Path, store_dsn: str, managed_by: str) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "base_dir": str(tmp_path),
            "store": {"dsn": store_dsn},
            "rules": {"path": "rules.yaml", "managed_by": managed_by},
        }
    )


async def stored(settings: Settings) -> tuple[list[str], int | None, list[dict[str, Any]]]:
    """Authors of every version (oldest first), the active id, the activation records."""
    engine = open_engine(settings.store_dsn)
    try:
        versions = await version_store.list_versions(engine)
        active = await version_store.active_id(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT actor, data FROM audit_log WHERE kind = 'rules-activated'")
            )
            events = [{"actor": actor, **json.loads(data)} for actor, data in rows]
    finally:
        await engine.dispose()
    return [v.author for v in reversed(versions)], active, events


async def test_file_mode_stores_a_changed_file_once_and_refuses_an_invalid_one(
    tmp_path: Path, store_dsn: str
) -> None:
    settings = settings_for(tmp_path, store_dsn, "file")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    first, ruleset = await initial_rules(settings, {})
    assert set(ruleset.roles) == {"viewer"}
    assert (await initial_rules(settings, {}))[0] == first, "an unchanged file is no new version"
    rules.write_text(CHANGED)
    second, changed = await initial_rules(settings, {})
    assert second > first and changed.roles["viewer"].can == frozenset({"read", "list"})
    rules.write_text(INVALID)
    with pytest.raises(ConfigError) as raised:
        await initial_rules(settings, {})
    assert raised.value.problems[0].startswith(f"{rules}:9: routes[0].upstream: unknown")
    # A worker its first process started runs the active version without the file.
    assert (await initial_rules(settings, {}, sync_file=False))[0] == second
    authors, active, events = await stored(settings)
    assert (authors, active) == (["file", "file"], second)
    assert [(e["actor"], e["before"], e["after"]) for e in events] == [
        ("file", {"version": None}, {"version": first}),
        ("file", {"version": first}, {"version": second}),
    ]


async def test_admin_mode_seeds_an_empty_store_and_then_ignores_the_file(
    tmp_path: Path, store_dsn: str
) -> None:
    settings = settings_for(tmp_path, store_dsn, "admin")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    seeded, _ = await initial_rules(settings, {})
    rules.write_text(INVALID)  # not read again: the store has a version
    again, ruleset = await initial_rules(settings, {})
    assert again == seeded and set(ruleset.roles) == {"viewer"}
    authors, active, events = await stored(settings)
    assert (authors, active) == (["file"], seeded)
    assert len(events) == 1 and events[0]["comment"] == f"seeded from {rules}"


async def test_admin_mode_with_an_empty_store_needs_a_valid_file(
    tmp_path: Path, store_dsn: str
) -> None:
    settings = settings_for(tmp_path, store_dsn, "admin")
    (tmp_path / "rules.yaml").write_text(INVALID)
    with pytest.raises(ConfigError):
        await initial_rules(settings, {})
    assert (await stored(settings))[:2] == ([], None)
