"""Every gateway process runs the store's active rules version, and follows it.

At start (``initial_rules``): with ``rules.managed_by: file`` the file is checked and,
if its text differs from the active version, stored and activated as a new version
(author ``file``); with ``admin`` the file seeds version 1 of an empty store and is
otherwise ignored. The process then builds its gateway from the active version.

While serving (``RulesFollower``): the active id is polled every ``POLL_SECONDS`` on
SQLite; on PostgreSQL an activation's ``NOTIFY`` reaches the process's change feed
(``store/notify.py``), which wakes the follower at once, and a slow poll is the
fallback (fast again while the feed has lost its connection). A new active id is
loaded and swapped in with ``LiveRules.reload`` (requests under way keep the rules
they started with), audited as ``rules-applied`` per process. ``SIGHUP`` (``hangup``)
re-reads the file in file mode: an invalid file keeps the running version, logs every
problem and is audited as ``rules-rejected``; the process never stops for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import ENGINE, FEED, with_rules
from gateway.audit import AuditWriter, event_entry, writer_for
from gateway.config.loader import check_rules_text, load_rules_text
from gateway.config.settings import Settings
from gateway.context import Gateway
from gateway.errors import ConfigError, StoreUnavailable
from gateway.live import LIVE, LiveRules, Rebuild
from gateway.model import AuditEntry, RuleSet
from gateway.outage import OutageNotice, poll_store
from gateway.shadow_sync import follow_shadow
from gateway.store import rule_versions as version_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.notify import POLL_SECONDS, RULES, ChangeFeed, stop_task
from gateway.store.rule_versions import Activation

log = logging.getLogger("gatehold")

FILE_AUTHOR = "file"


def version_source(version_id: int) -> str:
    return f"rules version {version_id}"


def _read(path: Path) -> tuple[str | None, list[str]]:
    try:
        return path.read_text(encoding="utf-8"), []
    except OSError as error:
        return None, [f"{path}: cannot read the rules file: {error.strerror}"]


def _check_file(path: Path, env: Mapping[str, str]) -> tuple[str, RuleSet] | list[str]:
    """The file's text and rules, or every problem with it."""
    text, problems = _read(path)
    if text is None:
        return problems
    ruleset, found = check_rules_text(text, source=str(path), env=env)
    if ruleset is None:
        return [str(problem) for problem in found]
    return text, ruleset


def _activated_entry(activation: Activation, *, source: str, comment: str) -> AuditEntry:
    return event_entry(
        "rules-activated",
        actor=FILE_AUTHOR,
        source=source,
        version=activation.version.id,
        digest=activation.version.source_hash,
        comment=comment,
        rollback=False,
        problems=[],
        before={"version": activation.previous},
        after={"version": activation.version.id},
    )


async def initial_rules(
    settings: Settings, env: Mapping[str, str], *, sync_file: bool = True
) -> tuple[int, RuleSet]:
    """The active version a starting process runs, after syncing the file as its mode says.

    ``sync_file=False`` (a worker its first process started, which synced the file
    already) runs the active version without reading the file, unless there is none.
    Raises ``ConfigError`` listing every problem when there are no valid rules to run.
    """
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        return await _initial(engine, settings, env, sync_file=sync_file)
    finally:
        await engine.dispose()


async def _initial(
    engine: AsyncEngine, settings: Settings, env: Mapping[str, str], *, sync_file: bool = True
) -> tuple[int, RuleSet]:
    path = settings.rules_path
    if settings.rules_managed_by == "admin" or not sync_file:
        active = await version_store.active_version(engine)
        if active is not None:
            log.info("running rules version %d (%s is not read)", active.id, path)
            ruleset, problems = check_rules_text(
                active.yaml, source=version_source(active.id), env=env
            )
            if ruleset is None:
                raise ConfigError([str(problem) for problem in problems])
            return active.id, ruleset
    checked = _check_file(path, env)
    if isinstance(checked, list):
        raise ConfigError(checked)
    text, ruleset = checked
    now = time.time()
    if settings.rules_managed_by == "admin":
        comment = f"seeded from {path}"
        seeded = await version_store.seed(
            engine, text, author=FILE_AUTHOR, comment=comment, now=now
        )
        if seeded is None:  # another process seeded meanwhile: run what it stored
            return await _initial(engine, settings, env)
        await _audit_once(
            settings, engine, _activated_entry(seeded, source=str(path), comment=comment)
        )
        return seeded.version.id, ruleset
    comment = f"{path} at start"
    activation = await version_store.store_and_activate(
        engine, text, author=FILE_AUTHOR, comment=comment, now=now
    )
    if activation.changed:
        entry = _activated_entry(activation, source=str(path), comment=comment)
        await _audit_once(settings, engine, entry)
    return activation.version.id, ruleset


async def _audit_once(settings: Settings, engine: AsyncEngine, entry: AuditEntry) -> None:
    """Write one event before the process's own writer exists."""
    writer = writer_for(settings, engine)
    await writer.start()
    try:
        await writer.begin(entry)
    finally:
        await writer.close()


class RulesFollower:
    """Keeps one process's ``LiveRules`` on the store's active version."""

    def __init__(
        self,
        live: LiveRules,
        engine: AsyncEngine,
        settings: Settings,
        env: Mapping[str, str],
        rebuild: Rebuild,
        *,
        applied: int,
        feed: ChangeFeed,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._live = live
        self._engine = engine
        self._settings = settings
        self._env = dict(env)
        self._rebuild = rebuild
        self.applied = applied
        """The version this process runs."""
        self._failed: int | None = None
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._feed = feed
        feed.subscribe(RULES, lambda _: self._wake.set())

    @property
    def audit(self) -> AuditWriter:
        return self._live.current.audit

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _follow(self) -> None:
        await poll_store(
            self._step,
            wake=self._wake,
            interval=lambda: self._feed.poll_seconds(unnotified=self._poll),
            outage=OutageNotice(
                log,
                "rules: cannot read the active version",
                "rules: the active version can be read again",
            ),
        )

    async def _step(self) -> None:
        active = await version_store.active_id(self._engine)
        if active is not None and active not in (self.applied, self._failed):
            await self.apply(active)

    @property
    def listening(self) -> bool:
        """Whether PostgreSQL notifications wake this follower (else it polls)."""
        return self._feed.listening

    async def apply(self, version_id: int) -> bool:
        """Run ``version_id`` in this process; ``False`` (the running rules kept) if it
        cannot be loaded, compiled or started here."""
        async with self._lock:
            if version_id == self.applied:
                return True
            version = await version_store.get_version(self._engine, version_id)
            if version is None:
                return False
            source = version_source(version_id)
            applied = await self._live.reload(
                source,
                lambda: load_rules_text(version.yaml, source=source, env=self._env),
                self._rebuild,
                event="rules-applied",
                version=version_id,
                before={"version": self.applied},
            )
            if applied:
                self.applied, self._failed = version_id, None
            else:
                self._failed = version_id
            return applied

    async def hangup(self) -> bool:
        """SIGHUP: store and activate a changed file (file mode), then run the active
        version. An invalid file keeps the running rules, every problem logged."""
        try:
            return await self._hangup()
        except StoreUnavailable as error:  # the running rules stay; SIGHUP again later
            log.error("rules not reloaded: %s", error)
            return False

    async def _hangup(self) -> bool:
        path = self._settings.rules_path
        if self._settings.rules_managed_by == "admin":
            log.info("rules.managed_by is admin: SIGHUP does not read %s", path)
            active = await version_store.active_id(self._engine)
            return active is None or await self.apply(active)
        checked = _check_file(path, self._env)
        if isinstance(checked, list):
            for problem in checked:
                log.error("rules not reloaded: %s", problem)
            self.audit.record(
                event_entry("rules-rejected", actor="gatehold", source=str(path), problems=checked)
            )
            return False
        text, _ = checked
        comment = f"{path} on SIGHUP"
        activation = await version_store.store_and_activate(
            self._engine, text, author=FILE_AUTHOR, comment=comment, now=time.time()
        )
        if activation.changed:
            self.audit.record(_activated_entry(activation, source=str(path), comment=comment))
        return await self.apply(activation.version.id)


FOLLOWER = web.AppKey("rules_follower", RulesFollower)


def follow_store(
    app: web.Application,
    settings: Settings,
    env: Mapping[str, str],
    *,
    applied: int,
    poll_seconds: float = POLL_SECONDS,
) -> RulesFollower:
    """Have the gateway ``app`` follow the store's active version while it runs.

    ``applied`` is the version it was built with (``initial_rules``).
    """
    engine = app[ENGINE]

    def rebuild(gateway: Gateway, ruleset: RuleSet) -> Gateway:
        return with_rules(gateway, settings, ruleset, engine)

    follower = RulesFollower(
        app[LIVE],
        engine,
        settings,
        env,
        rebuild,
        applied=applied,
        feed=app[FEED],
        poll_seconds=poll_seconds,
    )
    app[FOLLOWER] = follower
    follow_shadow(app, settings, env, live_version=lambda: follower.applied)

    async def following(_: web.Application) -> AsyncIterator[None]:
        await follower.start()
        try:
            yield
        finally:
            await follower.close()

    app.cleanup_ctx.append(following)
    return follower
