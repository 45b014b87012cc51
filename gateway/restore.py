"""``gatehold restore SRC``: put a backup back under this host's settings, then verify it.

Everything that could refuse is checked before anything changes: the manifest and the
hash of every file, the backend, a SQLite store still open (stop the gateway first), a
store that already holds audit records, existing checkpoint or key files that differ
from the backup's. ``--force`` overrides the last two only (a replaced file is renamed,
never deleted); a damaged backup or an open database is never written over.

Then the store is replaced (SQLite through its backup API, PostgreSQL by ``pg_restore
--clean --if-exists --no-owner`` in one transaction), the checkpoints and keys go where
the settings put them, and the caller runs ``verify_and_record``: the same check as
``gatehold audit verify``, then a ``store-restored`` event appended to the restored chain.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from gateway.admin.audit_trail import TrailCheck, trail_writer, verify_trail
from gateway.audit import event_entry
from gateway.backup_manifest import (
    BackupFile,
    Manifest,
    Refused,
    Role,
    backend_of,
    place_private,
)
from gateway.config.settings import Settings
from gateway.store import audit_log
from gateway.store.engine import open_engine, reading
from gateway.store.snapshot import (
    IN_USE,
    PostgresStore,
    SqliteStore,
    locate_store,
    restore_postgres,
    restore_sqlite,
    sqlite_in_use,
)


@dataclass(frozen=True, slots=True)
class Restored:
    manifest: Manifest
    placed: list[Path] = field(default_factory=list)
    """Checkpoint and key files written."""
    kept: list[Path] = field(default_factory=list)
    """Files already there with the backup's content."""
    moved_aside: list[Path] = field(default_factory=list)
    """Different files that were there (``--force``), renamed ``*.before-restore-<time>``:
    the checkpoints of a newer trail, or the key that wrote it, are evidence to keep."""
    notes: list[str] = field(default_factory=list)


async def restore_backup(
    settings: Settings, source: Path, *, force: bool, env: Mapping[str, str]
) -> Restored | Refused:
    """Restore the backup folder ``source`` into the store and files ``settings`` name."""
    manifest = Manifest.read(source)
    if isinstance(manifest, str):
        return Refused([manifest])
    store = locate_store(settings.store_dsn, program="pg_restore", env=env)
    problems = _backup_problems(manifest, source, backend_of(settings))
    if isinstance(store, str):
        return Refused([*problems, store])
    if isinstance(store, SqliteStore) and sqlite_in_use(store.database):
        problems.append(IN_USE.format(database=store.database))
    if problems:  # a damaged backup or an open database: not even --force goes on
        return Refused(problems)
    placements, notes = _placements(manifest, settings)
    if not force:
        problems = await _overwrite_problems(settings, placements)
    if problems:
        return Refused(problems)
    failed = await _restore_store(source / manifest.of_role(Role.STORE)[0].path, store, env=env)
    if failed is not None:
        return Refused([failed])
    restored = Restored(manifest, notes=notes)
    for f, target in placements:
        _place(restored, target, f, source)
    return restored


def _backup_problems(manifest: Manifest, source: Path, backend: str) -> list[str]:
    """Damaged or missing files, a store copy that is not one, another backend."""
    problems = [damage for f in manifest.files if (damage := f.damage(source))]
    copies = len(manifest.of_role(Role.STORE))
    if copies != 1:
        problems.append(f"{source}: the manifest names {copies} store copies, not one")
    if manifest.backend != backend:
        problems.append(
            f"{source} holds a {manifest.backend} store but the settings name a {backend} "
            f"store: restore it with settings whose store.dsn is {manifest.backend}"
        )
    return problems


async def _overwrite_problems(
    settings: Settings, placements: list[tuple[BackupFile, Path]]
) -> list[str]:
    """What a restore would replace that only ``--force`` may: records, different files."""
    problems = [
        f"{target} exists and differs from the backup's {f.path}: move it away, or pass --force"
        for f, target in placements
        if target.exists() and f.damage_at(target) is not None
    ]
    records = await audit_records(settings.store_dsn)
    if records:
        problems.insert(
            0,
            f"the store already holds {records} audit record(s): restoring would replace "
            "them and everything else in it; restore into an empty store, or pass --force",
        )
    return problems


def _place(restored: Restored, target: Path, file: BackupFile, source: Path) -> None:
    """Put ``file`` at ``target``; a different file there is renamed aside, not lost."""
    if target.exists() and file.damage_at(target) is None:
        restored.kept.append(target)
        return
    if target.exists():  # only with --force
        aside = target.with_name(f"{target.name}.before-restore-{int(time.time())}")
        target.rename(aside)
        restored.moved_aside.append(aside)
    place_private(target, (source / file.path).read_bytes())
    restored.placed.append(target)


async def verify_and_record(
    settings: Settings, source: Path, *, forced: bool, actor: str
) -> TrailCheck:
    """``audit verify``'s check of the restored trail, then the ``store-restored`` event.

    Raises ``ConfigError`` (and records nothing) without the audit key: appending under a
    new key would make the restored chain unverifiable.
    """
    check = await verify_trail(settings)
    async with trail_writer(settings) as (_, writer):
        entry = event_entry(
            "store-restored",
            actor=actor,
            source=str(source.resolve()),
            forced=forced,
            verified="intact" if not check.problems else f"{len(check.problems)} problem(s)",
        )
        await writer.begin(entry)
    return check


async def audit_records(dsn: str) -> int:
    """The last audit seq in the store ``dsn`` names; 0 for an empty or new store."""
    url = make_url(dsn)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return 0  # not even created: opening it would make the file
    engine = open_engine(dsn)
    try:
        async with reading(engine) as conn:
            present = await conn.run_sync(lambda sync: inspect(sync).has_table("audit_log"))
        return await audit_log.last_seq(engine) if present else 0
    finally:
        await engine.dispose()


async def _restore_store(
    copy: Path, store: SqliteStore | PostgresStore, *, env: Mapping[str, str]
) -> str | None:
    match store:
        case SqliteStore(database):
            try:
                return await asyncio.to_thread(restore_sqlite, copy, database)
            except sqlite3.Error as error:
                return f"restoring {database} failed: {error}"
        case PostgresStore():
            return await restore_postgres(copy, store, env=env)


def _placements(
    manifest: Manifest, settings: Settings
) -> tuple[list[tuple[BackupFile, Path]], list[str]]:
    """Where each checkpoint and key file goes under ``settings``; notes on the audit key."""
    targets = {
        Role.CHECKPOINTS: settings.audit_checkpoints_path,
        Role.AUDIT_KEY: settings.audit_key_path,
        Role.ASSERTION_KEY: settings.key_path,
    }
    placements: list[tuple[BackupFile, Path]] = []
    notes: list[str] = []
    for f in manifest.files:
        if f.role is Role.STORE:
            continue
        if f.role is Role.AUDIT_KEY and settings.audit.key is not None:
            notes.append(
                f"the settings give the audit key as text (audit.key): the backup's "
                f"{f.path} was not restored; verification uses the key of the settings"
            )
            continue
        target = targets.get(f.role, settings.data_path / "keys" / Path(f.path).name)
        placements.append((f, target))
    if not manifest.audit_key_included and settings.audit.key is None:
        notes.append(
            "this backup holds no audit key (it came from audit.key when the backup was "
            f"made): put that key in audit.key or {settings.audit_key_path}, or the "
            "restored audit chain cannot be verified"
        )
    return placements, notes
