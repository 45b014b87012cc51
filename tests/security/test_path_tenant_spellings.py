"""A tenant named in the path is judged as the app will read it, or not at all.

``/t/{org}/reports`` with ``tenant: path.org`` acts in the tenant the path names. The
value is percent-decoded, so ``/t/t3%20/reports`` named the tenant ``"t3 "`` and
``/t/T3/reports`` the tenant ``"T3"``: no membership is held there, but a global-scope
role reaches every tenant, so the request was allowed — judged *outside* the MFA tenant
``t3`` — while the app was told ``X-Gatehold-Tenant: t3`` (HTTP strips the space) or
``T3`` (which a case-insensitive database matches to ``t3``). A person without a second
factor thus acted in an MFA tenant. Found by the reference model
(``tests/fuzz/test_gateway_matches_the_model.py``).

A tenant id is lower-case letters, digits and ``-``; a path naming anything else names
no tenant anyone is in, and is refused like a foreign tenant (404 ``tenant-foreign``,
shown as ``object-not-found``) whoever asks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import ENGINE
from gateway.model import Membership
from gateway.store import users as user_store
from tests.support.scripted_upstream import Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}
STAFF = "staff@model.test"
MEMBER = "member@model.test"


def rules(url: str) -> str:
    return json.dumps(
        {
            "version": 1,
            "upstreams": {"app": {"url": url}},
            "roles": {"staff": {"can": ["read"], "scope": "global"}, "reader": {"can": ["read"]}},
            "mfa": {"tenants": ["t3"]},
            "routes": [
                {
                    "name": "tenant-reports",
                    "match": {"path": "/t/{org}/reports", "methods": ["GET"]},
                    "upstream": "app",
                    "tenant": "path.org",
                }
            ],
        }
    )


async def _people(stack: Stack) -> dict[str, dict[str, str]]:
    """Sessions without a second factor: global-scope staff, and a reader of t1."""
    engine = stack.app[ENGINE]
    await user_store.add_user(engine, STAFF, memberships=[Membership("*", "staff")])
    await user_store.add_user(engine, MEMBER, memberships=[Membership("t1", "reader")])
    return {
        email: {"Cookie": f"__Host-gatehold={await stack.mint(email)}"} for email in (STAFF, MEMBER)
    }


async def _refused(
    stack: Stack, app: Scripted, who: dict[str, str], path: str, status: int, reason: str
) -> None:
    response = await stack.client.get(path, headers=who | API)
    body = await response.json(content_type=None)
    request_id = response.headers["X-Request-Id"]
    assert response.status == status, (path, body)
    assert app.hit_count(request_id) == 0, f"{path} reached the app as tenant " + str(
        app.request_headers.get(request_id, {}).get("x-gatehold-tenant")
    )
    (row, *_) = await stack.audit_rows(request_id)
    assert (row["decision"], row["reason"], row["path"]) == ("deny", reason, path)


SPELLINGS = {
    "a trailing space": "/t/t3%20/reports",
    "a leading space": "/t/%20t3/reports",
    "upper case": "/t/T3/reports",
    "an accented letter": "/t/t%C3%A93/reports",
    "a dot": "/t/t3./reports",
    "an underscore": "/t/t_3/reports",
    "a plus": "/t/t3+/reports",
}
"""Spellings ingress lets through (a non-breaking space, say, it refuses as ambiguous)."""


@pytest.fixture
async def stack_and_app(tmp_path: Path) -> AsyncIterator[tuple[Stack, Scripted]]:
    async with (
        scripted_upstream("app") as app,
        running_stack(tmp_path, rules_text=rules(app.url)) as stack,
    ):
        yield stack, app


async def test_other_spellings_of_an_mfa_tenant_are_refused_not_judged_elsewhere(
    stack_and_app: tuple[Stack, Scripted],
) -> None:
    stack, app = stack_and_app
    people = await _people(stack)
    # The tenant itself: global staff without a second factor must show one.
    await _refused(stack, app, people[STAFF], "/t/t3/reports", 401, "mfa-required")
    failures = []
    for name, path in SPELLINGS.items():
        try:
            await _refused(stack, app, people[STAFF], path, 404, "tenant-foreign")
            await _refused(stack, app, people[MEMBER], path, 404, "tenant-foreign")
        except AssertionError as error:
            failures.append(f"{name}: {error}")
    assert not failures, "\n".join(failures)


async def test_well_formed_tenants_still_pass(stack_and_app: tuple[Stack, Scripted]) -> None:
    stack, app = stack_and_app
    people = await _people(stack)
    for who, path, tenant in (
        (people[STAFF], "/t/t1/reports", "t1"),
        (people[STAFF], "/t/new-tenant-9/reports", "new-tenant-9"),  # global: any tenant
        (people[MEMBER], "/t/t1/reports", "t1"),
    ):
        response = await stack.client.get(path, headers=who | API)
        request_id = response.headers["X-Request-Id"]
        assert response.status == 200, await response.text()
        assert app.hit_count(request_id) == 1
        assert app.request_headers[request_id]["x-gatehold-tenant"] == tenant
    await _refused(stack, app, people[MEMBER], "/t/t2/reports", 404, "tenant-foreign")
