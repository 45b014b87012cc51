"""Decision table for ``mfa: required`` (route, role, tenant): who must have shown a
second factor, and what a caller without one learns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from gateway.model import (
    AuthMethod,
    IdSource,
    IdSpec,
    Membership,
    ObjectRef,
    Owned,
    Principal,
    Reason,
    ResolvedRef,
    RoleDef,
    Route,
    RouteMatch,
)
from gateway.policy import Policy

NOW = 1_800_000_000.0

ROLES = {
    "readonly": RoleDef("readonly", frozenset({"read"})),
    "standard": RoleDef("standard", frozenset({"read", "write"})),
    "payer": RoleDef("payer", frozenset({"read", "pay"}), mfa_required=True),
    "operator": RoleDef("operator", frozenset({"read"}), scope_global=True),
}
POLICY = Policy(ROLES, mfa_tenants=["bank"])

PAYMENTS = Route(
    name="payments",
    pattern="/api/payments",
    methods=frozenset({"GET", "POST"}),
    upstream="ledger",
    mfa_required=True,
)
LIST = Route(name="list", pattern="/api/invoices", methods=frozenset({"GET"}), upstream="ledger")
NOTES = Route(name="notes", pattern="/api/notes", methods=None, upstream="ledger")
PAY = Route(name="pay", pattern="/api/pay", methods=None, upstream="ledger", action="pay")
INVOICE = Route(
    name="invoice",
    pattern="/api/invoices/{invoice_id:int}",
    methods=frozenset({"GET"}),
    upstream="ledger",
    ids=(IdSpec("invoice", IdSource.PATH, "invoice_id", "int"),),
)
EXPORT = replace(PAYMENTS, name="export", step_up_seconds=600.0)


def caller(
    *grants: tuple[str, str],
    mfa: bool = False,
    method: AuthMethod = AuthMethod.MAGIC_LINK,
    auth_age: float = 60.0,
) -> Principal:
    tenants = [t for t, _ in grants if t != "*"]
    return Principal(
        user_id="1",
        email="p@example.test",
        memberships=tuple(Membership(t, r) for t, r in grants),
        auth_method=method,
        auth_time=NOW - auth_age,
        session_hash=None if method in (AuthMethod.API_KEY, AuthMethod.BEARER_JWT) else "ab" * 32,
        active_tenant=tenants[0] if tenants else None,
        mfa_time=NOW - 30 if mfa else None,
    )


def owned_by(tenant: str) -> list[ResolvedRef]:
    return [ResolvedRef(ObjectRef("invoice", "7", "path.invoice_id"), Owned(tenant))]


@dataclass
class Case:
    principal: Principal
    route: Route
    method: str
    expect: Reason
    objects: list[ResolvedRef] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)


CASES = {
    "an MFA route refuses a one-factor session": Case(
        caller(("acme", "standard")), PAYMENTS, "GET", Reason.MFA_REQUIRED
    ),
    "an MFA route admits a session that showed a second factor": Case(
        caller(("acme", "standard"), mfa=True), PAYMENTS, "GET", Reason.ROLE_ALLOWED
    ),
    "an MFA route refuses an API key": Case(
        caller(("acme", "standard"), method=AuthMethod.API_KEY),
        PAYMENTS,
        "GET",
        Reason.MFA_REQUIRED,
    ),
    "an MFA route refuses a bearer token": Case(
        caller(("acme", "standard"), method=AuthMethod.BEARER_JWT),
        PAYMENTS,
        "GET",
        Reason.MFA_REQUIRED,
    ),
    "an API key with a second-factor time still cannot pass an MFA route": Case(
        caller(("acme", "standard"), method=AuthMethod.API_KEY, mfa=True),
        PAYMENTS,
        "GET",
        Reason.MFA_REQUIRED,
    ),
    "nobody without access learns the route needs MFA": Case(
        caller(("acme", "readonly")), PAYMENTS, "POST", Reason.ROLE_FORBIDDEN
    ),
    "a role with mfa refuses a one-factor session it grants": Case(
        caller(("acme", "payer")), PAY, "POST", Reason.MFA_REQUIRED
    ),
    "a role with mfa admits a session with a second factor": Case(
        caller(("acme", "payer"), mfa=True), PAY, "POST", Reason.ROLE_ALLOWED
    ),
    "an MFA role that does not grant the action asks for nothing": Case(
        caller(("acme", "payer"), ("acme", "standard")), NOTES, "POST", Reason.ROLE_ALLOWED
    ),
    "an MFA tenant refuses a one-factor session": Case(
        caller(("bank", "standard")), LIST, "GET", Reason.MFA_REQUIRED
    ),
    "an MFA tenant admits a session with a second factor": Case(
        caller(("bank", "standard"), mfa=True), LIST, "GET", Reason.ROLE_ALLOWED
    ),
    "other tenants of the same person ask for nothing": Case(
        caller(("acme", "standard"), ("bank", "standard")), LIST, "GET", Reason.ROLE_ALLOWED
    ),
    "an object owned by an MFA tenant needs the second factor": Case(
        caller(("acme", "standard"), ("bank", "standard")),
        INVOICE,
        "GET",
        Reason.MFA_REQUIRED,
        owned_by("bank"),
        {"invoice_id": "7"},
    ),
    "a global operator acting in an MFA tenant needs it too": Case(
        caller(("*", "operator")),
        INVOICE,
        "GET",
        Reason.MFA_REQUIRED,
        owned_by("bank"),
        {"invoice_id": "7"},
    ),
    "a foreign object in an MFA tenant stays foreign (no MFA hint)": Case(
        caller(("acme", "standard")),
        INVOICE,
        "GET",
        Reason.TENANT_FOREIGN,
        owned_by("bank"),
        {"invoice_id": "7"},
    ),
    "an API key of an MFA tenant is judged by its grant alone": Case(
        caller(("bank", "standard"), method=AuthMethod.API_KEY), LIST, "GET", Reason.ROLE_ALLOWED
    ),
    "a second factor is asked before a stale sign-in": Case(
        caller(("acme", "standard"), auth_age=3600), EXPORT, "GET", Reason.MFA_REQUIRED
    ),
    "a second factor long ago does not replace a recent sign-in": Case(
        caller(("acme", "standard"), auth_age=3600, mfa=True),
        EXPORT,
        "GET",
        Reason.STEP_UP_REQUIRED,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision(case: Case) -> None:
    decision = POLICY.decide(
        principal=case.principal,
        match=RouteMatch(case.route, case.params),
        method=case.method,
        objects=case.objects,
        now=NOW,
    )
    assert decision.reason is case.expect, decision.explain
    assert decision.allowed is (case.expect is Reason.ROLE_ALLOWED)


def test_the_reason_chain_says_what_asked_for_the_second_factor() -> None:
    decision = POLICY.decide(
        principal=caller(("bank", "payer")),
        match=RouteMatch(replace(PAY, mfa_required=True), {}),
        method="POST",
        now=NOW,
    )
    assert decision.reason is Reason.MFA_REQUIRED
    assert decision.tenant == "bank"
    chain = decision.explain
    assert "route 'pay' requires a second factor" in chain
    assert "role 'payer' requires a second factor" in chain
    assert "tenant 'bank' requires a second factor" in chain
    assert "no second factor was shown in this session" in chain
    assert chain[-1] == "denied: mfa-required"


def test_an_api_key_is_told_it_cannot_show_a_second_factor() -> None:
    decision = POLICY.decide(
        principal=caller(("acme", "standard"), method=AuthMethod.API_KEY),
        match=RouteMatch(PAYMENTS, {}),
        method="GET",
        now=NOW,
    )
    assert "a api-key credential cannot show a second factor" in decision.explain


def test_an_allowed_mfa_request_says_the_factor_was_shown() -> None:
    decision = POLICY.decide(
        principal=caller(("bank", "standard"), mfa=True),
        match=RouteMatch(LIST, {}),
        method="GET",
        now=NOW,
    )
    assert decision.allowed
    assert "a second factor was shown in this session" in decision.explain


def test_without_mfa_rules_nothing_changes() -> None:
    decision = Policy(ROLES).decide(
        principal=caller(("bank", "standard")), match=RouteMatch(LIST, {}), method="GET", now=NOW
    )
    assert decision.allowed


SIGN_IN = {
    "a member of an MFA tenant": ([("bank", "readonly")], True),
    "a holder of an MFA role": ([("acme", "payer")], True),
    "a global grant reaches the MFA tenants": ([("*", "operator")], True),
    "plain members elsewhere": ([("acme", "standard"), ("globex", "readonly")], False),
    "a role the rules no longer define": ([("acme", "retired")], False),
    "nobody without memberships": ([], False),
}


@pytest.mark.parametrize(("grants", "asked"), SIGN_IN.values(), ids=SIGN_IN.keys())
def test_who_is_asked_for_a_second_factor_at_sign_in(
    grants: list[tuple[str, str]], asked: bool
) -> None:
    assert POLICY.requires_mfa([Membership(t, r) for t, r in grants]) is asked


def test_a_global_grant_asks_nothing_where_no_tenant_requires_mfa() -> None:
    assert not Policy(ROLES).requires_mfa([Membership("*", "operator")])
