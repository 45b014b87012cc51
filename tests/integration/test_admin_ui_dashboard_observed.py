"""The dashboard over HTTP with real audit rows: requests forwarded in observe mode are a
figure of their own, never counted as allowed, and lead to their audit rows."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from tests.support.observing import observing_rules
from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
ADMIN = "admin@example.test"
JSON = {"Accept": "application/json"}


def figure(page: str, name: str) -> tuple[int, str]:
    """A dashboard figure: its number and the audit address it links to."""
    found = re.search(rf'<a href="([^"]*)" id="total-{name}">(\d+)</a>', page)
    assert found, f"no figure {name!r}"
    return int(found.group(2)), html.unescape(found.group(1))


def hourly_sums(page: str) -> dict[str, int]:
    """The per-hour table's columns, summed, by heading."""
    table = page[page.index('<table id="hourly">') :]
    table = table[: table.index("</table>")]
    headings = re.findall(r'<th scope="col" class="num">([^<]*)</th>', table)
    sums = dict.fromkeys(headings, 0)
    for row in re.findall(r"<tr><th scope=\"row\">.*?</tr>", table, flags=re.S):
        cells = re.findall(r'<td class="num"><a href="[^"]*">(\d+)</a></td>', row)
        for heading, cell in zip(headings, cells, strict=True):
            sums[heading] += int(cell)
    return sums


async def dashboard(stack: Stack) -> str:
    answer = await stack.client.get(UI + "/", headers=stack.cookie(ADMIN))
    assert answer.status == 200
    return await answer.text()


async def test_observed_requests_are_a_figure_of_their_own_not_allowed_ones(
    tmp_path: Path,
) -> None:
    rules = observing_rules(time.time() + 86400, **{"invoice-delete": "enforce"})
    async with running_stack(tmp_path, rules_text=rules) as stack:
        alice, rita = stack.cookie("alice@acme.test") | JSON, stack.cookie("rita@acme.test")
        # the rules refuse these three (globex's invoices; rita is readonly): forwarded
        for path in ("/api/invoices/8", "/api/invoices/10"):
            assert (await stack.client.get(path, headers=alice)).status == 200
        created = await stack.client.post("/api/reports", json={"t": 1}, headers=rita)
        assert created.status == 201
        # allowed by the rules
        assert (await stack.client.get("/api/invoices/7", headers=alice)).status == 200
        # refused, observe mode or not: nobody signed in; a route that enforces
        assert (await stack.client.get("/api/invoices/7", headers=JSON)).status == 401
        deleted = await stack.client.delete("/api/invoices/1", headers=rita | JSON)
        assert deleted.status == 403
        await stack.settled()
        decisions = sorted(row["decision"] for row in await stack.events("request"))
        assert decisions == ["allow", "deny", "deny", "observed", "observed", "observed"]

        page = await dashboard(stack)
        assert figure(page, "requests")[0] == 6
        assert figure(page, "denied")[0] == 2
        observed, href = figure(page, "observed")
        assert observed == 3
        assert "decision=observed" in href and "kind=request" in href
        assert "let through in observe mode that the rules would refuse" in page
        assert (
            'aria-label="Requests per hour: 6 in 24 hours, 2 denied, 3 forwarded in observe '
            'mode that the rules would refuse"' in page
        )
        assert hourly_sums(page) == {
            "Allowed": 1,
            "Observed (the rules would refuse)": 3,
            "Denied": 2,
            "Sign-ins": 0,
            "Failed sign-ins": 0,
        }
        ranking = page[page.index('id="observed-routes"') :]
        ranking = ranking[: ranking.index("</table>")]
        assert re.findall(r">([a-z-]+)</a></td><td class=\"num\">(\d+)</td>", ranking) == [
            ("invoice-read", "2"),
            ("report-create", "1"),
        ]

        listed = await stack.client.get(href, headers=stack.cookie(ADMIN))
        assert listed.status == 200
        text = await listed.text()
        assert text.count("would deny: ") == 3


async def test_without_observed_requests_the_dashboard_shows_no_observed_figure(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        alice = stack.cookie("alice@acme.test") | JSON
        assert (await stack.client.get("/api/invoices/8", headers=alice)).status == 404
        assert (await stack.client.get("/api/invoices/7", headers=alice)).status == 200
        await stack.settled()
        page = await dashboard(stack)
        assert figure(page, "requests")[0] == 2 and figure(page, "denied")[0] == 1
        assert 'id="total-observed"' not in page and 'id="observed-routes"' not in page
        assert set(hourly_sums(page)) == {"Allowed", "Denied", "Sign-ins", "Failed sign-ins"}
