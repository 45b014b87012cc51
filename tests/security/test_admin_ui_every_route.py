"""Every route of the admin UI, enumerated from the mounted sub-app (a page added later
is covered without touching this file):

* a state change without the session's CSRF token, or with another session's, is
  refused (403) and changes nothing in the store;
* a signed-in person who administers nothing gets the gateway's 403 on every route,
  and someone not signed in is sent to sign in (GET) or refused (any other method);
* every page an admin sees carries the strict Content-Security-Policy and holds no
  inline script, inline style or event-handler attribute that it would need;
* each attempt leaves an ``admin-ui`` audit row that says it was refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from aiohttp import web
from aiohttp.web_urldispatcher import PrefixedSubAppResource
from sqlalchemy import text

from admin_ui.app import CONTENT_SECURITY_POLICY
from gateway.app import ENGINE
from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
ADMIN, CAROL, ALICE = "admin@example.test", "carol@acme.test", "alice@acme.test"
SAMPLES = {"email": "alice@acme.test", "tenant": "acme"}
"""Values for the routes' path parameters; any other parameter gets ``1``."""
WATCHED = (
    "users",
    "memberships",
    "tenants",
    "api_keys",
    "access_requests",
    "review_attestations",
    "rule_versions",
    "rules_active",
)
"""The tables an admin's change writes (sessions are compared by their revocations)."""


def ui_routes(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, concrete path) of every page route of the mounted UI."""
    [ui] = [r for r in app.router.resources() if isinstance(r, PrefixedSubAppResource)]
    for route in ui._app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if route.method in ("*", "HEAD") or canonical.startswith("/static"):
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: SAMPLES.get(m.group(1), "1"), canonical)
        yield route.method, UI + path


async def store_state(stack: Stack) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables an admin change writes, and which sessions are revoked."""
    state: dict[str, list[tuple[object, ...]]] = {}
    async with stack.app[ENGINE].connect() as conn:
        for table in WATCHED:
            rows = await conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
            state[table] = sorted(tuple(row) for row in rows)
        revoked = await conn.execute(text("SELECT id_hash, revoked_at FROM sessions"))
        state["sessions"] = sorted(tuple(row) for row in revoked)
    return state


async def csrf_of(stack: Stack, email: str) -> str:
    answer = await stack.client.get(UI + "/users", headers=stack.cookie(email))
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', await answer.text())
    assert found, "the page holds no CSRF token"
    return found.group(1)


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts and styles, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith(("on", "hx-on")):
                self.found.append(f"<{tag} {name}>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:>")


async def test_every_state_change_needs_this_sessions_csrf_token(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        carols_token = await csrf_of(stack, CAROL)
        changes = [(m, p) for m, p in ui_routes(stack.app) if m != "GET"]
        assert len(changes) >= 12, changes
        before = await store_state(stack)
        for method, path in changes:
            for form in ({}, {"csrf": ""}, {"csrf": carols_token}, {"csrf": "0" * 64}):
                answer = await stack.client.request(
                    method,
                    path,
                    data={**form, "role": "admin", "tenant": "acme", "comment": "x"},
                    headers={**stack.cookie(ADMIN), "Accept": "text/html"},
                    allow_redirects=False,
                )
                assert answer.status == 403, (method, path, form, answer.status)
            # The header is checked the same way as the field.
            answer = await stack.client.request(
                method,
                path,
                headers={**stack.cookie(ADMIN), "X-CSRF-Token": carols_token},
                allow_redirects=False,
            )
            assert answer.status == 403, (method, path, "header")
        assert await store_state(stack) == before
        refused = [e for e in await stack.events("admin-ui") if e["reason"] == "csrf-failed"]
        assert len(refused) == 5 * len(changes)
        assert {e["decision"] for e in refused} == {"deny"}
        assert {e["actor"] for e in refused} == {ADMIN}


async def test_non_admins_get_the_normal_refusal_everywhere(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        routes = list(ui_routes(stack.app))
        before = await store_state(stack)
        for method, path in routes:
            answer = await stack.client.request(
                method,
                path,
                headers={**stack.cookie(ALICE), "Accept": "text/html"},
                allow_redirects=False,
            )
            assert answer.status == 403, (method, path)
            assert "You do not have access to this" in await answer.text()
            anonymous = await stack.client.request(
                method, path, headers={"Accept": "text/html"}, allow_redirects=False
            )
            if method == "GET":
                assert anonymous.status == 303, (method, path)
                assert anonymous.headers["Location"].startswith("/.gatehold/login?rd=")
            else:
                assert anonymous.status == 401, (method, path, anonymous.status)
        assert await store_state(stack) == before
        events = await stack.events("admin-ui")
        assert [e["actor"] for e in events if e["reason"] == "forbidden"] == [ALICE] * len(routes)
        assert {e["decision"] for e in events} == {"deny"}


async def test_every_admin_page_carries_the_policy_and_no_inline_code(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        pages = [p for m, p in ui_routes(stack.app) if m == "GET"]
        assert len(pages) >= 12, pages
        for path in pages:
            for email in (ADMIN, CAROL):
                answer = await stack.client.get(path, headers=stack.cookie(email))
                assert answer.status < 500, (path, email)
                headers = answer.headers
                assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
                assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
                assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
                assert headers["X-Frame-Options"] == "DENY"
                assert headers["X-Content-Type-Options"] == "nosniff"
                if headers.get("Content-Type", "").startswith("text/html"):
                    assert headers["Cache-Control"] == "no-store", path
                    parser = InlineCode()
                    parser.feed(await answer.text())
                    assert parser.found == [], (path, parser.found)
