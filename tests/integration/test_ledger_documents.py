"""Ledger's documents page and upload endpoint, talked to directly (no gateway).

Ledger trusts the ``X-Gatehold-Tenant`` header it gets: these tests show what it does
with it, which is what the demo rules then rely on.
"""

from __future__ import annotations

import re
import sqlite3
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.demo.ledger import build_ledger_app
from gateway.demo.ledger_documents import SEEDED_FILES, minimal_pdf, minimal_png

ACME = {"X-Gatehold-Tenant": "acme"}


@asynccontextmanager
async def ledger(db: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = TestClient(TestServer(build_ledger_app(db)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def upload_form(title: str, name: str, content_type: str, body: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("title", title)
    form.add_field("file", body, filename=name, content_type=content_type)
    return form


def listed_ids(page: str) -> set[int]:
    return {int(found) for found in re.findall(r'href="/files/(\d+)"', page)}


async def test_an_upload_is_stored_for_the_callers_tenant_and_answers_201_with_location(
    tmp_path: Path,
) -> None:
    pdf = minimal_pdf("uploaded")
    async with ledger(tmp_path / "ledger.db") as client:
        answer = await client.post(
            "/files", data=upload_form("Q3 invoice", "q3.pdf", "application/pdf", pdf), headers=ACME
        )
        assert answer.status == 201, await answer.text()
        body = await answer.json()
        assert answer.headers["Location"] == f"/files/{body['id']}"
        assert body | {"id": 0} == {
            "id": 0,
            "tenant": "acme",
            "title": "Q3 invoice",
            "filename": "q3.pdf",
            "content_type": "application/pdf",
            "size": len(pdf),
        }
        download = await client.get(answer.headers["Location"])
        assert download.status == 200
        assert await download.read() == pdf
        assert download.content_type == "application/pdf"
        page = await (await client.get("/documents", headers=ACME)).text()
        assert body["id"] in listed_ids(page)
        assert "Q3 invoice" in page
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        row = db.execute("SELECT tenant FROM documents WHERE id = ?", (body["id"],)).fetchone()
    assert row == ("acme",), "the SQL owner lookup of the demo rules finds the new row"


async def test_the_upload_form_gets_a_page_back(tmp_path: Path) -> None:
    async with ledger(tmp_path / "ledger.db") as client:
        answer = await client.post(
            "/files",
            data=upload_form("", "notes.txt", "text/plain", b"hello"),
            headers=ACME | {"Accept": "text/html,application/xhtml+xml"},
        )
        assert answer.status == 201
        assert answer.content_type == "text/html"
        location = answer.headers["Location"]
        assert f'href="{location}"' in await answer.text()
        assert "notes.txt" in await answer.text(), "an empty title falls back to the name"


async def test_uploads_without_a_tenant_or_a_file_are_refused(tmp_path: Path) -> None:
    async with ledger(tmp_path / "ledger.db") as client:
        form = upload_form("x", "a.txt", "text/plain", b"a")
        assert (await client.post("/files", data=form)).status == 400
        title_only = aiohttp.FormData()
        title_only.add_field("title", "no file")
        title_only.add_field("other", "x")
        answer = await client.post("/files", data=title_only, headers=ACME)
        assert answer.status == 400
        assert (await client.post("/files", json={"title": "x"}, headers=ACME)).status == 400


async def test_the_documents_page_lists_only_the_tenant_in_the_header(tmp_path: Path) -> None:
    async with ledger(tmp_path / "ledger.db") as client:
        pages = {}
        for tenant in ("acme", "globex"):
            answer = await client.get("/documents", headers={"X-Gatehold-Tenant": tenant})
            assert answer.status == 200
            assert answer.content_type == "text/html"
            pages[tenant] = await answer.text()
        assert listed_ids(pages["acme"]) == {1, 3, 5, 7, 9}
        assert listed_ids(pages["globex"]) == {2, 4, 6, 8, 10}
        assert "Übersicht 2026.pdf" in pages["acme"]
        assert "Übersicht" not in pages["globex"]
        # names are shown as text, never as markup
        assert "report&quot;2025.txt" in pages["globex"]
        assert 'enctype="multipart/form-data"' in pages["acme"]
        assert (await client.get("/documents")).status == 400, "no tenant header"


async def test_the_seeded_files_are_real_pdfs_and_pngs(tmp_path: Path) -> None:
    async with ledger(tmp_path / "ledger.db") as client:
        for doc_id, _tenant, _name, content_type, body in SEEDED_FILES:
            answer = await client.get(f"/files/{doc_id}")
            data = await answer.read()
            assert data == body
            assert answer.content_type == content_type
            if content_type == "application/pdf":
                assert data.startswith(b"%PDF-1.4\n") and data.endswith(b"%%EOF\n")
                xref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
                assert data[xref:].startswith(b"xref\n0 6\n")
                for offset, number in zip(
                    re.findall(rb"(\d{10}) 00000 n", data), range(1, 6), strict=True
                ):
                    assert data[int(offset) :].startswith(b"%d 0 obj" % number)
            else:
                assert data.startswith(b"\x89PNG\r\n\x1a\n")
                idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
                assert len(zlib.decompress(idat)) == 16 * (1 + 16 * 3)


def test_a_png_is_built_with_valid_chunk_checksums() -> None:
    png = minimal_png(2, 3, (1, 2, 3))
    at = 8
    kinds = []
    while at < len(png):
        size = int.from_bytes(png[at : at + 4], "big")
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + size]
        crc = int.from_bytes(png[at + 8 + size : at + 12 + size], "big")
        assert crc == zlib.crc32(kind + data)
        kinds.append(kind)
        at += 12 + size
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_seeding_an_older_database_adds_the_title_column_and_the_files(tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    with sqlite3.connect(db_path) as db:
        db.executescript(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, customer TEXT"
            " NOT NULL, amount_cents INTEGER NOT NULL, status TEXT NOT NULL, related_invoice"
            " INTEGER); INSERT INTO invoices VALUES (1, 'acme', 'c', 1, 'open', NULL);"
            "CREATE TABLE documents (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL,"
            " filename TEXT NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL);"
            "INSERT INTO documents VALUES (1, 'acme', 'old.txt', 'text/plain', x'00');"
        )
    build_ledger_app(db_path)
    build_ledger_app(db_path)  # twice: nothing doubles
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT id, title FROM documents ORDER BY id").fetchall()
    assert rows == [
        (1, ""),
        (7, "Übersicht 2026"),
        (8, "Quarterly review"),
        (9, "logo"),
        (10, "floor plan"),
    ]
