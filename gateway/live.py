"""The rules in force, swapped whole on reload (``SIGHUP``) without stopping.

Every stage that depends on the rules file (router, policy, ownership, method
overrides, the upstream table and its pools) lives on one ``Gateway`` value; the
stages that do not (audit, sessions, keys, metrics…) are shared by every version.
``handle`` reads ``LiveRules.current`` once per request, so a request keeps the rules
it started with and the next one gets the new ones. A version replaced by a reload
closes its pools only once its last request has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.audit import event_entry
from gateway.context import Gateway
from gateway.errors import ConfigError
from gateway.model import RuleSet
from gateway.observe_trail import ObserveTrail

log = logging.getLogger("gatehold")

Rebuild = Callable[[Gateway, RuleSet], Gateway]
"""A new gateway for a rule set, sharing every stage that does not depend on rules."""


class LiveRules:
    """The gateway of the rules in force, and the versions still finishing requests."""

    __slots__ = ("_closing", "_lock", "_retired", "_started", "_users", "current", "trail")

    def __init__(self, gateway: Gateway, *, trail: ObserveTrail | None = None) -> None:
        self.current = gateway
        self.trail = trail
        """Audits the observe windows of each version loaded (``observe_trail.py``)."""
        self._users: dict[int, int] = {}
        self._retired: dict[int, Gateway] = {}
        self._started: list[Gateway] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def enter(self) -> Gateway:
        """The gateway for one request; the caller must ``leave`` it when done."""
        gateway = self.current
        key = id(gateway)
        self._users[key] = self._users.get(key, 0) + 1
        return gateway

    def leave(self, gateway: Gateway) -> None:
        key = id(gateway)
        left = self._users[key] - 1
        if left:
            self._users[key] = left
            return
        del self._users[key]
        if key in self._retired:
            self._schedule_close(self._retired.pop(key))

    async def reload(
        self,
        source: str,
        load: Callable[[], RuleSet],
        rebuild: Rebuild,
        *,
        event: str = "rules-activated",
        **details: Any,
    ) -> bool:
        """Load, validate and activate new rules; on any problem keep the running ones.

        Every problem is logged on a line of its own and audited as ``rules-rejected``;
        a success is audited as ``event`` with the rules' digest (and ``details``), then
        its observe windows, if any, as ``rules-observing``.
        """
        async with self._lock:
            audit = self.current.audit
            try:
                ruleset = load()
            except ConfigError as error:
                for problem in error.problems:
                    log.error("rules not reloaded: %s", problem)
                audit.record(
                    event_entry(
                        "rules-rejected",
                        actor="gatehold",
                        source=source,
                        problems=error.problems,
                        **details,
                    )
                )
                return False
            fresh = rebuild(self.current, ruleset)
            try:
                await fresh.ownership.start()
                await fresh.forward.start()
            except Exception as error:  # an engine or pool that cannot open: keep the old
                await _close_pools(fresh)
                log.error("rules not reloaded: %s: cannot start: %s", source, error)
                audit.record(
                    event_entry(
                        "rules-rejected",
                        actor="gatehold",
                        source=source,
                        problems=[str(error)],
                        **details,
                    )
                )
                return False
            self._started.append(fresh)
            old, self.current = self.current, fresh
            audit.record(
                event_entry(
                    event,
                    actor="gatehold",
                    source=source,
                    digest=ruleset.digest,
                    problems=[],
                    **details,
                )
            )
            log.info("rules reloaded from %s (sha256 %s)", source, ruleset.digest)
            if self.trail is not None:
                version = {"version": details["version"]} if "version" in details else {}
                self.trail.loaded(ruleset.routes, source=source, digest=ruleset.digest, **version)
            if self._users.get(id(old)):
                self._retired[id(old)] = old
            else:
                self._schedule_close(old)
            return True

    async def close(self) -> None:
        """Close every version a reload started and has not closed yet.

        The first version is closed by the app's start-up stack, which opened it.
        """
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for gateway in self._started:
            await _close_pools(gateway)
        self._started.clear()

    def _schedule_close(self, gateway: Gateway) -> None:
        # Dropped here, so a long run of reloads holds no old caches or closed pools.
        self._started = [kept for kept in self._started if kept is not gateway]
        task = asyncio.get_running_loop().create_task(_close_pools(gateway))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close_pools(gateway: Gateway) -> None:
    """Close what one rules version opened: its owner lookups and upstream pools.

    Open WebSockets are shared by every version and stay as they are.
    """
    await gateway.ownership.close()
    await gateway.forward.close_pools()


LIVE = web.AppKey("live_rules", LiveRules)
