"""Running the gateway: one process or several sharing a port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import Any

from aiohttp import web

from gateway.app import build_app
from gateway.config.settings import Settings
from gateway.context import GATEWAY
from gateway.errors import ConfigError
from gateway.logs import ACCESS_LOG, AccessLine, start_fields
from gateway.logs import configure as configure_logging
from gateway.memory import limit_malloc_arenas
from gateway.readiness import ready_page_for
from gateway.responses import mark_own_page
from gateway.rules_sync import follow_store, initial_rules
from gateway.server import GatewayRunner

log = logging.getLogger("gatehold")

RELOAD: web.AppKey[Callable[[], Coroutine[Any, Any, bool]]] = web.AppKey("reload_rules")
"""What SIGHUP does: store and activate a changed rules file, run the active version."""


def install_uvloop() -> None:
    """Use uvloop where it is installed (it is a dependency on Linux and macOS)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


async def run_until_stopped(
    start: Callable[[], Awaitable[list[web.AppRunner]]],
    hangup: Callable[[], object] | None = None,
) -> None:
    """Start the given runners, wait for SIGINT/SIGTERM, then clean them up in reverse.

    SIGHUP reloads the first runner's rules (and calls ``hangup``, which passes it on
    to the other workers); it never stops the process.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runners = await start()
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        if hangup is not None:
            hangup()
        app = runners[0].app
        if RELOAD in app:
            task = loop.create_task(app[RELOAD]())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, reload)
    # Everything built at start lives as long as the process: move it out of the
    # collector's way, so full collections under load walk only per-request garbage.
    gc.collect()
    gc.freeze()
    try:
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        log.info("gatehold stopped")


async def start_gateway(
    settings: Settings,
    env: Mapping[str, str],
    *,
    reuse_port: bool = False,
    sync_file: bool = True,
    workers: int = 1,
) -> list[web.AppRunner]:
    """The gateway listener and, if configured, the admin listener (``/metrics``, ``/ready``).

    The gateway runs the store's active rules version and follows it (``rules_sync``).
    """
    rules_env = {**env, **settings.rules_env}
    version, ruleset = await initial_rules(settings, rules_env, sync_file=sync_file)
    app = build_app(settings, ruleset)
    app[RELOAD] = follow_store(app, settings, rules_env, applied=version).hangup
    runner = GatewayRunner(
        app, access_log=ACCESS_LOG, access_log_class=AccessLine, handle_signals=False
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.server.host, settings.server.port, reuse_port=reuse_port or None
    )
    await site.start()
    runners: list[web.AppRunner] = [runner]
    if settings.server.admin_port:
        admin = web.Application()
        admin.on_response_prepare.append(mark_own_page)
        admin.router.add_get("/metrics", _metrics_for(app))
        admin.router.add_get("/health", _ok)
        admin.router.add_get("/ready", ready_page_for(app))
        admin_runner = web.AppRunner(admin, access_log=None)
        await admin_runner.setup()
        await web.TCPSite(
            admin_runner, settings.server.host, settings.server.admin_port, reuse_port=reuse_port
        ).start()
        runners.append(admin_runner)
    log.info("gatehold listening on %s", settings.server.public_url)
    log.info("gatehold started", extra={"fields": start_fields(settings, version, workers)})
    return runners


def serve(
    settings: Settings,
    env: Mapping[str, str],
    *,
    workers: int,
    worker_argv: Sequence[str] = (),
    reuse_port: bool = False,
    sync_file: bool = True,
    one_of: int = 1,
) -> None:
    """Serve until stopped; with ``workers > 1`` run that many processes on one port.

    ``one_of`` is the size of the group a worker started by another process belongs to
    (its start line says so; it starts no workers itself).

    This process is one of them: it starts ``workers - 1`` more as plain child processes
    running ``worker_argv`` (each loads the same settings and builds its own event loop,
    pools and caches), serves beside them, and stops them when it stops. No process sits
    idle holding a full copy of the gateway's memory, and there is no helper process:
    multiprocessing's spawn context would add its resource tracker (13 MiB).
    """
    configure_logging(format=settings.logging.format, level=settings.logging.level)
    if workers <= 1:
        _serve_one(settings, dict(env), reuse_port=reuse_port, sync_file=sync_file, workers=one_of)
        return
    if not worker_argv:
        raise ValueError("several workers need the command line that starts one")
    # Ignored until each worker's loop handles it: a SIGHUP while starting is not fatal
    # (the workers inherit the ignored disposition across exec).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The command line is this program's own (the CLI builds it), never request input.
    others = [
        subprocess.Popen(list(worker_argv), env=dict(env))  # noqa: S603
        for _ in range(workers - 1)
    ]
    try:
        with contextlib.suppress(KeyboardInterrupt):
            _serve_one(
                settings,
                dict(env),
                reuse_port=True,
                hangup=partial(_hang_up, others),
                workers=workers,
            )
    finally:
        for process in others:
            process.terminate()  # SIGTERM: each worker drains and closes like this one
        for process in others:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _serve_one(
    settings: Settings,
    env: dict[str, str],
    reuse_port: bool,
    hangup: Callable[[], object] | None = None,
    sync_file: bool = True,
    workers: int = 1,
) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop handles it
    limit_malloc_arenas()  # before the audit writer and SQLite threads start
    install_uvloop()

    def start() -> Awaitable[list[web.AppRunner]]:
        return start_gateway(
            settings, env, reuse_port=reuse_port, sync_file=sync_file, workers=workers
        )

    try:
        asyncio.run(run_until_stopped(start, hangup))
    except ConfigError as error:  # no valid rules to start with: say why, never a trace
        for problem in error.problems:
            log.error("cannot start: %s", problem)
        raise SystemExit(2) from None


def _hang_up(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """Pass a SIGHUP on to every worker still running, so each reloads its rules."""
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGHUP)


def _metrics_for(app: web.Application) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(request: web.Request) -> web.Response:
        body = app[GATEWAY].metrics.exposition()
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    return metrics


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
