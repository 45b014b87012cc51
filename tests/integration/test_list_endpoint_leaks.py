"""The data browser's leaks, shown through rules that check only row ids: each attack
reveals or changes something of globex. (The demo rules' refusal of each is in
``test_list_endpoints_locked_down.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.list_endpoints import (
    LIST_ATTACKS,
    WRITE_ATTACKS,
    Attack,
    leaked,
    naive_rules,
)
from tests.support.stack import Stack, running_stack

ALICE = "alice@acme.test"


async def send(stack: Stack, attack: Attack) -> tuple[int, bytes]:
    answer = await stack.client.request(
        attack.method,
        attack.target,
        data=None if attack.body is None else json.dumps(attack.body),
        headers={
            **stack.cookie(ALICE),
            **({} if attack.body is None else {"Content-Type": "application/json"}),
        },
    )
    return answer.status, await answer.read()


async def item_tenants(stack: Stack) -> dict[int, str]:
    assert stack.http is not None
    async with stack.http.get(f"{stack.ledger_url}/api/items?limit=50") as answer:
        return {row["id"]: row["tenant"] for row in (await answer.json())["rows"]}


@pytest.mark.parametrize("attack", LIST_ATTACKS, ids=lambda a: a.name)
async def test_each_list_attack_leaks_through_id_only_rules(tmp_path: Path, attack: Attack) -> None:
    async with running_stack(tmp_path, rules_text=naive_rules()) as stack:
        status, body = await send(stack, attack)
        assert status == 200, body
        assert leaked(body), body


@pytest.mark.parametrize("attack", WRITE_ATTACKS, ids=lambda a: a.name)
async def test_each_write_attack_lands_in_globex_through_id_only_rules(
    tmp_path: Path, attack: Attack
) -> None:
    async with running_stack(tmp_path, rules_text=naive_rules()) as stack:
        before = await item_tenants(stack)
        status, body = await send(stack, attack)
        assert status in (200, 201), body
        after = await item_tenants(stack)
        changed = {i: t for i, t in after.items() if before.get(i) != t}
        assert "globex" in changed.values(), (before, after)
