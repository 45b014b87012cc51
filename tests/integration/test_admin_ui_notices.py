"""A notice after a change ("Tenant initech created.") travels in the address, sealed
with the session's token: the admin who made the change sees it; a crafted link, or one
sealed for another session, shows nothing."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
ADMIN, CAROL = "admin@example.test", "carol@acme.test"


async def token_of(stack: Stack, email: str) -> str:
    page = await (await stack.client.get(UI + "/tenants", headers=stack.cookie(email))).text()
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', page)
    assert found
    return found.group(1)


def notice_shown(page: str) -> str:
    found = re.search(r'<p class="notice" role="status">([^<]*)</p>', page)
    return found.group(1) if found else ""


async def test_only_a_notice_sealed_for_this_session_is_shown(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        created = await stack.client.post(
            UI + "/tenants",
            data={"csrf": await token_of(stack, ADMIN), "id": "initech", "name": "Initech"},
            headers=stack.cookie(ADMIN),
            allow_redirects=False,
        )
        assert created.status == 303
        location = created.headers["Location"]
        query = parse_qs(urlsplit(location).query)
        assert query["notice"] == ["Tenant initech created."] and query["seal"]

        page = await (await stack.client.get(location, headers=stack.cookie(ADMIN))).text()
        assert notice_shown(page) == "Tenant initech created."

        path = urlsplit(location).path
        crafted = {"notice": "Your account is locked: call +1 555 0100", "seal": "0" * 32}
        for query_string in (
            urlencode(crafted),
            urlencode({"notice": crafted["notice"]}),
            urlencode({"notice": crafted["notice"], "seal": query["seal"][0]}),
            urlencode({"notice": crafted["notice"], "seal": "é" * 32}),
        ):
            page = await (
                await stack.client.get(f"{path}?{query_string}", headers=stack.cookie(ADMIN))
            ).text()
            assert notice_shown(page) == ""
            assert "call +1 555" not in page

        # Sealed for the admin's session: another session (here a second one of the
        # same admin) does not show it.
        other = {"Cookie": f"__Host-gatehold={await stack.mint(ADMIN)}"}
        page = await (await stack.client.get(location, headers=other)).text()
        assert notice_shown(page) == ""
