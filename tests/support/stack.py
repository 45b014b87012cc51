"""A whole gateway in front of a real Ledger, in the test's event loop.

Ledger runs on a real loopback port (aiohttp AppRunner), the gateway is served by
pytest-aiohttp's test server, the store is a real SQLite file. Nothing is mocked:
the gateway talks HTTP to Ledger exactly as in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from gateway.app import ENGINE, build_app
from gateway.auth.revocations import Revocations
from gateway.auth.sessions import SessionManager, hash_token
from gateway.config.loader import load_rules
from gateway.config.settings import Settings
from gateway.context import GATEWAY
from gateway.demo.ledger import build_ledger_app, seed
from gateway.demo.run import DEMO_USERS, seed_gateway
from gateway.logs import ACCESS_LOG, AccessLine
from gateway.model import AuthMethod, RuleSet
from gateway.rules_sync import FOLLOWER, RulesFollower, follow_store, initial_rules
from gateway.server import GatewayRunner
from gateway.store import users as user_store
from gateway.store.api_keys import key_hash
from tests.support.waiting import until

REPO = Path(__file__).resolve().parents[2]
DEMO_RULES = REPO / "rules" / "demo.yaml"


@dataclass
class Stack:
    """A running gateway + Ledger, and handles to look behind both."""

    client: TestClient[web.Request, web.Application]
    ledger_url: str
    settings: Settings
    ruleset: RuleSet
    cookies: dict[str, str] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None

    @property
    def follower(self) -> RulesFollower:
        """How this gateway follows the store's active rules (``follow=True`` only)."""
        return self.app[FOLLOWER]

    @property
    def app(self) -> web.Application:
        return self.client.server.app  # type: ignore[return-value]

    def cookie(self, email: str) -> dict[str, str]:
        return {"Cookie": f"__Host-gatehold={self.cookies[email]}"}

    async def ledger_hits(self) -> dict[str, int]:
        assert self.http is not None
        async with self.http.get(f"{self.ledger_url}/__ledger/hits") as response:
            hits: dict[str, int] = await response.json()
            return hits

    async def ledger_total(self) -> int:
        assert self.http is not None
        async with self.http.get(f"{self.ledger_url}/__ledger/hits/total") as response:
            return int((await response.json())["total"])

    async def ledger_reaches(self, total: int, *, timeout: float = 10.0) -> None:
        """Wait until Ledger has counted ``total`` requests (it counts each on arrival,
        so requests it is still answering count); a fixed sleep is too short on a busy
        machine."""
        async with asyncio.timeout(timeout):
            while await self.ledger_total() < total:
                await asyncio.sleep(0.02)

    async def settled(self) -> None:
        """Wait until every audit entry of the requests answered so far is committed.

        A streamed answer's outcome is queued after its last byte went out, so the
        client may hold the whole answer while the handler has yet to queue it: first
        wait until no handler whose answer is complete is still running.
        """
        await until(self._answered_handlers_done, "handlers of answered requests return")
        await self.app[GATEWAY].audit.settled()

    def _answered_handlers_done(self) -> bool:
        # aiohttp keeps the request a handler runs for, and the writer knows whether
        # the answer's end went out; requests still being answered are not waited for.
        # Both are private to aiohttp: read strictly, so an upgrade that renames them
        # fails here, loudly, instead of making this wait a silent no-op.
        server = self.client.server.runner
        assert server is not None and server.server is not None
        for handler in server.server.connections:
            request = handler._current_request
            if request is not None and request.writer._eof:
                return False
        return True

    async def revocations_noticed(
        self, *, sessions: Iterable[str] = (), api_keys: Iterable[str] = ()
    ) -> None:
        """Wait until this gateway's revocation poll has reported these session cookies
        and API keys revoked (it evicts each from its cache before it reports it).

        For changes made as another process makes them, in the store only; a fixed
        sleep of "a few polls" may end before one ran on a busy machine.
        """
        gateway = self.app[GATEWAY]
        waits = [
            _reported(gateway.sessions.revocations, {hash_token(t) for t in sessions}),
            _reported(gateway.api_keys.revocations, {key_hash(k) for k in api_keys}),
        ]
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*waits)
        except TimeoutError:
            raise AssertionError("the revocation poll never reported them revoked") from None

    async def audit_rows(self, request_id: str) -> list[dict[str, Any]]:
        """Committed audit rows for one request id, oldest first."""
        engine = self.app[ENGINE]
        await self.settled()
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT * FROM audit_log WHERE request_id = :rid ORDER BY seq"),
                {"rid": request_id},
            )
            return [dict(row._mapping) for row in rows]

    async def events(self, kind: str) -> list[dict[str, Any]]:
        """Committed audit events of one kind, oldest first, with ``data`` decoded."""
        await self.settled()
        async with self.app[ENGINE].connect() as conn:
            rows = await conn.execute(
                text("SELECT * FROM audit_log WHERE kind = :kind ORDER BY seq"), {"kind": kind}
            )
            found = [dict(row._mapping) for row in rows]
        for row in found:
            row["data"] = json.loads(row["data"])
        return found

    async def mint(
        self,
        email: str,
        *,
        auth_age: float = 0.0,
        tenant: str | None = None,
        mfa: bool = False,
    ) -> str:
        """A fresh session for ``email`` whose last sign-in was ``auth_age`` seconds ago
        (with a second factor shown then, if ``mfa``)."""
        engine = self.app[ENGINE]
        user = await user_store.get_user_by_email(engine, email)
        assert user is not None
        sessions: SessionManager = self.app[GATEWAY].sessions
        token, _ = await sessions.create(
            user_id=user.id,
            auth_method=AuthMethod.CLI_MINT,
            client_ip="127.0.0.1",
            user_agent="tests",
            active_tenant=tenant,
            auth_time=time.time() - auth_age,
            mfa_time=time.time() - auth_age if mfa else None,
        )
        return token


class GatewayTestServer(TestServer):
    """pytest-aiohttp's test server, serving through the production runner."""

    access_lines = False
    """Write access lines as ``gatehold serve`` does (logger ``gatehold.access``), instead
    of aiohttp's default access log."""

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        # aiohttp's test server cancels a handler whose client went away; `gatehold
        # serve` does not (aiohttp's default), and the tests see what it does.
        kwargs["handler_cancellation"] = False
        if self.access_lines:
            kwargs.update(access_log=ACCESS_LOG, access_log_class=AccessLine)
        return GatewayRunner(self.app, **kwargs)


def demo_settings(data_dir: Path, ledger_url: str, **overrides: Any) -> Settings:
    settings: dict[str, Any] = {
        "server": {"public_url": "http://gatehold.test"},
        "data_dir": str(data_dir),
        "rules": str(DEMO_RULES),
        "rules_env": {
            "LEDGER_URL": ledger_url,
            "LEDGER_DB_DSN": f"sqlite:///{data_dir / 'ledger.db'}",
        },
        "base_dir": str(data_dir),
    }
    settings.update(overrides)
    return Settings.model_validate(settings)


@asynccontextmanager
async def ledger_server(data_dir: Path) -> AsyncIterator[str]:
    """Ledger on a free loopback port; yields its base URL."""
    db = data_dir / "ledger.db"
    seed(db)
    runner = web.AppRunner(build_ledger_app(db), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def gateway_app(settings: Settings, *, follow: bool) -> tuple[web.Application, RuleSet]:
    """The gateway app of ``settings``: built from the rules file, or (``follow``) as
    ``gatehold serve`` builds it: from the store's active version, which it follows."""
    if not follow:
        ruleset = load_rules(settings.rules_path, env=settings.rules_env)
        return build_app(settings, ruleset), ruleset
    version, ruleset = await initial_rules(settings, settings.rules_env)
    app = build_app(settings, ruleset)
    follow_store(app, settings, settings.rules_env, applied=version)
    return app, ruleset


@asynccontextmanager
async def replica(stack: Stack) -> AsyncIterator[Stack]:
    """One more gateway on the same settings, store and Ledger, following the store
    (a second ``gatehold serve`` process, as an app instance in the test's loop)."""
    app, ruleset = await gateway_app(stack.settings, follow=True)
    client = TestClient(GatewayTestServer(app))
    await client.start_server()
    try:
        yield Stack(client, stack.ledger_url, stack.settings, ruleset, stack.cookies, stack.http)
    finally:
        await client.close()


@asynccontextmanager
async def running_stack(
    data_dir: Path,
    *,
    rules_text: str | None = None,
    port: int | None = None,
    follow: bool = False,
    access_lines: bool = False,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """Ledger + gateway + the demo users, each with a fresh session.

    With ``port`` the gateway listens on that loopback port and knows itself as
    ``http://127.0.0.1:<port>`` (for browsers); otherwise as ``http://gatehold.test``.
    With ``follow`` it runs and follows the store's active rules version, as ``gatehold
    serve`` does (``rules.managed_by`` as the settings say). With ``access_lines`` its
    access lines go to the ``gatehold.access`` logger, as ``gatehold serve`` writes them.
    """
    async with ledger_server(data_dir) as ledger_url:
        if port is not None:
            overrides.setdefault("server", {"public_url": f"http://127.0.0.1:{port}"})
        settings = demo_settings(data_dir, ledger_url, **overrides)
        if rules_text is not None:
            rules_file = data_dir / "rules.yaml"
            rules_file.write_text(rules_text)
            source = settings.rules_source.model_copy(update={"path": str(rules_file)})
            settings = settings.model_copy(update={"rules": source})
        app, ruleset = await gateway_app(settings, follow=follow)
        server = (
            GatewayTestServer(app, host="127.0.0.1", port=port) if port else GatewayTestServer(app)
        )
        server.access_lines = access_lines
        client = TestClient(server)
        await client.start_server()
        http = aiohttp.ClientSession()
        stack = Stack(client, ledger_url, settings, ruleset, http=http)
        try:
            engine = app[ENGINE]
            await seed_gateway(engine)
            for person in DEMO_USERS:
                stack.cookies[person.email] = await stack.mint(person.email)
            yield stack
        finally:
            await http.close()
            await client.close()


async def _reported(revocations: Revocations, hashes: set[str]) -> None:
    """Until ``revocations`` has reported every one of ``hashes`` (each poll reports
    every credential revoked in its look-back, so a revocation made before this call
    is reported by the next poll)."""
    missing = set(hashes)
    if not missing:
        return
    all_reported = asyncio.Event()

    def heard(revoked: Sequence[str]) -> None:
        missing.difference_update(revoked)
        if not missing:
            all_reported.set()

    revocations.subscribe(heard)
    await all_reported.wait()


def problem(body: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data
