"""``gatehold demo``: the gateway on embedded SQLite in front of the demo app Ledger.

Seeds two tenants (acme, globex) and five people, writes ``<data>/gatehold.yaml`` so
every other ``gatehold`` command can be pointed at the demo, and prints how to sign
in as each person.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
import yaml
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.mint import mint_cookie, mint_sign_in_link
from gateway.config.settings import Settings, load_settings
from gateway.demo.ledger import build_ledger_app, seed
from gateway.demo.typed_commands import as_typed, gatehold_command
from gateway.logs import configure as configure_logging
from gateway.model import Membership
from gateway.runtime import install_uvloop, run_until_stopped, start_gateway
from gateway.store import registry as registry_store
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate

REPO_RULES = Path(__file__).resolve().parents[2] / "rules" / "demo.yaml"
PACKAGED_RULES = Path(__file__).resolve().parent / "demo-rules.yaml"


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    memberships: tuple[Membership, ...]
    superadmin: bool = False
    note: str = ""


DEMO_TENANTS = (("acme", "Acme Corp"), ("globex", "Globex Corporation"))

DEMO_USERS = (
    DemoUser(
        "admin@example.test",
        (Membership("acme", "admin"), Membership("globex", "admin")),
        superadmin=True,
        note="superadmin; admin in acme and globex",
    ),
    DemoUser("carol@acme.test", (Membership("acme", "admin"),), note="admin in acme only"),
    DemoUser("alice@acme.test", (Membership("acme", "standard"),), note="standard in acme"),
    DemoUser("rita@acme.test", (Membership("acme", "readonly"),), note="readonly in acme"),
    DemoUser("bob@globex.test", (Membership("globex", "standard"),), note="standard in globex"),
    DemoUser("olga@example.test", (Membership("*", "operator"),), note="operator, every tenant"),
)

DEMO_ADMINS = ("admin@example.test", "carol@acme.test")
"""Who gets a one-click sign-in link to the admin UI: the superadmin and a tenant admin."""
ADMIN_UI_PATH = "/.gatehold/admin/"
ADMIN_LINK_VALID_FOR = 8 * 3600.0

# Owners of Ledger's seeded reports; reports created later are learned on create.
DEMO_REGISTRY = (("report", "r-acme-1", "acme"), ("report", "r-globex-1", "globex"))


BANNER_COMMANDS = (
    "users list",
    "rules simulate --user alice@acme.test GET /api/invoices/8",
    "audit verify",
)
"""Commands the banner suggests, each printed with the executable and ``--config``."""

SHARE_COMMAND = "share create /files/7 --for bob@globex.test --as alice@acme.test"
"""The banner's share link: alice (acme) shares acme's "Übersicht 2026.pdf" with bob (globex)."""


def demo_rules_path() -> Path:
    """``rules/demo.yaml`` from a source checkout, else the copy shipped in the package."""
    return REPO_RULES if REPO_RULES.exists() else PACKAGED_RULES


def write_demo_config(data_dir: Path, *, port: int, ledger_url: str) -> Path:
    """Write ``<data>/gatehold.yaml`` for the demo and return its path."""
    data_dir = data_dir.resolve()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        "data_dir": ".",
        "rules": str(demo_rules_path()),
        "rules_env": {
            "LEDGER_URL": ledger_url,
            "LEDGER_DB_DSN": f"sqlite:///{data_dir / 'ledger.db'}",
        },
    }
    path = data_dir / "gatehold.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def seed_gateway(engine: AsyncEngine) -> None:
    """Create the demo tenants and people and register the seeded reports' owners
    (idempotent)."""
    for tenant_id, name in DEMO_TENANTS:
        await tenant_store.create_tenant(engine, tenant_id, display_name=name, now=time.time())
    for person in DEMO_USERS:
        await user_store.add_user(
            engine, person.email, memberships=person.memberships, superadmin=person.superadmin
        )
    for resource_type, object_id, tenant in DEMO_REGISTRY:
        await registry_store.set_owner(engine, resource_type, object_id, tenant)


async def seed_users(settings: Settings) -> None:
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        await seed_gateway(engine)
    finally:
        await engine.dispose()


async def start_ledger(db_path: Path, port: int = 0) -> tuple[web.AppRunner, str]:
    """Ledger on loopback, on ``port`` (0: a free one)."""
    runner = web.AppRunner(build_ledger_app(db_path), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def demo_log_format(env: Mapping[str, str]) -> Literal["json", "text"]:
    """Text, since a person watches the demo's terminal, unless
    ``GATEHOLD_LOGGING__FORMAT=json`` asks for JSON lines: the access log that
    ``gatehold rules learn`` reads. (The demo writes its own settings file, so the
    environment is the one place to ask.)"""
    return "json" if env.get("GATEHOLD_LOGGING__FORMAT", "").strip().lower() == "json" else "text"


def run_demo(*, port: int, data_dir: Path, app_port: int = 0) -> None:
    """Seed, print how to sign in, and serve until Ctrl-C."""
    configure_logging(format=demo_log_format(os.environ), level="info")
    install_uvloop()
    data_dir.mkdir(parents=True, exist_ok=True)
    seed(data_dir / "ledger.db")
    asyncio.run(run_until_stopped(lambda: _start(port, data_dir, app_port)))


async def _start(port: int, data_dir: Path, app_port: int = 0) -> list[web.AppRunner]:
    ledger, ledger_url = await start_ledger(data_dir / "ledger.db", app_port)
    config_path = write_demo_config(data_dir, port=port, ledger_url=ledger_url)
    settings = load_settings(config_path, env=os.environ, cwd=Path.cwd())
    await seed_users(settings)
    cookies = {p.email: await _cookie(settings, p.email) for p in DEMO_USERS}
    admin_links = {email: await _admin_link(settings, email) for email in DEMO_ADMINS}
    gateway = await start_gateway(settings, os.environ)
    _print_banner(settings, config_path, ledger_url, cookies, admin_links)
    return [ledger, *gateway]


async def _admin_link(settings: Settings, email: str) -> str:
    link = await mint_sign_in_link(
        settings, email, rd=ADMIN_UI_PATH, valid_for=ADMIN_LINK_VALID_FOR, actor="demo"
    )
    if link is None:  # seeded just before; only a broken store gets here
        raise RuntimeError(f"the demo person {email} was not seeded")
    return link


async def _cookie(settings: Settings, email: str) -> str:
    cookie = await mint_cookie(settings, email)
    if cookie is None:  # seeded just before; only a broken store gets here
        raise RuntimeError(f"the demo person {email} was not seeded")
    return cookie


def _print_banner(
    settings: Settings,
    config_path: Path,
    ledger_url: str,
    cookies: dict[str, str],
    admin_links: dict[str, str],
) -> None:
    url = settings.server.public_url
    click.echo(f"\nGatehold demo: {url}  (Ledger itself, unprotected: {ledger_url})")
    click.echo(f"\nAdmin UI: {url}{ADMIN_UI_PATH}")
    click.echo("Open one of these links and press Sign in (each works once, for 8 hours):")
    for email, link in admin_links.items():
        note = next(p.note for p in DEMO_USERS if p.email == email)
        click.echo(f"  {email:<20} {note}\n    {link}")
    click.echo(f"Config: {as_typed(config_path, Path.cwd())}. Every command takes it, for example:")
    for args in BANNER_COMMANDS:
        click.echo(f"  {gatehold_command(args, config=config_path)}")
    click.echo("")
    click.echo(f"In a browser, open {url}/api/invoices and sign in by email: the sign-in")
    click.echo(f"links are printed here and saved in {settings.outbox_path}/.\n")
    click.echo("From scripts, send one of these session cookies:")
    for person in DEMO_USERS:
        click.echo(f"  {person.email:<20} {person.note}")
        click.echo(f"    curl -H 'Cookie: {cookies[person.email]}' {url}/api/invoices")
    click.echo("\nTry alice on invoice 7 (acme, allowed) and 8 (globex, refused with 404).")
    _print_files(url, config_path)
    click.echo("Press Ctrl-C to stop.\n")


def _print_files(url: str, config_path: Path) -> None:
    """The files walkthrough (README "Files in the demo"): documents, downloads, a share."""
    click.echo(f"\nFiles: open {url}/documents as alice: acme's documents, a download link each")
    click.echo("and an upload form (rita, readonly, is refused). Share file 7 with bob (globex):")
    click.echo(f"  {gatehold_command(SHARE_COMMAND, config=config_path)}")
    click.echo('and open the printed link as bob; see "Files in the demo" in README.md.')
