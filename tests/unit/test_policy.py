"""Decision table for policy.decide: pure inputs, Decision values out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.model import (
    ANONYMOUS,
    AuthMethod,
    Decision,
    IdSource,
    IdSpec,
    MatchResult,
    Membership,
    MethodNotAllowed,
    NoRoute,
    NotFound,
    ObjectRef,
    Owned,
    Principal,
    Reason,
    Rejection,
    ResolvedRef,
    ResolverFailed,
    RoleDef,
    Route,
    RouteMatch,
)
from gateway.policy import Policy

NOW = 1_800_000_000.0

ROLES = {
    "readonly": RoleDef("readonly", frozenset({"read"})),
    "standard": RoleDef("standard", frozenset({"read", "write", "download"})),
    "admin": RoleDef(
        "admin", frozenset({"read", "write", "delete", "export", "download", "manage_users"})
    ),
    "operator": RoleDef("operator", frozenset({"read", "write"}), scope_global=True),
}

INVOICE = Route(
    name="invoice",
    pattern="/api/invoices/{invoice_id:int}",
    methods=frozenset({"GET", "PUT", "DELETE", "PROPFIND"}),
    upstream="ledger",
    ids=(IdSpec("invoice", IdSource.PATH, "invoice_id", "int"),),
)
EXPORT = Route(
    name="export",
    pattern="/api/export",
    methods=frozenset({"POST"}),
    upstream="ledger",
    action="export",
    step_up_seconds=600,
)
LIST = Route(name="list", pattern="/api/invoices", methods=frozenset({"GET"}), upstream="ledger")
TENANT_AREA = Route(
    name="area",
    pattern="/t/{tenant:slug}/{rest:path}",
    methods=None,
    upstream="ledger",
    tenant_param="tenant",
)
PUBLIC = Route(
    name="static", pattern="/static/{rest:path}", methods=None, upstream="ledger", public=True
)
FEED = Route(
    name="feed",
    pattern="/ws/{tenant}",
    methods=None,
    upstream="ledger",
    tenant_param="tenant",
    websocket=True,
)


def person(
    *grants: tuple[str, str], auth_age: float = 60.0, active: str | None = None
) -> Principal:
    memberships = tuple(Membership(t, r) for t, r in grants)
    tenants = [t for t, _ in grants if t != "*"]
    return Principal(
        user_id="1",
        email="p@example.test",
        memberships=memberships,
        auth_method=AuthMethod.SESSION,
        auth_time=NOW - auth_age,
        active_tenant=active or (tenants[0] if tenants else None),
    )


ALICE = person(("acme", "standard"))
RITA = person(("acme", "readonly"))
OLGA = person(("*", "operator"))
MULTI = person(("acme", "readonly"), ("globex", "admin"))
GHOST_ROLE = person(("acme", "retired-role"))


def invoice(owner: Owned | NotFound | ResolverFailed, oid: str = "7") -> ResolvedRef:
    return ResolvedRef(ObjectRef("invoice", oid, "path.invoice_id"), owner)


def at(route: Route, **params: str) -> RouteMatch:
    return RouteMatch(route, params)


@dataclass
class Case:
    principal: object
    match: MatchResult
    method: str
    expect: Reason
    objects: list[ResolvedRef] | Rejection = field(default_factory=list)
    tenant: str | None = None
    websocket: bool = False
    blocked: bool = False


CASES = {
    "no route matches the path": Case(ALICE, NoRoute(), "GET", Reason.ROUTE_NOT_FOUND),
    "the path matches but the method does not": Case(
        ALICE, MethodNotAllowed(frozenset({"GET"})), "POST", Reason.METHOD_NOT_ALLOWED
    ),
    "anyone may fetch a public asset": Case(
        ANONYMOUS, at(PUBLIC, rest="app.css"), "GET", Reason.PUBLIC_ROUTE
    ),
    "a public route ignores an expired session": Case(
        Rejection(Reason.SESSION_INVALID), at(PUBLIC, rest="a"), "GET", Reason.PUBLIC_ROUTE
    ),
    "an anonymous caller must sign in": Case(
        ANONYMOUS,
        at(INVOICE, invoice_id="7"),
        "GET",
        Reason.AUTH_REQUIRED,
        [invoice(Owned("acme"))],
    ),
    "an expired session is refused, not treated as anonymous": Case(
        Rejection(Reason.SESSION_INVALID), at(LIST), "GET", Reason.SESSION_INVALID
    ),
    "alice reads an acme invoice": Case(
        ALICE,
        at(INVOICE, invoice_id="7"),
        "GET",
        Reason.ROLE_ALLOWED,
        [invoice(Owned("acme"))],
        tenant="acme",
    ),
    "alice reads a globex invoice (IDOR)": Case(
        ALICE,
        at(INVOICE, invoice_id="8"),
        "GET",
        Reason.TENANT_FOREIGN,
        [invoice(Owned("globex"), "8")],
    ),
    "alice reads an invoice that does not exist": Case(
        ALICE,
        at(INVOICE, invoice_id="99"),
        "GET",
        Reason.OBJECT_NOT_FOUND,
        [invoice(NotFound(), "99")],
    ),
    "the owner cannot be looked up: fail closed": Case(
        ALICE,
        at(INVOICE, invoice_id="7"),
        "GET",
        Reason.RESOLVER_FAILED,
        [invoice(ResolverFailed("timeout"))],
    ),
    "rita (readonly) may not update": Case(
        RITA, at(INVOICE, invoice_id="7"), "PUT", Reason.ROLE_FORBIDDEN, [invoice(Owned("acme"))]
    ),
    "rita (readonly) may not delete": Case(
        RITA, at(INVOICE, invoice_id="7"), "DELETE", Reason.ROLE_FORBIDDEN, [invoice(Owned("acme"))]
    ),
    "a custom method needs a role naming it": Case(
        MULTI,
        at(INVOICE, invoice_id="8"),
        "PROPFIND",
        Reason.ROLE_FORBIDDEN,
        [invoice(Owned("globex"))],
    ),
    "olga (global operator) reads any tenant": Case(
        OLGA,
        at(INVOICE, invoice_id="8"),
        "GET",
        Reason.ROLE_ALLOWED,
        [invoice(Owned("globex"))],
        tenant="globex",
    ),
    "olga (global operator) may not delete": Case(
        OLGA,
        at(INVOICE, invoice_id="8"),
        "DELETE",
        Reason.ROLE_FORBIDDEN,
        [invoice(Owned("globex"))],
    ),
    "a role is judged in the tenant owning the object": Case(
        MULTI,
        at(INVOICE, invoice_id="8"),
        "DELETE",
        Reason.ROLE_ALLOWED,
        [invoice(Owned("globex"))],
        tenant="globex",
    ),
    "the same user is only readonly in the other tenant": Case(
        MULTI,
        at(INVOICE, invoice_id="7"),
        "DELETE",
        Reason.ROLE_FORBIDDEN,
        [invoice(Owned("acme"))],
    ),
    "every object must pass, not just the first": Case(
        ALICE,
        at(INVOICE, invoice_id="7"),
        "PUT",
        Reason.TENANT_FOREIGN,
        [invoice(Owned("acme")), invoice(Owned("globex"), "8")],
    ),
    "a tenant named in the path is checked": Case(
        ALICE, at(TENANT_AREA, tenant="globex", rest="x"), "GET", Reason.TENANT_FOREIGN
    ),
    "the user's own tenant in the path is allowed": Case(
        ALICE, at(TENANT_AREA, tenant="acme", rest="x"), "GET", Reason.ROLE_ALLOWED, tenant="acme"
    ),
    "a list uses the active tenant": Case(
        ALICE, at(LIST), "GET", Reason.ROLE_ALLOWED, tenant="acme"
    ),
    "a global user with no tenant must pick one for a list": Case(
        OLGA, at(LIST), "GET", Reason.TENANT_UNSELECTED
    ),
    "an export needs a recent sign-in": Case(
        person(("acme", "admin"), auth_age=3600), at(EXPORT), "POST", Reason.STEP_UP_REQUIRED
    ),
    "an export right after sign-in is allowed": Case(
        person(("acme", "admin"), auth_age=30),
        at(EXPORT),
        "POST",
        Reason.ROLE_ALLOWED,
        tenant="acme",
    ),
    "no step-up is offered to someone who may not export at all": Case(
        person(("acme", "standard"), auth_age=3600), at(EXPORT), "POST", Reason.ROLE_FORBIDDEN
    ),
    "a malformed id refuses the request": Case(
        ALICE,
        at(INVOICE, invoice_id="7"),
        "PUT",
        Reason.ID_INVALID,
        Rejection(Reason.ID_INVALID, "body:/related"),
    ),
    "a websocket upgrade on a plain route is refused": Case(
        ALICE, at(LIST), "GET", Reason.METHOD_NOT_ALLOWED, websocket=True
    ),
    "a websocket upgrade on a feed route is judged like a read": Case(
        ALICE, at(FEED, tenant="acme"), "GET", Reason.ROLE_ALLOWED, tenant="acme", websocket=True
    ),
    "a blocked enumerator is refused": Case(
        ALICE,
        at(INVOICE, invoice_id="7"),
        "GET",
        Reason.ENUMERATION_BLOCKED,
        [invoice(Owned("acme"))],
        blocked=True,
    ),
    "a role the rules no longer define grants nothing": Case(
        GHOST_ROLE,
        at(INVOICE, invoice_id="7"),
        "GET",
        Reason.ROLE_FORBIDDEN,
        [invoice(Owned("acme"))],
    ),
    "no role anywhere allows the action: refused whoever owns the object": Case(
        RITA, at(INVOICE, invoice_id="8"), "PUT", Reason.ROLE_FORBIDDEN, [invoice(NotFound(), "8")]
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision(case: Case) -> None:
    decision = Policy(ROLES).decide(
        principal=case.principal,  # type: ignore[arg-type]
        match=case.match,
        method=case.method,
        objects=case.objects,
        now=NOW,
        websocket=case.websocket,
        blocked=case.blocked,
    )
    assert decision.reason == case.expect, decision.explain
    assert decision.allowed == (case.expect in (Reason.ROLE_ALLOWED, Reason.PUBLIC_ROUTE))
    if case.tenant is not None:
        assert decision.tenant == case.tenant
    assert decision.explain, "every decision explains itself"


def test_allowed_decision_names_roles_and_reason_chain() -> None:
    decision = Policy(ROLES).decide(
        principal=MULTI,
        match=at(INVOICE, invoice_id="8"),
        method="DELETE",
        objects=[invoice(Owned("globex"), "8")],
        now=NOW,
    )
    assert isinstance(decision, Decision)
    assert decision.roles == ("admin",)
    assert decision.action == "delete"
    chain = " | ".join(decision.explain)
    assert "route 'invoice' matched DELETE" in chain
    assert "invoice 8 (path.invoice_id) is owned by 'globex'" in chain
    assert "admin in 'globex' allows 'delete'" in chain


def test_denial_names_the_missing_grant() -> None:
    decision = Policy(ROLES).decide(
        principal=ALICE,
        match=at(INVOICE, invoice_id="8"),
        method="GET",
        objects=[invoice(Owned("globex"), "8")],
        now=NOW,
    )
    assert not decision.allowed
    assert "holds no role in 'globex'; none allows 'read'" in decision.explain


SCREENED = {
    "no route": (ALICE, NoRoute(), "GET", False, Reason.ROUTE_NOT_FOUND),
    "anonymous on an object route": (
        ANONYMOUS,
        at(INVOICE, invoice_id="7"),
        "GET",
        False,
        Reason.AUTH_REQUIRED,
    ),
    "blocked id guesser": (
        ALICE,
        at(INVOICE, invoice_id="7"),
        "GET",
        True,
        Reason.ENUMERATION_BLOCKED,
    ),
    "readonly caller writing": (
        RITA,
        at(INVOICE, invoice_id="7"),
        "PUT",
        False,
        Reason.ROLE_FORBIDDEN,
    ),
    "global operator deleting": (
        OLGA,
        at(INVOICE, invoice_id="7"),
        "DELETE",
        False,
        Reason.ROLE_FORBIDDEN,
    ),
    "a role the rules no longer define": (
        GHOST_ROLE,
        at(INVOICE, invoice_id="7"),
        "GET",
        False,
        Reason.ROLE_FORBIDDEN,
    ),
    "public asset": (ANONYMOUS, at(PUBLIC, rest="a.css"), "GET", False, Reason.PUBLIC_ROUTE),
    "a caller some role of whom may act: owners decide": (
        MULTI,
        at(INVOICE, invoice_id="7"),
        "DELETE",
        False,
        None,
    ),
    "a route without objects is left to decide": (RITA, at(LIST), "POST", False, None),
}


@pytest.mark.parametrize(
    ("principal", "match", "method", "blocked", "expect"), SCREENED.values(), ids=SCREENED.keys()
)
def test_screen_refuses_what_no_owner_could_allow(
    principal: object, match: MatchResult, method: str, blocked: bool, expect: Reason | None
) -> None:
    policy = Policy(ROLES)
    screened = policy.screen(
        principal=principal,  # type: ignore[arg-type]
        match=match,
        method=method,
        blocked=blocked,
    )
    assert (screened.reason if screened is not None else None) == expect
    if screened is not None:
        decided = policy.decide(
            principal=principal,  # type: ignore[arg-type]
            match=match,
            method=method,
            objects=[invoice(Owned("acme"))],
            now=NOW,
            blocked=blocked,
        )
        assert decided == screened, "decide gives the very answer screen gave"


def test_a_long_list_of_objects_is_summed_up_in_the_reason_chain() -> None:
    objects = [invoice(Owned("acme"), str(n)) for n in range(1, 100, 2)]
    decision = Policy(ROLES).decide(
        principal=ALICE, match=at(INVOICE, invoice_id="1"), method="PUT", objects=objects, now=NOW
    )
    assert decision.allowed
    owned = [step for step in decision.explain if "is owned by" in step]
    assert len(owned) == 20
    assert "30 more objects, owned by 'acme'" in decision.explain
