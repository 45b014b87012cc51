"""`gatehold backup` and `gatehold restore`, run as an operator runs them, on both stores.

A real gateway writes the trail (and keeps writing during the backup); the backup is
restored into an empty data folder / an empty database; `gatehold audit verify` must
pass there and the people must be back. A tampered backup must fail verification, a
store that holds records must not be replaced without --force, and a missing
``pg_dump`` must be a clear error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import ENGINE
from gateway.demo.run import DEMO_USERS
from gateway.store import audit_log, tables
from tests.support.audit_trail import Attacker, fill, gatehold, write_config
from tests.support.postgres import fresh_pg_engine
from tests.support.stack import Stack, running_stack

AUDIT_SECRET = "a-test-audit-secret-of-more-than-32-characters"


async def traffic(stack: Stack, stop: asyncio.Event) -> int:
    """Requests through the gateway until ``stop``; how many were sent."""
    sent = 0
    while not stop.is_set():
        response = await stack.client.get(
            f"/api/invoices/{sent % 3 + 1}", headers=stack.cookie("alice@acme.test")
        )
        await response.read()
        sent += 1
    return sent


async def backup_during_traffic(source: Path, backup: Path, **overrides: Any) -> int:
    """Run `gatehold backup` while four clients keep the gateway writing audit records;
    the last seq of the source trail once the traffic has stopped."""
    config = write_config(source, checkpoint_every=0)
    if "store" in overrides:
        add_settings(config, store=overrides["store"])
    stop = asyncio.Event()
    async with running_stack(source, audit={"checkpoint_every": 0}, **overrides) as stack:
        load = [asyncio.create_task(traffic(stack, stop)) for _ in range(4)]
        try:
            while await stack.ledger_total() < 8:  # the writes are under way
                await asyncio.sleep(0.01)
            taken = await asyncio.to_thread(
                gatehold, "backup", str(backup), config=config, process=True
            )
        finally:
            stop.set()
            sent = sum(await asyncio.gather(*load))
        await stack.settled()
        last = await audit_log.last_seq(stack_engine(stack))
    assert taken.returncode == 0, taken.stderr
    assert sent > 0
    return last


def stack_engine(stack: Stack) -> AsyncEngine:
    return stack.app[ENGINE]


def add_settings(config: Path, **sections: Any) -> Path:
    settings = yaml.safe_load(config.read_text()) | sections
    config.write_text(yaml.safe_dump(settings))
    return config


def manifest(backup: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((backup / "manifest.json").read_text())
    return document


def reseal(backup: Path, name: str) -> None:
    """Fix the manifest's hash of ``name`` after editing it, as an attacker would."""
    document = manifest(backup)
    for entry in document["files"]:
        if entry["path"] == name:
            entry["sha256"] = hashlib.sha256((backup / name).read_bytes()).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(document))


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def pg_dsn(engine: AsyncEngine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def pg_data_folder(folder: Path, label: str) -> AsyncIterator[tuple[Path, AsyncEngine]]:
    """A settings file in ``folder`` whose store is a fresh PostgreSQL database."""
    folder.mkdir()
    async with fresh_pg_engine(label) as engine:
        yield add_settings(write_config(folder), store={"dsn": pg_dsn(engine)}), engine


def assert_restored(restored: Any, config: Path) -> None:
    """Restore passed its verification; `audit verify` and the people agree."""
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "audit chain intact" in restored.stdout
    verified = gatehold("audit", "verify", config=config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
    people = gatehold("users", "list", config=config)
    assert people.returncode == 0, people.stderr
    for person in DEMO_USERS:
        assert person.email in people.stdout


# ---------------------------------------------------------------- SQLite


async def test_sqlite_backup_during_traffic_restores_to_a_trail_that_verifies(
    tmp_path: Path,
) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    source_last = await backup_during_traffic(source, backup)

    taken = manifest(backup)
    assert taken["backend"] == "sqlite"
    assert source_last > taken["audit"]["last_seq"], "writes went on after the snapshot"
    assert {f["role"] for f in taken["files"]} >= {"store", "checkpoints", "audit-key", "key"}
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    for file in taken["files"]:
        assert stat.S_IMODE((backup / file["path"]).stat().st_mode) == 0o600, file["path"]

    config = write_config(target)
    assert_restored(gatehold("restore", str(backup), config=config), config)
    copy = sqlite3.connect(target / "gatehold.db")
    kinds = [row[0] for row in copy.execute("SELECT kind FROM audit_log ORDER BY seq")]
    head = copy.execute("SELECT seq, hash FROM audit_head").fetchone()
    copy.close()
    assert "store-backed-up" in kinds[: taken["audit"]["last_seq"]], "the backup holds its event"
    assert kinds[-1] == "store-restored"
    assert head[0] == len(kinds) > taken["audit"]["last_seq"]
    assert (target / "keys" / "audit-chain.key").read_bytes() == (
        source / "keys" / "audit-chain.key"
    ).read_bytes()


async def test_checkpoints_copied_after_the_snapshot_would_read_as_truncation(
    tmp_path: Path,
) -> None:
    """Why backup copies the checkpoints first: the other order fails verify."""
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    await fill(source, 2)
    config = write_config(source)
    assert gatehold("backup", str(backup), config=config).returncode == 0
    await fill(source, 2)  # more records and checkpoints after the snapshot
    (backup / "audit-checkpoints.jsonl").write_bytes(
        (source / "audit-checkpoints.jsonl").read_bytes()
    )
    reseal(backup, "audit-checkpoints.jsonl")

    restored = gatehold("restore", str(backup), config=write_config(target))
    assert restored.returncode == 1
    assert "TAMPERED" in restored.stdout
    assert ": truncated" in restored.stdout


@pytest.mark.parametrize(
    "tamper",
    ["a record in the store copy", "a checkpoint line"],
    ids=["an edited record fails verify", "an edited checkpoint fails verify"],
)
async def test_a_tampered_backup_fails_verification(tmp_path: Path, tamper: str) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    await fill(source, 3)
    assert gatehold("backup", str(backup), config=write_config(source)).returncode == 0
    if tamper == "a record in the store copy":
        copy = sqlite3.connect(backup / "gatehold.db", isolation_level=None)
        copy.execute("UPDATE audit_log SET actor = 'mallory@evil.test' WHERE seq = 2")
        copy.close()
        reseal(backup, "gatehold.db")
        expected = "seq 2: edited"
    else:
        checkpoints = backup / "audit-checkpoints.jsonl"
        lines = checkpoints.read_text().splitlines()
        first = json.loads(lines[0])
        lines[0] = json.dumps(first | {"seq": first["seq"] + 1})
        checkpoints.write_text("\n".join(lines) + "\n")
        reseal(backup, "audit-checkpoints.jsonl")
        expected = "forged or edited"

    config = write_config(target)
    restored = gatehold("restore", str(backup), config=config)
    assert restored.returncode == 1
    assert expected in restored.stdout
    verified = gatehold("audit", "verify", config=config)
    assert verified.returncode == 1
    assert expected in verified.stdout


async def test_a_record_edited_after_the_restore_fails_verify(tmp_path: Path) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    await fill(source, 2)
    assert gatehold("backup", str(backup), config=write_config(source)).returncode == 0
    config = write_config(target)
    assert gatehold("restore", str(backup), config=config).returncode == 0
    attacker = Attacker(target)
    attacker.rewrite(3, actor="mallory@evil.test")
    attacker.close()

    verified = gatehold("audit", "verify", config=config)
    assert verified.returncode == 1
    assert "seq 3: edited" in verified.stdout


async def test_a_damaged_backup_is_refused_before_anything_changes(tmp_path: Path) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    await fill(source, 1)
    assert gatehold("backup", str(backup), config=write_config(source)).returncode == 0
    copy = bytearray((backup / "gatehold.db").read_bytes())
    copy[len(copy) // 2] ^= 0xFF  # one flipped byte, as a bad disk or transfer leaves it
    (backup / "gatehold.db").write_bytes(copy)

    refused = gatehold("restore", str(backup), config=write_config(target))
    assert refused.returncode == 2
    assert "differs from the manifest" in refused.stderr
    assert sorted(p.name for p in target.iterdir()) == ["gatehold.yaml"]


async def test_restore_into_a_store_with_records_refuses_and_changes_nothing(
    tmp_path: Path,
) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    await fill(source, 2)
    assert gatehold("backup", str(backup), config=write_config(source)).returncode == 0
    await fill(target, 1)
    config = write_config(target)
    before = files_in(target)

    refused = gatehold("restore", str(backup), config=config)
    assert refused.returncode == 2
    assert "already holds" in refused.stderr
    assert "pass --force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert files_in(target) == before

    forced = gatehold("restore", str(backup), "--force", config=config)
    assert_restored(forced, config)
    aside = {p.name.split(".before-restore-")[0]: p for p in target.rglob("*.before-restore-*")}
    assert sorted(aside) == [
        "assertion-es256.pem",
        "audit-chain.key",
        "audit-checkpoints.jsonl",
        "csrf.key",
        "mail.key",
        "totp.key",
    ]
    assert aside["audit-checkpoints.jsonl"].read_bytes() == before["audit-checkpoints.jsonl"]
    assert aside["audit-chain.key"].read_bytes() == before["keys/audit-chain.key"]


async def test_restore_refuses_a_store_a_running_gateway_has_open(tmp_path: Path) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    await fill(source, 1)
    assert gatehold("backup", str(backup), config=write_config(source)).returncode == 0
    config = write_config(target)
    async with running_stack(target) as stack:
        await (
            await stack.client.get("/api/invoices/1", headers=stack.cookie("alice@acme.test"))
        ).read()
        refused = await asyncio.to_thread(
            gatehold, "restore", str(backup), "--force", config=config, process=True
        )
        seq = await audit_log.last_seq(stack_engine(stack))
    assert refused.returncode == 2
    assert "is in use" in refused.stderr
    assert "stop the gateway first" in refused.stderr
    store = Attacker(target)
    assert store.last_seq() == seq, "the running gateway's store is untouched"
    store.close()


async def test_an_audit_key_from_the_settings_is_not_in_the_backup(tmp_path: Path) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    config = write_config(source, key=AUDIT_SECRET)
    assert gatehold("users", "add", "kim@acme.test", config=config).returncode == 0

    taken = gatehold("backup", str(backup), config=config)
    assert taken.returncode == 0, taken.stderr
    assert "NOT in this backup" in taken.stderr
    assert manifest(backup)["audit"]["key_included"] is False
    assert "audit-key" not in {f["role"] for f in manifest(backup)["files"]}
    assert AUDIT_SECRET.encode() not in b"".join(
        p.read_bytes() for p in backup.rglob("*") if p.is_file()
    )

    keyless = write_config(target)
    restored = gatehold("restore", str(backup), config=keyless)
    assert restored.returncode == 2, "without the key the chain cannot be verified"
    assert "holds no audit key" in restored.stderr
    assert "audit key file does not exist" in restored.stderr
    assert not (target / "keys" / "audit-chain.key").exists(), "no new key was made"

    keyed = write_config(target, key=AUDIT_SECRET)
    verified = gatehold("audit", "verify", config=keyed)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# ---------------------------------------------------------------- PostgreSQL


async def test_postgres_backup_during_traffic_restores_into_a_fresh_database(
    tmp_path: Path,
) -> None:
    source, backup = tmp_path / "source", tmp_path / "backup"
    async with pg_data_folder(source, "backup_src") as (_, source_engine):
        await backup_during_traffic(source, backup, store={"dsn": pg_dsn(source_engine)})
    taken = manifest(backup)
    assert taken["backend"] == "postgresql"
    assert [f["path"] for f in taken["files"] if f["role"] == "store"] == ["gatehold.dump"]

    async with pg_data_folder(tmp_path / "target", "backup_dst") as (config, engine):
        assert_restored(gatehold("restore", str(backup), config=config), config)
        async with engine.connect() as conn:
            kinds = (
                await conn.scalars(select(tables.audit_log.c.kind).order_by(tables.audit_log.c.seq))
            ).all()
        assert "store-backed-up" in kinds[: taken["audit"]["last_seq"]]
        assert kinds[-1] == "store-restored"


async def test_postgres_restore_into_a_database_with_records_refuses(tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    async with pg_data_folder(tmp_path / "source", "backup_src") as (config, _):
        assert gatehold("users", "add", "kim@acme.test", config=config).returncode == 0
        assert gatehold("backup", str(backup), config=config).returncode == 0
    async with pg_data_folder(tmp_path / "target", "backup_dst") as (config, engine):
        assert gatehold("users", "add", "lee@acme.test", config=config).returncode == 0
        before = await audit_log.last_seq(engine)

        refused = gatehold("restore", str(backup), config=config)
        assert refused.returncode == 2
        assert "already holds" in refused.stderr
        assert await audit_log.last_seq(engine) == before
        people = gatehold("users", "list", config=config).stdout
        assert "lee@acme.test" in people
        assert "kim@acme.test" not in people


async def test_a_missing_pg_dump_is_a_clear_error(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    backup = tmp_path / "backup"
    async with pg_data_folder(tmp_path / "source", "backup_src") as (config, engine):
        refused = gatehold(
            "backup", str(backup), config=config, env={"GATEHOLD_PG_BIN": str(empty_bin)}
        )
        records = await audit_log.last_seq(engine)
    assert refused.returncode == 2
    assert f"pg_dump not found in {empty_bin}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not backup.exists()
    assert records == 0, "nothing was audited: the backup never started"


async def test_an_older_backup_verifies_and_the_old_checkpoints_name_what_it_lost(
    tmp_path: Path,
) -> None:
    """Back on an older backup, the trail is intact; the checkpoints of the trail it
    replaced (kept aside by --force) say how far that trail went."""
    backup = tmp_path / "backup"
    await fill(tmp_path, 2)
    config = write_config(tmp_path)
    assert gatehold("backup", str(backup), config=config).returncode == 0
    await fill(tmp_path, 3)
    source = Attacker(tmp_path)
    lost_up_to = source.last_seq()
    source.close()
    backed_up = manifest(backup)["audit"]["last_seq"]

    restored = gatehold("restore", str(backup), "--force", config=config)
    assert_restored(restored, config)
    [replaced] = tmp_path.glob("audit-checkpoints.jsonl.before-restore-*")
    against_old = gatehold("audit", "verify", "--checkpoints", str(replaced), config=config)
    assert against_old.returncode == 1
    assert f"seq {backed_up + 2}-{lost_up_to}: truncated" in against_old.stdout
    assert f"seq {backed_up + 1}: replaced or re-hashed" in against_old.stdout


async def test_pg_dump_gets_no_password_on_its_command_line_and_a_failure_leaves_nothing(
    tmp_path: Path,
) -> None:
    """A stand-in pg_dump records what it was given, then fails as a real one can."""
    bin_dir, seen, backup = tmp_path / "bin", tmp_path / "seen", tmp_path / "backup"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}.args\nprintf "%s" "$PGPASSWORD" > {seen}.env\n'
        'echo "pg_dump: error: aborting because of server version mismatch" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    async with pg_data_folder(tmp_path / "source", "backup_src") as (config, engine):
        secret_dsn = engine.url.set(drivername="postgresql", password="s3cret-pw")
        add_settings(config, store={"dsn": secret_dsn.render_as_string(hide_password=False)})
        failed = gatehold(
            "backup", str(backup), config=config, env={"GATEHOLD_PG_BIN": str(bin_dir)}
        )
    assert failed.returncode == 2
    assert "pg_dump failed (exit 1): pg_dump: error: aborting" in failed.stderr
    assert "s3cret-pw" not in failed.stderr
    args = Path(f"{seen}.args").read_text()
    assert "--format=custom" in args
    assert "s3cret-pw" not in args
    assert Path(f"{seen}.env").read_text() == "s3cret-pw"
    assert list(backup.iterdir()) == [], "no half backup, no copies of the keys, left behind"


async def test_a_backup_goes_only_into_a_new_folder_and_back_only_into_its_backend(
    tmp_path: Path,
) -> None:
    source, backup = tmp_path / "source", tmp_path / "backup"
    source.mkdir()
    backup.mkdir()
    (backup / "older.tar").write_bytes(b"someone else's")
    await fill(source, 1)
    config = write_config(source)
    refused = gatehold("backup", str(backup), config=config)
    assert refused.returncode == 2
    assert "exists and is not an empty folder" in refused.stderr
    assert files_in(backup) == {"older.tar": b"someone else's"}

    (backup / "older.tar").unlink()
    assert gatehold("backup", str(backup), config=config).returncode == 0
    async with pg_data_folder(tmp_path / "target", "backup_dst") as (pg_config, engine):
        crossed = gatehold("restore", str(backup), config=pg_config)
        assert await audit_log.last_seq(engine) == 0
    assert crossed.returncode == 2
    assert "holds a sqlite store but the settings name a postgresql store" in crossed.stderr
