"""Observe mode: what the rules accept, which routes observe, and which refusals it overrules."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from gateway.config.lints import OBSERVE_ENDED, OBSERVING, lint
from gateway.config.loader import check_rules_text
from gateway.config.observe_window import MAX_OBSERVE_SECONDS, stamp
from gateway.model import (
    ANONYMOUS,
    AuditEntry,
    AuthMethod,
    Decision,
    Membership,
    NoRoute,
    Principal,
    Reason,
    Rejection,
    Route,
    RouteMatch,
    RuleSet,
)
from gateway.observe import (
    OBSERVABLE,
    banner,
    forwarded_anyway,
    is_observed,
    observed_record,
    open_windows,
    simulated,
)

NOW = time.time()
HOUR = 3600.0


def rules(upstream: str = "", *routes: str) -> str:
    """Rules with the upstream ``app`` (``upstream``: its extra keys) and one route per
    item of ``routes`` (its extra keys), ``r0``, ``r1``…"""
    body = "".join(
        f"  - {{name: r{n}, match: {{path: /r{n}}}, upstream: app{', ' * bool(extra)}{extra}}}\n"
        for n, extra in enumerate(routes or ("",))
    )
    return (
        "version: 1\n"
        f'upstreams:\n  app: {{url: "http://127.0.0.1:9"{", " + upstream if upstream else ""}}}\n'
        "roles: {reader: {can: [read]}}\n"
        f"routes:\n{body}"
    )


def load(text: str) -> tuple[RuleSet | None, list[str]]:
    ruleset, problems = check_rules_text(text, source="rules.yaml", env={})
    return ruleset, [str(p) for p in problems]


def in_(seconds: float) -> str:
    return stamp(time.time() + seconds)


@pytest.mark.parametrize(
    ("upstream", "route", "field"),
    [
        ("mode: observe", "", "upstreams.app.mode"),
        ("", "mode: observe", "routes[0].mode"),
    ],
)
def test_observe_without_an_expiry_is_refused_naming_where(
    upstream: str, route: str, field: str
) -> None:
    ruleset, problems = load(rules(upstream, route))
    assert ruleset is None
    (problem,) = problems
    owner = "upstream 'app'" if upstream else "route 'r0'"
    assert problem.startswith("rules.yaml:")
    assert f"{field}: {owner} is in mode: observe without observe_until" in problem
    assert "at most 30 days ahead" in problem


def test_an_expiry_more_than_30_days_ahead_is_refused() -> None:
    far = in_(MAX_OBSERVE_SECONDS + HOUR)
    ruleset, problems = load(rules(f"mode: observe, observe_until: {far}"))
    assert ruleset is None
    assert "more than 30 days ahead — observe mode is bounded" in problems[0]
    ruleset, problems = load(rules("", f"mode: observe, observe_until: {far}"))
    assert ruleset is None and "routes[0].observe_until: route 'r0'" in problems[0]


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("2026-12-01T18:00:00", "a time with its zone"),
        ("next tuesday", "an ISO 8601 time with its zone"),
        ("2026-12-01", "a time with its zone"),
    ],
)
def test_an_expiry_must_be_a_time_with_its_zone(until: str, expected: str) -> None:
    ruleset, problems = load(rules("", f"mode: observe, observe_until: {until}"))
    assert ruleset is None
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("where", "until", "field"),
    [
        ("upstream", "1780000000", "upstreams.app.observe_until"),
        ("route", "1780000000", "routes[0].observe_until"),
        ("route", "1780000000.5", "routes[0].observe_until"),
        ("route", "'1780000000'", "routes[0].observe_until"),
        ("route", "-5", "routes[0].observe_until"),
        ("route", "1780000000000", "routes[0].observe_until"),
    ],
    ids=[
        "a number on an upstream",
        "a number on a route",
        "a fraction",
        "a quoted number",
        "a negative number",
        "milliseconds",
    ],
)
def test_an_expiry_given_as_a_unix_timestamp_is_refused_saying_what_to_write(
    where: str, until: str, field: str
) -> None:
    """pydantic alone reads a number as seconds (or milliseconds) since 1970 in UTC: the
    window would end at a time nobody wrote down."""
    window = f"mode: observe, observe_until: {until}"
    text = rules(window) if where == "upstream" else rules("", window)
    ruleset, problems = load(text)
    assert ruleset is None
    (problem,) = problems
    assert problem.startswith("rules.yaml:")
    assert f"{field}: observe_until is a Unix timestamp (" in problem
    assert "write an ISO 8601 time with its zone instead, such as 2026-12-01T18:00:00Z" in problem


def test_a_timestamp_refusal_shows_the_time_the_number_would_have_meant() -> None:
    ruleset, problems = load(rules("", "mode: observe, observe_until: 1780000000"))
    assert ruleset is None
    assert problems[0].endswith("1780000000 would be 2026-05-28T20:26:40Z")


@pytest.mark.parametrize(
    "until",
    [in_(HOUR), f"'{in_(HOUR)}'", in_(HOUR).replace("Z", "+02:00").replace("T", " ")],
    ids=["a YAML time", "a quoted string", "another zone, a space for the T"],
)
def test_a_written_out_expiry_with_its_zone_loads(until: str) -> None:
    ruleset, problems = load(rules("", f"mode: observe, observe_until: {until}"))
    assert problems == [] and ruleset is not None
    assert ruleset.routes[0].observe_until is not None


def test_an_expiry_without_observe_mode_is_refused() -> None:
    ruleset, problems = load(rules("", f"observe_until: {in_(HOUR)}"))
    assert ruleset is None
    assert "has observe_until but is not in mode: observe" in problems[0]


def test_routes_inherit_their_upstreams_window_unless_they_say_otherwise() -> None:
    upstream_until, own_until = in_(2 * HOUR), in_(HOUR)
    ruleset, problems = load(
        rules(
            f"mode: observe, observe_until: {upstream_until}",
            "",
            "mode: enforce",
            f"mode: observe, observe_until: {own_until}",
        )
    )
    assert problems == [] and ruleset is not None
    inherited, enforcing, own = ruleset.routes
    assert inherited.observe_until is not None
    assert stamp(inherited.observe_until) == upstream_until
    assert enforcing.observe_until is None
    assert own.observe_until is not None and stamp(own.observe_until) == own_until


def test_a_past_expiry_loads_enforcing_and_rules_check_warns() -> None:
    ruleset, problems = load(
        rules("", "mode: observe, observe_until: 2020-01-01T00:00:00Z", "mode: enforce")
    )
    assert problems == [] and ruleset is not None
    assert open_windows(ruleset.routes, time.time()) == []
    codes = [(item.route, item.code) for item in lint(ruleset)]
    assert ("r0", OBSERVE_ENDED) in codes
    assert ("r1", OBSERVE_ENDED) not in codes and ("r1", OBSERVING) not in codes


def test_rules_check_warns_of_every_open_window_with_its_expiry() -> None:
    until = in_(3 * HOUR)
    ruleset, _ = load(rules(f"mode: observe, observe_until: {until}", "", ""))
    assert ruleset is not None
    found = [item for item in lint(ruleset) if item.code == OBSERVING]
    assert [item.route for item in found] == ["r0", "r1"]
    assert all(until in item.message and "enforces by itself" in item.message for item in found)


# ---------------------------------------------------------------- the overruling

ALICE = Principal(
    "1", "alice@acme.test", (Membership("acme", "standard"),), AuthMethod.SESSION, NOW,
    active_tenant="acme",
)  # fmt: skip
OPEN = RouteMatch(Route("read", "/x/{id}", None, "app", observe_until=NOW + HOUR), {"id": "8"})
CLOSED = RouteMatch(Route("read", "/x/{id}", None, "app", observe_until=NOW - 1), {"id": "8"})
ENFORCING = RouteMatch(Route("read", "/x/{id}", None, "app"), {"id": "8"})


def refusal(reason: Reason) -> Decision:
    return Decision(
        False, reason, action="read", tenant="globex", explain=("owned by 'globex'",), detail="d"
    )


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_only_authorization_refusals_of_a_signed_in_caller_are_overruled(reason: Reason) -> None:
    forwarded = forwarded_anyway(ALICE, OPEN, refusal(reason), NOW)
    if reason not in OBSERVABLE:
        assert forwarded is None
        return
    assert forwarded is not None and forwarded.allowed
    assert forwarded.reason is reason, "the rules' reason stays: never mistaken for a grant"
    assert forwarded.roles == () and forwarded.tenant == "acme"
    assert is_observed(forwarded) and simulated(forwarded) == "observed"
    assert "observe mode until" in forwarded.explain[-1]


def test_overruled_reasons_are_only_those_that_judge_the_caller() -> None:
    never = {
        Reason.AUTH_REQUIRED,
        Reason.SESSION_INVALID,
        Reason.CREDENTIAL_INVALID,
        Reason.ENUMERATION_BLOCKED,
        Reason.RESOLVER_FAILED,
        Reason.IDS_TOO_MANY,
        Reason.ID_INVALID,
        Reason.STEP_UP_REQUIRED,
        Reason.MFA_REQUIRED,
        Reason.ROUTE_NOT_FOUND,
        Reason.METHOD_NOT_ALLOWED,
        Reason.RATE_LIMITED,
        Reason.IN_FLIGHT_LIMIT,
        Reason.BODY_TOO_LARGE,
        Reason.TARGET_AMBIGUOUS,
        Reason.FILE_INFECTED,
    }
    assert not never & OBSERVABLE


@pytest.mark.parametrize(
    ("caller", "match", "now"),
    [
        (ANONYMOUS, OPEN, NOW),
        (Rejection(Reason.SESSION_INVALID), OPEN, NOW),
        (ALICE, CLOSED, NOW),
        (ALICE, OPEN, NOW + HOUR),  # the very second the window ends, it enforces
        (ALICE, ENFORCING, NOW),
        (ALICE, NoRoute(), NOW),
        (replace(ALICE, auth_method=AuthMethod.API_KEY), OPEN, NOW),  # a program, not a person
    ],
    ids=["anonymous", "bad-credential", "closed", "at-expiry", "enforcing", "no-route", "api-key"],
)
def test_nothing_else_is_overruled(caller: object, match: object, now: float) -> None:
    decision = refusal(Reason.TENANT_FOREIGN)
    assert forwarded_anyway(caller, match, decision, now) is None  # type: ignore[arg-type]


def test_a_websocket_upgrade_is_never_overruled_it_would_outlive_the_window() -> None:
    decision = refusal(Reason.TENANT_FOREIGN)
    assert forwarded_anyway(ALICE, OPEN, decision, NOW, websocket=True) is None


def test_an_allowed_request_is_left_alone() -> None:
    allowed = Decision(True, Reason.ROLE_ALLOWED, roles=("standard",), tenant="acme")
    assert forwarded_anyway(ALICE, OPEN, allowed, NOW) is None
    assert not is_observed(allowed) and simulated(allowed) == "allow"


def test_the_audit_record_says_observed_and_what_would_have_been_decided() -> None:
    entry = AuditEntry(kind="request", decision="deny", reason="tenant-foreign", data={})
    observed_record(entry, OPEN)
    assert entry.decision == "observed" and entry.reason == "tenant-foreign"
    assert entry.data == {
        "would_decide": "deny",
        "forwarded": True,
        "observe_until": stamp(NOW + HOUR),
    }


def test_the_banner_groups_open_windows_by_expiry_soonest_first() -> None:
    routes = [Route(f"r{n:02}", f"/r{n}", None, "app", observe_until=NOW + HOUR) for n in range(15)]
    routes.append(Route("later", "/l", None, "app", observe_until=NOW + 2 * HOUR))
    routes.append(Route("public", "/p", None, "app", public=True, observe_until=NOW + HOUR))
    routes.append(Route("done", "/d", None, "app", observe_until=NOW - HOUR))
    shown = banner(reversed(routes), NOW)
    assert shown is not None
    first, second = shown.lines
    assert first.until_text == stamp(NOW + HOUR) and first.until_shown.endswith(" UTC")
    assert first.routes[:2] == ("r00", "r01") and len(first.routes) == 12 and first.more == 3
    assert (second.routes, second.more) == (("later",), 0)
    assert banner(routes[-2:], NOW) is None
