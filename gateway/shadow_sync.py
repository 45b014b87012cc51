"""Every gateway process follows the store's shadow run, as it follows the active version.

The running shadow (``store/shadow_runs.py``) is read at start and then whenever
``gatehold_rules`` is notified (a shadow start or stop sends ``shadow``, an activation
its id) and, as a fallback, every ``POLL_SECONDS`` without notifications (SQLite, LISTEN
lost) or ``NOTIFIED_POLL_SECONDS`` while listening. A run whose version does not
compile here is logged and not run (the live rules are untouched either way). When the
run stops or drains (an activation is deciding), the process stops deciding in shadow
and writes what it holds at once; ``admin/shadow.py`` waits ``DRAIN_SECONDS`` for that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import ENGINE, FEED
from gateway.config.loader import check_rules_text
from gateway.config.settings import Settings
from gateway.deciders import rule_deciders
from gateway.errors import StoreUnavailable
from gateway.live import LIVE
from gateway.outage import OutageNotice, poll_store
from gateway.pipeline import decide_stages
from gateway.shadow import (
    SHADOW,
    DifferenceWriter,
    ShadowMetrics,
    ShadowRules,
    ShadowRunner,
    alike_resources,
    same_routes,
)
from gateway.store import rule_versions as version_store
from gateway.store import shadow_runs as shadow_store
from gateway.store.notify import POLL_SECONDS, RULES, ChangeFeed, stop_task

log = logging.getLogger("gatehold")


class ShadowFollower:
    """Keeps one process's ``ShadowRunner`` on the store's running shadow."""

    def __init__(
        self,
        runner: ShadowRunner,
        engine: AsyncEngine,
        settings: Settings,
        env: Mapping[str, str],
        *,
        feed: ChangeFeed,
        live_version: Callable[[], int],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._runner = runner
        self._live_version = live_version
        self._engine = engine
        self._settings = settings
        self._env = dict(env)
        self._poll = poll_seconds
        self._feed = feed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed: int | None = None
        self.run_id: int | None = None
        """The shadow run this process decides with; ``None`` when none."""
        feed.subscribe(RULES, lambda _: self._wake.set())

    async def start(self) -> None:
        try:
            await self.step()
        except StoreUnavailable as error:  # out of reach at start: the poll catches up
            log.warning("shadow: cannot read the shadow run yet: %s", error)
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _follow(self) -> None:
        await poll_store(
            self.step,
            wake=self._wake,
            interval=lambda: self._feed.poll_seconds(unnotified=self._poll),
            outage=OutageNotice(
                log, "shadow: cannot read the shadow run", "shadow: the shadow run can be read"
            ),
        )

    async def step(self) -> None:
        """Read the running shadow and switch to it (or stop) if it changed."""
        run = await shadow_store.running(self._engine)
        if run is None:
            self._runner.run(None)
            if self.run_id is not None:  # stopped, or draining for an activation:
                log.info("shadow run %d stopped", self.run_id)
                self.run_id = None
                await self._runner.writer.flush()  # what it found goes in now
            return
        if run.id == self.run_id:
            await self._compare()
            return
        if run.id == self._failed:
            return
        version = await version_store.get_version(self._engine, run.version_id)
        rules = None if version is None else self._compile(run.id, version)
        if rules is None:
            self._failed = run.id
            return
        self.run_id, self._failed = run.id, None
        self._runner.run(rules)
        log.info("shadow run %d: deciding with rules version %d", run.id, run.version_id)
        await self._compare()

    async def _compare(self) -> None:
        """Find the routes that decide as the live version's, once per live version."""
        rules, live = self._runner.current, self._live_version()
        if rules is None or rules.compared_with == live:
            return
        version = await version_store.get_version(self._engine, live)
        ruleset = None
        if version is not None:
            ruleset, _ = check_rules_text(
                version.yaml, source=f"rules version {live}", env=self._env
            )
        same = frozenset() if ruleset is None else same_routes(ruleset, rules.ruleset)
        alike = {} if ruleset is None else alike_resources(ruleset, rules.ruleset)
        if self._runner.current is rules:  # not replaced meanwhile
            self._runner.run(
                replace(rules, same_routes=same, alike_resources=alike, compared_with=live)
            )

    def _compile(self, run_id: int, version: version_store.VersionRow) -> ShadowRules | None:
        source = f"rules version {version.id}"
        ruleset, problems = check_rules_text(version.yaml, source=source, env=self._env)
        if ruleset is None:
            for problem in problems:
                log.error("shadow run %d not started here: %s", run_id, problem)
            return None
        stages = rule_deciders(self._settings, ruleset, self._engine, resolver_calls={})
        return ShadowRules(
            run_id=run_id,
            version_id=version.id,
            router=stages["router"],
            policy=stages["policy"],
            ownership=stages["ownership"],
            ruleset=ruleset,
        )


SHADOW_FOLLOWER = web.AppKey("shadow_follower", ShadowFollower)


def follow_shadow(
    app: web.Application,
    settings: Settings,
    env: Mapping[str, str],
    *,
    live_version: Callable[[], int],
    poll_seconds: float = POLL_SECONDS,
    flush_seconds: float | None = None,
) -> ShadowFollower:
    """Have the gateway ``app`` decide in shadow whatever the store says, while it runs."""
    engine = app[ENGINE]
    writer = (
        DifferenceWriter(engine)
        if flush_seconds is None
        else DifferenceWriter(engine, flush_seconds=flush_seconds)
    )
    runner = ShadowRunner(writer, live_version, decide_stages)
    app[SHADOW] = runner
    app[LIVE].current.metrics.registry.register(ShadowMetrics(runner))
    follower = ShadowFollower(
        runner,
        engine,
        settings,
        env,
        feed=app[FEED],
        live_version=live_version,
        poll_seconds=poll_seconds,
    )
    app[SHADOW_FOLLOWER] = follower

    async def following(_: web.Application) -> AsyncIterator[None]:
        await writer.start()
        await follower.start()
        try:
            yield
        finally:
            await follower.close()
            await writer.close()

    app.cleanup_ctx.append(following)
    return follower
