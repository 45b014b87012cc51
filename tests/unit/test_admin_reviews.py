"""Access reviews over a real SQLite store and audit writer: members × roles × last
activity with idle accounts flagged, revoke in one step, attestations, the CSV export."""

from __future__ import annotations

import csv
import io
import time

from sqlalchemy import update

from gateway.admin import reviews
from gateway.admin import service as admin
from gateway.admin.reviews import ReviewRow
from gateway.admin.service import AdminContext, AdminError
from gateway.model import Membership
from gateway.store import sessions as session_store
from gateway.store import tables
from gateway.store import users as user_store
from gateway.store.access_reviews import AttestationRow
from tests.unit.test_admin_service import ctx, events, signed_in

__all__ = ["ctx"]
DAY = 86400.0


async def members(context: AdminContext) -> None:
    for email, grants in (
        ("alice@acme.test", [Membership("acme", "standard"), Membership("acme", "admin")]),
        ("rita@acme.test", [Membership("acme", "readonly")]),
        ("nina@acme.test", [Membership("acme", "readonly"), Membership("globex", "readonly")]),
        ("bob@globex.test", [Membership("globex", "standard")]),
    ):
        assert not isinstance(await admin.add_user(context, email, grants), AdminError)


async def seen_days_ago(context: AdminContext, email: str, days: float) -> None:
    await signed_in(context.engine, email)
    user = await user_store.get_user_by_email(context.engine, email)
    assert user is not None
    async with context.engine.begin() as conn:
        await conn.execute(
            update(tables.sessions)
            .where(tables.sessions.c.user_id == user.id)
            .values(last_seen=time.time() - days * DAY)
        )


async def test_the_review_lists_members_roles_and_last_activity_and_flags_idle_ones(
    ctx: AdminContext,
) -> None:
    await members(ctx)
    await seen_days_ago(ctx, "alice@acme.test", 2)
    await seen_days_ago(ctx, "rita@acme.test", 120)

    rows = await reviews.review_tenant(ctx, "acme")

    assert not isinstance(rows, AdminError)
    by_email = {row.email: row for row in rows}
    assert list(by_email) == ["alice@acme.test", "nina@acme.test", "rita@acme.test"]
    assert by_email["alice@acme.test"].roles == ("standard", "admin")
    assert by_email["nina@acme.test"].roles == ("readonly",)  # only acme's roles
    assert [row.idle for row in rows] == [False, True, True]  # nina was never seen
    assert by_email["nina@acme.test"].last_activity is None
    alice_seen = by_email["alice@acme.test"].last_activity
    assert alice_seen is not None and abs(alice_seen - (time.time() - 2 * DAY)) < 60
    shorter = await reviews.review_tenant(ctx, "acme", idle_days=1)
    assert not isinstance(shorter, AdminError) and all(row.idle for row in shorter)
    longer = await reviews.review_tenant(ctx, "acme", idle_days=365)
    assert not isinstance(longer, AdminError)
    assert [row.idle for row in longer] == [False, True, False]


async def test_a_revoked_session_still_counts_as_activity(ctx: AdminContext) -> None:
    await members(ctx)
    await seen_days_ago(ctx, "rita@acme.test", 3)
    user = await user_store.get_user_by_email(ctx.engine, "rita@acme.test")
    assert user is not None
    await session_store.revoke_user_sessions(ctx.engine, user.id, time.time())
    rows = await reviews.review_tenant(ctx, "acme")
    assert not isinstance(rows, AdminError)
    [rita] = [row for row in rows if row.email == "rita@acme.test"]
    assert rita == ReviewRow("rita@acme.test", ("readonly",), rita.last_activity, False, True)


async def test_idle_days_out_of_range_are_refused(ctx: AdminContext) -> None:
    for days in (0, -5, 3651):
        refused = await reviews.review_tenant(ctx, "acme", idle_days=days)
        assert isinstance(refused, AdminError) and "from 1 to 3650" in refused.message


async def test_revoke_removes_every_role_in_one_step_ends_sessions_and_audits(
    ctx: AdminContext,
) -> None:
    await members(ctx)
    await signed_in(ctx.engine, "nina@acme.test")
    after = await reviews.revoke_member(ctx, "acme", "Nina@Acme.test")
    assert not isinstance(after, AdminError)
    assert after.memberships == (Membership("globex", "readonly"),)  # other tenants stay
    assert await session_store.list_user_sessions(ctx.engine, after.id) == []
    [event] = await events(ctx.engine, "member-revoked")
    assert event["tenant"] == "acme" and event["subject"] == "nina@acme.test"
    assert event["before"]["memberships"] == ["readonly@acme", "readonly@globex"]
    assert event["after"]["memberships"] == ["readonly@globex"]
    assert event["sessions"] == 1
    again = await reviews.revoke_member(ctx, "acme", "nina@acme.test")
    assert isinstance(again, AdminError) and again.code == "not-found"
    nobody = await reviews.revoke_member(ctx, "acme", "ghost@acme.test")
    assert isinstance(nobody, AdminError) and nobody.code == "not-found"
    assert again.message.replace("nina", "X") == nobody.message.replace("ghost", "X")


async def test_attestations_are_stored_listed_newest_first_and_audited(
    ctx: AdminContext,
) -> None:
    first = await reviews.attest_review(ctx, "acme", "Quarterly review, Q3")
    second = await reviews.attest_review(ctx, "acme")
    assert isinstance(first, AttestationRow) and isinstance(second, AttestationRow)
    assert first.reviewer == "cli" and first.comment == "Quarterly review, Q3"
    listed = await reviews.list_attestations(ctx, "acme")
    assert listed == [second, first]
    assert await reviews.list_attestations(ctx, "globex") == []
    audited = await events(ctx.engine, "access-review-attested")
    assert [e["attestation"] for e in audited] == [first.id, second.id]
    assert audited[0]["before"] is None and audited[0]["reviewer"] == "cli"
    assert audited[1]["before"]["comment"] == "Quarterly review, Q3"
    long = await reviews.attest_review(ctx, "acme", "x" * 2001)
    assert isinstance(long, AdminError) and "at most 2000" in long.message


async def test_the_csv_export_is_what_auditors_need_and_is_audited(ctx: AdminContext) -> None:
    await members(ctx)
    await seen_days_ago(ctx, "alice@acme.test", 1)
    await admin.add_user(ctx, "=cmd@acme.test", [Membership("acme", "readonly")])
    attested = await reviews.attest_review(ctx, "acme", "ok")
    assert isinstance(attested, AttestationRow)

    exported = await reviews.export_review_csv(ctx, "acme")

    assert isinstance(exported, str)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert list(rows[0]) == list(reviews.CSV_COLUMNS)
    by_email = {row["email"]: row for row in rows}
    alice = by_email["alice@acme.test"]
    assert alice["tenant"] == "acme" and alice["roles"] == "standard admin"
    assert alice["idle"] == "false" and alice["last_activity"].endswith("Z")
    assert alice["last_attestation"].startswith("cli at ")
    assert by_email["nina@acme.test"]["last_activity"] == ""
    assert by_email["nina@acme.test"]["idle"] == "true"
    assert "'=cmd@acme.test" in by_email  # a spreadsheet shows it, never runs it
    [event] = await events(ctx.engine, "access-review-exported")
    assert event["tenant"] == "acme" and event["members"] == 4


async def test_unknown_tenants_are_not_found(ctx: AdminContext) -> None:
    for work in (
        reviews.review_tenant(ctx, "nosuch"),
        reviews.attest_review(ctx, "nosuch"),
        reviews.list_attestations(ctx, "nosuch"),
        reviews.export_review_csv(ctx, "nosuch"),
        reviews.revoke_member(ctx, "nosuch", "alice@acme.test"),
    ):
        refused = await work
        assert isinstance(refused, AdminError) and refused.code == "not-found"
