"""Traffic through the demo gateway whose audit rows the dashboard and audit pages show.

``CALLS`` says what each request leaves in the audit trail (its ``request`` row). A
request denied on another tenant's object is recorded under the object's tenant; one
refused before any tenant was known (a role refusal, no route, no sign-in) under none.
"""

from __future__ import annotations

from typing import NamedTuple

from tests.support.stack import Stack

ALICE = "alice@acme.test"
BOB = "bob@globex.test"
RITA = "rita@acme.test"


class Call(NamedTuple):
    actor: str | None
    method: str
    path: str
    status: int
    tenant: str
    """The ``tenant`` of its audit row."""
    route: str
    decision: str


CALLS = (
    Call(ALICE, "GET", "/api/invoices/1", 200, "acme", "invoice-read", "allow"),
    Call(ALICE, "GET", "/api/invoices/3", 200, "acme", "invoice-read", "allow"),
    Call(ALICE, "GET", "/api/invoices/2", 404, "globex", "invoice-read", "deny"),
    Call(RITA, "DELETE", "/api/invoices/1", 403, "", "invoice-delete", "deny"),
    Call(BOB, "GET", "/api/invoices/1", 404, "acme", "invoice-read", "deny"),
    Call(BOB, "GET", "/api/invoices/2", 200, "globex", "invoice-read", "allow"),
    Call(ALICE, "GET", "/no/such/route", 404, "", "", "deny"),
    Call(None, "GET", "/api/invoices", 401, "", "invoice-list", "deny"),
)


async def make_traffic(stack: Stack) -> None:
    """Send ``CALLS`` through the gateway and wait until their rows are committed."""
    for call in CALLS:
        headers = stack.cookie(call.actor) if call.actor else {"Accept": "application/json"}
        answer = await stack.client.request(
            call.method, call.path, headers=headers, allow_redirects=False
        )
        assert answer.status == call.status, (call, await answer.text())
    await stack.settled()


def expected(tenants: frozenset[str] | None = None) -> list[Call]:
    """The calls whose rows an admin of ``tenants`` reads (``None``: a superadmin)."""
    return [call for call in CALLS if tenants is None or call.tenant in tenants]
