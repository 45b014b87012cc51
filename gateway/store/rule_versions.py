"""Rules versions and THE active one, shared by every replica on the store.

A version is immutable once written (its YAML, the SHA-256 of that text, who wrote it,
when, why). ``rules_active`` holds one row naming the active version; every change of
it happens in one transaction that also serialises against other changers (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: an advisory transaction lock), and on PostgreSQL sends
``NOTIFY gatehold_rules`` with the new id, delivered when the transaction commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import tables
from gateway.store.engine import reading, upsert, writing
from gateway.store.notify import RULES, notify

CHANNEL = RULES
"""The PostgreSQL channel an activation notifies, with the active version id as payload."""
RULES_LOCK_KEY = 0x72756C6573  # "rules"; a fixed PostgreSQL advisory lock key


def source_hash(yaml_text: str) -> str:
    """SHA-256 hex of a rules text, as the loader's ``RuleSet.digest`` computes it."""
    return hashlib.sha256(yaml_text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class VersionRow:
    id: int
    yaml: str
    source_hash: str
    author: str
    created_at: float
    comment: str
    activated_at: float | None
    """When it was last made the active version; ``None`` if never."""


@dataclass(frozen=True, slots=True)
class Activation:
    """The outcome of making a version active."""

    version: VersionRow
    previous: int | None
    """The version active before, ``None`` on a store that had none."""
    changed: bool
    """``False`` when the version was active already (nothing was written)."""


def _row(raw: Row[Any]) -> VersionRow:
    return VersionRow(
        id=int(raw.id),
        yaml=str(raw.yaml),
        source_hash=str(raw.source_hash),
        author=str(raw.author),
        created_at=float(raw.created_at),
        comment=str(raw.comment),
        activated_at=None if raw.activated_at is None else float(raw.activated_at),
    )


async def add_version(
    engine: AsyncEngine, yaml_text: str, *, author: str, comment: str, now: float
) -> VersionRow:
    """Store a new (inactive) version."""
    async with writing(engine) as conn:
        return await _insert(conn, yaml_text, author=author, comment=comment, now=now)


async def _insert(
    conn: AsyncConnection, yaml_text: str, *, author: str, comment: str, now: float
) -> VersionRow:
    result = await conn.execute(
        tables.rule_versions.insert()
        .values(
            yaml=yaml_text,
            source_hash=source_hash(yaml_text),
            author=author,
            created_at=now,
            comment=comment,
        )
        .returning(*tables.rule_versions.c)
    )
    return _row(result.one())


async def get_version(engine: AsyncEngine, version_id: int) -> VersionRow | None:
    async with reading(engine) as conn:
        return await _get(conn, version_id)


async def _get(conn: AsyncConnection, version_id: int) -> VersionRow | None:
    query = select(tables.rule_versions).where(tables.rule_versions.c.id == version_id)
    raw = (await conn.execute(query)).first()
    return None if raw is None else _row(raw)


async def list_versions(engine: AsyncEngine, *, limit: int = 100) -> list[VersionRow]:
    """The newest ``limit`` versions, newest first."""
    query = select(tables.rule_versions).order_by(tables.rule_versions.c.id.desc()).limit(limit)
    async with reading(engine) as conn:
        return [_row(raw) for raw in await conn.execute(query)]


async def active_id(engine: AsyncEngine) -> int | None:
    """The id of the active version; ``None`` while the store has none."""
    async with reading(engine) as conn:
        return await _active_id(conn)


async def _active_id(conn: AsyncConnection) -> int | None:
    query = select(tables.rules_active.c.version_id).where(tables.rules_active.c.id == 1)
    found = await conn.scalar(query)
    return None if found is None else int(found)


@dataclass(frozen=True, slots=True)
class ActiveState:
    """Which version is active, since when and by whose hand."""

    version_id: int
    activated_at: float
    activated_by: str


async def active_state(engine: AsyncEngine) -> ActiveState | None:
    """The ``rules_active`` row; ``None`` while the store has no active version."""
    c = tables.rules_active.c
    query = select(c.version_id, c.activated_at, c.activated_by).where(c.id == 1)
    async with reading(engine) as conn:
        raw = (await conn.execute(query)).first()
    if raw is None:
        return None
    return ActiveState(int(raw.version_id), float(raw.activated_at), str(raw.activated_by))


async def active_version(engine: AsyncEngine) -> VersionRow | None:
    async with reading(engine) as conn:
        found = await _active_id(conn)
        return None if found is None else await _get(conn, found)


async def lock_rules(conn: AsyncConnection) -> None:
    """Serialise rules changes (SQLite: the transaction holds the write lock already)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RULES_LOCK_KEY})


async def _make_active(
    conn: AsyncConnection, version: VersionRow, *, by: str, now: float
) -> Activation:
    previous = await _active_id(conn)
    if previous == version.id:
        return Activation(version, previous, changed=False)
    await conn.execute(
        upsert(
            conn,
            tables.rules_active,
            ("id",),
            {"id": 1, "version_id": version.id, "activated_at": now, "activated_by": by},
            update=("version_id", "activated_at", "activated_by"),
        )
    )
    await conn.execute(
        update(tables.rule_versions)
        .where(tables.rule_versions.c.id == version.id)
        .values(activated_at=now)
    )
    await notify(conn, CHANNEL, str(version.id))
    fresh = await _get(conn, version.id)
    return Activation(fresh or version, previous, changed=True)


async def activate(
    engine: AsyncEngine, version_id: int, *, by: str, now: float
) -> Activation | None:
    """Make ``version_id`` the active version; ``None`` if there is no such version."""
    async with writing(engine) as conn:
        return await activate_within(conn, version_id, by=by, now=now)


async def activate_within(
    conn: AsyncConnection, version_id: int, *, by: str, now: float
) -> Activation | None:
    """``activate`` inside the caller's writing transaction (which then holds the rules
    lock), for a change that must commit together with the activation or not at all."""
    await lock_rules(conn)
    version = await _get(conn, version_id)
    if version is None:
        return None
    return await _make_active(conn, version, by=by, now=now)


async def store_and_activate(
    engine: AsyncEngine, yaml_text: str, *, author: str, comment: str, now: float
) -> Activation:
    """Make ``yaml_text`` the active rules, as a new version unless it is active already.

    Checked and written in one transaction, so processes syncing the same file at once
    agree on one new version.
    """
    digest = source_hash(yaml_text)
    async with writing(engine) as conn:
        await lock_rules(conn)
        current = await _active_id(conn)
        running = None if current is None else await _get(conn, current)
        if running is not None and running.source_hash == digest:
            return Activation(running, current, changed=False)
        version = await _insert(conn, yaml_text, author=author, comment=comment, now=now)
        return await _make_active(conn, version, by=author, now=now)


async def seed(
    engine: AsyncEngine, yaml_text: str, *, author: str, comment: str, now: float
) -> Activation | None:
    """Store and activate the first version; ``None`` if the store has an active one."""
    async with writing(engine) as conn:
        await lock_rules(conn)
        if await _active_id(conn) is not None:
            return None
        version = await _insert(conn, yaml_text, author=author, comment=comment, now=now)
        return await _make_active(conn, version, by=author, now=now)
