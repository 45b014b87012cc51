"""``rules simulate`` reads query ids, body ids and method overrides as live traffic does."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.admin.explain import explain, principal_for
from gateway.context import GATEWAY
from gateway.model import Decision, Reason
from tests.support.victim import guarded_victim

FORM = "application/x-www-form-urlencoded"
CASES = {
    "a foreign id in the query": (
        "GET",
        "/search/things?invoice_id=4",
        b"",
        FORM,
        Reason.TENANT_FOREIGN,
    ),
    "another spelling in the query": (
        "GET",
        "/search/things?Invoice_Id=4",
        b"",
        FORM,
        Reason.PARAM_AMBIGUOUS,
    ),
    "a foreign id in a JSON body": (
        "POST",
        "/json/things",
        b'{"thing": 4}',
        "application/json",
        Reason.TENANT_FOREIGN,
    ),
    "an own id in a JSON body": (
        "POST",
        "/json/things",
        b'{"thing": 3}',
        "application/json",
        Reason.ROLE_ALLOWED,
    ),
    "a POST overridden to DELETE": (
        "POST",
        "/things/3",
        b"_method=DELETE",
        FORM,
        Reason.ROLE_FORBIDDEN,
    ),
    "a UTF-16 form": (
        "POST",
        "/form/things",
        "thing=4".encode("utf-16-le"),
        f"{FORM}; charset=utf-16-le",
        Reason.BODY_UNSUPPORTED,
    ),
}


@pytest.mark.parametrize(
    ("method", "target", "body", "ctype", "reason"), list(CASES.values()), ids=list(CASES)
)
async def test_simulate_decides_as_the_pipeline_does(
    tmp_path: Path, method: str, target: str, body: bytes, ctype: str, reason: Reason
) -> None:
    async with guarded_victim(tmp_path) as (stack, _):
        gw = stack.app[GATEWAY]
        alice = await principal_for(gw, "alice@acme.test")
        assert alice is not None
        explained = await explain(
            gw, principal=alice, method=method, target=target, body=body, content_type=ctype
        )
        assert explained.decision.reason is reason, explained.steps
        if reason is Reason.ROLE_ALLOWED:
            assert isinstance(explained.decision, Decision) and explained.decision.allowed
