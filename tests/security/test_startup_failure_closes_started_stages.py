"""A stage that fails to start leaves nothing of the gateway running.

Start-up opens the store, the audit writer, the session and API-key revocation pollers,
the owner resolvers' clients and the upstream pools, in that order. When one of them
fails, every one already started must be closed before the error goes on: otherwise a
half-started gateway keeps polling the store and holding connections in a process that
is about to report a failed start (and, in a supervisor that retries in-process,
accumulates them). Each variant makes a different stage fail, with a real stack built
by ``build_app`` on a real SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from gateway.app import ENGINE, build_app
from gateway.auth.handlers import AUTH_PAGES
from gateway.config.loader import load_rules
from gateway.context import GATEWAY, Gateway
from tests.support.stack import demo_settings


class StartFailed(OSError):
    """What the failing stage raises (an upstream pool or port that cannot be opened)."""


STAGES: dict[str, Callable[[Gateway], object]] = {
    "sessions": lambda gw: gw.sessions,
    "api_keys": lambda gw: gw.api_keys,
    "ownership": lambda gw: gw.ownership,
    "forward": lambda gw: gw.forward,
}


def pending_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


@pytest.mark.parametrize("failing", list(STAGES))
async def test_a_stage_failing_at_start_closes_every_started_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    settings = demo_settings(tmp_path, "http://127.0.0.1:9")
    app = build_app(settings, load_rules(settings.rules_path, env=settings.rules_env))
    gw, engine = app[GATEWAY], app[ENGINE]
    before = set(pending_tasks())

    async def fail() -> None:
        raise StartFailed(f"{failing} could not start")

    monkeypatch.setattr(STAGES[failing](gw), "start", fail)
    pool = engine.pool  # disposing the engine closes this pool and puts a new one in place
    runner = web.AppRunner(app)
    with pytest.raises(StartFailed):
        await runner.setup()

    assert not gw.audit.running, "the audit writer still runs after a failed start"
    leftover = [t for t in pending_tasks() if t not in before]
    assert not leftover, f"tasks left running after a failed start: {leftover}"
    assert engine.pool is not pool, "the store's engine was not disposed"
    assert engine.pool.checkedin() == 0
    if failing == "forward":
        owners_http = gw.ownership._http  # the owner resolvers' HTTP client
        assert owners_http is not None and owners_http.closed
    await app[AUTH_PAGES].magic_links.close()  # idempotent: already closed by start-up
    await runner.cleanup()


async def test_a_started_gateway_closes_every_stage_on_shutdown(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, "http://127.0.0.1:9")
    app = build_app(settings, load_rules(settings.rules_path, env=settings.rules_env))
    gw = app[GATEWAY]
    before = set(pending_tasks())
    runner = web.AppRunner(app)
    await runner.setup()
    assert gw.audit.running
    assert [t for t in pending_tasks() if t not in before], "start-up started no poller"
    await runner.cleanup()
    assert not gw.audit.running
    assert not [t for t in pending_tasks() if t not in before]
    assert gw.ownership._http is not None and gw.ownership._http.closed
