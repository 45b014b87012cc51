"""Share links: who may open one (a table), the address hint, the lifetime cap, and the
store that keeps only a hash of each token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.service import AdminError
from gateway.admin.shares import share_ttl
from gateway.config.settings import Settings
from gateway.model import ANONYMOUS, AuthMethod, Principal, Reason, Rejection
from gateway.shares import Opens, ShareRefusal, SignInFirst, judge_open, masked
from gateway.store import share_links as share_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.share_links import NewShare, ShareRow
from tests.support.postgres import fresh_pg_engine

NOW = 1_000_000.0
BOB = "bob@partner.test"


def row(*, expires_at: float = NOW + 60, revoked_at: float | None = None) -> ShareRow:
    return ShareRow(
        1, "document-file", "/files/1", "document", "1", "acme", BOB, "alice@acme.test",
        NOW - 60, expires_at, revoked_at, None,
    )  # fmt: skip


def person(email: str, method: AuthMethod = AuthMethod.MAGIC_LINK) -> Principal:
    return Principal("7", email, (), method, NOW, session_hash="ab" * 32)


@pytest.mark.parametrize(
    ("share", "caller", "expected"),
    [
        (None, person(BOB), ShareRefusal.UNKNOWN),
        (row(revoked_at=NOW - 1), person(BOB), ShareRefusal.REVOKED),
        (row(revoked_at=NOW - 1), ANONYMOUS, ShareRefusal.REVOKED),
        (row(expires_at=NOW), person(BOB), ShareRefusal.EXPIRED),
        (row(expires_at=NOW - 1), ANONYMOUS, ShareRefusal.EXPIRED),
        (row(), ANONYMOUS, SignInFirst()),
        (row(), Rejection(Reason.SESSION_INVALID), SignInFirst()),
        (row(), person("carol@acme.test"), ShareRefusal.FOREIGN_PERSON),
        (row(), person(BOB, AuthMethod.API_KEY), ShareRefusal.FOREIGN_PERSON),
        (row(), person(BOB, AuthMethod.BEARER_JWT), ShareRefusal.FOREIGN_PERSON),
        (row(), person(BOB), Opens(person(BOB))),
    ],
    ids=[
        "a token nobody minted names nothing",
        "a revoked link is dead for its recipient",
        "a revoked link offers nobody a sign-in",
        "a link is dead at its expiry, not a moment later",
        "an expired link offers nobody a sign-in",
        "nobody signed in is offered a sign-in link",
        "an ended session is offered a sign-in link",
        "another signed-in person is refused",
        "an API key is no person, whatever its email",
        "a bearer token is no person, whatever its email",
        "the recipient, signed in, opens it",
    ],
)
def test_who_may_open_a_link(
    share: ShareRow | None, caller: Principal | Rejection, expected: object
) -> None:
    assert judge_open(share, caller, now=NOW) == expected


@pytest.mark.parametrize(
    ("address", "hint"),
    [
        ("bob@partner.test", "b***@p***.test"),
        ("a@b.c", "a***@b***.c"),
        ("x@localhost", "x***@l***"),
        ("jane.doe@mail.example.co.uk", "j***@m***.uk"),
    ],
    ids=["plain", "one-letter parts", "no dot in the domain", "several labels"],
)
def test_the_page_shows_only_a_hint_of_the_address(address: str, hint: str) -> None:
    assert masked(address) == hint


@pytest.mark.parametrize(
    ("files", "asked", "expected"),
    [
        ({}, None, 3600.0),
        ({"share_max_ttl": "30m"}, None, 1800.0),
        ({"share_default_ttl": "10m"}, None, 600.0),
        ({}, "2h", 7200.0),
        ({}, 90, 90.0),
        ({}, "24h", 86400.0),
        ({}, "25h", None),
        ({"share_max_ttl": "2h"}, "3h", None),
        ({}, 0, None),
        ({}, "soon", None),
    ],
    ids=[
        "default one hour",
        "default shortened to a lower cap",
        "a configured default",
        "asked in hours",
        "asked in seconds",
        "the 24h ceiling itself",
        "past the ceiling",
        "past a configured lower cap",
        "no life at all",
        "not a duration",
    ],
)
def test_a_link_lives_at_most_the_configured_cap(
    files: dict[str, str], asked: str | int | None, expected: float | None
) -> None:
    ttl = share_ttl(Settings.model_validate({"files": files}), asked)
    if expected is None:
        assert isinstance(ttl, AdminError) and ttl.code == "invalid"
    else:
        assert ttl == expected


@pytest.mark.parametrize(
    "files",
    [{"share_max_ttl": "25h"}, {"share_max_ttl": 0}, {"share_default_ttl": "2d"}],
    ids=["a cap past 24h", "a cap of nothing", "a default past the cap"],
)
def test_settings_refuse_a_cap_past_a_day_or_a_default_past_the_cap(
    files: dict[str, object],
) -> None:
    with pytest.raises(ValidationError, match="share_"):
        Settings.model_validate({"files": files})


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The store on both backends (PostgreSQL: a database of this test's own)."""
    if request.param == "postgresql":
        async with fresh_pg_engine("shares") as store:
            yield store
        return
    store = open_engine(f"sqlite:///{tmp_path / 'gatehold.db'}")
    await migrate(store)
    try:
        yield store
    finally:
        await store.dispose()


def new(path: str = "/files/1", *, tenant: str = "acme", by: str = "alice@acme.test") -> NewShare:
    return NewShare("document-file", path, "document", "1", tenant, BOB, by)


async def test_only_a_hash_of_the_token_is_stored(engine: AsyncEngine) -> None:
    share, token = await share_store.create_share(engine, new(), now=NOW, ttl=60)
    assert len(token) == 43
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT * FROM share_links"))).one()._mapping
    assert token not in {str(value) for value in stored.values()}
    assert stored["token_hash"] == share_store.token_hash(token)
    assert await share_store.find_share(engine, token) == share
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert await share_store.find_share(engine, changed) is None


async def test_revoking_is_once_and_a_revoked_link_is_listed_no_more(engine: AsyncEngine) -> None:
    mine, _ = await share_store.create_share(engine, new(), now=NOW, ttl=60)
    theirs, _ = await share_store.create_share(
        engine, new("/files/2", tenant="globex", by="bob@globex.test"), now=NOW, ttl=60
    )
    listed = await share_store.list_shares(engine, now=NOW, created_by="alice@acme.test")
    assert [s.id for s in listed] == [mine.id]
    by_tenant = await share_store.list_shares(engine, now=NOW, tenants=frozenset({"globex"}))
    assert [s.id for s in by_tenant] == [theirs.id]
    assert [s.id for s in await share_store.list_shares(engine, now=NOW + 61)] == []
    assert await share_store.live_for(engine, BOB, NOW)
    assert await share_store.revoke_share(engine, mine.id, now=NOW, by="alice@acme.test")
    assert not await share_store.revoke_share(engine, mine.id, now=NOW + 1, by="someone else")
    revoked = await share_store.get_share(engine, mine.id)
    assert revoked is not None and (revoked.revoked_at, revoked.revoked_by) == (
        NOW,
        "alice@acme.test",
    )
    assert [s.id for s in await share_store.list_shares(engine, now=NOW)] == [theirs.id]
    assert not await share_store.live_for(engine, "carol@acme.test", NOW)
