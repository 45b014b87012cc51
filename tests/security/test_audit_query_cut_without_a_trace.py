"""Attack: hide a parameter from the audit trail behind 2 KiB of padding.

The audit kept only the first 2,048 characters of the query and did not say it had
cut anything, so ``?pad=…&tenant=globex`` was recorded as the padding alone. The
record now keeps the whole query (the ingress refuses targets over 8 KiB); a value it
must shorten carries a flag, its length and the SHA-256 of the whole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gateway.audit import MAX_QUERY, MAX_USER_AGENT, request_entry
from gateway.model import ANONYMOUS, Admitted, Decision, NoRoute, Reason, Target
from tests.support.stack import running_stack


@pytest.mark.parametrize(
    "padding", [2048, 4000, 7000], ids=["just past 2 KiB", "at 4 KB", "near the 8 KiB limit"]
)
async def test_a_parameter_after_long_padding_is_in_the_audit_record(
    tmp_path: Path, padding: int
) -> None:
    query = "pad=" + "a" * padding + "&tenant=globex&export=all"
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get(
            f"/api/invoices/1?{query}", headers=stack.cookie("alice@acme.test")
        )
        await response.read()
        [row, *_] = await stack.audit_rows(response.headers["X-Request-Id"])
    data = json.loads(row["data"])
    assert data["query"] == query
    assert "query_truncated" not in data


def entry_for(query: str, user_agent: str = "curl/8") -> dict[str, object]:
    made = request_entry(
        admitted=Admitted(Target("/x", query), "r" * 32, "127.0.0.1", "http"),
        method="GET",
        user_agent=user_agent,
        principal=ANONYMOUS,
        match=NoRoute(),
        decision=Decision(allowed=False, reason=Reason.ROUTE_NOT_FOUND),
        upstream="",
    )
    return made.data


@pytest.mark.parametrize("extra", [1, 5000], ids=["by one character", "by far"])
def test_a_query_over_8_kib_is_flagged_with_the_digest_of_the_whole(extra: int) -> None:
    query = "q=" + "b" * (MAX_QUERY + extra - 2)
    data = entry_for(query)
    assert data["query"] == query[:MAX_QUERY]
    assert data["query_truncated"] is True
    assert data["query_length"] == len(query)
    assert data["query_sha256"] == hashlib.sha256(query.encode()).hexdigest()


def test_a_query_of_exactly_8_kib_is_kept_whole() -> None:
    query = "q=" + "c" * (MAX_QUERY - 2)
    data = entry_for(query)
    assert data["query"] == query
    assert "query_truncated" not in data


def test_a_long_user_agent_is_cut_with_a_flag_not_silently() -> None:
    agent = "Mozilla/5.0 " + "x" * 2000
    data = entry_for("", user_agent=agent)
    assert data["user_agent"] == agent[:MAX_USER_AGENT]
    assert data["user_agent_truncated"] is True
    assert data["user_agent_sha256"] == hashlib.sha256(agent.encode()).hexdigest()
