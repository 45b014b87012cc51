"""Ledger: a deliberately naive legacy billing app for the demo and the tests.

It has no access control at all: it trusts whatever reaches it, uses sequential ids
shared by two tenants (acme owns the odd ones, globex the even ones), and one endpoint
leaks every tenant's rows. That is the point: Gatehold in front makes it safe.

It counts requests per ``X-Request-Id`` (``/__ledger/hits``) so tests can prove that a
refused request never reached it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from gateway.demo.ledger_browser import browser_routes
from gateway.demo.ledger_documents import document_routes, seed_documents

DB = web.AppKey("db", Path)


class HitCounter:
    """Requests seen, per X-Request-Id."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, request_id: str) -> None:
        self.counts[request_id] = self.counts.get(request_id, 0) + 1


HITS = web.AppKey("hits", HitCounter)
TENANTS = ("acme", "globex")
CHUNK = 64 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL,
  customer TEXT NOT NULL, amount_cents INTEGER NOT NULL, status TEXT NOT NULL,
  related_invoice INTEGER);
CREATE TABLE IF NOT EXISTS documents (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL,
  filename TEXT NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS reports (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, title TEXT NOT NULL);
"""
DOCUMENT_NAMES = (
    "contract.pdf",
    "contract.pdf",
    "../../etc/passwd",
    'report"2025.txt',
    "notes.txt",
    "notes.txt",
)


def seed(db_path: Path) -> None:
    """Create and fill the database once (idempotent)."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as db:
        db.executescript(SCHEMA)
        seed_documents(db)
        if db.execute("SELECT COUNT(*) FROM invoices").fetchone()[0]:
            return
        for i in range(1, 13):
            tenant = TENANTS[(i + 1) % 2]
            db.execute(
                "INSERT INTO invoices VALUES (?, ?, ?, ?, 'open', NULL)",
                (i, tenant, f"{tenant.title()} customer {i}", 1000 * i),
            )
        for i, name in enumerate(DOCUMENT_NAMES, start=1):
            tenant = TENANTS[(i + 1) % 2]
            body = f"Document {i} of {tenant}\n".encode()
            db.execute(
                "INSERT OR IGNORE INTO documents (id, tenant, filename, content_type, body, title)"
                " VALUES (?, ?, ?, 'text/plain', ?, ?)",
                (i, tenant, name, body, f"Document {i}"),
            )
        for tenant in TENANTS:
            db.execute(
                "INSERT INTO reports VALUES (?, ?, ?)",
                (f"r-{tenant}-1", tenant, f"{tenant} monthly report"),
            )


def _rows(request: web.Request, sql: str, *args: Any) -> list[dict[str, Any]]:
    with sqlite3.connect(request.app[DB]) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql, args).fetchall()]


def _write(request: web.Request, sql: str, *args: Any) -> int:
    with sqlite3.connect(request.app[DB]) as db:
        cursor = db.execute(sql, args)
        return int(cursor.lastrowid or cursor.rowcount)


def _tenant(request: web.Request) -> str | None:
    return request.headers.get("X-Gatehold-Tenant")


def _no_tenant() -> web.Response:
    return web.json_response({"error": "X-Gatehold-Tenant is missing"}, status=400)


def _not_found() -> web.Response:
    return web.json_response({"error": "not found"}, status=404)


async def list_invoices(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    if tenant is None:
        return _no_tenant()
    items = _rows(request, "SELECT * FROM invoices WHERE tenant = ? ORDER BY id", tenant)
    return web.json_response({"items": items})


async def create_invoice(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    if tenant is None:
        return _no_tenant()
    data = await _json(request)
    new_id = _write(
        request,
        "INSERT INTO invoices (tenant, customer, amount_cents, status) VALUES (?, ?, ?, 'open')",
        tenant,
        str(data.get("customer", "New customer")),
        int(data.get("amount_cents", 0)),
    )
    invoice = _rows(request, "SELECT * FROM invoices WHERE id = ?", new_id)[0]
    return web.json_response(invoice, status=201, headers={"Location": f"/api/invoices/{new_id}"})


async def invoice(request: web.Request) -> web.Response:
    invoice_id = int(request.match_info["id"])
    found = _rows(request, "SELECT * FROM invoices WHERE id = ?", invoice_id)
    if not found:
        return _not_found()
    if request.method == "DELETE":
        _write(request, "DELETE FROM invoices WHERE id = ?", invoice_id)
        return web.Response(status=204)
    if request.method in ("PUT", "PATCH"):
        data = await _json(request)
        for column in ("customer", "amount_cents", "status", "related_invoice"):
            if column in data:
                _write(
                    request,
                    f"UPDATE invoices SET {column} = ? WHERE id = ?",  # noqa: S608
                    data[column],
                    invoice_id,
                )
        found = _rows(request, "SELECT * FROM invoices WHERE id = ?", invoice_id)
    return web.json_response(found[0])


async def export_invoices(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    if tenant is None:
        return _no_tenant()
    rows = _rows(request, "SELECT * FROM invoices WHERE tenant = ? ORDER BY id", tenant)
    lines = ["id,tenant,customer,amount_cents,status"]
    lines += [
        f"{r['id']},{r['tenant']},{r['customer']},{r['amount_cents']},{r['status']}" for r in rows
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/csv")


async def search(request: web.Request) -> web.Response:
    ids = [int(v) for v in request.query.getall("invoice", []) if v.isdigit()]
    items = [r for i in ids for r in _rows(request, "SELECT * FROM invoices WHERE id = ?", i)]
    return web.json_response({"items": items})


async def internal_invoice(request: web.Request) -> web.Response:
    found = _rows(
        request, "SELECT id, tenant FROM invoices WHERE id = ?", int(request.match_info["id"])
    )
    return web.json_response(found[0]) if found else _not_found()


async def document(request: web.Request) -> web.Response:
    found = _rows(request, "SELECT * FROM documents WHERE id = ?", int(request.match_info["id"]))
    if not found:
        return _not_found()
    doc = found[0]
    return web.Response(
        body=doc["body"],
        content_type=doc["content_type"],
        headers={"Content-Disposition": f'attachment; filename="{doc["filename"]}"'},
    )


async def recent_reports(request: web.Request) -> web.Response:
    # The leak: every tenant's reports, whoever asks.
    return web.json_response({"items": _rows(request, "SELECT * FROM reports ORDER BY id")})


async def create_report(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    if tenant is None:
        return _no_tenant()
    data = await _json(request)
    slug = f"r-{secrets.token_hex(4)}"
    _write(
        request,
        "INSERT INTO reports VALUES (?, ?, ?)",
        slug,
        tenant,
        str(data.get("title", "untitled")),
    )
    report = {"id": slug, "tenant": tenant, "title": data.get("title", "untitled")}
    return web.json_response(report, status=201, headers={"Location": f"/api/reports/{slug}"})


async def report(request: web.Request) -> web.Response:
    found = _rows(request, "SELECT * FROM reports WHERE id = ?", request.match_info["slug"])
    return web.json_response(found[0]) if found else _not_found()


async def tenant_area(request: web.Request) -> web.Response:
    return web.json_response(
        {"tenant": request.match_info["tenant"], "path": request.raw_path, "method": request.method}
    )


async def feed(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"tenant": request.match_info["tenant"], "hello": True})
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(f"echo: {message.data}")
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


async def static(request: web.Request) -> web.Response:
    return web.Response(text="body { font-family: sans-serif; }\n", content_type="text/css")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return web.json_response(
        {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": headers,
            "body_bytes": len(body),
        }
    )


async def big(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["mib"]) * 1024 * 1024
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    chunk = b"\0" * CHUNK
    for _ in range(size // CHUNK):
        await response.write(chunk)
    await response.write_eof()
    return response


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("seconds", "2")))
    return web.json_response({"slept": True})


async def redirect_home(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": f"http://{request.host}/api/invoices"})


async def index(request: web.Request) -> web.Response:
    tenant = _tenant(request) or "(no tenant header)"
    rows = _rows(request, "SELECT id, customer FROM invoices WHERE tenant = ?", tenant)
    items = "".join(f"<li>#{r['id']} {r['customer']}</li>" for r in rows)
    return web.Response(
        text=f"<h1>Ledger — demo legacy app</h1><p>Tenant: {tenant}</p><ul>{items}</ul>",
        content_type="text/html",
    )


async def hits(request: web.Request) -> web.Response:
    return web.json_response(request.app[HITS].counts)


async def hits_total(request: web.Request) -> web.Response:
    return web.json_response({"total": sum(request.app[HITS].counts.values())})


async def hits_reset(request: web.Request) -> web.Response:
    request.app[HITS].counts.clear()
    return web.json_response({"total": 0})


@web.middleware
async def count_hits(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith("/__ledger/"):
        request.app[HITS].add(request.headers.get("X-Request-Id", "-"))
    return await handler(request)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def build_ledger_app(db_path: Path) -> web.Application:
    """The Ledger app over the SQLite file at ``db_path`` (seeded if new)."""
    seed(db_path)
    app = web.Application(middlewares=[count_hits])
    app[DB] = db_path
    app[HITS] = HitCounter()
    r = app.router
    r.add_routes(browser_routes(str(db_path)))
    r.add_routes(document_routes(str(db_path)))
    r.add_get("/", index)
    r.add_get("/api/invoices", list_invoices)
    r.add_post("/api/invoices", create_invoice)
    r.add_post("/api/invoices/export", export_invoices)
    r.add_route("*", "/api/invoices/{id:[0-9]+}", invoice)
    r.add_get("/api/search", search)
    r.add_get("/internal/invoices/{id:[0-9]+}", internal_invoice)
    r.add_get("/files/{id:[0-9]+}", document)
    r.add_get("/api/reports/recent", recent_reports)
    r.add_post("/api/reports", create_report)
    r.add_get("/api/reports/{slug}", report)
    r.add_route("*", "/t/{tenant}/{rest:.*}", tenant_area)
    r.add_get("/ws/{tenant}/feed", feed)
    r.add_get("/static/{name:.*}", static)
    r.add_route("*", "/api/echo", echo)
    r.add_route("*", "/api/echo/{rest:.*}", echo)
    r.add_get("/big/{mib:[0-9]+}", big)
    r.add_get("/slow", slow)
    r.add_get("/redirect-home", redirect_home)
    r.add_get("/__ledger/hits", hits)
    r.add_get("/__ledger/hits/total", hits_total)
    r.add_post("/__ledger/hits/reset", hits_reset)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ledger, the demo legacy app (no access control)")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in a container)."
    )
    parser.add_argument("--db", type=Path, default=Path("var/ledger.db"))
    args = parser.parse_args(argv)
    web.run_app(build_ledger_app(args.db), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
