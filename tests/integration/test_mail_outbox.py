"""SMTP down: sign-in links and invitations wait in a durable outbox, and arrive later.

Against a real SMTP server (aiosmtpd) that is absent at first and then started on the
same port: the person asking for a link gets the same answer for every address (saying
mail is delayed, once delivery is failing for everyone); nothing is lost; the mail
arrives once the server is back and its link signs in. The outbox survives a gateway
restart, two gateways on one store (SQLite file or PostgreSQL) deliver each message
once, a link that expires before delivery is dropped and audited, and an admin is
told that an invitation is queued rather than given an error.
"""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from gateway.admin import invites
from gateway.admin.service import AdminError
from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.auth.mail_outbox import MailOutbox
from gateway.model import Membership
from gateway.store import mail_outbox as outbox_store
from tests.integration.test_invite import context
from tests.integration.test_magic_link import ask_for_link, cookies_set, follow_link, mail_settings
from tests.support.postgres import create_database, database_dsn, drop_database
from tests.support.servers_base import free_port
from tests.support.smtp import Inbox
from tests.support.stack import Stack, replica, running_stack

DELAYED = "Mail is delayed right now"
RETRY = {"retry_first": "0.2s", "retry_max": "0.5s"}
"""Short pauses between tries, so a test sees the retry soon after the server is back."""


def outbox_settings(port: int, **extra: Any) -> dict[str, Any]:
    settings = mail_settings(port)
    settings["mail"] = settings["mail"] | RETRY
    return settings | extra


@contextmanager
def smtp_on(port: int) -> Iterator[Inbox]:
    """A real SMTP server on ``port`` (the one the gateway was configured with)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def outbox(stack: Stack) -> MailOutbox:
    return stack.app[AUTH_PAGES].magic_links.outbox


async def queued(stack: Stack) -> int:
    await stack.app[AUTH_PAGES].magic_links.wait_sent()
    return await outbox_store.count(stack.app[ENGINE])


async def until(condition: Any, *, timeout: float = 30.0) -> None:
    """Wait until the async ``condition()`` is true (generous deadline, event-free)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def page_without(text_: str, email: str) -> str:
    return text_.replace(email, "ADDRESS")


async def test_a_link_asked_for_while_smtp_is_down_arrives_when_it_is_back_and_signs_in(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens yet: SMTP connections are refused
    async with running_stack(tmp_path, **outbox_settings(port)) as stack:
        first = await ask_for_link(stack, "alice@acme.test", rd="/api/invoices/7")
        assert first.status == 200
        assert await queued(stack) == 1
        assert outbox(stack).delayed
        # Once mail fails for everyone, every answer says so, known address or not.
        known = await ask_for_link(stack, "rita@acme.test")
        unknown = await ask_for_link(stack, "nobody@acme.test")
        assert known.status == unknown.status == 200
        known_page, unknown_page = await known.text(), await unknown.text()
        assert DELAYED in known_page
        assert page_without(known_page, "rita@acme.test") == page_without(
            unknown_page, "nobody@acme.test"
        )
        assert await queued(stack) == 2  # alice's and rita's; nobody's was never made
        (event,) = [e for e in await stack.events("mail-queued") if e["actor"] == "alice@acme.test"]
        assert event["data"]["mail"] == "magic-link" and "Error" in event["data"]["error"]
        stored = await _stored_text(stack)
        assert "token=" not in stored and "confirm" not in stored, "the link is stored sealed"

        with smtp_on(port) as inbox:  # the mail server is back, on the same port
            message = await inbox.wait_for("alice@acme.test", timeout=30)
            await inbox.wait_for("rita@acme.test", timeout=30)
            await until(lambda: _empty(stack))
        signed_in = await follow_link(stack, Inbox.link_in(message))
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/api/invoices/7"
        session = cookies_set(signed_in)["__Host-gatehold"]
        invoice = await stack.client.get(
            "/api/invoices/7", headers={"Cookie": f"__Host-gatehold={session}"}
        )
        assert invoice.status == 200
        sent = {e["actor"] for e in await stack.events("mail-sent")}
        assert sent == {"alice@acme.test", "rita@acme.test"}
        assert not outbox(stack).delayed
        after = await ask_for_link(stack, "carol@acme.test")
        assert DELAYED not in await after.text()
        print("outbox: 2 links queued while SMTP was down, 2 delivered, 0 lost")


async def _stored_text(stack: Stack) -> str:
    async with stack.app[ENGINE].connect() as conn:
        rows = await conn.execute(text("SELECT recipient, sealed, last_error FROM mail_outbox"))
        return " ".join(" ".join(map(str, row)) for row in rows)


async def _empty(stack: Stack) -> bool:
    return await outbox_store.count(stack.app[ENGINE]) == 0


async def test_a_queued_link_survives_a_gateway_restart(tmp_path: Path) -> None:
    port = free_port()
    async with running_stack(tmp_path, **outbox_settings(port)) as stack:
        await ask_for_link(stack, "alice@acme.test")
        assert await queued(stack) == 1
    # The gateway is gone; the mail server comes back; a new gateway starts on the store.
    with smtp_on(port) as inbox:
        async with running_stack(tmp_path, **outbox_settings(port)) as restarted:
            message = await inbox.wait_for("alice@acme.test", timeout=30)
            await until(lambda: _empty(restarted))
            signed_in = await follow_link(restarted, Inbox.link_in(message))
            assert signed_in.status == 303
            assert len(inbox.messages) == 1


@asynccontextmanager
async def store_for(kind: str) -> AsyncIterator[dict[str, Any]]:
    """Settings for a store of ``kind``: the data folder's SQLite file, or PostgreSQL."""
    if kind == "sqlite":
        yield {}
        return
    name = await create_database("outbox")
    try:
        yield {"store": {"dsn": database_dsn(name)}}
    finally:
        await drop_database(name)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_two_gateways_on_one_store_deliver_each_message_once(
    tmp_path: Path, kind: str
) -> None:
    port = free_port()
    people = ["alice@acme.test", "rita@acme.test", "carol@acme.test", "bob@globex.test"] * 3
    async with store_for(kind) as store:
        async with (
            running_stack(tmp_path, **outbox_settings(port, **store)) as first,
            replica(first) as second,
        ):
            for person in people:
                await ask_for_link(first, person)
            assert await queued(first) == len(people)
            with smtp_on(port) as inbox:
                # Both senders poll; race them harder by asking both at once, repeatedly.
                while not await _empty(first):
                    await asyncio.gather(
                        *(
                            o.deliver_due()
                            for o in (outbox(first), outbox(second))
                            for _ in range(3)
                        )
                    )
                await asyncio.sleep(0.5)  # a second copy, if any, would arrive meanwhile
            received = sorted(m["To"] for m in inbox.messages)
            assert received == sorted(people), received
            print(f"outbox, two gateways ({kind}): {len(people)} queued, {len(received)} delivered")


async def test_a_link_that_expires_before_delivery_is_dropped_and_audited(tmp_path: Path) -> None:
    port = free_port()
    settings = outbox_settings(port)
    settings["auth"]["magic_link"]["ttl"] = "1s"
    async with running_stack(tmp_path, **settings) as stack:
        await ask_for_link(stack, "alice@acme.test")
        assert await queued(stack) == 1
        await asyncio.sleep(1.2)  # the link inside has expired
        with smtp_on(port) as inbox:
            await until(lambda: _empty(stack))
            await asyncio.sleep(0.3)
            assert inbox.messages == [], "an expired link was mailed"
        (dropped,) = await stack.events("mail-expired")
        assert dropped["actor"] == "alice@acme.test" and dropped["data"]["why"] == "expired"


async def test_an_invitation_while_smtp_is_down_is_queued_not_an_error(tmp_path: Path) -> None:
    port = free_port()
    async with running_stack(tmp_path, **outbox_settings(port)) as stack:
        invited = await invites.invite_user(
            context(stack), "dora@acme.test", [Membership("acme", "standard")]
        )
        assert not isinstance(invited, AdminError), invited
        assert invited.queued and invited.state == "invited"
        (event,) = await stack.events("user-invited")
        assert event["data"]["queued"] is True and event["data"]["mailed"] is False
        with smtp_on(port) as inbox:
            message = await inbox.wait_for("dora@acme.test", timeout=30)
        assert message["Subject"] == "You are invited to sign in"
        signed_in = await follow_link(stack, Inbox.link_in(message))
        assert signed_in.status == 303


async def test_the_outbox_folder_mode_still_writes_each_message_there(tmp_path: Path) -> None:
    async with running_stack(tmp_path, mail={"mode": "outbox"}) as stack:
        await ask_for_link(stack, "alice@acme.test")
        assert await queued(stack) == 0, "written to the folder at once, nothing waits"
        (written,) = list(stack.settings.outbox_path.glob("*.eml"))
        link = Inbox.link_in(email.message_from_bytes(written.read_bytes()))
        signed_in = await follow_link(stack, link)
        assert signed_in.status == 303


async def test_messages_sealed_with_a_lost_key_are_dropped_and_audited_not_sent(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with running_stack(tmp_path, **outbox_settings(port)) as stack:
        await ask_for_link(stack, "alice@acme.test")
        assert await queued(stack) == 1
        key = stack.settings.data_path / "keys" / "mail.key"
    key.unlink()  # the key is lost (e.g. a store restored without its keys)
    with smtp_on(port) as inbox:
        async with running_stack(tmp_path, **outbox_settings(port)) as restarted:
            await until(lambda: _empty(restarted))
            (dropped,) = await restarted.events("mail-expired")
            assert dropped["data"]["why"] == "unreadable"
        assert inbox.messages == []
