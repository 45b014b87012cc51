"""Relative SQLite DSNs of owner resolvers are the settings file's folder's, as data_dir is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.config.loader import load_rules_text
from gateway.config.settings import Settings
from gateway.deciders import rule_deciders
from gateway.model import ObjectRef, Owned
from gateway.ownership import resolve_dsn
from gateway.store.engine import open_engine

RULES = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  standard: {can: [read]}
resources:
  document:
    id_type: int
    owner: {sql: "SELECT tenant FROM documents WHERE id = :id", dsn: "sqlite:///records/app.db"}
routes:
  - name: document
    match: {path: "/docs/{id:int}", methods: [GET]}
    upstream: app
    resource: {type: document, id: path.id}
"""


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("sqlite:///app.db", "sqlite:////etc/gatehold/app.db"),
        ("sqlite:///data/app.db", "sqlite:////etc/gatehold/data/app.db"),
        ("sqlite+aiosqlite:///app.db", "sqlite+aiosqlite:////etc/gatehold/app.db"),
        ("sqlite:////srv/app.db", "sqlite:////srv/app.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://reader:pw@db/app", "postgresql://reader:pw@db/app"),
    ],
)
def test_relative_sqlite_paths_are_made_absolute_against_the_base(dsn: str, expected: str) -> None:
    assert resolve_dsn(dsn, Path("/etc/gatehold")) == expected


def test_without_a_base_a_dsn_is_left_as_written() -> None:
    assert resolve_dsn("sqlite:///app.db", None) == "sqlite:///app.db"


async def test_the_runtime_resolver_reads_the_settings_folders_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_dir = tmp_path / "conf"
    (settings_dir / "records").mkdir(parents=True)
    with sqlite3.connect(settings_dir / "records" / "app.db") as conn:
        conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, tenant TEXT)")
        conn.execute("INSERT INTO documents VALUES (3, 'acme')")
    conn.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # started from another folder: the file is still found
    settings = Settings(base_dir=str(settings_dir))
    ruleset = load_rules_text(RULES, source="rules.yaml", env={})
    engine = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    ownership = rule_deciders(settings, ruleset, engine)["ownership"]
    await ownership.start()
    try:
        answers = await ownership.resolve([ObjectRef("document", "3", "path.id")], upstream="app")
    finally:
        await ownership.close()
        await engine.dispose()
    assert isinstance(answers, tuple)
    assert answers[0].answer == Owned("acme")
    assert not (elsewhere / "records").exists()
