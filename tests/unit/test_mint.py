"""``mint_cookie``: the one way the command line and the demo make a session outside sign-in."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.auth.mint import mint_cookie
from gateway.config.settings import Settings
from gateway.identity import COOKIE_NAME
from gateway.model import Membership
from gateway.store import audit_log, users
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.sessions import get_session, token_hash


def _settings(tmp_path: Path, store_dsn: str) -> Settings:
    return Settings.model_validate(
        {"data_dir": str(tmp_path), "base_dir": str(tmp_path), "store": {"dsn": store_dsn}}
    )


async def _minted_events(settings: Settings) -> list[dict[str, object]]:
    engine = open_engine(settings.store_dsn)
    try:
        rows = await audit_log.recent_rows(engine, audit_log.AuditFilter(kind="session-minted"))
        return [{"actor": r.actor, **json.loads(r.data)} for r in rows]
    finally:
        await engine.dispose()


async def test_a_minted_cookie_is_a_live_audited_session(tmp_path: Path, store_dsn: str) -> None:
    settings = _settings(tmp_path, store_dsn)
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        await users.add_user(engine, "alice@acme.test", memberships=[Membership("acme", "admin")])
    finally:
        await engine.dispose()
    cookie = await mint_cookie(settings, "alice@acme.test", tenant="acme")
    assert cookie is not None
    name, _, token = cookie.partition("=")
    assert name == COOKIE_NAME and token
    engine = open_engine(settings.store_dsn)
    try:
        session = await get_session(engine, token_hash(token))
    finally:
        await engine.dispose()
    assert session is not None and session.active_tenant == "acme"
    assert session.auth_method == "cli-mint"
    events = await _minted_events(settings)
    assert events == [{"actor": "cli", "subject": "alice@acme.test", "session": session.id_hash}]


async def test_no_session_for_an_unknown_or_inactive_person(tmp_path: Path, store_dsn: str) -> None:
    settings = _settings(tmp_path, store_dsn)
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        bob_id = await users.add_user(engine, "bob@globex.test", memberships=[])
        await users.set_active(engine, bob_id, False)
    finally:
        await engine.dispose()
    assert await mint_cookie(settings, "nobody@acme.test") is None
    assert await mint_cookie(settings, "bob@globex.test") is None
    assert await _minted_events(settings) == []
