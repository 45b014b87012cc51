"""The audit pages over HTTP: a tenant admin who changes ids or filters in the address
gets 404/403 and reads nothing, bad values are a 4xx page, every visit is audited."""

from __future__ import annotations

from pathlib import Path

from tests.support.audit_traffic import make_traffic
from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
ADMIN = "admin@example.test"
CAROL = "carol@acme.test"


async def ui_rows_after(stack: Stack, seq: int) -> list[tuple[str, str, int]]:
    return [
        (row["reason"], row["path"], row["data"]["status"])
        for row in await stack.events("admin-ui")
        if row["seq"] > seq
    ]


async def test_another_tenants_record_is_not_found_and_its_filter_forbidden(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await make_traffic(stack)
        requests = await stack.events("request")
        globex = next(row for row in requests if row["tenant"] == "globex")
        acme = next(row for row in requests if row["tenant"] == "acme")
        start = max(row["seq"] for row in await stack.events("outcome"))

        foreign = await stack.client.get(f"{UI}/audit/{globex['seq']}", headers=stack.cookie(CAROL))
        assert foreign.status == 404
        assert globex["request_id"] not in await foreign.text()
        own = await stack.client.get(f"{UI}/audit/{acme['seq']}", headers=stack.cookie(CAROL))
        assert own.status == 200 and acme["hash"] in await own.text()
        listed = await stack.client.get(f"{UI}/audit?tenant=globex", headers=stack.cookie(CAROL))
        assert listed.status == 403
        export = await stack.client.get(
            f"{UI}/audit/export?format=jsonl&tenant=globex", headers=stack.cookie(CAROL)
        )
        assert export.status == 403
        everything = await stack.client.get(
            f"{UI}/audit/export?format=jsonl", headers=stack.cookie(CAROL)
        )
        assert everything.status == 200
        assert '"tenant": "globex"' not in await everything.text()

        assert await ui_rows_after(stack, start) == [
            ("refused-404", f"{UI}/audit/{globex['seq']}", 404),
            ("ok", f"{UI}/audit/{acme['seq']}", 200),
            ("refused-403", f"{UI}/audit", 403),
            ("refused-403", f"{UI}/audit/export", 403),
            ("ok", f"{UI}/audit/export", 200),
        ]
        exported = await stack.events("audit-exported")
        assert [(row["actor"], row["data"]["filter"]) for row in exported] == [(CAROL, {})]


async def test_bad_values_get_a_page_that_says_what_is_wrong(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        cases = (
            ("/audit?to=soon", 422, "to: &#39;soon&#39; is neither ISO-8601 nor Unix seconds"),
            ("/audit?from=nan", 422, "from: &#39;nan&#39; is not a finite time"),
            ("/audit?decision=maybe", 422, "decision: &#39;maybe&#39; is neither allow nor deny"),
            ("/audit?cursor=-1", 422, "is not a record number"),
            ("/audit?user=a%00b", 422, "user: at most 320 characters, and no NUL character"),
            ("/audit?route=" + "r" * 321, 422, "route: at most 320 characters"),
            ("/audit/abc", 404, "no such audit record"),
            ("/audit/0", 404, "no such audit record"),
            ("/audit/export?format=xml", 422, "format: &#39;xml&#39; is not one of jsonl, csv"),
        )
        for path, status, message in cases:
            answer = await stack.client.get(UI + path, headers=stack.cookie(ADMIN))
            text = await answer.text()
            assert (answer.status, message in text) == (status, True), (path, text[-800:])
            assert "Traceback" not in text
        typed = await stack.client.get(
            UI + "/audit?to=soon&route=a%22b", headers=stack.cookie(ADMIN)
        )
        assert 'value="soon"' in await typed.text() and 'value="a&#34;b"' in await typed.text()
        assert await stack.events("audit-exported") == []


async def test_the_export_is_a_download_with_the_ui_headers(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await make_traffic(stack)
        answer = await stack.client.get(
            UI + "/audit/export?format=csv&route=invoice-read&decision=deny",
            headers=stack.cookie(ADMIN),
        )
        assert answer.status == 200
        assert answer.headers["Content-Disposition"] == (
            "attachment; filename=\"audit.csv\"; filename*=UTF-8''audit.csv"
        )
        assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
        lines = (await answer.text()).splitlines()
        assert lines[0].startswith("seq,ts,kind,")
        assert len(lines) == 1 + 2
