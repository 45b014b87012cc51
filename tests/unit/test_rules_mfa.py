"""The rules keys ``mfa`` (route, role, top level): compiled into the rule set, every
mistake reported with its line and what is wrong."""

from __future__ import annotations

from gateway.config.loader import check_rules_text
from gateway.model import RuleSet

RULES = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9001"}
roles:
  standard: {can: [read, write]}
  payer: {can: [read, pay], mfa: required}
mfa:
  tenants: [bank, acme-treasury]
routes:
  - name: payments
    match: {path: /payments}
    upstream: app
    mfa: required
  - name: notes
    match: {path: /notes}
    upstream: app
"""


def compiled(text: str) -> RuleSet:
    ruleset, found = check_rules_text(text, source="r.yaml", env={})
    assert found == [] and ruleset is not None
    return ruleset


def problems(text: str) -> list[str]:
    ruleset, found = check_rules_text(text, source="r.yaml", env={})
    assert ruleset is None
    return [str(p) for p in found]


def test_route_role_and_tenants_compile() -> None:
    rules = compiled(RULES)
    assert rules.mfa_tenants == frozenset({"bank", "acme-treasury"})
    assert rules.roles["payer"].mfa_required and not rules.roles["standard"].mfa_required
    by_name = {route.name: route for route in rules.routes}
    assert by_name["payments"].mfa_required and not by_name["notes"].mfa_required


def test_without_mfa_nobody_is_asked() -> None:
    text = RULES.replace("mfa:\n  tenants: [bank, acme-treasury]\n", "")
    text = text.replace(", mfa: required}", "}").replace("    mfa: required\n", "")
    rules = compiled(text)
    assert rules.mfa_tenants == frozenset()
    assert not any(role.mfa_required for role in rules.roles.values())
    assert not any(route.mfa_required for route in rules.routes)


def test_a_word_other_than_required_is_refused_on_its_line() -> None:
    found = problems(RULES.replace("    mfa: required\n", "    mfa: yes please\n"))
    assert len(found) == 1
    assert found[0].startswith("r.yaml:13: routes[0].mfa:"), found
    assert "'required'" in found[0]


def test_a_role_with_a_misspelt_value_is_refused() -> None:
    found = problems(RULES.replace("mfa: required}", "mfa: requried}"))
    assert any(p.startswith("r.yaml:6: roles.payer.mfa:") for p in found), found


def test_tenants_must_be_a_non_empty_list_of_tenant_ids() -> None:
    assert any("mfa.tenants" in p for p in problems(RULES.replace("[bank, acme-treasury]", "[]")))
    found = problems(RULES.replace("[bank, acme-treasury]", "[Bank Corp]"))
    assert any("mfa.tenants[0]" in p for p in found), found


def test_an_unknown_key_under_mfa_is_refused() -> None:
    found = problems(RULES.replace("  tenants: [bank", "  tenant: [bank"))
    assert any(p.startswith("r.yaml:8: mfa.tenant:") for p in found), found


def test_a_public_route_cannot_require_mfa() -> None:
    text = RULES.replace("    mfa: required\n", "    public: true\n    mfa: required\n")
    found = problems(text)
    assert len(found) == 1 and "routes[0].mfa:" in found[0] and "public" in found[0], found


def test_one_broken_route_does_not_hide_a_broken_mfa_block() -> None:
    text = RULES.replace("[bank, acme-treasury]", "[]").replace(
        "upstream: app\n    mfa", "upstream: nope\n    mfa"
    )
    found = problems(text)
    assert any("mfa.tenants" in p for p in found), found
    assert any("unknown upstream 'nope'" in p for p in found), found
