"""I1 + I3 through real front proxies: the demo's IDOR matrix via nginx and via Caddy,
each run with the config ``gatehold export`` writes, gets the answers Gatehold alone
gives (``test_i3_idor_matrix``: the same cases, the same oracle from the rules file).

Forward-auth routes are decided by ``/.gatehold/auth`` and forwarded by the front proxy;
the others are handed to Gatehold's full proxy. Either way each case checks the status,
that Ledger was reached exactly once when allowed and never when refused (Ledger counts
hits by the request id the app received), and that the audit row of the request id
holds the same decision.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from gateway.app import ENGINE
from tests.integration.test_i3_idor_matrix import (
    PEOPLE,
    Case,
    case_request,
    expected_status,
    matrix,
)
from tests.support.front_proxy import KINDS, forward_auth_stack
from tests.support.stack import Stack


async def _send(
    http: aiohttp.ClientSession, stack: Stack, url: str, person: str | None, case: Case
) -> aiohttp.ClientResponse:
    headers, data = case_request(stack, person, case)
    response = await http.request(
        case.method, url + case.path, headers=headers, data=data, allow_redirects=False
    )
    await response.read()
    return response


async def _decisions(stack: Stack) -> dict[str, tuple[str, str]]:
    """The decision of every request audited so far, and who decided it (``forward-auth``
    or the full proxy), by request id."""
    await stack.settled()
    async with stack.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            text("SELECT request_id, decision, data FROM audit_log WHERE kind = 'request'")
        )
        return {
            row.request_id: (row.decision, json.loads(row.data).get("via", "proxy")) for row in rows
        }


@pytest.mark.parametrize("kind", KINDS)
async def test_the_idor_matrix_gets_gatehold_s_answers_through_the_front_proxy(
    tmp_path: Path, kind: str
) -> None:
    cases = matrix()
    outcomes: list[tuple[str | None, Case, int, str | None, bool]] = []
    async with (
        forward_auth_stack(tmp_path, [kind]) as fa,
        aiohttp.ClientSession() as http,
    ):
        url = fa.proxies[kind].url
        for case in cases:
            for person in PEOPLE:
                response = await _send(http, fa.stack, url, person, case)
                is_problem = response.content_type == "application/problem+json"
                request_id = response.headers.get("X-Request-Id")
                outcomes.append((person, case, response.status, request_id, is_problem))
        hits = await fa.stack.ledger_hits()
        decisions = await _decisions(fa.stack)
        log = fa.proxies[kind].log_text()

    wrong = []
    vias: dict[str | None, int] = {}
    for person, case, status, request_id, is_problem in outcomes:
        expected = expected_status(person, case)
        reached = hits.get(request_id or "", 0)
        audited, via = decisions.get(request_id or "", (None, None))
        vias[via] = vias.get(via, 0) + 1
        if expected is None:
            ok = 200 <= status < 300 and reached == 1 and audited == "allow"
            want = "allowed, audited and forwarded once"
        else:
            ok = status == expected and reached == 0 and audited == "deny"
            want = f"{expected}, audited, without reaching Ledger"
            if kind == "caddy" and not is_problem:  # Caddy passes Gatehold's answer on
                ok, want = False, want + " (as problem+json)"
        if request_id is None:
            ok, want = False, want + " (with an X-Request-Id)"
        if not ok:
            got = f"{status}, Ledger hit {reached}x, audit {audited}"
            wrong.append(f"{person} {case.method} {case.path}: want {want}, got {got}")
    assert len(outcomes) >= 500, len(outcomes)
    assert not wrong, (
        f"{kind}: {len(wrong)} of {len(outcomes)} cases wrong:\n"
        + "\n".join(wrong[:40])
        + f"\n{kind} log:\n{log[-2000:]}"
    )
    assert vias.get("forward-auth", 0) >= 250, vias  # half the cases are decided there
    print(f"IDOR matrix through {kind}: {len(outcomes)} cases as Gatehold alone answers; {vias}")
