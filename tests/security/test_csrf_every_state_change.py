"""Cross-site request forgery against every state-changing endpoint of the gateway,
enumerated from its router: a POST/PUT/PATCH/DELETE endpoint added later without an
entry in ``DEFENCES`` fails this test until someone states (and proves) its defence.

The victim is the superadmin, signed in. Another site's page makes their browser send
each request: their session cookie rides along, the ``Origin`` names the attacker's
site, and no CSRF token (the attacker cannot read one) is sent. Each attempt must be
refused with the status in the table, change nothing in the store, mail nothing, reach
no upstream, and leave an audit row of the refusal. A second round sends what a script
or an old browser would (no ``Origin``) with a made-up token, for the endpoints whose
defence is the session's token.

The admin UI's own routes are enumerated the same way in
``test_admin_ui_every_route.py``; the catch-all routes (the pipeline, the admin API's
unknown paths) change nothing of the gateway's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import DynamicResource, PlainResource
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from tests.integration.test_share_links import mint, share_path
from tests.support.admin_api import store_snapshot
from tests.support.stack import Stack, running_stack

ADMIN = "admin@example.test"
SHARE = "/.gatehold/share/"
ADMIN_UI = "/.gatehold/admin/"
"""Its routes: ``test_admin_ui_every_route.py``."""
CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
FORM = {"email": "mallory@evil.example", "rd": "/", "tenant": "acme", "role": "admin"}

TOKEN = "session token"
"""Refused for want of the session's CSRF token (and cross-site, by the origin too)."""
ORIGIN = "origin"
"""A sign-in step before any session: refused for the origin (or the SameSite cookie)."""
PENDING = "pending sign-in"
"""A second-factor step bound to a pending sign-in's SameSite cookie, absent cross-site."""

DEFENCES: dict[tuple[str, str], tuple[str, int]] = {
    ("POST", "/.gatehold/login/magic"): (ORIGIN, 403),
    ("POST", "/.gatehold/login/magic/confirm"): (ORIGIN, 403),
    ("POST", "/.gatehold/login/password"): (ORIGIN, 403),
    ("POST", "/.gatehold/login/passkey/options"): (ORIGIN, 403),
    ("POST", "/.gatehold/login/passkey"): (ORIGIN, 403),
    ("POST", "/.gatehold/login/enrol/passkey/options"): (PENDING, 400),
    ("POST", "/.gatehold/login/enrol/passkey"): (PENDING, 400),
    ("POST", "/.gatehold/login/verify/passkey/options"): (PENDING, 400),
    ("POST", "/.gatehold/login/verify/passkey"): (PENDING, 400),
    ("POST", "/.gatehold/login/enrol/totp"): (PENDING, 403),
    ("POST", "/.gatehold/login/enrol/totp/continue"): (PENDING, 403),
    ("POST", "/.gatehold/login/verify/totp"): (PENDING, 403),
    ("POST", "/.gatehold/login/verify/recovery"): (PENDING, 403),
    ("POST", "/.gatehold/login/step-up"): (TOKEN, 403),
    ("POST", "/.gatehold/sessions/end"): (TOKEN, 403),
    ("POST", "/.gatehold/logout"): (TOKEN, 403),
    ("POST", "/.gatehold/account/passkeys/options"): (TOKEN, 403),
    ("POST", "/.gatehold/account/passkeys"): (TOKEN, 403),
    ("POST", "/.gatehold/account/passkeys/remove"): (TOKEN, 403),
    ("POST", "/.gatehold/account/totp"): (TOKEN, 403),
    ("POST", "/.gatehold/account/totp/remove"): (TOKEN, 403),
    ("POST", "/.gatehold/account/recovery-codes"): (TOKEN, 403),
    ("POST", "/.gatehold/account/password"): (TOKEN, 403),
    ("POST", "/.gatehold/access/request"): (TOKEN, 403),
    ("POST", "/.gatehold/share/{token}"): (ORIGIN, 403),
    ("POST", "/.gatehold/api/access-requests/{request}/approve"): (TOKEN, 403),
    ("POST", "/.gatehold/api/access-requests/{request}/decline"): (TOKEN, 403),
    ("POST", "/.gatehold/api/reviews/{tenant}/attest"): (TOKEN, 403),
    ("DELETE", "/.gatehold/api/reviews/{tenant}/members/{email}"): (TOKEN, 403),
    ("POST", "/.gatehold/api/invites"): (TOKEN, 403),
    ("POST", "/.gatehold/api/api-keys"): (TOKEN, 403),
    ("DELETE", "/.gatehold/api/api-keys/{key_id}"): (TOKEN, 403),
    ("POST", "/.gatehold/api/users"): (TOKEN, 403),
    ("POST", "/.gatehold/api/users/{email}/memberships"): (TOKEN, 403),
    ("PUT", "/.gatehold/api/users/{email}/memberships/{tenant}"): (TOKEN, 403),
    ("DELETE", "/.gatehold/api/users/{email}/memberships/{tenant}/{role}"): (TOKEN, 403),
    ("POST", "/.gatehold/api/users/{email}/deactivate"): (TOKEN, 403),
    ("POST", "/.gatehold/api/users/{email}/reactivate"): (TOKEN, 403),
    ("DELETE", "/.gatehold/api/users/{email}/sessions"): (TOKEN, 403),
    ("POST", "/.gatehold/api/users/{email}/factors/reset"): (TOKEN, 403),
    ("PUT", "/.gatehold/api/registry/{resource_type}/{object_id}"): (TOKEN, 403),
    ("DELETE", "/.gatehold/api/registry/{resource_type}/{object_id}"): (TOKEN, 403),
    ("POST", "/.gatehold/api/registry/import"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/versions"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/versions/{version}/impact"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/versions/{version}/activate"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/shadow"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/shadow/stop"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/shadow/activate"): (TOKEN, 403),
    ("POST", "/.gatehold/api/shares"): (TOKEN, 403),
    ("DELETE", "/.gatehold/api/shares/{share_id}"): (TOKEN, 403),
    ("POST", "/.gatehold/api/rules/simulate"): (TOKEN, 403),
    ("POST", "/.gatehold/api/tenants"): (TOKEN, 403),
    ("PATCH", "/.gatehold/api/tenants/{tenant}"): (TOKEN, 403),
    ("POST", "/.gatehold/api/tenants/{tenant}/deactivate"): (TOKEN, 403),
}
"""Every state-changing endpoint: how it is defended, and the status of a forgery."""

REFUSALS = {"csrf-rejected"}
"""Audit events that are refusals by their kind alone (their decision column is empty)."""
SAMPLES = {"email": "alice@acme.test", "tenant": "acme", "role": "standard"}
SETTINGS: dict[str, Any] = {"auth": {"passkeys": {"enabled": True}, "passwords": {"enabled": True}}}
"""Every optional sign-in method on, so each mounts its endpoints."""


def state_changes(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, route pattern) of every state-changing endpoint on the gateway's router
    (sub-apps such as the admin UI and ``*`` catch-alls aside)."""
    for route in app.router.routes():
        resource = route.resource
        if route.method in ("GET", "HEAD", "OPTIONS", "*"):
            continue
        if isinstance(resource, PlainResource | DynamicResource):
            if not resource.canonical.startswith(ADMIN_UI):
                yield route.method, resource.canonical


def concrete(pattern: str, share: str) -> str:
    if pattern == "/.gatehold/share/{token}":
        return share
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: SAMPLES.get(m.group(1), "1"), pattern)


async def last_seq(stack: Stack) -> int:
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        found = await conn.execute(text("SELECT COALESCE(MAX(seq), 0) FROM audit_log"))
        return int(found.scalar_one())


async def rows_after(stack: Stack, seq: int) -> list[dict[str, Any]]:
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        found = await conn.execute(
            text("SELECT * FROM audit_log WHERE seq > :seq ORDER BY seq"), {"seq": seq}
        )
        return [dict(row._mapping) for row in found]


def mails(stack: Stack) -> int:
    return len(list(stack.settings.outbox_path.glob("*.eml")))


async def test_every_state_changing_endpoint_is_in_the_table(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **SETTINGS) as stack:
        found = set(state_changes(stack.app))
        assert found - DEFENCES.keys() == set(), "state-changing endpoints without a CSRF test"
        assert DEFENCES.keys() - found == set(), "endpoints in the table no longer served"
        assert len(found) >= 50


async def attempt(
    stack: Stack, method: str, path: str, headers: dict[str, str]
) -> tuple[int, list[dict[str, Any]]]:
    """One forged request; its status and the audit rows it left."""
    seq = await last_seq(stack)
    # A share link's mail goes to its recipient, who is not signed in yet.
    victim = {} if path.startswith(SHARE) else stack.cookie(ADMIN)
    answer = await stack.client.request(
        method, path, data=FORM, headers={**victim, **headers}, allow_redirects=False
    )
    await answer.read()
    return answer.status, await rows_after(stack, seq)


async def test_a_forged_request_changes_nothing_anywhere(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **SETTINGS) as stack:
        _, created = await mint(stack, "alice@acme.test", "/files/1")
        share = share_path(created["url"])
        await stack.app[AUTH_PAGES].magic_links.wait_sent()
        before = (await store_snapshot(stack), mails(stack), await stack.ledger_total())
        wrong: list[str] = []
        rounds = [(CROSS_SITE, None), ({"X-CSRF-Token": "0" * 64}, TOKEN)]
        for headers, only in rounds:
            for (method, pattern), (defence, status) in sorted(DEFENCES.items()):
                if only is not None and defence != only:
                    continue
                path = concrete(pattern, share)
                got, rows = await attempt(stack, method, path, headers)
                refused = [r for r in rows if r["decision"] == "deny" or r["kind"] in REFUSALS]
                if got != status or not refused or any(r["decision"] == "allow" for r in rows):
                    summary = [(r["kind"], r["decision"], r["reason"]) for r in rows]
                    wrong.append(f"{method} {path} {sorted(headers)}: {got}, audit {summary}")
        await stack.app[AUTH_PAGES].magic_links.wait_sent()
        after = (await store_snapshot(stack), mails(stack), await stack.ledger_total())
        assert wrong == [], "\n".join(wrong)
        assert after == before, "a forged request changed the store, sent mail or went upstream"
