"""Cookie tossing and session fixation against the gateway's session cookie (I7, I4b).

A page on a sibling or parent origin can place a cookie of its own beside ours (a
parent-domain cookie, or a nameless cookie that browsers serialize as
``__Host-gatehold=…``), so the victim's browser sends two session cookies; whichever
one the gateway read, the victim could end up acting in the attacker's account. Two
session cookies are refused as ambiguous (400), whatever their order, spelling or
header; cookies that merely resemble ours are not ours (401 as anyone signed out);
and a session id the attacker made up is worth nothing (fixation, 401). Each answer
is problem+json, nothing reaches Ledger, and the refusal is in the audit log. One
gateway serves the whole table. That a session id planted before sign-in is replaced
at sign-in is shown in ``tests/integration/test_i7_sessions.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.rawhttp import raw_request
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

VICTIM, ATTACKER = "alice@acme.test", "bob@globex.test"
NAME = "__Host-gatehold"

CASES: dict[str, tuple[list[str], int, str]] = {
    "victim's then attacker's": (["{NAME}={victim}; {NAME}={attacker}"], 400, "header-invalid"),
    "attacker's then victim's": (["{NAME}={attacker}; {NAME}={victim}"], 400, "header-invalid"),
    "attacker's among other cookies": (
        ["theme=dark; {NAME}={victim}; lang=en; {NAME}={attacker}"],
        400,
        "header-invalid",
    ),
    "victim's then junk": (["{NAME}={victim}; {NAME}=junk"], 400, "header-invalid"),
    "junk then victim's": (["{NAME}=junk; {NAME}={victim}"], 400, "header-invalid"),
    "the same session twice": (["{NAME}={victim}; {NAME}={victim}"], 400, "header-invalid"),
    "an empty one beside the victim's": (["{NAME}=; {NAME}={victim}"], 400, "header-invalid"),
    "spaces around the second name": (
        ["{NAME}={victim};   {NAME} ={attacker}"],
        400,
        "header-invalid",
    ),
    "one in each of two Cookie headers": (
        ["{NAME}={victim}", "{NAME}={attacker}"],
        400,
        "header-invalid",
    ),
    "a made-up session id (fixation)": (["{NAME}=" + "A" * 43], 401, "session-invalid"),
    "the attacker's id with one character changed": (
        ["{NAME}={attacker_changed}"],
        401,
        "session-invalid",
    ),
    "without the __Host- prefix": (["gatehold={attacker}"], 401, "auth-required"),
    "with the __Secure- prefix": (["__Secure-gatehold={attacker}"], 401, "auth-required"),
    "the prefix in lower case": (["__host-gatehold={attacker}"], 401, "auth-required"),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("tossing")
    async with running_stack(data) as running:
        yield running


def headers_of(stack: Stack, lines: list[str]) -> list[tuple[str, str]]:
    attacker = stack.cookies[ATTACKER]
    values = {
        "NAME": NAME,
        "victim": stack.cookies[VICTIM],
        "attacker": attacker,
        "attacker_changed": attacker[:-1] + ("A" if attacker[-1] != "A" else "B"),
    }
    return [("Cookie", line.format(**values)) for line in lines]


async def send(stack: Stack, fields: list[tuple[str, str]]) -> tuple[int, dict[str, str]]:
    server = stack.client.server
    # rawhttp takes a dict; two Cookie headers are sent under two spellings of the name.
    sent = {("Cookie" if i == 0 else "cookie"): value for i, (_, value) in enumerate(fields)}
    answer = await raw_request(str(server.host), int(server.port or 0), "GET", TARGET, sent)
    return answer.status, answer.json()


TARGET = "/api/invoices"


async def test_the_victims_cookie_alone_passes(stack: Stack) -> None:
    status, _ = await send(stack, headers_of(stack, ["{NAME}={victim}"]))
    assert status == 200


@pytest.mark.parametrize("name", list(CASES))
async def test_a_tossed_or_forged_session_cookie_is_refused(stack: Stack, name: str) -> None:
    lines, status, reason = CASES[name]
    before = await stack.ledger_total()
    got, problem = await send(stack, headers_of(stack, lines))
    assert (got, problem["type"]) == (status, f"/.gatehold/problems/{reason}"), (name, problem)
    assert await stack.ledger_total() == before, f"{name}: it reached Ledger"
    rows = await stack.audit_rows(problem["request_id"])
    decided = [r for r in rows if r["kind"] != "outcome"]
    assert decided and {r["decision"] for r in decided} == {"deny"}, (name, rows)
    assert {r["reason"] for r in decided} == {reason}, (name, rows)
    assert stack.cookies[VICTIM] not in str(rows) and stack.cookies[ATTACKER] not in str(rows)
