"""Inviting a person by mail, against a real SMTP server (aiosmtpd) and a running gateway.

The invite grants the memberships, mails a link naming who invited them to which tenant;
the link signs them in through the real confirm page, and only that sign-in turns them
from ``invited`` into ``active``. A tenant admin cannot invite into another tenant:
nothing is stored and nothing is mailed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.admin import invites
from gateway.admin import service as admin
from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.context import GATEWAY
from gateway.model import Membership
from gateway.store import users as user_store
from tests.integration.test_magic_link import cookies_set, follow_link, mail_settings
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

CAROL = Admin("carol@acme.test", tenants=frozenset({"acme"}))
"""A tenant admin of acme only (as ``actors.acting_admin`` makes her)."""
NEWCOMER = "dora@acme.test"


def context(stack: Stack, actor: Admin = CAROL) -> AdminContext:
    """The admin service inside the gateway process, mailing through its magic links."""
    gw = stack.app[GATEWAY]
    return AdminContext(
        stack.app[ENGINE],
        gw.audit,
        actor,
        frozenset(stack.ruleset.roles),
        end_sessions=gw.sessions.revoke_user,
        send_invite=stack.app[AUTH_PAGES].magic_links.invite,
    )


async def state_of(stack: Stack, email: str) -> str | None:
    listed = await admin.list_users(context(stack, admin.CLI_ADMIN))
    return next((user.state for user in listed if user.email == email), None)


async def test_an_invited_person_signs_in_with_the_mailed_link_and_becomes_active(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        await admin.rename_tenant(context(stack, admin.CLI_ADMIN), "acme", "Acme Corporation")
        invited = await invites.invite_user(
            context(stack), NEWCOMER, [Membership("acme", "standard")]
        )
        assert not isinstance(invited, AdminError), invited
        assert invited.state == "invited" and invited.invited_by == "carol@acme.test"
        assert await state_of(stack, NEWCOMER) == "invited"

        mail = await inbox.wait_for(NEWCOMER)
        body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert "carol@acme.test invited you to Acme Corporation (acme)" in body
        assert mail["Subject"] == "You are invited to sign in"
        link = Inbox.link_in(mail)
        assert link.startswith("http://gatehold.test/.gatehold/login/magic/confirm?token=")

        signed_in = await follow_link(stack, link)
        assert signed_in.status == 303, await signed_in.text()
        session = {"Cookie": f"__Host-gatehold={cookies_set(signed_in)['__Host-gatehold']}"}
        invoice = await stack.client.get("/api/invoices/7", headers=session)
        assert invoice.status == 200, "the link signs into what the invite granted"
        foreign = await stack.client.get("/api/invoices/8", headers=session)
        assert foreign.status == 404, "and nothing more"

        assert await state_of(stack, NEWCOMER) == "active"
        user = await user_store.get_user_by_email(stack.app[ENGINE], NEWCOMER)
        assert user is not None and user.first_login_at is not None
        assert user.last_login_at == user.first_login_at
        (event,) = await stack.events("user-invited")
        assert event["actor"] == "carol@acme.test" and event["tenant"] == "acme"
        assert event["data"]["before"] is None
        assert event["data"]["after"]["state"] == "invited"
        assert event["data"]["grants"] == ["standard@acme"] and event["data"]["mailed"] is True
        (login,) = [e for e in await stack.events("login") if e["actor"] == NEWCOMER]
        assert login["method"] == "magic-link"


async def test_a_session_minted_for_a_script_is_no_sign_in(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        done = await invites.invite_user(context(stack), NEWCOMER, [Membership("acme", "readonly")])
        assert not isinstance(done, AdminError), done
        await stack.mint(NEWCOMER)
        assert await state_of(stack, NEWCOMER) == "invited"


async def test_a_tenant_admin_cannot_invite_into_another_tenant(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        attempts = {
            "globex": [Membership("globex", "standard")],
            "globex beside acme": [Membership("acme", "readonly"), Membership("globex", "admin")],
            "every tenant": [Membership("*", "operator")],
        }
        for grants in attempts.values():
            refused = await invites.invite_user(context(stack), "mallory@globex.test", grants)
            assert isinstance(refused, AdminError) and "does not administer" in refused.message
        # An existing person of globex cannot be pulled into globex roles by acme's admin.
        refused = await invites.invite_user(
            context(stack), "bob@globex.test", [Membership("globex", "admin")]
        )
        assert isinstance(refused, AdminError) and refused.message.count("does not administer")

        await asyncio.sleep(0.5)  # a mail sent by mistake would have arrived by now
        assert inbox.messages == []
        assert await user_store.get_user_by_email(stack.app[ENGINE], "mallory@globex.test") is None
        bob = await user_store.get_user_by_email(stack.app[ENGINE], "bob@globex.test")
        assert bob is not None and bob.memberships == (Membership("globex", "standard"),)
        assert bob.invited_at is None
        assert await stack.events("user-invited") == []


async def test_an_undelivered_invite_is_reported_as_queued(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here: the SMTP connection is refused
    async with running_stack(tmp_path, **mail_settings(closed)) as stack:
        queued = await invites.invite_user(
            context(stack), NEWCOMER, [Membership("acme", "standard")]
        )
        assert not isinstance(queued, AdminError)
        assert queued.queued, "the admin is told the invitation waits in the outbox"
        assert "outbox" in invites.QUEUED_NOTE
        assert await state_of(stack, NEWCOMER) == "invited"
        (event,) = await stack.events("user-invited")
        assert event["data"]["mailed"] is False and event["data"]["queued"] is True


async def test_inviting_a_deactivated_person_is_refused(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        ctx = context(stack)
        assert await admin.set_user_active(ctx, "alice@acme.test", False) == 1
        refused = await invites.invite_user(ctx, "alice@acme.test", [Membership("acme", "admin")])
        assert isinstance(refused, AdminError) and "reactivate" in refused.message
        await asyncio.sleep(0.3)
        assert inbox.messages == []
        assert await stack.events("user-invited") == []
