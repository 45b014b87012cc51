"""The Shares page of the admin UI: an admin lists the live links of their tenants,
shares a file as themselves, and revokes a link (htmx or plain form) with the
session's CSRF token; the link stops at once."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlsplit

from tests.integration.test_admin_ui_people import UI, csrf_of, page, post
from tests.integration.test_share_links import PARTNER, mint
from tests.support.stack import running_stack

CAROL = "carol@acme.test"
MINTED = re.compile(r'id="minted-url" value="([^"]+)"')


async def test_an_admin_shares_lists_and_revokes_links_of_their_tenant(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _, alices = await mint(stack, "alice@acme.test", "/files/3")
        csrf = await csrf_of(stack, CAROL)
        made = await post(
            stack, CAROL, "/shares", {"path": "/files/1", "email": PARTNER, "expires": "2h"},
            csrf=csrf,
        )  # fmt: skip
        text = await made.text()
        assert made.status == 200, text
        found = MINTED.search(text)
        assert found is not None, "the new link is shown once"
        url = html.unescape(found.group(1))
        assert url.startswith("http://gatehold.test/.gatehold/share/")

        status, listing = await page(stack, CAROL, "/shares")
        assert status == 200
        assert "/files/1" in listing and "/files/3" in listing, "her own and alice's (acme)"
        assert urlsplit(url).path not in listing, "a link is never shown again"

        refused = await post(
            stack, CAROL, "/shares", {"path": "/files/2", "email": PARTNER, "expires": ""},
            csrf=csrf,
        )  # fmt: skip
        body = await refused.text()
        assert refused.status == 404 and 'value="/files/2"' in body, "what was typed is kept"

        share_id = alices["share"]["id"]
        forged = await post(stack, CAROL, f"/shares/{share_id}/revoke", {}, csrf=None)
        assert forged.status == 403
        revoked = await stack.client.post(
            f"{UI}/shares/{share_id}/revoke",
            headers={**stack.cookie(CAROL), "HX-Request": "true", "X-CSRF-Token": csrf},
            allow_redirects=False,
        )
        assert revoked.status == 204 and revoked.headers["HX-Redirect"].startswith(UI + "/shares")
        shared = urlsplit(alices["url"]).path
        assert (await stack.client.get(shared)).status == 404, "dead at once"
        assert "/files/3" not in (await page(stack, CAROL, "/shares"))[1]

        status, _ = await page(stack, "bob@globex.test", "/shares")
        assert status == 403, "the admin UI is for admins; others use the API"
        revocations = await stack.events("share-revoked")
        assert [(e["actor"], e["data"]["share"]) for e in revocations] == [(CAROL, share_id)]
