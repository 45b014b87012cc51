"""Ledger's data browser: a list and a write API written the way real apps write them.

Every feature here leaked another tenant's data through a gateway that checked only
row ids in paths, and each is what a real multi-tenant app offers:

* ``GET /api/items``: ``tenant=`` filters by tenant (absent: every tenant's rows),
  ``where=`` takes a raw SQL condition from the app's own search box, ``_facet=COLUMN``
  counts rows per value, ``tenant_as=`` relabels the tenant column for display (so a
  guard checking that column sees the caller's tenant on other tenants' rows), and
  every answer carries a ``total`` and an opaque ``next_page`` token that encodes the
  last row's customer;
* ``POST /api/items`` takes the new row's tenant from the body, and ``PUT``/``PATCH
  /api/items/{id}`` updates any column, the tenant included;
* ``GET /api/items/{id}.csv`` answers one row as CSV (an id inside a path segment).

The rules in ``rules/demo.yaml`` lock each of these down; the tests show the leak
without those rules and its refusal with them.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

from aiohttp import web

COLUMNS = ("id", "tenant", "customer", "amount_cents", "status")
FACETS = ("tenant", "status", "customer")
PAGE_DEFAULT, PAGE_MAX = 5, 50


def _page_token(row: dict[str, Any]) -> str:
    """An "opaque" token: the last row's id and customer, base64 of JSON."""
    raw = json.dumps({"after": row["id"], "customer": row["customer"]}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _after(token: str) -> int | None:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
    except (ValueError, KeyError, TypeError):
        return None


def _read_only(db_path: str) -> sqlite3.Connection:
    """The browser runs what its search box sends, so only ever on a read-only handle."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def browse(db_path: str, query: dict[str, str], facets: list[str]) -> dict[str, Any]:
    """The answer of ``GET /api/items``; raises ``ValueError`` for a bad request."""
    conditions: list[str] = []
    args: list[Any] = []
    if "tenant" in query:
        conditions.append("tenant = ?")
        args.append(query["tenant"])
    if query.get("where"):
        conditions.append(f"({query['where']})")
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    limit = min(int(query.get("limit", PAGE_DEFAULT)), PAGE_MAX)
    paged = where
    page_args = list(args)
    if "page_token" in query:
        after = _after(query["page_token"])
        if after is None:
            raise ValueError("page_token is not one of ours")
        paged = (where + " AND " if where else " WHERE ") + "id > ?"
        page_args.append(after)
    columns = ", ".join(COLUMNS)
    try:
        with _read_only(db_path) as db:
            rows = [
                dict(row)
                for row in db.execute(
                    f"SELECT {columns} FROM invoices{paged} ORDER BY id LIMIT ?",  # noqa: S608
                    [*page_args, limit + 1],
                )
            ]
            total = db.execute(f"SELECT COUNT(*) FROM invoices{where}", args).fetchone()[0]  # noqa: S608
            counted = {
                facet: {
                    str(value): count
                    for value, count in db.execute(
                        f"SELECT {facet}, COUNT(*) FROM invoices{where} "  # noqa: S608
                        f"GROUP BY {facet} ORDER BY {facet}",
                        args,
                    )
                }
                for facet in facets
                if facet in FACETS
            }
    except sqlite3.Error as error:
        raise ValueError(f"bad condition: {error}") from None
    more = len(rows) > limit
    rows = rows[:limit]
    if "tenant_as" in query:
        for row in rows:
            row["tenant"] = query["tenant_as"]
    return {
        "rows": rows,
        "total": total,
        "facets": counted,
        "next_page": _page_token(rows[-1]) if more and rows else None,
    }


def create_item(db_path: str, data: dict[str, Any]) -> dict[str, Any]:
    """Insert a row with the tenant the body names; raises ``ValueError`` when incomplete."""
    try:
        values = (str(data["tenant"]), str(data["customer"]), int(data.get("amount_cents", 0)))
    except (KeyError, TypeError, ValueError):
        raise ValueError("send tenant, customer and amount_cents") from None
    with sqlite3.connect(db_path) as db:
        cursor = db.execute(
            "INSERT INTO invoices (tenant, customer, amount_cents, status) "
            "VALUES (?, ?, ?, 'open')",
            values,
        )
        new_id = int(cursor.lastrowid or 0)
    return read_item(db_path, new_id) or {}


def update_item(db_path: str, item_id: int, data: dict[str, Any]) -> dict[str, Any] | None:
    """Update every column the body names, the tenant included."""
    if read_item(db_path, item_id) is None:
        return None
    with sqlite3.connect(db_path) as db:
        for column in ("tenant", "customer", "amount_cents", "status"):
            if column in data:
                db.execute(
                    f"UPDATE invoices SET {column} = ? WHERE id = ?",  # noqa: S608
                    (data[column], item_id),
                )
    return read_item(db_path, item_id)


def read_item(db_path: str, item_id: int) -> dict[str, Any] | None:
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM invoices WHERE id = ?",  # noqa: S608
            (item_id,),
        ).fetchone()
    return dict(row) if row is not None else None


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def browser_routes(db_path: str) -> list[web.RouteDef]:
    """The data browser's routes over the SQLite file at ``db_path``."""

    async def list_items(request: web.Request) -> web.Response:
        query = {name: request.query[name] for name in request.query}
        try:
            answer = browse(db_path, query, request.query.getall("_facet", []))
        except ValueError as error:
            return _bad(str(error))
        return web.json_response(answer)

    async def add_item(request: web.Request) -> web.Response:
        data = await _body(request)
        if data is None:
            return _bad("send a JSON object")
        try:
            item = create_item(db_path, data)
        except ValueError as error:
            return _bad(str(error))
        return web.json_response(item, status=201, headers={"Location": f"/api/items/{item['id']}"})

    async def item(request: web.Request) -> web.Response:
        item_id = int(request.match_info["id"])
        if request.method == "GET":
            found = read_item(db_path, item_id)
        else:
            data = await _body(request)
            if data is None:
                return _bad("send a JSON object")
            found = update_item(db_path, item_id, data)
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(found)

    async def item_csv(request: web.Request) -> web.Response:
        found = read_item(db_path, int(request.match_info["id"]))
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        line = ",".join(str(found[column]) for column in COLUMNS)
        return web.Response(text=",".join(COLUMNS) + "\n" + line + "\n", content_type="text/csv")

    return [
        web.get("/api/items", list_items),
        web.get("/api/items/{id:[0-9]+}.csv", item_csv),
        web.post("/api/items", add_item),
        web.route("GET", "/api/items/{id:[0-9]+}", item),
        web.route("PUT", "/api/items/{id:[0-9]+}", item),
        web.route("PATCH", "/api/items/{id:[0-9]+}", item),
    ]
