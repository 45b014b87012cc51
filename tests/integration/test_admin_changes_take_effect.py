"""A narrowing change made with the `gatehold` command reaches a running gateway at once.

The command is another process: it changes the store and ends the person's sessions
there; the gateway learns it from its revocation poll. For each narrowing change
(deactivate, remove a membership, change a role), the person's very next request on
their open session is refused (401, the session ended) without reaching Ledger, and a
fresh session is judged by the new state (403 where a role no longer allows it). The
same changes made inside the gateway process are covered by
``tests/security/test_narrowed_access_takes_effect_at_once.py``; this file adds the
command itself, and a person who signed in through an invite's link.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from gateway.admin import invites
from gateway.admin.service import AdminError
from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.model import Membership
from gateway.store import users as user_store
from tests.integration.test_magic_link import cookies_set, follow_link, mail_settings
from tests.security.test_narrowed_access_takes_effect_at_once import (
    allowed,
    context,
    cookie,
    refused,
)
from tests.support.audit_trail import write_config
from tests.support.smtp import Inbox
from tests.support.stack import Stack, running_stack

ALICE = "alice@acme.test"
"""Standard in acme: reads and writes invoices, downloads files."""


class Change(NamedTuple):
    arguments: tuple[str, ...]
    path: str
    """A path the change takes away."""
    fresh: tuple[int, str] | None
    """A fresh session's answer there (``None``: a deactivated person has no session)."""
    audited: str


CHANGES = {
    "deactivate": Change(
        ("users", "deactivate", ALICE), "/api/invoices/7", None, "user-deactivated"
    ),
    "ungrant": Change(
        ("users", "ungrant", ALICE, "--tenant", "acme", "--role", "standard"),
        "/api/invoices/7",
        (403, "role-forbidden"),
        "membership-removed",
    ),
    "set-role": Change(
        ("users", "set-role", ALICE, "--tenant", "acme", "--role", "readonly"),
        "/files/1",
        (403, "role-forbidden"),
        "role-changed",
    ),
}


async def gatehold(stack: Stack, *args: str) -> str:
    """Run the real command against the running gateway's store; its output."""
    config = write_config(Path(stack.settings.data_dir))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
async def test_the_next_request_after_a_command_is_judged_by_the_new_state(
    tmp_path: Path, change: str
) -> None:
    arguments, path, fresh_answer, audited = CHANGES[change]
    async with running_stack(tmp_path) as stack:
        alice = stack.cookie(ALICE)
        await allowed(stack, alice, path)

        await gatehold(stack, *arguments)
        await stack.revocations_noticed(sessions=[stack.cookies[ALICE]])

        assert await refused(stack, alice, path=path) == (401, "session-invalid")
        fresh = cookie(await stack.mint(ALICE))
        if fresh_answer is None:
            assert (await refused(stack, fresh, path=path))[0] == 401, "no session at all"
        else:
            assert await refused(stack, fresh, path=path) == fresh_answer
        (event,) = await stack.events(audited)
        assert event["actor"] == "cli"
        assert event["data"]["before"]["memberships"] == ["standard@acme"]
        (ended,) = await stack.events("session-revoked") if change != "deactivate" else [event]
        assert ended["data"]["sessions"] == 1


async def test_an_invited_person_who_signed_in_loses_a_removed_membership_at_once(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        ctx = context(stack, in_process=True)
        ctx.send_invite = stack.app[AUTH_PAGES].magic_links.invite
        grants = [Membership("acme", "standard"), Membership("globex", "readonly")]
        assert not isinstance(await invites.invite_user(ctx, "dora@acme.test", grants), AdminError)
        signed_in = await follow_link(stack, Inbox.link_in(await inbox.wait_for("dora@acme.test")))
        dora = cookie(cookies_set(signed_in)["__Host-gatehold"])
        await allowed(stack, dora, "/api/invoices/8")  # globex's

        await gatehold(
            stack, "users", "ungrant", "dora@acme.test", "--tenant", "globex", "--role", "readonly"
        )
        await stack.revocations_noticed(sessions=[cookies_set(signed_in)["__Host-gatehold"]])

        assert await refused(stack, dora, path="/api/invoices/8") == (401, "session-invalid")
        fresh = cookie(await stack.mint("dora@acme.test"))
        status, _ = await refused(stack, fresh, path="/api/invoices/8")
        assert status == 404, "globex's invoice is now foreign to her"
        await allowed(stack, fresh, "/api/invoices/7")  # acme's is still hers
        user = await user_store.get_user_by_email(stack.app[ENGINE], "dora@acme.test")
        assert user is not None and user.state == "active"
