"""The request-access form behind the 403 page, over a real gateway, Ledger and store.

The 403 page links to the form prefilled with the tenant and the refused address; a
signed-in person sends it with their session's CSRF token and the request waits in the
tenant's queue (audited). Without a session the form sends you to sign in; without the
token, with bad text, an unknown tenant or too many requests it answers with the message
(403/400/429), never a trace, and nothing is stored.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from gateway.admin import access
from gateway.admin.service import CLI_ADMIN, AdminContext
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.responses import REQUEST_ACCESS_PATH
from gateway.store import access_requests as request_store
from tests.support.stack import Stack, problem, running_stack

HTML = {"Accept": "text/html"}
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
RITA = "rita@acme.test"


async def form_of(stack: Stack, email: str, query: str = "") -> tuple[int, str]:
    response = await stack.client.get(
        f"{REQUEST_ACCESS_PATH}{query}", headers={**stack.cookie(email), **HTML}
    )
    return response.status, await response.text()


async def send(stack: Stack, email: str, **fields: str) -> tuple[int, str]:
    _, page = await form_of(stack, email)
    found = CSRF.search(page)
    assert found, page
    data = {"csrf": found.group(1), "tenant": "acme", "role": "standard", "what": "/files/1"}
    data.update({"why": "I prepare the acme audit.", **fields})
    response = await stack.client.post(
        REQUEST_ACCESS_PATH, data=data, headers={**stack.cookie(email), **HTML}
    )
    return response.status, await response.text()


async def stored(stack: Stack) -> list[request_store.AccessRequestRow]:
    return await request_store.list_requests(stack.app[ENGINE])


async def test_the_403_page_links_to_the_form_prefilled(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        refused = await stack.client.delete("/t/acme/x", headers={**stack.cookie(RITA), **HTML})
        assert refused.status == 403
        page = await refused.text()
        link = re.search(r'href="(/\.gatehold/access/request\?[^"]+)"', page)
        assert link, page
        href = link.group(1).replace("&amp;", "&")
        assert parse_qs(urlsplit(href).query) == {"tenant": ["acme"], "what": ["/t/acme/x"]}

        status, form = await form_of(stack, RITA, href.removeprefix(REQUEST_ACCESS_PATH))
        assert status == 200
        assert 'name="tenant" type="text" required maxlength="63" value="acme"' in form
        assert 'value="/t/acme/x"' in form and "Signed in as <strong>rita@acme.test" in form
        offered = re.findall(r'<option value="(\w*)"', form)
        assert offered == ["", "admin", "readonly", "standard"]  # no role for every tenant

        api = await stack.client.get("/files/1", headers=stack.cookie(RITA))
        assert api.status == 403
        body = problem(await api.text())
        assert body["request_access"] == f"{REQUEST_ACCESS_PATH}?what=%2Ffiles%2F1"


async def test_a_person_sends_a_request_and_it_waits_in_the_queue(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, page = await send(stack, RITA)
        assert status == 200 and "<h1>Request sent</h1>" in page
        [row] = await stored(stack)
        assert (row.email, row.tenant, row.role_wanted, row.what, row.state) == (
            RITA,
            "acme",
            "standard",
            "/files/1",
            "pending",
        )
        [event] = await stack.events("access-requested")
        assert event["actor"] == RITA and event["tenant"] == "acme"
        engine, audit = stack.app[ENGINE], stack.app[GATEWAY].audit
        roles = frozenset(stack.ruleset.roles)
        queue = await access.list_access_requests(AdminContext(engine, audit, CLI_ADMIN, roles))
        assert [r.id for r in queue] == [row.id]


async def test_without_a_session_the_form_sends_you_to_sign_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        query = "?tenant=acme&what=/files/1"
        shown = await stack.client.get(
            f"{REQUEST_ACCESS_PATH}{query}", headers=HTML, allow_redirects=False
        )
        assert shown.status == 303
        login = urlsplit(shown.headers["Location"])
        assert login.path == "/.gatehold/login"
        assert parse_qs(login.query)["rd"] == [f"{REQUEST_ACCESS_PATH}{query}"]
        posted = await stack.client.post(
            REQUEST_ACCESS_PATH,
            data={"tenant": "acme", "what": "x", "why": "y"},
            allow_redirects=False,
        )
        assert posted.status == 303 and await stored(stack) == []


async def test_a_post_without_the_sessions_csrf_token_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        # Another person's token, as a forged cross-site form would carry at best.
        _, other = await form_of(stack, "alice@acme.test")
        found = CSRF.search(other)
        assert found
        for token in ("", found.group(1)):
            response = await stack.client.post(
                REQUEST_ACCESS_PATH,
                data={"csrf": token, "tenant": "acme", "what": "/x", "why": "y"},
                headers={**stack.cookie(RITA), **HTML},
            )
            assert response.status == 403
            assert "The form expired" in await response.text()
        assert await stored(stack) == []
        refusals = await stack.events("csrf-rejected")
        assert [e["actor"] for e in refusals] == [RITA, RITA]


async def test_bad_input_is_a_400_page_with_the_message(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for fields, message in (
            ({"why": ""}, "say why you need it"),
            ({"what": "x" * 501}, "at most 500 characters"),
            ({"tenant": "nosuch"}, "takes no access requests"),
            ({"tenant": "acme", "role": "readonly"}, "you hold readonly in acme already"),
            ({"role": "emperor"}, "unknown role"),
            ({"role": "operator"}, "reaches every tenant"),
            ({"why": "a\x00b"}, "control characters"),
        ):
            status, page = await send(stack, RITA, **fields)
            assert status == 400, fields
            assert message in page and 'role="alert"' in page
            assert "Traceback" not in page
        assert await stored(stack) == []


async def test_a_flood_is_answered_429(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert (await send(stack, "bob@globex.test", tenant="acme"))[0] == 200
        status, page = await send(stack, "bob@globex.test", tenant="acme")
        assert status == 429 and "have not decided yet" in page
        assert len(await stored(stack)) == 1
