"""Access requests over a real SQLite store, audit writer and SMTP server (aiosmtpd).

A person asks; the tenant's admins see the request, approve (the membership is granted,
the person's sessions end, they are mailed) or decline (mailed too); every step is audited.
Deactivated and unknown tenants, memberships held already, bad text and floods are refused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import access
from gateway.admin import service as admin
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.audit import AuditWriter
from gateway.auth.mailer import SmtpMailer
from gateway.config.settings import AccessRequestSettings, MailSettings
from gateway.model import Membership
from gateway.store import users as user_store
from gateway.store.access_requests import AccessRequestRow
from tests.support.smtp import Inbox
from tests.unit.test_admin_service import KEY, ROLES, events, live_sessions, signed_in

WHY = "I take over the acme invoices from Dana next week."


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def ctx(engine: AsyncEngine, smtp_server: tuple[Inbox, int]) -> AsyncIterator[AdminContext]:
    _, port = smtp_server
    writer = AuditWriter(engine, key=KEY)
    await writer.start()
    context = AdminContext(
        engine,
        writer,
        admin.CLI_ADMIN,
        ROLES,
        clock=Clock(),
        mailer=SmtpMailer(MailSettings(mode="smtp", host="127.0.0.1", port=port)),
        sender="Gatehold <gatehold@gatehold.test>",
        access_requests=AccessRequestSettings(per_person_per_hour=5, max_pending_per_person=3),
    )
    for tenant in ("acme", "globex", "initech", "umbrella", "hooli"):
        assert not isinstance(await admin.create_tenant(context, tenant), AdminError)
    for email, grants in (
        ("dave@example.test", []),
        ("rita@acme.test", [Membership("acme", "readonly")]),
        ("carol@acme.test", [Membership("acme", "admin")]),
    ):
        assert not isinstance(await admin.add_user(context, email, grants), AdminError)
    try:
        yield context
    finally:
        await writer.close()


def as_(ctx: AdminContext, actor: Admin) -> AdminContext:
    return AdminContext(
        ctx.engine,
        ctx.audit,
        actor,
        ctx.roles,
        clock=ctx.clock,
        mailer=ctx.mailer,
        sender=ctx.sender,
        access_requests=ctx.access_requests,
    )


async def uid(ctx: AdminContext, email: str) -> int:
    user = await user_store.get_user_by_email(ctx.engine, email)
    assert user is not None
    return user.id


async def ask(
    ctx: AdminContext, email: str, tenant: str, *, role: str | None = "standard", **text: str
) -> AccessRequestRow | AdminError:
    requester = as_(ctx, Admin(email))
    return await access.request_access(
        requester,
        user_id=await uid(ctx, email),
        tenant=tenant,
        what=text.get("what", f"/t/{tenant}/invoices"),
        why=text.get("why", WHY),
        role=role,
    )


async def asked(ctx: AdminContext, email: str, tenant: str, **kw: str) -> AccessRequestRow:
    row = await ask(ctx, email, tenant, **kw)
    assert isinstance(row, AccessRequestRow), row
    return row


async def test_a_request_lands_in_the_queue_and_is_audited(ctx: AdminContext) -> None:
    row = await asked(ctx, "dave@example.test", "acme")
    assert (row.email, row.tenant, row.role_wanted, row.state) == (
        "dave@example.test",
        "acme",
        "standard",
        "pending",
    )
    queue = await access.list_access_requests(ctx)
    assert [r.id for r in queue] == [row.id]
    [event] = await events(ctx.engine, "access-requested")
    assert event["actor"] == "dave@example.test" and event["tenant"] == "acme"
    assert event["request"] == row.id and event["before"] is None
    assert event["after"]["state"] == "pending"


async def test_approving_grants_the_role_ends_sessions_mails_and_audits(
    ctx: AdminContext, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    row = await asked(ctx, "rita@acme.test", "acme", role="standard")
    await signed_in(ctx.engine, "rita@acme.test")
    carol = as_(ctx, Admin("carol@acme.test", tenants=frozenset({"acme"})))

    approved = await access.approve_access_request(carol, row.id)

    assert isinstance(approved, AccessRequestRow), approved
    assert (approved.state, approved.granted_role, approved.decided_by) == (
        "approved",
        "standard",
        "carol@acme.test",
    )
    user = await user_store.get_user(ctx.engine, row.user_id)
    assert user is not None and Membership("acme", "standard") in user.memberships
    assert await live_sessions(ctx.engine, "rita@acme.test") == 0
    assert [e["why"] for e in await events(ctx.engine, "session-revoked")] == ["membership-changed"]
    mail = await inbox.wait_for("rita@acme.test")
    assert mail["Subject"] == "Your access request for acme was approved"
    assert "standard" in mail.get_payload()
    [event] = await events(ctx.engine, "access-request-approved")
    assert event["actor"] == "carol@acme.test" and event["tenant"] == "acme"
    assert event["before"]["state"] == "pending" and event["after"]["state"] == "approved"
    assert event["after"]["granted_role"] == "standard" and event["mailed"] is True
    [grant] = [e for e in await events(ctx.engine, "user-added") if e["actor"] != "cli"]
    assert grant["subject"] == "rita@acme.test" and grant["grants"] == ["standard@acme"]


async def test_the_admin_chooses_the_role_when_none_was_asked_for(ctx: AdminContext) -> None:
    row = await asked(ctx, "dave@example.test", "globex", role="")
    refused = await access.approve_access_request(ctx, row.id)
    assert isinstance(refused, AdminError) and "choose the role to grant" in refused.message
    unknown = await access.approve_access_request(ctx, row.id, "emperor")
    assert isinstance(unknown, AdminError) and "unknown role" in unknown.message
    approved = await access.approve_access_request(ctx, row.id, "readonly")
    assert isinstance(approved, AccessRequestRow) and approved.granted_role == "readonly"


async def test_declining_mails_the_comment_and_audits(
    ctx: AdminContext, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    row = await asked(ctx, "dave@example.test", "acme")
    declined = await access.decline_access_request(ctx, row.id, "Ask your manager first.")
    assert isinstance(declined, AccessRequestRow)
    assert (declined.state, declined.comment) == ("declined", "Ask your manager first.")
    user = await user_store.get_user(ctx.engine, row.user_id)
    assert user is not None and user.memberships == ()
    mail = await inbox.wait_for("dave@example.test")
    assert mail["Subject"] == "Your access request for acme was declined"
    assert "Ask your manager first." in mail.get_payload()
    [event] = await events(ctx.engine, "access-request-declined")
    assert event["before"]["state"] == "pending" and event["after"]["state"] == "declined"


async def test_a_request_is_decided_once(ctx: AdminContext) -> None:
    row = await asked(ctx, "dave@example.test", "acme")
    assert isinstance(await access.decline_access_request(ctx, row.id), AccessRequestRow)
    again = await access.approve_access_request(ctx, row.id, "standard")
    assert isinstance(again, AdminError) and "declined already" in again.message
    twice = await access.decline_access_request(ctx, row.id)
    assert isinstance(twice, AdminError)
    user = await user_store.get_user(ctx.engine, row.user_id)
    assert user is not None and user.memberships == ()
    assert await events(ctx.engine, "access-request-approved") == []


async def test_a_deactivated_or_unknown_tenant_takes_no_requests(ctx: AdminContext) -> None:
    assert isinstance(await admin.deactivate_tenant(ctx, "globex"), int)
    for tenant in ("globex", "nosuch", "*", "../acme", "ACME "):
        refused = await ask(ctx, "dave@example.test", tenant)
        if tenant == "ACME ":  # the same slug, spelled loosely: accepted
            assert isinstance(refused, AccessRequestRow) and refused.tenant == "acme"
            continue
        assert isinstance(refused, AdminError), tenant
        assert "takes no access requests" in refused.message
    deactivated = await ask(ctx, "dave@example.test", "globex")
    unknown = await ask(ctx, "dave@example.test", "nosuch")
    assert isinstance(deactivated, AdminError) and isinstance(unknown, AdminError)
    assert deactivated.message.replace("globex", "X") == unknown.message.replace("nosuch", "X")


async def test_a_tenant_deactivated_after_the_request_cannot_be_granted(
    ctx: AdminContext,
) -> None:
    row = await asked(ctx, "dave@example.test", "globex")
    assert isinstance(await admin.deactivate_tenant(ctx, "globex"), int)
    refused = await access.approve_access_request(ctx, row.id)
    assert isinstance(refused, AdminError) and "deactivated" in refused.message
    still = await access.get_access_request(ctx, row.id)
    assert isinstance(still, AccessRequestRow) and still.state == "pending"


async def test_asking_for_what_one_holds_already_says_so(ctx: AdminContext) -> None:
    held = await ask(ctx, "rita@acme.test", "acme", role="readonly")
    assert isinstance(held, AdminError) and held.message == "you hold readonly in acme already"
    member = await ask(ctx, "rita@acme.test", "acme", role=None)
    assert isinstance(member, AdminError)
    assert "you belong to acme already (as readonly)" in member.message
    assert await access.list_access_requests(ctx) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ({"what": "  "}, "say what you need access to"),
        ({"why": ""}, "say why you need it"),
        ({"what": "x" * 501}, "at most 500 characters"),
        ({"why": "y" * 2001}, "at most 2000 characters"),
        ({"why": "ok\x00then"}, "control characters"),
        ({"what": "/a\r\nBcc: everyone@example.test"}, "control characters"),
    ],
    ids=["empty what", "empty why", "long what", "long why", "NUL", "header injection"],
)
async def test_bad_text_is_refused_with_a_clear_message(
    ctx: AdminContext, text: dict[str, str], problem: str
) -> None:
    refused = await ask(ctx, "dave@example.test", "acme", **text)
    assert isinstance(refused, AdminError) and problem in refused.message
    assert await access.list_access_requests(ctx, state=None) == []


async def test_an_unknown_role_is_refused(ctx: AdminContext) -> None:
    refused = await ask(ctx, "dave@example.test", "acme", role="superuser")
    assert isinstance(refused, AdminError) and "unknown role" in refused.message


async def test_a_flood_of_requests_is_refused_and_audited(ctx: AdminContext) -> None:
    clock = ctx.clock
    assert isinstance(clock, Clock)
    for tenant in ("acme", "globex", "initech"):
        await asked(ctx, "dave@example.test", tenant)
    again = await ask(ctx, "dave@example.test", "acme")
    assert isinstance(again, AdminError) and again.code == "rate-limited"
    assert "already" in again.message
    fourth = await ask(ctx, "dave@example.test", "umbrella")
    assert isinstance(fourth, AdminError) and fourth.code == "rate-limited"
    assert "3 requests waiting" in fourth.message

    for row in await access.list_access_requests(ctx):  # decided: no longer waiting
        assert isinstance(await access.decline_access_request(ctx, row.id), AccessRequestRow)
    await asked(ctx, "dave@example.test", "umbrella")
    await asked(ctx, "dave@example.test", "hooli")
    sixth = await ask(ctx, "dave@example.test", "acme")
    assert isinstance(sixth, AdminError) and sixth.code == "rate-limited"
    assert "at most 5 access requests an hour" in sixth.message

    clock.now += 3601
    for row in await access.list_access_requests(ctx):
        assert isinstance(await access.decline_access_request(ctx, row.id), AccessRequestRow)
    assert isinstance(await ask(ctx, "dave@example.test", "acme"), AccessRequestRow)
    refusals = await events(ctx.engine, "access-request-refused")
    assert len(refusals) == 3 and {e["actor"] for e in refusals} == {"dave@example.test"}
    assert len(await access.list_access_requests(ctx, state=None)) == 6


async def test_a_deactivated_person_cannot_ask(ctx: AdminContext) -> None:
    assert isinstance(await admin.set_user_active(ctx, "dave@example.test", False), int)
    refused = await ask(ctx, "dave@example.test", "acme")
    assert isinstance(refused, AdminError) and refused.code == "forbidden"


async def test_a_mail_that_cannot_be_sent_does_not_undo_the_decision(
    ctx: AdminContext,
) -> None:
    row = await asked(ctx, "dave@example.test", "acme")
    unreachable = SmtpMailer(MailSettings(mode="smtp", host="127.0.0.1", port=9))
    no_mail = AdminContext(ctx.engine, ctx.audit, ctx.actor, ctx.roles, mailer=unreachable)
    approved = await access.approve_access_request(no_mail, row.id)
    assert isinstance(approved, AccessRequestRow) and approved.state == "approved"
    [event] = await events(ctx.engine, "access-request-approved")
    assert event["mailed"] is False


async def test_listing_filters_by_state_and_refuses_unknown_states(ctx: AdminContext) -> None:
    first = await asked(ctx, "dave@example.test", "acme")
    await asked(ctx, "dave@example.test", "globex")
    assert isinstance(await access.decline_access_request(ctx, first.id), AccessRequestRow)
    pending = await access.list_access_requests(ctx)
    declined = await access.list_access_requests(ctx, state="declined")
    assert not isinstance(pending, AdminError) and not isinstance(declined, AdminError)
    assert [r.tenant for r in pending] == ["globex"]
    assert [r.tenant for r in declined] == ["acme"]
    bad = await access.list_access_requests(ctx, state="maybe")
    assert isinstance(bad, AdminError) and "pending, approved, declined" in bad.message
