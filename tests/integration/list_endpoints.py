"""The attacks on Ledger's data browser (``gateway/demo/ledger_browser.py``) that leaked
another tenant's data through rules that checked only row ids, as an IT person would
have written them from the guide before list endpoints had rules of their own."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import yaml

from tests.support.stack import DEMO_RULES

NAIVE_ROUTES = """
  - name: items-list
    match: {path: "/api/items", methods: [GET]}
    upstream: ledger
    guard: {tenant_field: "/rows/*/tenant", mode: filter}
  - name: items-create
    match: {path: "/api/items", methods: [POST]}
    upstream: ledger
  - name: item-read
    match: {path: "/api/items/{item_id:int}", methods: [GET]}
    upstream: ledger
    resource: {type: invoice, id: path.item_id}
  - name: item-update
    match: {path: "/api/items/{item_id:int}", methods: [PUT, PATCH]}
    upstream: ledger
    resource: {type: invoice, id: path.item_id}
"""


def naive_rules() -> str:
    """The demo rules with the data browser's routes written the old way."""
    rules = yaml.safe_load(DEMO_RULES.read_text())
    kept = [route for route in rules["routes"] if not route["name"].startswith("item")]
    rules["routes"] = yaml.safe_load(NAIVE_ROUTES) + kept
    return yaml.safe_dump(rules, sort_keys=False)


@dataclass(frozen=True)
class Attack:
    """One request by alice (acme) that must not reveal or change anything of globex."""

    name: str
    method: str
    target: str
    body: dict[str, Any] | None = None


LIST_ATTACKS = (
    Attack("tenant filter", "GET", "/api/items?tenant=globex"),
    Attack("tenant filter, other spelling", "GET", "/api/items?%74enant=globex"),
    Attack("raw condition", "GET", "/api/items?where=tenant%3D%27globex%27"),
    Attack("relabelled tenant column", "GET", "/api/items?tenant_as=acme"),
    Attack("facet counts", "GET", "/api/items?_facet=customer"),
    Attack("count and page token", "GET", "/api/items?where=customer+LIKE+%27Globex%25%27&limit=1"),
)
WRITE_ATTACKS = (
    Attack("create in globex", "POST", "/api/items", {"tenant": "globex", "customer": "x"}),
    Attack("move own row to globex", "PUT", "/api/items/7", {"tenant": "globex"}),
    Attack("move own row, PATCH", "PATCH", "/api/items/7", {"tenant": "globex"}),
)


def leaked(body: bytes) -> bool:
    """Anything of globex in any byte of an answer: a name or tenant id (also inside a
    page token, which is base64 of JSON), or a count of rows the caller was not shown."""
    text = body.decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("next_page"), str):
        text += base64.urlsafe_b64decode(answer["next_page"].encode() + b"==").decode(
            "utf-8", "replace"
        )
    if "globex" in text.lower():
        return True
    if isinstance(answer, dict) and isinstance(answer.get("total"), int):
        return not answer.get("rows") and answer["total"] > 0
    return False
