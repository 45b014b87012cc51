"""A share link to a file that needs a second factor asks its recipient for one too.

The link grants the recipient no role of the minter's, but the file's route or tenant
may require a second factor of whoever downloads it; a one-factor session of the
recipient is offered to confirm with one (or set one up), and nothing is fetched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import ENGINE
from gateway.store import users as user_store
from tests.integration.test_share_links import HTML, PARTNER, opened, share_events, share_path
from tests.support.admin_api import AdminClient
from tests.support.stack import DEMO_RULES, Stack, running_stack

FILE_ROUTE = "    file: {disposition: attachment}\n"


def rules_with(kind: str) -> str:
    text = DEMO_RULES.read_text()
    assert FILE_ROUTE in text and "\nroutes:\n" in text
    if kind == "route":
        return text.replace(FILE_ROUTE, FILE_ROUTE + "    mfa: required\n")
    return text.replace("\nroutes:\n", "\nmfa:\n  tenants: [acme]\nroutes:\n")


async def minted_with_a_second_factor(stack: Stack, minter: str, path: str) -> str:
    cookie = {"Cookie": f"__Host-gatehold={await stack.mint(minter, mfa=True)}"}
    client = AdminClient(stack, headers=cookie)
    listing = await client.get("/shares")
    assert listing.status == 200, listing.body
    client.csrf = listing.body["csrf_token"]
    reply = await client.call("POST", "/shares", {"path": path, "email": PARTNER})
    assert reply.status == 201, reply.body
    return share_path(reply.body["url"])


@pytest.mark.parametrize("kind", ["route", "tenant"])
async def test_the_recipient_shows_a_second_factor_before_the_file_is_fetched(
    tmp_path: Path, kind: str
) -> None:
    async with running_stack(tmp_path, rules_text=rules_with(kind)) as stack:
        path = await minted_with_a_second_factor(stack, "alice@acme.test", "/files/1")
        await user_store.add_user(stack.app[ENGINE], PARTNER, memberships=[])

        one_factor = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER)}"}
        offered = await opened(stack, path, {**one_factor, **HTML})
        page = await offered.text()
        assert offered.status == 200 and "needs a second factor" in page
        assert "step_up=1&amp;mfa=1" in page
        assert await stack.ledger_total() == 0
        assert (PARTNER, "deny", "share-second-factor-offered") in await share_events(stack)

        two_factors = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER, mfa=True)}"}
        got = await opened(stack, path, two_factors)
        assert got.status == 200 and await got.read() == b"Document 1 of acme\n"


async def test_a_file_without_such_a_requirement_opens_with_one_factor(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        path = await minted_with_a_second_factor(stack, "alice@acme.test", "/files/1")
        await user_store.add_user(stack.app[ENGINE], PARTNER, memberships=[])
        one_factor = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER)}"}
        got = await opened(stack, path, one_factor)
        assert got.status == 200 and await got.read() == b"Document 1 of acme\n"
