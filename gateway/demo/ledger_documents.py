"""Ledger's documents: a page listing a tenant's files, with an upload form.

Like the rest of Ledger it trusts whatever reaches it: the tenant is the
``X-Gatehold-Tenant`` header, the stored file name and type are what the browser sent,
and the bytes are kept as they came (no size, type or name checks of its own beyond a
memory cap). Downloads are ``GET /files/{id}`` (``ledger.document``).

* ``GET /documents``: an HTML page with the tenant's documents, a download link each,
  and a form posting ``multipart/form-data`` (``title`` and ``file``) to ``/files``;
* ``POST /files``: stores the file as a row of ``documents`` owned by the caller's
  tenant and answers ``201`` with ``Location: /files/{id}``.

The seed adds small but real PDF and PNG files (built here, no binary fixtures) next to
the older text documents, one of them with a non-ASCII name.
"""

from __future__ import annotations

import html
import sqlite3
import struct
import zlib
from typing import Any

from aiohttp import BodyPartReader, web

MAX_UPLOAD = 20 * 1024 * 1024
"""Ledger keeps uploads in memory and in SQLite: a cap so the demo cannot be filled."""

TITLE_COLUMN = "ALTER TABLE documents ADD COLUMN title TEXT NOT NULL DEFAULT ''"


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF 1.4 showing ``text`` (ASCII), with a correct cross-reference table."""
    safe = "".join(c for c in text if " " <= c <= "~" and c not in "()\\")
    stream = f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def minimal_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A ``width`` x ``height`` PNG of one colour (8-bit RGB, no interlace)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\0" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


SEEDED_FILES: tuple[tuple[int, str, str, str, bytes], ...] = (
    # (id, tenant, file name, content type, bytes): odd ids acme, even ids globex, as the
    # text documents before them.
    (7, "acme", "Übersicht 2026.pdf", "application/pdf", minimal_pdf("Acme overview 2026")),
    (8, "globex", "Quarterly review.pdf", "application/pdf", minimal_pdf("Globex Q1 review")),
    (9, "acme", "logo.png", "image/png", minimal_png(16, 16, (200, 30, 30))),
    (10, "globex", "floor plan.png", "image/png", minimal_png(16, 16, (30, 30, 200))),
)


def seed_documents(db: sqlite3.Connection) -> None:
    """Give ``documents`` its ``title`` column and the seeded files (idempotent, also on a
    database seeded before documents had either)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
    if "title" not in columns:
        db.execute(TITLE_COLUMN)
    for doc_id, tenant, name, content_type, body in SEEDED_FILES:
        db.execute(
            "INSERT OR IGNORE INTO documents (id, tenant, filename, content_type, body, title) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (doc_id, tenant, name, content_type, body, name.rsplit(".", 1)[0]),
        )


def tenant_documents(db_path: str, tenant: str) -> list[dict[str, Any]]:
    """The tenant's documents (no bytes), oldest first."""
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, title, filename, content_type, length(body) AS size "
            "FROM documents WHERE tenant = ? ORDER BY id",
            (tenant,),
        ).fetchall()
    return [dict(row) for row in rows]


def store_document(
    db_path: str, *, tenant: str, title: str, filename: str, content_type: str, body: bytes
) -> int:
    """Insert one document and return its id."""
    with sqlite3.connect(db_path) as db:
        cursor = db.execute(
            "INSERT INTO documents (tenant, filename, content_type, body, title) "
            "VALUES (?, ?, ?, ?, ?)",
            (tenant, filename, content_type, body, title),
        )
        return int(cursor.lastrowid or 0)


def documents_page(tenant: str, documents: list[dict[str, Any]]) -> str:
    """The HTML of ``GET /documents``."""
    rows = "".join(
        f"<tr><td>{html.escape(doc['title'] or doc['filename'])}</td>"
        f'<td><a href="/files/{doc["id"]}">{html.escape(doc["filename"])}</a></td>'
        f"<td>{html.escape(doc['content_type'])}</td><td>{doc['size']} bytes</td></tr>"
        for doc in documents
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Documents — Ledger</title>
<link rel="stylesheet" href="/static/ledger.css"></head>
<body><main>
<h1>Documents of {html.escape(tenant)}</h1>
<table><caption>{len(documents)} documents</caption>
<thead><tr><th scope="col">Title</th><th scope="col">File</th><th scope="col">Type</th>
<th scope="col">Size</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Upload a document</h2>
<form method="post" action="/files" enctype="multipart/form-data">
<p><label for="title">Title</label> <input id="title" name="title" required></p>
<p><label for="file">File</label> <input id="file" name="file" type="file" required></p>
<p><button type="submit">Upload</button></p>
</form>
</main></body></html>
"""


def _uploaded_page(doc_id: int, title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Uploaded — Ledger</title></head><body><main>"
        f'<h1>Uploaded</h1><p><a href="/files/{doc_id}">{html.escape(title)}</a> '
        'is stored. <a href="/documents">Back to the documents</a>.</p></main></body></html>\n'
    )


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _form(request: web.Request) -> tuple[str, str, str, bytes] | str:
    """(title, file name, content type, bytes) of an upload form, or what is wrong."""
    if request.content_type != "multipart/form-data":
        return "send multipart/form-data with a title and a file"
    title, upload = "", None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            return "nested multipart bodies are not supported"
        data = bytearray()
        while chunk := await part.read_chunk():
            data += chunk
            if len(data) > MAX_UPLOAD:
                return "too large"
        if part.name == "title":
            title = data.decode("utf-8", "replace")
        elif part.name == "file" and part.filename:
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            upload = (part.filename, content_type, bytes(data))
    if upload is None:
        return "the form has no file"
    filename, content_type, body = upload
    return title or filename, filename, content_type, body


def document_routes(db_path: str) -> list[web.RouteDef]:
    """The documents page and the upload endpoint over the SQLite file at ``db_path``."""

    async def page(request: web.Request) -> web.Response:
        tenant = request.headers.get("X-Gatehold-Tenant")
        if tenant is None:
            return _bad("X-Gatehold-Tenant is missing")
        text = documents_page(tenant, tenant_documents(db_path, tenant))
        return web.Response(text=text, content_type="text/html")

    async def upload(request: web.Request) -> web.Response:
        tenant = request.headers.get("X-Gatehold-Tenant")
        if tenant is None:
            return _bad("X-Gatehold-Tenant is missing")
        form = await _form(request)
        if isinstance(form, str):
            return _bad(form, 413 if form == "too large" else 400)
        title, filename, content_type, body = form
        doc_id = store_document(
            db_path,
            tenant=tenant,
            title=title,
            filename=filename,
            content_type=content_type,
            body=body,
        )
        headers = {"Location": f"/files/{doc_id}"}
        if "text/html" in request.headers.get("Accept", ""):  # the page's own form
            return web.Response(
                text=_uploaded_page(doc_id, title),
                content_type="text/html",
                status=201,
                headers=headers,
            )
        answer = {
            "id": doc_id,
            "tenant": tenant,
            "title": title,
            "filename": filename,
            "content_type": content_type,
            "size": len(body),
        }
        return web.json_response(answer, status=201, headers=headers)

    return [web.get("/documents", page), web.post("/files", upload)]
