"""Files in the demo, through the whole stack: Ledger's documents page, downloads and
uploads behind the demo rules."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from gateway.demo.ledger_documents import minimal_pdf
from tests.support.stack import Stack, running_stack

ALICE, RITA, BOB = "alice@acme.test", "rita@acme.test", "bob@globex.test"
API = {"Accept": "application/json"}


def listed_ids(page: str) -> set[int]:
    return {int(found) for found in re.findall(r'href="/files/(\d+)"', page)}


def pdf_form(title: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("title", title)
    form.add_field(
        "file", minimal_pdf(title), filename=f"{title}.pdf", content_type="application/pdf"
    )
    return form


async def reached_ledger(stack: Stack, answer: aiohttp.ClientResponse) -> bool:
    return answer.headers["X-Request-Id"] in await stack.ledger_hits()


async def test_each_person_sees_their_tenants_documents_and_no_other(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for person, ids in ((ALICE, {1, 3, 5, 7, 9}), (BOB, {2, 4, 6, 8, 10})):
            page = await stack.client.get("/documents", headers=stack.cookie(person))
            assert page.status == 200
            assert listed_ids(await page.text()) == ids
        smuggled = await stack.client.get(
            "/documents", headers=stack.cookie(ALICE) | {"X-Gatehold-Tenant": "globex"}
        )
        assert listed_ids(await smuggled.text()) == {1, 3, 5, 7, 9}, "the header is the gateway's"
        refused = await stack.client.get("/documents?tenant=globex", headers=stack.cookie(ALICE))
        assert refused.status == 403, "the page takes no query"
        assert not await reached_ledger(stack, refused)


async def test_an_acme_person_downloads_acme_files_and_gets_404_for_globex_ones(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        mine = await stack.client.get("/files/7", headers=stack.cookie(ALICE))
        assert mine.status == 200
        assert (await mine.read()).startswith(b"%PDF-")
        assert mine.headers["Content-Disposition"] == (
            'attachment; filename="Ubersicht 2026.pdf"; '
            "filename*=UTF-8''%C3%9Cbersicht%202026.pdf"
        )
        assert mine.headers["X-Content-Type-Options"] == "nosniff"
        assert mine.headers["Cache-Control"] == "private, no-store"
        assert mine.headers["Content-Security-Policy"] == "sandbox"
        for globex_file in (8, 10):
            theirs = await stack.client.get(
                f"/files/{globex_file}", headers=stack.cookie(ALICE) | API
            )
            assert theirs.status == 404
            assert not await reached_ledger(stack, theirs)
        missing = await stack.client.get("/files/999", headers=stack.cookie(ALICE) | API)
        assert missing.status == 404, "the same answer as for a file that does not exist"


async def test_an_upload_through_the_gateway_belongs_to_the_uploaders_tenant(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        created = await stack.client.post(
            "/files", data=pdf_form("minutes"), headers=stack.cookie(ALICE) | API
        )
        assert created.status == 201, await created.text()
        assert (await created.json())["tenant"] == "acme"
        location = created.headers["Location"]
        path = "/" + location.split("/", 3)[3] if location.startswith("http") else location
        assert re.fullmatch(r"/files/\d+", path), location
        download = await stack.client.get(path, headers=stack.cookie(ALICE))
        assert download.status == 200
        assert await download.read() == minimal_pdf("minutes")
        page = await stack.client.get("/documents", headers=stack.cookie(ALICE))
        assert int(path.rsplit("/", 1)[1]) in listed_ids(await page.text())
        theirs = await stack.client.get(path, headers=stack.cookie(BOB) | API)
        assert theirs.status == 404, "globex may not download acme's new file"
        assert not await reached_ledger(stack, theirs)


async def test_readonly_may_not_upload_and_ledger_never_sees_the_file(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        refused = await stack.client.post(
            "/files", data=pdf_form("nope"), headers=stack.cookie(RITA) | API
        )
        assert refused.status == 403
        assert refused.content_type == "application/problem+json"
        assert not await reached_ledger(stack, refused)
        page = await stack.client.get("/documents", headers=stack.cookie(RITA))
        assert page.status == 200, "reading the page is allowed"
        assert "nope" not in await page.text()
        anonymous = await stack.client.post("/files", data=pdf_form("anon"), headers=API)
        assert anonymous.status == 401
