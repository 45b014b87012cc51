"""Two ``gatehold serve`` processes on one PostgreSQL store agree within a second.

Replica A and replica B: real processes on their own ports, the demo Ledger behind both,
one fresh database. A session signed in on A works on B; a change made on A (or by the
CLI) is enforced by B within a second: an object moved to another tenant in the
registry, a rules activation, a logout, a revoked API key, a deactivated person. Each
time B is shown to give the old answer right before the change, and is then asked every
50 ms until it gives the new one.

Twice: with LISTEN/NOTIFY (``store.listen: true``; the rules and registry fallback polls
are 5 s then, so only a notification can make the second), and with polling only
(``store.listen: false``: everything lands within the 0.5 s poll).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_cli import gatehold
from tests.support.postgres import fresh_pg_dsn
from tests.support.served import (
    CSRF,
    SESSION_COOKIE,
    Served,
    ledger_process,
    magic_link_sign_in,
    serving,
    settings_file,
)
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES

DEADLINE = 1.0
API = "/.gatehold/api"
READ_REMOVED = DEMO_RULES.read_text().replace(
    "standard: {can: [read, write, download]}", "standard: {can: [write, download]}"
)


@dataclass
class Replicas:
    a: Served
    b: Served
    config: Path
    outbox: Path
    key: str
    """An upstream API key: readonly in acme."""
    admin: dict[str, str]
    """Headers of an admin API key of every tenant."""
    listening: bool


def cli(config: Path, *args: str) -> str:
    done = gatehold(*args, config=config)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(params=[True, False], ids=["notify", "poll-only"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Replicas]:
    listen: bool = request.param
    with fresh_pg_dsn("replicas") as dsn, ledger_process(tmp_path) as ledger:
        shared: dict[str, Any] = {
            "store": {"dsn": dsn, "listen": listen},
            "rules": {"path": str(DEMO_RULES), "managed_by": "admin"},
        }
        config_a = settings_file(tmp_path / "a.yaml", ledger, port=free_port(), **shared)
        config_b = settings_file(tmp_path / "b.yaml", ledger, port=free_port(), **shared)
        for tenant in ("acme", "globex"):
            cli(config_a, "tenants", "add", tenant)
        cli(config_a, "users", "add", "alice@acme.test", "--tenant", "acme", "--role", "standard")
        cli(config_a, "users", "add", "bob@acme.test", "--tenant", "acme", "--role", "readonly")
        key = cli(config_a, "apikey", "create", "--tenant", "acme", "--role", "readonly")
        admin_key = cli(config_a, "apikey", "create", "--admin", "--tenant", "*", "--role", "admin")
        with (
            serving(config_a, tmp_path / "a.log") as a,
            serving(config_b, tmp_path / "b.log") as b,
        ):
            yield Replicas(
                a,
                b,
                config_a,
                tmp_path / "outbox",
                key,
                {"Authorization": f"Bearer {admin_key}"},
                listen,
            )


async def status(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with http.get(url, headers=headers, allow_redirects=False) as answer:
        await answer.read()
        return answer.status


async def within_a_second(what: str, check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until ``check()`` holds, asked every 50 ms; fails past ``DEADLINE``."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed < DEADLINE, f"{what}: replica B still disagrees after {elapsed:.2f}s"
        await asyncio.sleep(0.05)


async def answers(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], expected: int
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await status(http, url, headers) == expected

    return check


async def agree(r: Replicas) -> dict[str, float]:
    took: dict[str, float] = {}
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with aiohttp.ClientSession(r.a.url, cookie_jar=jar) as on_a:
            session = await magic_link_sign_in(on_a, r.outbox, "alice@acme.test")
        alice = {"Cookie": f"{SESSION_COOKIE}={session}"}
        # A session created on A works on B.
        assert await status(http, f"{r.b.url}/api/invoices/1", alice) == 200

        # A report alice creates on A (its owner learned); B caches its owner, then the
        # registry moves it to globex on A: B refuses alice within a second.
        async with http.post(f"{r.a.url}/api/reports", json={"title": "Q3"}, headers=alice) as made:
            assert made.status == 201, await made.text()
            report = made.headers["Location"].rsplit("/", 1)[1]
        report_on_b = f"{r.b.url}/api/reports/{report}"
        assert await status(http, report_on_b, alice) == 200
        assert await status(http, report_on_b, alice) == 200  # now from B's owner cache
        moved_to = {"tenant": "globex"}
        owner_url = f"{r.a.url}{API}/registry/report/{report}"
        async with http.put(owner_url, json=moved_to, headers=r.admin) as moved:
            assert moved.status == 200, await moved.text()
            assert (await moved.json())["before"] == "acme"
        took["registry move"] = await within_a_second(
            "registry move", await answers(http, report_on_b, alice, 404)
        )

        # A rules version that takes read away from standard, activated on A.
        invoice_on_b = f"{r.b.url}/api/invoices/1"
        assert await status(http, invoice_on_b, alice) == 200
        versions = f"{r.a.url}{API}/rules/versions"
        proposal = {"yaml": READ_REMOVED, "comment": "standard reads no more"}
        async with http.post(versions, json=proposal, headers=r.admin) as proposed:
            assert proposed.status == 201, await proposed.text()
            version = (await proposed.json())["id"]
        activate = f"{versions}/{version}/activate"
        async with http.post(activate, json={"comment": ""}, headers=r.admin) as activated:
            assert activated.status == 200, await activated.text()
        took["rules activation"] = await within_a_second(
            "rules activation", await answers(http, invoice_on_b, alice, 403)
        )

        # Logout on A: B refuses the cookie (401), where it denied only the route (403).
        async with http.get(f"{r.a.url}/.gatehold/sessions", headers=alice) as page:
            csrf = CSRF.search(await page.text())
        assert csrf
        assert await status(http, invoice_on_b, alice) == 403
        logout = f"{r.a.url}/.gatehold/logout"
        async with http.post(
            logout, data={"csrf": csrf.group(1)}, headers=alice, allow_redirects=False
        ) as out:
            assert out.status in (302, 303)
        took["logout"] = await within_a_second(
            "logout", await answers(http, invoice_on_b, alice, 401)
        )

        # An API key revoked through A's admin API.
        bearer = {"Authorization": f"Bearer {r.key}"}
        assert await status(http, invoice_on_b, bearer) == 200
        async with http.get(f"{r.a.url}{API}/api-keys", headers=r.admin) as listed:
            (key_id,) = [k["id"] for k in (await listed.json())["items"] if not k["admin"]]
        async with http.delete(f"{r.a.url}{API}/api-keys/{key_id}", headers=r.admin) as revoked:
            assert revoked.status == 200, await revoked.text()
        took["api key revocation"] = await within_a_second(
            "api key revocation", await answers(http, invoice_on_b, bearer, 401)
        )

        # A person deactivated by the CLI (another process again).
        bob = {"Cookie": cli(r.config, "session", "mint", "bob@acme.test")}
        assert await status(http, invoice_on_b, bob) == 200
        cli(r.config, "users", "deactivate", "bob@acme.test")
        took["deactivation"] = await within_a_second(
            "deactivation", await answers(http, invoice_on_b, bob, 401)
        )
    return took


def test_replicas_agree_within_a_second(replicas: Replicas) -> None:
    took = asyncio.run(agree(replicas))
    print(f"replica B agreed after (seconds): {took}")
    assert all(seconds < DEADLINE for seconds in took.values()), took
    log_b = replicas.b.log_text()
    assert "rules reloaded from rules version 2" in log_b
    if replicas.listening:
        assert "polling" not in log_b, log_b
