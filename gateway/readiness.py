"""``GET /ready`` on the admin listener: may this process take traffic now?

Liveness (``/.gatehold/health``) only says the process answers. Readiness also asks
what every request needs: the store answers a query within a short time, a rule set is
loaded, and the audit writer is running (nothing is forwarded unaudited, I5). Any of
them missing gives 503 with the reasons, so a load balancer stops sending traffic
here until the store is back, without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.live import LIVE
from gateway.store.engine import DRIVER_ERRORS

STORE_TIMEOUT_SECONDS = 2.0
"""How long the store may take to answer ``SELECT 1`` before the process is not ready."""


async def not_ready_reasons(app: web.Application, engine_timeout: float) -> list[str]:
    """Why ``app`` cannot take traffic now; empty when it can."""
    reasons: list[str] = []
    live = app.get(LIVE)
    if live is None:
        return ["rules: no rule set is loaded"]
    gateway = live.current
    if not await _store_answers(app, engine_timeout):
        reasons.append("store: not answering")
    if not gateway.audit.running:
        reasons.append("audit: the audit writer is not running")
    return reasons


async def _store_answers(app: web.Application, timeout: float) -> bool:
    engine = app.get(ENGINE)
    if engine is None:
        return False

    async def ask() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ask(), timeout)
    except (TimeoutError, *DRIVER_ERRORS):
        return False
    return True


def ready_page_for(
    app: web.Application, timeout: float = STORE_TIMEOUT_SECONDS
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The admin listener's ``/ready`` handler for the gateway ``app``."""

    async def ready(request: web.Request) -> web.Response:
        reasons = await not_ready_reasons(app, timeout)
        if reasons:
            return web.json_response({"status": "not-ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    return ready
