"""The dashboard's figures: counts per hour and top values, GROUP BY in SQL, alike on
SQLite and PostgreSQL (the latter when ``GATEHOLD_TEST_PG_DSN`` names a server)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.activity import activity_summary, window_start
from gateway.admin.service import Admin, AdminContext
from gateway.audit import AuditWriter
from gateway.audit_keys import AuditKey
from gateway.model import AuditEntry
from gateway.store import audit_log
from gateway.store.audit_log import AuditFilter, HourlyCount, ValueCount
from gateway.store.engine import writing

KEY = AuditKey.from_secret(b"activity test audit secret, 32+ bytes")
START = 1_800_000_000.0 - 1_800_000_000.0 % 3600
"""On the hour."""


async def write(engine: AsyncEngine, ts: float, *entries: AuditEntry) -> None:
    async with writing(engine) as conn:
        await audit_log.insert_batch(conn, list(entries), ts=ts, key=KEY.chain)


def request(actor: str, tenant: str, route: str, decision: str) -> AuditEntry:
    return AuditEntry("request", actor=actor, tenant=tenant, route=route, decision=decision)


async def traffic(engine: AsyncEngine) -> None:
    """Rows on both sides of every edge of the 24-hour window starting at ``START``."""
    await write(engine, START - 0.001, request("early@acme.test", "acme", "r1", "allow"))
    await write(
        engine,
        START,
        request("alice@acme.test", "acme", "r1", "allow"),
        request("alice@acme.test", "acme", "r1", "deny"),
        AuditEntry("login", actor="alice@acme.test"),
    )
    await write(engine, START + 3599.999, request("bob@globex.test", "globex", "r2", "deny"))
    await write(
        engine,
        START + 3600,
        request("bob@globex.test", "acme", "r1", "deny"),
        request("alice@acme.test", "acme", "", "deny"),
        AuditEntry("outcome", request_id="x"),
    )
    await write(engine, START + 23 * 3600 + 10, request("alice@acme.test", "acme", "r2", "allow"))
    await write(engine, START + 24 * 3600, request("late@acme.test", "acme", "r1", "deny"))


async def test_rows_are_counted_in_the_hour_they_fall_in(engine: AsyncEngine) -> None:
    await traffic(engine)
    counts = await audit_log.hourly_counts(
        engine, kinds=("request", "login"), start=START, hours=24
    )
    assert sorted(counts, key=lambda c: (c.hour, c.kind, c.decision)) == [
        HourlyCount(0, "login", "", 1),
        HourlyCount(0, "request", "allow", 1),
        HourlyCount(0, "request", "deny", 2),
        HourlyCount(1, "request", "deny", 2),
        HourlyCount(23, "request", "allow", 1),
    ]
    acme = await audit_log.hourly_counts(
        engine, kinds=("request",), start=START, hours=24, tenants=frozenset({"acme"})
    )
    assert sorted((c.hour, c.decision, c.count) for c in acme) == [
        (0, "allow", 1),
        (0, "deny", 1),
        (1, "deny", 2),
        (23, "allow", 1),
    ]


async def test_top_values_are_the_most_frequent_non_empty_ones(engine: AsyncEngine) -> None:
    await traffic(engine)
    window = AuditFilter(since=START, until=START + 24 * 3600, kind="request")
    assert await audit_log.top_values(engine, "actor", window) == [
        ValueCount("alice@acme.test", 4, 2),
        ValueCount("bob@globex.test", 2, 2),
    ]
    denied = AuditFilter(since=START, until=START + 24 * 3600, kind="request", decision="deny")
    assert await audit_log.top_values(engine, "route", denied, limit=1) == [ValueCount("r1", 2, 2)]
    acme = AuditFilter(
        since=START, until=START + 24 * 3600, decision="deny", tenants=frozenset({"acme"})
    )
    assert await audit_log.top_values(engine, "route", acme) == [ValueCount("r1", 2, 2)]


async def test_a_tenant_admin_gets_the_figures_of_their_tenants_only(
    engine: AsyncEngine,
) -> None:
    await traffic(engine)
    writer = AuditWriter(engine, key=KEY)
    now = START + 23 * 3600 + 60
    assert window_start(now) == START
    for actor, expected in (
        (Admin("root", superadmin=True), (6, 2, 4, 1)),
        (Admin("carol", tenants=frozenset({"acme"})), (5, 2, 3, 0)),
        (Admin("gina", tenants=frozenset({"globex"})), (1, 0, 1, 0)),
    ):
        ctx = AdminContext(engine, writer, actor, frozenset())
        summary = await activity_summary(ctx, now)
        assert summary.start == START and len(summary.hours) == 24
        allowed = sum(hour.allowed for hour in summary.hours)
        assert (summary.requests, allowed, summary.denied, summary.logins) == expected
        assert summary.hours[1].denied == (0 if actor.name == "gina" else 2)


async def test_observed_requests_are_counted_on_their_own_never_as_allowed(
    engine: AsyncEngine,
) -> None:
    """A request forwarded in observe mode was refused by the rules: counting it as
    allowed would hide from the admin what enforcing is about to refuse."""
    await write(
        engine,
        START + 60,
        request("alice@acme.test", "acme", "r1", "allow"),
        request("alice@acme.test", "globex", "r1", "observed"),
        request("rita@acme.test", "acme", "r2", "observed"),
        request("rita@acme.test", "acme", "r1", "observed"),
        request("bob@globex.test", "acme", "r1", "deny"),
    )
    ctx = AdminContext(
        engine, AuditWriter(engine, key=KEY), Admin("root", superadmin=True), frozenset()
    )
    summary = await activity_summary(ctx, START + 23 * 3600 + 60)
    hour = summary.hours[0]
    assert (hour.allowed, hour.observed, hour.denied, hour.requests) == (1, 3, 1, 5)
    assert (summary.requests, summary.observed, summary.denied) == (5, 3, 1)
    assert summary.observed_routes == [ValueCount("r1", 2, 0), ValueCount("r2", 1, 0)]
    assert summary.denied_routes == [ValueCount("r1", 1, 1)]
    acme = AdminContext(
        engine,
        AuditWriter(engine, key=KEY),
        Admin("carol", tenants=frozenset({"acme"})),
        frozenset(),
    )
    assert (await activity_summary(acme, START + 23 * 3600 + 60)).observed == 2, (
        "their tenants' only"
    )
