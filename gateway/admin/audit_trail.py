"""The audit trail as administrators use it: verify the keyed chain, export it.

Both open the store themselves, without the rules: an auditor in an incident must be
able to check and export the trail even while the rules file is broken. An export is
itself audited before the first row is written out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter, event_entry, writer_for
from gateway.audit_checkpoints import read_checkpoints
from gateway.audit_keys import audit_key
from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.store import audit_log
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate


@dataclass(frozen=True, slots=True)
class TrailCheck:
    """What ``verify_trail`` found: every problem (empty: intact), checkpoints read and
    the records the log holds (its last seq)."""

    problems: list[str]
    checkpoints: int
    records: int
    """The last sequence number in the log (0: nothing was ever written)."""


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The store ``settings`` name, migrated to the current schema, closed afterwards."""
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


async def verify_trail(
    settings: Settings, checkpoint_files: Sequence[Path] = (), *, unkeyed_until: int = 0
) -> TrailCheck:
    """Check the keyed chain against its checkpoints; every edit, deletion, truncation,
    re-hashed record and forged checkpoint is a problem. Raises ``ConfigError`` without
    the audit key, unless the log is empty (a new store: no key has been made yet)."""
    try:
        key = audit_key(settings, create=False)
    except ConfigError:
        async with opened_store(settings) as engine:
            if await audit_log.last_seq(engine) == 0:
                return TrailCheck([], 0, 0)
        raise
    files = checkpoint_files or (settings.audit_checkpoints_path,)
    # Checkpoints first, the log after: a writer checkpoints only what it has committed,
    # so every checkpoint read here lies within the snapshot verify_chain then reads.
    checkpoints: list[audit_log.Checkpoint] = []
    problems: list[str] = []
    missing: list[str] = []
    for file in files:
        read, bad = read_checkpoints(file, key)
        checkpoints += read
        (problems if file.exists() else missing).extend(bad)
    async with opened_store(settings) as engine:
        broken = await audit_log.verify_chain(
            engine, key=key.chain, checkpoints=checkpoints, unkeyed_until=unkeyed_until
        )
        records = await audit_log.last_seq(engine)
    # A log nothing was ever written to has no checkpoint file yet; any other log has.
    return TrailCheck(problems + broken + (missing if records else []), len(checkpoints), records)


@asynccontextmanager
async def trail_writer(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, AuditWriter]]:
    """The store and a started audit writer (every sink the settings name)."""
    async with opened_store(settings) as engine:
        writer = writer_for(settings, engine)
        await writer.start()
        try:
            yield engine, writer
        finally:
            await writer.close()


async def export_trail(
    engine: AsyncEngine, audit: AuditWriter, *, actor: str, fmt: str
) -> AsyncIterator[str]:
    """The whole trail as JSON lines or CSV, oldest first; audited ``audit-exported``
    (committed) before the first chunk."""
    await audit.begin(event_entry("audit-exported", actor=actor, format=fmt))
    async for chunk in audit_log.export_rows(engine, fmt=fmt):
        yield chunk
