"""``gatehold backup DEST``: the store, the audit checkpoints and the keys, in one folder.

The order is the point. The checkpoints file is copied *before* the store is
snapshotted: a writer only checkpoints records it has committed, so every checkpoint in
the copy names a record that the later snapshot holds, and ``audit verify`` passes on
the restored store. Copied the other way round, checkpoints written between the two
copies would name records past the snapshot's end, which verify rightly reports as a
truncated log.

The backup is itself an audit event (``store-backed-up``), committed before anything is
copied, so the backup holds the record of its own making and the checkpoint its writer
leaves on closing. A gateway may keep running meanwhile: SQLite is read through its
online backup API, PostgreSQL by ``pg_dump`` (``gateway.store.snapshot``).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway import __version__
from gateway.admin.audit_trail import trail_writer
from gateway.audit import event_entry
from gateway.backup_manifest import (
    MANIFEST,
    BackupFile,
    Manifest,
    Refused,
    Role,
    backend_of,
    place_private,
)
from gateway.config.settings import Settings
from gateway.store.snapshot import (
    ChainHead,
    PostgresStore,
    SqliteStore,
    locate_store,
    snapshot_postgres,
    snapshot_sqlite,
)

CHECKPOINTS = "audit-checkpoints.jsonl"
SQLITE_COPY = "gatehold.db"
POSTGRES_COPY = "gatehold.dump"
FOLDER_MODE = 0o700
NO_AUDIT_KEY = (
    "the audit key comes from the settings (audit.key), so it is NOT in this backup: "
    "keep it separately and safely; without it the restored audit chain cannot be verified"
)


@dataclass(frozen=True, slots=True)
class BackupTaken:
    folder: Path
    manifest: Manifest
    notes: list[str]


async def take_backup(
    settings: Settings, dest: Path, *, actor: str, env: Mapping[str, str]
) -> BackupTaken | Refused:
    """Back up into ``dest`` (new, or an empty folder; made 0700, every file 0600)."""
    problems = _destination_problems(dest)
    store = locate_store(settings.store_dsn, program="pg_dump", env=env)
    if isinstance(store, str):
        problems.append(store)
    if problems or isinstance(store, str):
        return Refused(problems)
    dest.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    dest.chmod(FOLDER_MODE)  # mkdir's mode passes through the umask; an empty folder keeps its own
    async with trail_writer(settings) as (_, writer):  # closing it writes its checkpoint
        entry = event_entry("store-backed-up", actor=actor, destination=str(dest.resolve()))
        await writer.begin(entry)
    try:
        taken = await _copy_everything(settings, store, dest, env=env)
    except (OSError, sqlite3.Error) as error:
        taken = f"the backup failed: {error}"
    if isinstance(taken, str):
        _discard(dest)  # no half backup (with copies of the keys) is left behind
        return Refused([taken, f"nothing was kept in {dest}"])
    return taken


async def _copy_everything(
    settings: Settings, store: SqliteStore | PostgresStore, dest: Path, *, env: Mapping[str, str]
) -> BackupTaken | str:
    """Checkpoints, keys, store, manifest, in that order (see the module's docstring)."""
    files, notes = _copy_checkpoints(settings, dest)
    files += _copy_keys(settings, dest)
    if settings.audit.key is not None:
        notes.append(NO_AUDIT_KEY)
    copy = SQLITE_COPY if isinstance(store, SqliteStore) else POSTGRES_COPY
    head = await _snapshot(store, dest / copy, env=env)
    if isinstance(head, str):
        return head
    files.insert(0, BackupFile.of(dest, copy, Role.STORE))
    manifest = Manifest(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        gatehold_version=__version__,
        backend=backend_of(settings),
        audit_last_seq=head.seq,
        audit_head_hash=head.hash,
        audit_key_included=any(f.role is Role.AUDIT_KEY for f in files),
        files=tuple(files),
    )
    place_private(dest / MANIFEST, manifest.to_json().encode("utf-8"))  # last: complete
    return BackupTaken(dest, manifest, notes)


def _discard(dest: Path) -> None:
    """Empty ``dest`` (which held nothing before this backup)."""
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


async def _snapshot(
    store: SqliteStore | PostgresStore, copy: Path, *, env: Mapping[str, str]
) -> ChainHead | str:
    match store:
        case SqliteStore(database):
            return await asyncio.to_thread(snapshot_sqlite, database, copy)
        case PostgresStore():
            return await snapshot_postgres(store, copy, env=env)


def _destination_problems(dest: Path) -> list[str]:
    if not dest.exists():
        return []
    if not dest.is_dir() or any(dest.iterdir()):
        return [f"{dest} exists and is not an empty folder: back up into a new folder"]
    return []


def _copy_checkpoints(settings: Settings, dest: Path) -> tuple[list[BackupFile], list[str]]:
    source = settings.audit_checkpoints_path
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return [], [f"{source} does not exist yet (no checkpoint written): none backed up"]
    # A writer appends a line in one write; a line still being written is left out.
    place_private(dest / CHECKPOINTS, data[: data.rfind(b"\n") + 1])
    return [BackupFile.of(dest, CHECKPOINTS, Role.CHECKPOINTS)], []


def key_files(settings: Settings) -> list[tuple[Role, Path, str]]:
    """Every key file that exists: its role, where it is, and its name in a backup.

    The files of ``<data_dir>/keys``, plus the audit and assertion key files when the
    settings put them elsewhere. An audit key given as text is no file and not listed.
    """
    named = {settings.key_path.resolve(): Role.ASSERTION_KEY}
    if settings.audit.key is None:
        named[settings.audit_key_path.resolve()] = Role.AUDIT_KEY
    found: list[tuple[Role, Path, str]] = []
    folder = settings.data_path / "keys"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and not path.name.startswith("."):  # dot files: keys being made
            found.append((named.pop(path.resolve(), Role.KEY), path, f"keys/{path.name}"))
    for path, role in named.items():
        if path.is_file():
            found.append((role, path, f"{role.value}/{path.name}"))
    return found


def _copy_keys(settings: Settings, dest: Path) -> list[BackupFile]:
    copied: list[BackupFile] = []
    for role, source, name in key_files(settings):
        place_private(dest / name, source.read_bytes())
        copied.append(BackupFile.of(dest, name, role))
    return copied
