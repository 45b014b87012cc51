"""I3 for list and write endpoints: the data browser's attacks against the demo rules.

``test_list_endpoint_leaks.py`` shows each attack leaking through rules that check only
row ids; here the same attacks meet ``rules/demo.yaml`` (query allow-list, the tenant
bound into the query, the body's tenant checked, an id inside a segment). Each is
refused before Ledger sees it, or answered with nothing of the other tenant in any byte;
every refusal leaves its audit rows. The demo's own people then use the endpoints for
what they are for.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.integration.list_endpoints import LIST_ATTACKS, WRITE_ATTACKS, Attack, leaked
from tests.support.stack import Stack, running_stack

ALICE, BOB = "alice@acme.test", "bob@globex.test"
REFUSED = {  # attack name: (status, reason); the others are answered, bound to acme
    "raw condition": (403, "param-forbidden"),
    "relabelled tenant column": (403, "param-forbidden"),
    "count and page token": (403, "param-forbidden"),
    "create in globex": (403, "tenant-mismatch"),
    "move own row to globex": (403, "tenant-mismatch"),
    "move own row, PATCH": (403, "tenant-mismatch"),
}


async def send(stack: Stack, attack: Attack, person: str = ALICE) -> tuple[int, bytes, str]:
    answer = await stack.client.request(
        attack.method,
        attack.target,
        data=None if attack.body is None else json.dumps(attack.body),
        headers={
            **stack.cookie(person),
            **({} if attack.body is None else {"Content-Type": "application/json"}),
        },
    )
    return answer.status, await answer.read(), answer.headers["X-Request-Id"]


async def ledger_tenants(stack: Stack) -> dict[int, str]:
    assert stack.http is not None
    async with stack.http.get(f"{stack.ledger_url}/api/items?limit=50") as answer:
        return {row["id"]: row["tenant"] for row in (await answer.json())["rows"]}


@pytest.mark.parametrize("attack", LIST_ATTACKS + WRITE_ATTACKS, ids=lambda a: a.name)
async def test_each_attack_is_refused_or_answered_with_nothing_of_globex(
    tmp_path: Path, attack: Attack
) -> None:
    async with running_stack(tmp_path) as stack:
        before = await ledger_tenants(stack)
        status, body, request_id = await send(stack, attack)
        assert not leaked(body), body
        assert await ledger_tenants(stack) == before, "a row was created in or moved to globex"
        rows = await stack.audit_rows(request_id)
        if attack.name in REFUSED:
            request, outcome = rows[0], rows[-1]
            assert (status, request["reason"]) == REFUSED[attack.name], (status, rows)
            assert request["decision"] == "deny" and outcome["kind"] == "outcome"
            assert json.loads(outcome["data"])["status"] == status
            hits = await stack.ledger_hits()
            assert request_id not in hits, "a refused request reached Ledger"
        else:  # the client's tenant filter is overwritten by the bound tenant
            assert status == 200
            assert rows[0]["decision"] == "allow"
            assert "query tenant set to 'acme'" in rows[0]["data"]
            page = json.loads(body)
            assert page["rows"] and {row["tenant"] for row in page["rows"]} == {"acme"}
            customers = page["facets"].get("customer", {"Acme": 1})
            assert all(name.startswith("Acme") for name in customers), customers


async def test_lists_counts_and_page_tokens_are_the_callers_own(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for person, tenant in ((ALICE, "acme"), (BOB, "globex")):
            answer = await stack.client.get(
                "/api/items?limit=2&_facet=tenant", headers=stack.cookie(person)
            )
            assert answer.status == 200
            page = await answer.json()
            assert {row["tenant"] for row in page["rows"]} == {tenant}
            assert page["total"] == 6 and page["facets"] == {"tenant": {tenant: 6}}
            token = json.loads(base64.urlsafe_b64decode(page["next_page"]))
            assert token["customer"].lower().startswith(tenant)
            following = await stack.client.get(
                f"/api/items?limit=2&page_token={page['next_page']}", headers=stack.cookie(person)
            )
            assert {row["tenant"] for row in (await following.json())["rows"]} == {tenant}


async def test_writes_land_in_the_callers_tenant(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        created = await stack.client.post(
            "/api/items", json={"customer": "New acme customer"}, headers=stack.cookie(ALICE)
        )
        assert created.status == 201
        row = await created.json()
        assert row["tenant"] == "acme"
        named = await stack.client.post(
            "/api/items",
            json={"tenant": "acme", "customer": "Named"},
            headers=stack.cookie(ALICE),
        )
        assert named.status == 201
        updated = await stack.client.patch(
            "/api/items/7", json={"status": "paid"}, headers=stack.cookie(ALICE)
        )
        assert updated.status == 200 and (await updated.json())["tenant"] == "acme"
        foreign = await stack.client.patch(
            "/api/items/8", json={"status": "paid"}, headers=stack.cookie(ALICE)
        )
        assert foreign.status == 404


async def test_an_id_inside_a_segment_is_checked_like_any_other(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        own = await stack.client.get("/api/items/7.csv", headers=stack.cookie(ALICE))
        assert own.status == 200 and ",acme," in await own.text()
        for target in (
            "/api/items/8.csv",
            "/api/items/8.CSV",
            "/api/items/8.csv.",
            "/api/items/99.csv",
        ):
            answer = await stack.client.get(target, headers=stack.cookie(ALICE))
            assert answer.status == 404, target
            assert "globex" not in (await answer.text()).lower()
            assert answer.headers["X-Request-Id"] not in await stack.ledger_hits(), target
