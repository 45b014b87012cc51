"""The admin service's audit filter: what each question becomes, for whom, or why not."""

from __future__ import annotations

import pytest

from gateway.admin.audit_reading import AuditQuestion, audit_filter
from gateway.admin.service import Admin, AdminError
from gateway.store.audit_log import AuditFilter

ROOT = Admin("root", superadmin=True)
CAROL = Admin("carol@acme.test", tenants=frozenset({"acme"}))
ACME = frozenset({"acme"})


@pytest.mark.parametrize(
    ("actor", "question", "expected"),
    [
        (ROOT, AuditQuestion(), AuditFilter()),
        (CAROL, AuditQuestion(), AuditFilter(tenants=ACME)),
        (
            CAROL,
            AuditQuestion(user="bob@globex.test", tenant="acme", decision="deny", kind="request"),
            AuditFilter(
                actor="bob@globex.test",
                tenant="acme",
                decision="deny",
                kind="request",
                tenants=ACME,
            ),
        ),
        (
            ROOT,
            AuditQuestion(since="2026-11-29T04:00:00Z", until="1795928400", request_id="r1"),
            AuditFilter(since=1795924800.0, until=1795928400.0, request_id="r1"),
        ),
        (ROOT, AuditQuestion(since="2026-11-29T04:00"), AuditFilter(since=1795924800.0)),
        (
            CAROL,
            AuditQuestion(tenant="globex"),
            AdminError("carol@acme.test does not administer tenant 'globex'", "forbidden"),
        ),
        (
            ROOT,
            AuditQuestion(until="tomorrow"),
            AdminError("to: 'tomorrow' is neither ISO-8601 nor Unix seconds"),
        ),
        (ROOT, AuditQuestion(since="inf"), AdminError("from: 'inf' is not a finite time")),
        (
            ROOT,
            AuditQuestion(decision="maybe"),
            AdminError("decision: 'maybe' is neither allow nor deny"),
        ),
        (
            ROOT,
            AuditQuestion(route="x" * 321),
            AdminError("route: at most 320 characters, and no NUL character"),
        ),
    ],
    ids=[
        "a superadmin asking nothing reads every row",
        "a tenant admin asking nothing reads their tenants' rows",
        "a tenant admin's filters stay within their tenants",
        "times are ISO-8601 with an offset or Unix seconds",
        "a time without an offset is UTC",
        "a tenant admin asking for another tenant is forbidden",
        "a time that is not a time is refused by name",
        "an infinite time is refused",
        "a decision is allow or deny",
        "an overlong filter is refused",
    ],
)
def test_a_question_becomes_a_store_filter_or_a_refusal(
    actor: Admin, question: AuditQuestion, expected: AuditFilter | AdminError
) -> None:
    assert audit_filter(actor, question) == expected


def test_the_question_asked_is_named_as_the_api_and_the_ui_name_it() -> None:
    question = AuditQuestion(user="a", since="1", until="2", request_id="r", decision="deny")
    assert question.asked() == {
        "user": "a",
        "decision": "deny",
        "request": "r",
        "from": "1",
        "to": "2",
    }
