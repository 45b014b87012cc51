"""Share links of files through the whole stack (SPEC §7): minted by a person who may
download the file, opened only by the person it is for after signing in by email, and
dead (404) when expired, changed, revoked, opened by someone else, or when its minter
lost access. Every open is audited."""

from __future__ import annotations

import asyncio
import email
import json
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientResponse
from aiohttp.test_utils import make_mocked_request

from gateway.admin.explain import principal_for
from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.context import GATEWAY
from gateway.model import Admitted, Membership, Target
from gateway.store import users as user_store
from tests.integration.test_magic_link import BROWSER, cookies_set, follow_link
from tests.support.admin_api import AdminClient
from tests.support.stack import DEMO_RULES, Stack, replica, running_stack

PARTNER = "bob@partner.test"
HTML = {"Accept": "text/html"}
SHORT = 2
"""Seconds a short-lived link lasts in the expiry test."""


async def person_client(stack: Stack, email_address: str) -> AdminClient:
    """A signed-in person at ``/shares``, holding the CSRF token its listing returns."""
    client = AdminClient(stack, headers=stack.cookie(email_address))
    listing = await client.get("/shares")
    assert listing.status == 200, listing.body
    client.csrf = listing.body["csrf_token"]
    return client


async def mint(stack: Stack, minter: str, path: str, **extra: Any) -> tuple[int, Any]:
    client = await person_client(stack, minter)
    reply = await client.call("POST", "/shares", {"path": path, "email": PARTNER, **extra})
    return reply.status, reply.body


def share_path(url: str) -> str:
    return urlsplit(url).path


async def outbox_link(stack: Stack, outbox: Path, to: str) -> str:
    """The sign-in link of the newest mail to ``to`` in the outbox."""
    await stack.app[AUTH_PAGES].magic_links.wait_sent()
    for mail in sorted(outbox.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(mail.read_bytes())
        if message["To"] == to:
            body = message.get_payload(decode=True)
            assert isinstance(body, bytes)
            (line,) = [x for x in body.decode().split() if "/magic/confirm?token=" in x]
            return line
    raise AssertionError(f"no mail to {to}")


async def sign_in_through_the_link(stack: Stack, path: str, outbox: Path) -> dict[str, str]:
    """Not signed in: the page offers a link, the mail comes, the person signs in and
    is sent back to the share link. Returns their cookie header."""
    offered = await stack.client.get(path, headers={**HTML, "Cookie": BROWSER})
    page = await offered.text()
    assert offered.status == 200, page
    assert "b***@p***.test" in page and PARTNER not in page, "only a hint of the address"
    asked = await stack.client.post(path, headers={"Cookie": BROWSER})
    sent = await asked.text()
    assert asked.status == 200 and "b***@p***.test" in sent and PARTNER not in sent
    signed_in = await follow_link(stack, await outbox_link(stack, outbox, PARTNER))
    assert signed_in.status == 303
    assert signed_in.headers["Location"] == path, "back to the share link after sign-in"
    return {"Cookie": f"__Host-gatehold={cookies_set(signed_in)['__Host-gatehold']}"}


async def opened(stack: Stack, path: str, headers: dict[str, str]) -> ClientResponse:
    response = await stack.client.get(path, headers=headers)
    await response.read()
    return response


async def share_events(stack: Stack) -> list[tuple[str, str, str]]:
    return [(e["actor"], e["decision"], e["reason"]) for e in await stack.events("share-open")]


async def test_the_partner_signs_in_by_email_and_gets_the_file_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, created = await mint(stack, "alice@acme.test", "/files/1")
        assert status == 201, created
        assert created["url"].startswith("http://gatehold.test/.gatehold/share/")
        assert created["share"]["email"] == PARTNER and created["share"]["tenant"] == "acme"
        path = share_path(created["url"])
        bob = await sign_in_through_the_link(stack, path, tmp_path / "outbox")

        got = await opened(stack, path, bob)
        assert got.status == 200
        assert await got.read() == b"Document 1 of acme\n"
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["Cache-Control"] == "private, no-store"
        request_id = got.headers["X-Request-Id"]
        assert (await stack.ledger_hits()).get(request_id) == 1, "the upstream saw one GET"
        (record, *_) = await stack.audit_rows(request_id)
        assert (record["actor"], record["decision"], record["path"]) == (
            PARTNER,
            "allow",
            "/files/1",
        )
        granted = json.loads(record["data"])["share"]
        assert granted["minter"] == "alice@acme.test" and granted["recipient"] == PARTNER
        assert granted["id"] == created["share"]["id"]
        head = await stack.client.head(path, headers=bob)
        assert head.status == 200

        events = await share_events(stack)
        assert ("anonymous", "deny", "share-sign-in-offered") in events
        assert ("anonymous", "allow", "share-sign-in-mailed") in events


async def test_a_dead_or_foreign_link_answers_404_and_is_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _, created = await mint(stack, "alice@acme.test", "/files/1")
        path = share_path(created["url"])
        tampered = path[:-1] + ("A" if path[-1] != "A" else "B")
        carol = stack.cookie("carol@acme.test")  # may download it herself: not her link
        for target, headers in ((path, carol), (tampered, {}), (tampered, carol)):
            refused = await opened(stack, target, headers)
            assert refused.status == 404, target
            assert (await stack.ledger_total()) == 0
        listing = await (await person_client(stack, "alice@acme.test")).get("/shares")
        assert [s["id"] for s in listing.body["items"]] == [created["share"]["id"]]

        events = await share_events(stack)
        assert ("carol@acme.test", "deny", "share-foreign-person") in events
        assert ("anonymous", "deny", "share-unknown") in events


async def test_revoked_expired_and_lost_access_kill_the_link_at_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        outbox = tmp_path / "outbox"
        _, first = await mint(stack, "alice@acme.test", "/files/1")
        _, second = await mint(stack, "alice@acme.test", "/files/3")
        bob = await sign_in_through_the_link(stack, share_path(first["url"]), outbox)
        # Minted last, just before it is opened: a busy machine's slow sign-in above
        # must not use up its two seconds.
        _, short = await mint(stack, "alice@acme.test", "/files/5", expires_in=SHORT)
        minted = time.monotonic()
        for created in (short, first, second):
            assert (await opened(stack, share_path(created["url"]), bob)).status == 200

        async with replica(stack) as other:
            assert (await opened(other, share_path(first["url"]), bob)).status == 200
            alice = await person_client(stack, "alice@acme.test")
            revoked = await alice.call("DELETE", f"/shares/{first['share']['id']}")
            assert revoked.status == 200 and revoked.body["revoked_by"] == "alice@acme.test"
            for gateway in (stack, other):  # at once, on every replica: no cache to wait for
                assert (await opened(gateway, share_path(first["url"]), bob)).status == 404

        await asyncio.sleep(max(0.0, minted + SHORT + 0.2 - time.monotonic()))  # it expired
        assert (await opened(stack, share_path(short["url"]), bob)).status == 404

        engine = stack.app[ENGINE]
        alice_row = await user_store.get_user_by_email(engine, "alice@acme.test")
        assert alice_row is not None
        await user_store.remove_membership(engine, alice_row.id, Membership("acme", "standard"))
        assert (await opened(stack, share_path(second["url"]), bob)).status == 404

        reasons = {reason for _, _, reason in await share_events(stack)}
        assert {"share-revoked", "share-expired", "share-minter-lost-access"} <= reasons


async def test_only_someone_who_may_download_the_file_mints_a_link(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for minter, path in (
            ("rita@acme.test", "/files/1"),  # readonly: no download
            ("alice@acme.test", "/files/2"),  # globex's file
            ("alice@acme.test", "/files/999"),  # no such file
            ("alice@acme.test", "/api/invoices/7"),  # not a file route
            ("alice@acme.test", "/files/1?x=1"),  # a query is not part of a file's path
        ):
            status, body = await mint(stack, minter, path)
            assert status == 404, (minter, path, body)
        status, body = await mint(stack, "alice@acme.test", "/files/1", expires_in="25h")
        assert status == 422 and "share_max_ttl" in body["detail"]
        reasons = {e["reason"] for e in await stack.events("share-refused")}
        assert {"role-forbidden", "tenant-foreign", "share-not-a-download"} <= reasons


async def test_a_step_up_file_needs_a_recent_sign_in_of_the_recipient_too(
    tmp_path: Path,
) -> None:
    rules = DEMO_RULES.read_text().replace(
        "    file: {disposition: attachment}\n",
        "    file: {disposition: attachment}\n    step_up: 10m\n",
    )
    async with running_stack(tmp_path, rules_text=rules) as stack:
        _, created = await mint(stack, "alice@acme.test", "/files/1")
        path = share_path(created["url"])
        await user_store.add_user(stack.app[ENGINE], PARTNER, memberships=[])
        stale = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER, auth_age=3600)}"}
        offered = await opened(stack, path, {**stale, **HTML})
        assert offered.status == 200 and "Email me a sign-in link" in await offered.text()
        assert await stack.ledger_total() == 0
        fresh = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER)}"}
        got = await opened(stack, path, fresh)
        assert got.status == 200 and await got.read() == b"Document 1 of acme\n"


async def test_a_file_moved_to_another_tenant_kills_the_link(tmp_path: Path) -> None:
    # Owners are looked up as for live traffic: with the resource's cache (none here).
    rules = DEMO_RULES.read_text().replace(
        "  document:\n    id_type: int\n", "  document:\n    id_type: int\n    cache: 0s\n"
    )
    assert "cache: 0s" in rules
    async with running_stack(tmp_path, rules_text=rules) as stack:
        # admin@example.test may download in acme and in globex: only the move tells.
        _, created = await mint(stack, "admin@example.test", "/files/1")
        path = share_path(created["url"])
        await user_store.add_user(stack.app[ENGINE], PARTNER, memberships=[])
        bob = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER)}"}
        assert (await opened(stack, path, bob)).status == 200
        with sqlite3.connect(tmp_path / "ledger.db") as ledger:
            ledger.execute("UPDATE documents SET tenant = 'globex' WHERE id = 1")
        assert (await opened(stack, path, bob)).status == 404
        assert (PARTNER, "deny", "share-object-moved") in await share_events(stack)


async def test_without_magic_links_the_page_sends_the_recipient_to_sign_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path, auth={"magic_link": {"enabled": False}}) as stack:
        _, created = await mint(stack, "alice@acme.test", "/files/1")
        path = share_path(created["url"])
        offered = await stack.client.get(path, headers=HTML)
        page = await offered.text()
        assert offered.status == 200 and "Email me a sign-in link" not in page
        assert f'href="/.gatehold/login?rd={path}"' in page
        asked = await stack.client.post(path, allow_redirects=False)
        assert asked.status == 303 and asked.headers["Location"] == f"/.gatehold/login?rd={path}"
        await stack.app[AUTH_PAGES].magic_links.wait_sent()
        assert not (tmp_path / "outbox").exists(), "no mail goes out"


async def test_share_downloads_count_against_the_recipients_in_flight_cap(tmp_path: Path) -> None:
    async with running_stack(tmp_path, limits={"in_flight_per_principal": 1}) as stack:
        _, created = await mint(stack, "alice@acme.test", "/files/1")
        path = share_path(created["url"])
        gw = stack.app[GATEWAY]
        await user_store.add_user(stack.app[ENGINE], PARTNER, memberships=[])
        bob = {"Cookie": f"__Host-gatehold={await stack.mint(PARTNER)}"}
        recipient = await principal_for(gw, PARTNER)
        assert recipient is not None
        elsewhere = make_mocked_request("GET", "/static/app.js")  # bob's one request in progress
        assert (
            gw.in_flight.enter(elsewhere, recipient, Admitted(Target("/", ""), "x", "::1", "http"))
            is None
        )
        busy = await opened(stack, path, bob)
        assert busy.status == 429 and await stack.ledger_total() == 0
        assert (PARTNER, "deny", "in-flight-limit") in await share_events(stack)
        gw.in_flight.leave(elsewhere)
        for _ in range(2):  # each download's slot is given back when its answer is done
            assert (await opened(stack, path, bob)).status == 200
