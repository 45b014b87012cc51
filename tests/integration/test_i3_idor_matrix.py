"""I1 + I3: every demo user × every demo object × every method the demo routes accept.

The expected answer is derived here, from ``rules/demo.yaml`` read as plain YAML and
the seed data of Ledger — not from the gateway's policy code. For each case the test
checks the status and whether Ledger was reached (Ledger counts hits per request id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from gateway.demo.ledger_documents import minimal_pdf
from tests.support.stack import DEMO_RULES, Stack, running_stack

RULES = yaml.safe_load(DEMO_RULES.read_text())
ROLE_CAN = {name: set(role["can"]) for name, role in RULES["roles"].items()}
GLOBAL_ROLES = {name for name, role in RULES["roles"].items() if role.get("scope") == "global"}

PEOPLE: dict[str | None, list[tuple[str, str]]] = {
    "admin@example.test": [("acme", "admin"), ("globex", "admin")],
    "alice@acme.test": [("acme", "standard")],
    "rita@acme.test": [("acme", "readonly")],
    "bob@globex.test": [("globex", "standard")],
    "olga@example.test": [("*", "operator")],
    None: [],  # nobody signed in
}

# Ledger's seed: odd ids belong to acme, even ids to globex.
INVOICES = {i: ("acme" if i % 2 else "globex") for i in range(1, 13)}
DOCUMENTS = {i: ("acme" if i % 2 else "globex") for i in range(1, 11)}
REPORTS = {"r-acme-1": "acme", "r-globex-1": "globex"}
MISSING = None


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    action: str
    owners: tuple[str | None, ...] = ()
    """Owning tenant of each object named (None: does not exist)."""
    path_tenant: str | None = None
    body: dict[str, object] | None = None
    upload: bytes | None = None
    """A file sent as the form the route's upload checks accept."""
    public: bool = False


def active_tenant(person: str | None) -> str | None:
    tenants = [t for t, _ in PEOPLE[person] if t != "*"]
    return tenants[0] if tenants else None


def grants(person: str | None, tenant: str, action: str) -> bool:
    return any(
        (t == tenant or role in GLOBAL_ROLES) and action in ROLE_CAN[role]
        for t, role in PEOPLE[person]
    )


def member(person: str | None, tenant: str) -> bool:
    return any(t == tenant or role in GLOBAL_ROLES for t, role in PEOPLE[person])


def expected_status(person: str | None, case: Case) -> int | None:
    """None when the request must be allowed (and reach Ledger), else the refusal status."""
    if case.public:
        return None
    if person is None:
        return 401
    if case.owners and not any(case.action in ROLE_CAN[role] for _, role in PEOPLE[person]):
        return 403  # no role of theirs allows it anywhere: refused before any owner is asked
    if any(owner is None for owner in case.owners):
        return 404
    context = case.path_tenant or (case.owners[0] if case.owners else active_tenant(person))
    if context is None:
        return 403
    for tenant in dict.fromkeys([context, *case.owners]):
        assert tenant is not None
        if not grants(person, tenant, case.action):
            return 403 if member(person, tenant) else 404
    return None


def matrix() -> list[Case]:
    cases: list[Case] = []
    for i, owner in [*INVOICES.items(), (99, MISSING)]:
        cases.append(Case("GET", f"/api/invoices/{i}", "read", (owner,)))
        cases.append(Case("PUT", f"/api/invoices/{i}", "write", (owner,), body={"status": "paid"}))
        cases.append(Case("PATCH", f"/api/invoices/{i}", "write", (owner,), body={"status": "x"}))
        cases.append(Case("GET", f"/api/search?invoice={i}", "read", (owner,)))
    for i, related in [(1, 3), (1, 2), (2, 4), (2, 1), (1, 99)]:
        owners = (INVOICES[i], INVOICES.get(related, MISSING))
        body = {"related_invoice": related}
        cases.append(Case("PATCH", f"/api/invoices/{i}", "write", owners, body=body))
    for i, owner in [*DOCUMENTS.items(), (99, MISSING)]:
        cases.append(Case("GET", f"/files/{i}", "download", (owner,)))
    for slug, owner in [*REPORTS.items(), ("r-nowhere", MISSING)]:
        cases.append(Case("GET", f"/api/reports/{slug}", "read", (owner,)))
    for tenant in ("acme", "globex"):
        for method, action in (("GET", "read"), ("POST", "write"), ("DELETE", "delete")):
            cases.append(Case(method, f"/t/{tenant}/notes/1", action, path_tenant=tenant))
    cases += [
        Case("GET", "/api/invoices", "read"),
        Case("POST", "/api/invoices", "write", body={"customer": "Matrix", "amount_cents": 1}),
        Case("POST", "/api/invoices/export", "export"),
        Case("GET", "/api/reports/recent", "read"),
        Case("POST", "/api/reports", "write", body={"title": "matrix"}),
        Case("GET", "/documents", "read"),
        Case("POST", "/files", "write", upload=minimal_pdf("matrix")),
        Case("GET", "/static/ledger.css", "read", public=True),
    ]
    # Deletes last: they change what exists, and the matrix judges the seed.
    for i, owner in [*INVOICES.items(), (99, MISSING)]:
        cases.append(Case("DELETE", f"/api/invoices/{i}", "delete", (owner,)))
    return cases


def case_request(
    stack: Stack, person: str | None, case: Case
) -> tuple[dict[str, str], str | aiohttp.FormData | None]:
    """The headers and body of one matrix case sent as ``person`` (``None``: signed out)."""
    headers = {"Accept": "application/json"}
    if person is not None:
        headers |= stack.cookie(person)
    data: str | aiohttp.FormData | None = None
    if case.body is not None:
        data = json.dumps(case.body)
        headers["Content-Type"] = "application/json"
    if case.upload is not None:
        data = aiohttp.FormData({"title": "matrix"})
        data.add_field("file", case.upload, filename="m.pdf", content_type="application/pdf")
    return headers, data


async def test_every_user_object_and_method_gets_the_answer_the_rules_give(
    tmp_path: Path,
) -> None:
    cases = matrix()
    outcomes: list[tuple[str | None, Case, int, str, bool]] = []
    async with running_stack(tmp_path) as stack:
        for case in cases:
            for person in PEOPLE:
                headers, data = case_request(stack, person, case)
                response = await stack.client.request(
                    case.method, case.path, headers=headers, data=data
                )
                await response.read()
                is_problem = response.content_type == "application/problem+json"
                outcomes.append(
                    (person, case, response.status, response.headers["X-Request-Id"], is_problem)
                )
        hits = await stack.ledger_hits()

    wrong = []
    for person, case, status, request_id, is_problem in outcomes:
        expected = expected_status(person, case)
        reached = hits.get(request_id, 0)
        if expected is None:
            ok = reached == 1 and not is_problem
            want = "allowed and forwarded once"
        else:
            ok = status == expected and reached == 0 and is_problem
            want = f"{expected} without reaching Ledger"
        if not ok:
            got = f"{status}, Ledger hit {reached}x"
            wrong.append(f"{person} {case.method} {case.path}: want {want}, got {got}")
    assert len(outcomes) >= 500, len(outcomes)
    assert not wrong, f"{len(wrong)} of {len(outcomes)} cases wrong:\n" + "\n".join(wrong[:40])
    denied = sum(1 for p, c, *_ in outcomes if expected_status(p, c) is not None)
    print(f"IDOR matrix: {len(outcomes)} cases, {denied} refused, all as the rules say")
