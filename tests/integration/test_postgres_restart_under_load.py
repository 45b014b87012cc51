"""PostgreSQL restarted under load: two gateways on one cluster keep I5 and recover alone.

The test starts its own cluster from the installed binaries (``tests.support.pg_cluster``)
so it can stop it. Two gateways share it in front of one real Ledger, while several
clients keep reading their own and foreign invoices, listing, and creating reports
through both:

* two real ``gatehold serve`` processes (JSON logs on stderr, ``/ready`` on their admin
  listeners), the cluster killed with ``pg_ctl stop -m immediate`` as in a crash;
* two app instances in the test's loop (``running_stack`` and ``replica``, each with its
  own pools, caches, audit writer and rules follower), stopped with ``-m fast``.

While the cluster is down every answer is the gateway's own 503 (problem JSON with a
``Retry-After``), never a 500 and never slower than ``ANSWER_BOUND``; liveness stays 200
while readiness is 503. Afterwards: every request Ledger received has its committed
``request`` row (nothing forwarded unaudited, whatever the timing of the stop); both
gateways serve again within ``RECOVERY_BOUND`` without a restart; the keyed chain
verifies (no gap, no fork); and the outage is a few log lines per gateway, not one
per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.audit_trail import verify_trail
from gateway.app import ENGINE
from gateway.audit_keys import audit_key
from gateway.auth.sessions import SessionManager, hash_token
from gateway.config.settings import load_settings
from gateway.context import GATEWAY
from gateway.demo.run import DEMO_USERS, seed_gateway
from gateway.model import AuthMethod
from gateway.readiness import not_ready_reasons
from gateway.store import sessions as session_store
from gateway.store import users as user_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from tests.integration.test_cli import gatehold
from tests.integration.test_rules_reload_on_sighup import _wait_for_port
from tests.support.pg_cluster import Cluster, StopMode, started_cluster
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES, Stack, ledger_server, replica, running_stack
from tests.support.waiting import until

ANSWER_BOUND = 5.0
"""No request may wait longer than this for its answer, store or no store."""
RECOVERY_BOUND = 10.0
"""Both gateways serve 200 again this long after the cluster is back, at the latest."""
OUTAGE_SECONDS = 2.5
CLIENTS_PER_GATEWAY = 4
LINES_PER_OUTAGE = 2
"""Most times one warning or error may repeat per gateway and outage (start and end)."""
MINE = ("alice@acme.test", "GET", "/api/invoices/7", 200)
"""An owned object: served while the store is up."""
CALLS: tuple[tuple[str, str, str, int], ...] = (
    MINE,
    ("alice@acme.test", "GET", "/api/invoices/8", 404),  # globex's invoice: foreign
    ("bob@globex.test", "GET", "/api/invoices/8", 200),
    ("bob@globex.test", "GET", "/api/invoices/7", 404),
    ("rita@acme.test", "GET", "/api/invoices", 200),
    ("rita@acme.test", "POST", "/api/invoices", 403),  # readonly may not write
    ("alice@acme.test", "POST", "/api/reports", 201),  # a write that teaches an owner
)
"""(who, method, path, the answer while the store is up)."""
DOWN_PROBLEMS = ("/.gatehold/problems/store-unavailable", "/.gatehold/problems/audit-unavailable")


class Requests(Protocol):
    """``TestClient`` and ``aiohttp.ClientSession(base_url)`` alike."""

    def request(self, method: str, path: str, **kwargs: Any) -> Any: ...


@dataclass
class Gateway:
    """One gateway under test: how to reach it, each person's session, its readiness."""

    http: Requests
    sessions: dict[str, str]
    not_ready: Callable[[], Awaitable[list[str]]]

    def cookie(self, email: str) -> dict[str, str]:
        return {"Cookie": f"__Host-gatehold={self.sessions[email]}"}


@dataclass(frozen=True, slots=True)
class Answer:
    gateway: int
    call: tuple[str, str, str, int]
    began: float
    ended: float
    status: int
    request_id: str
    retry_after: str | None
    problem: str
    """The problem ``type`` of the gateway's own JSON answer, else ``""``."""


@dataclass
class Load:
    """Clients sending ``CALLS`` through every gateway until told to stop."""

    gateways: list[Gateway]
    answers: list[Answer] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, index: int, seed: int) -> None:
        choose = random.Random(seed)
        while not self.stopping.is_set():
            call = choose.choice(CALLS)
            self.answers.append(await self.send(index, call))
            await asyncio.sleep(choose.uniform(0.0, 0.03))

    async def send(self, index: int, call: tuple[str, str, str, int]) -> Answer:
        email, method, path, _ = call
        gateway = self.gateways[index]
        headers = gateway.cookie(email) | {"Accept": "application/json"}
        body: dict[str, Any] | None = {"title": "monthly"} if method == "POST" else None
        began = time.monotonic()
        async with asyncio.timeout(ANSWER_BOUND):
            async with gateway.http.request(method, path, headers=headers, json=body) as reply:
                problem = ""
                if reply.content_type == "application/problem+json":
                    problem = str((await reply.json())["type"])
                else:
                    await reply.read()
                return Answer(
                    index,
                    call,
                    began,
                    time.monotonic(),
                    reply.status,
                    reply.headers.get("X-Request-Id", ""),
                    reply.headers.get("Retry-After"),
                    problem,
                )


@dataclass(frozen=True, slots=True)
class Outage:
    stopping: float
    """When ``pg_ctl stop`` was called."""
    stopped: float
    """When it returned: the server is gone."""
    restarting: float
    """When ``pg_ctl start`` was called."""
    recovered: tuple[float, ...]
    """Seconds after ``restarting`` until each gateway served an owned object again."""


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with started_cluster("gatehold-restart-pg-") as running:
        yield running


async def serves_again(gateway: Gateway, since: float) -> float:
    """Seconds after ``since`` until ``gateway`` serves an owned object again."""
    email, _, path, _ = MINE
    while True:
        async with gateway.http.request("GET", path, headers=gateway.cookie(email)) as reply:
            if reply.status == 200:
                return time.monotonic() - since
        assert time.monotonic() - since < RECOVERY_BOUND, f"still {reply.status}"
        await asyncio.sleep(0.1)


async def ready_again(gateway: Gateway, since: float) -> None:
    while reasons := await gateway.not_ready():
        assert time.monotonic() - since < RECOVERY_BOUND, reasons
        await asyncio.sleep(0.1)


async def restart_under_load(
    cluster: Cluster, gateways: list[Gateway], mode: StopMode
) -> tuple[list[Answer], Outage]:
    """Clients on every gateway; the cluster stopped for ``OUTAGE_SECONDS`` and started
    again once they run steadily; the load goes on until both gateways serve again."""
    load = Load(gateways)
    clients = [
        asyncio.create_task(load.client(index, seed=index * 100 + n))
        for index in range(len(gateways))
        for n in range(CLIENTS_PER_GATEWAY)
    ]
    try:
        await asyncio.sleep(1.0)  # steady load first
        stopping = time.monotonic()
        await asyncio.to_thread(cluster.stop, mode)
        stopped = time.monotonic()
        for gateway in gateways:
            assert await gateway.not_ready() == ["store: not answering"]
            async with gateway.http.request("GET", "/.gatehold/health") as liveness:
                assert liveness.status == 200, "liveness follows the process, not the store"
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped))
        restarting = time.monotonic()
        await asyncio.to_thread(cluster.start)
        recovered = await asyncio.gather(*(serves_again(g, restarting) for g in gateways))
        await asyncio.sleep(0.5)  # steady load after the restart as well
    finally:
        load.stopping.set()
        await asyncio.gather(*clients)
    for gateway in gateways:
        await ready_again(gateway, restarting)
    return load.answers, Outage(stopping, stopped, restarting, tuple(recovered))


def assert_answers(answers: list[Answer], outage: Outage) -> None:
    """What clients saw: the usual answers before and after, the gateway's 503 between."""
    assert not [a for a in answers if a.status == 500], "a 500 during the outage"
    before = [a for a in answers if a.ended < outage.stopping]
    after = [a for a in answers if a.began > outage.restarting + max(outage.recovered)]
    for steady in (before, after):
        assert steady, "no load before or after the outage"
        assert all(a.status == a.call[3] for a in steady), [
            a for a in steady if a.status != a.call[3]
        ][:5]
    down = [a for a in answers if a.began >= outage.stopped + 0.1 and a.ended <= outage.restarting]
    assert len(down) >= 10, f"only {len(down)} requests while the cluster was down"
    assert not [a for a in down if a.status != 503], [a for a in down if a.status != 503][:5]
    for answer in down:
        assert answer.problem in DOWN_PROBLEMS, answer
        assert answer.retry_after is not None and answer.retry_after.isdigit(), answer
        assert answer.request_id, answer
    assert max(outage.recovered) < RECOVERY_BOUND


async def assert_every_forward_audited(
    engine: AsyncEngine, hits: dict[str, int], answers: list[Answer]
) -> None:
    """Every request id Ledger saw has a committed, allowing ``request`` row."""
    hits = dict(hits)
    hits.pop("-", None)  # owner lookups: the gateway's own calls, no request id
    forwarded = set(hits)
    assert forwarded, "nothing reached Ledger"
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT request_id FROM audit_log WHERE kind = 'request' AND decision = 'allow'")
        )
        audited = {row.request_id for row in rows}
    assert not forwarded - audited, f"forwarded unaudited: {sorted(forwarded - audited)[:5]}"
    assert all(count == 1 for count in hits.values()), "a request was forwarded twice"
    answered = {a.request_id for a in answers if a.status in (200, 201)}
    assert answered <= forwarded, "a success the app never saw"


async def assert_revocations_still_reach(gateways: list[Gateway], engine: AsyncEngine) -> None:
    """A session ended in the store after the outage is refused by every gateway within
    two seconds: each one's revocation poll survived the outage."""
    email, _, path, _ = MINE
    token = gateways[0].sessions[email]
    assert await session_store.revoke_session(engine, hash_token(token), time.time())
    started = time.monotonic()
    for gateway in gateways:
        while True:
            async with gateway.http.request("GET", path, headers=gateway.cookie(email)) as reply:
                if reply.status == 401:
                    break
            assert time.monotonic() - started < 2.0, "a revoked session still works"
            await asyncio.sleep(0.05)


def repeated_lines(lines: Iterable[tuple[str, str]]) -> dict[str, int]:
    """How often each warning or error was logged, numbers in its message masked;
    ``lines`` are (logger, message). Access lines are one per request by design."""
    counts: dict[str, int] = {}
    for logger, message in lines:
        if logger != "gatehold.access":
            key = f"{logger}: {re.sub(r'[0-9a-f]*[0-9][0-9a-f]*', 'N', message[:60])}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def assert_few_lines(counts: dict[str, int], gateways: int) -> None:
    # A create answered while the store went away cannot register its owner: one error
    # per such create is right (the object has no owner until an admin sets one).
    counts = {k: v for k, v in counts.items() if "could not register the owner" not in k}
    assert all(n <= LINES_PER_OUTAGE * gateways for n in counts.values()), "\n".join(
        f"{n} x {message}" for message, n in sorted(counts.items())
    )


# ---------------------------------------------------------------- two gatehold serve


@dataclass
class Served:
    config: Path
    port: int
    admin: int
    log: Path
    process: subprocess.Popen[bytes]


def serve_config(folder: Path, name: str, dsn: str, ledger_url: str) -> tuple[Path, int, int]:
    """A config for one ``gatehold serve`` on loopback; every process shares ``data``
    (the audit key, checkpoints) and the store."""
    port, admin = free_port(), free_port()
    config = folder / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(folder / "data"),
                "rules": str(DEMO_RULES),
                "store": {"dsn": dsn},
                "server": {
                    "host": "127.0.0.1",
                    "port": port,
                    "admin_port": admin,
                    "public_url": f"http://127.0.0.1:{port}",
                },
                "logging": {"format": "json", "level": "info"},
                "rules_env": {
                    "LEDGER_URL": ledger_url,
                    "LEDGER_DB_DSN": f"sqlite:///{folder / 'ledger.db'}",
                },
            }
        )
    )
    return config, port, admin


async def people_with_sessions(config: Path) -> dict[str, str]:
    """The demo people in the store, each with a fresh session token."""
    settings = load_settings(config, env={}, cwd=config.parent)
    audit_key(settings, create=True)  # one key for both processes, made before either
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        await seed_gateway(engine)
        sessions = SessionManager(engine, idle_timeout=3600, absolute_timeout=86400)
        tokens = {}
        for person in DEMO_USERS:
            user = await user_store.get_user_by_email(engine, person.email)
            assert user is not None
            tokens[person.email], _ = await sessions.create(
                user_id=user.id,
                auth_method=AuthMethod.CLI_MINT,
                client_ip="127.0.0.1",
                user_agent="tests",
            )
        return tokens
    finally:
        await engine.dispose()


@asynccontextmanager
async def serving(config: Path, port: int, admin: int) -> AsyncIterator[Served]:
    log = config.with_suffix(".log")
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        ) as process,
    ):
        try:
            await asyncio.to_thread(_wait_for_port, port, process, log)
            await asyncio.to_thread(_wait_for_port, admin, process, log)
            yield Served(config, port, admin, log, process)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)


def readiness(http: aiohttp.ClientSession, admin: int) -> Callable[[], Awaitable[list[str]]]:
    async def not_ready() -> list[str]:
        async with http.get(f"http://127.0.0.1:{admin}/ready") as answer:
            body = await answer.json()
            assert (answer.status == 200) == (body["status"] == "ready"), body
            return list(body.get("reasons", []))

    return not_ready


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_two_serve_processes_ride_out_a_postgres_crash(
    tmp_path: Path, cluster: Cluster
) -> None:
    async with AsyncExitStack() as stack:
        ledger_url = await stack.enter_async_context(ledger_server(tmp_path))
        configs = [serve_config(tmp_path, f"gatehold-{n}", cluster.dsn, ledger_url) for n in (1, 2)]
        tokens = await people_with_sessions(configs[0][0])
        served = [await stack.enter_async_context(serving(*config)) for config in configs]
        jar = aiohttp.DummyCookieJar()
        http = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=jar))
        gateways = [
            Gateway(
                await stack.enter_async_context(
                    aiohttp.ClientSession(f"http://127.0.0.1:{one.port}", cookie_jar=jar)
                ),
                tokens,
                readiness(http, one.admin),
            )
            for one in served
        ]
        answers, outage = await restart_under_load(cluster, gateways, "immediate")
        async with http.get(f"{ledger_url}/__ledger/hits") as hits:
            forwarded: dict[str, int] = await hits.json()
        await asyncio.sleep(0.3)  # the last outcomes are committed after their answers
        for one in served:
            assert one.process.poll() is None, one.log.read_text()[-2000:]

        assert_answers(answers, outage)
        engine = open_engine(cluster.dsn)
        try:
            await assert_every_forward_audited(engine, forwarded, answers)
            await assert_revocations_still_reach(gateways, engine)
        finally:
            await engine.dispose()
        verified = await asyncio.to_thread(gatehold, "audit", "verify", config=served[0].config)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    lines = [line for one in served for line in log_lines(one.log)]
    loud = [(line["logger"], line["message"]) for line in lines if line["level"] != "info"]
    assert_few_lines(repeated_lines(loud), gateways=2)
    refused = [
        line for line in lines if line["logger"] == "gatehold.access" and line["status"] == 503
    ]
    assert refused, "no access line for the 503s"
    # The access line says why: the store, not a decision that allowed the request.
    assert {(line["decision"], line["reason"]) for line in refused} <= {
        ("deny", "store-unavailable"),
        ("deny", "audit-unavailable"),
    }, {(line["decision"], line["reason"]) for line in refused}


# ---------------------------------------------------------------- two app instances


def in_process(stack: Stack) -> Gateway:
    return Gateway(stack.client, stack.cookies, lambda: not_ready_reasons(stack.app, 2.0))


async def test_two_gateways_in_process_ride_out_a_postgres_restart(
    tmp_path: Path, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        running_stack(tmp_path, follow=True, store={"dsn": cluster.dsn}) as first,
        replica(first) as second,
    ):
        started = time.time()
        gateways = [in_process(first), in_process(second)]
        answers, outage = await restart_under_load(cluster, gateways, "fast")
        for stack in (first, second):
            await stack.settled()
        assert_answers(answers, outage)
        await assert_every_forward_audited(first.app[ENGINE], await first.ledger_hits(), answers)
        await assert_revocations_still_reach(gateways, first.app[ENGINE])
        trail = await verify_trail(first.settings)
        assert trail.problems == [], trail.problems

    loud = [
        (record.name, record.getMessage())
        for record in caplog.records
        if record.created >= started and record.levelno >= logging.WARNING
    ]
    assert_few_lines(repeated_lines(loud), gateways=2)


async def test_a_caller_the_store_cannot_look_up_gets_503_never_500(tmp_path: Path) -> None:
    """The sessions table unreadable (the rest of the store answering): the cached
    sessions are dropped at the next revocation poll, then every request with a cookie
    is refused 503 ``store-unavailable`` with ``Retry-After`` — the pipeline's
    (audited, not forwarded) and the gateway's own pages alike — and liveness stays 200.
    """
    async with running_stack(tmp_path) as stack:
        alice = stack.cookie("alice@acme.test") | {"Accept": "application/json"}
        engine = stack.app[ENGINE]
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE sessions RENAME TO sessions_away"))
        sessions = stack.app[GATEWAY].sessions
        await until(  # the revocation poll fails and forgets every session
            lambda: sessions.cached_sessions() == 0, "the failed poll empties the cache"
        )
        forwarded = await stack.ledger_total()
        ids = []
        for path in ("/api/invoices/7", "/.gatehold/api/me", "/.gatehold/access/request"):
            async with stack.client.get(path, headers=alice) as reply:
                assert reply.status == 503, (path, await reply.text())
                assert reply.headers["Retry-After"].isdigit()
                body = await reply.json()
                assert body["type"] == "/.gatehold/problems/store-unavailable", path
                assert body["request_id"] == reply.headers["X-Request-Id"]
                ids.append(body["request_id"])
        assert await stack.ledger_total() == forwarded, "forwarded for an unknown caller"
        request, outcome = await stack.audit_rows(ids[0])  # the audit table still answers
        assert (request["kind"], request["decision"], request["reason"]) == (
            "request",
            "deny",
            "store-unavailable",
        )
        assert (request["actor"], outcome["kind"]) == ("anonymous", "outcome")
        async with stack.client.get("/.gatehold/health") as liveness:
            assert liveness.status == 200
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE sessions_away RENAME TO sessions"))
        async with stack.client.get("/api/invoices/7", headers=alice) as reply:
            assert reply.status == 200
