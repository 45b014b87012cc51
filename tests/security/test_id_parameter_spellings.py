"""Other spellings of a checked id name, which frameworks read as the same parameter.

A route that checks ``invoice_id`` must not forward ``Invoice_Id``, ``invoice_id[]``,
``invoice_id%5B0%5D`` or ``invoice.id`` unchecked: PHP, Rails, ASP.NET and Go read
them as the checked name (case folding, ``.``/space/``[`` to ``_``, array suffixes), and
the request would be judged in the caller's tenant as if it named no object. Ids a
route checks in one place are also checked where frameworks merge them from (query
and body), duplicate JSON keys are refused, and every value of a repeated name counts.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.stack import Stack
from tests.support.victim import Victim, guarded_victim

API = {"Accept": "application/json"}
FORM = "application/x-www-form-urlencoded"

SPELLINGS = {
    "upper case": "INVOICE_ID",
    "title case": "Invoice_Id",
    "array suffix": "invoice_id[]",
    "indexed": "invoice_id[0]",
    "keyed": "invoice_id[x]",
    "encoded brackets": "invoice_id%5B0%5D",
    "encoded lower-case brackets": "invoice_id%5b%5d",
    "dot for underscore": "invoice.id",
    "space for underscore": "invoice+id",
    "encoded space": "invoice%20id",
    "open bracket for underscore": "invoice[id",
    "leading space": "%20invoice_id",
    "trailing NUL": "invoice_id%00",
    "mixed case": "invoice_ID",
    "double-encoded brackets": "invoice_id%255B%255D",
}


async def _refused(
    stack: Stack,
    victim: Victim,
    response_status: int,
    body: dict[str, object],
    request_id: str,
    *,
    status: int = 400,
    reason: str = "param-ambiguous",
    audited: str | None = None,
) -> None:
    assert response_status == status, body
    assert str(body["type"]).endswith(f"/{reason}"), body
    assert victim.hits(request_id) == 0, "nothing reached the app"
    rows = await stack.audit_rows(request_id)
    assert rows[0]["decision"] == "deny" and rows[0]["reason"] == (audited or reason)


@pytest.mark.parametrize("key", list(SPELLINGS.values()), ids=list(SPELLINGS))
async def test_another_spelling_of_a_checked_query_name_is_refused(
    tmp_path: Path, key: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.get(
            f"/search/things?{key}=4", headers=stack.cookie("alice@acme.test") | API
        )
        await _refused(
            stack, victim, response.status, await response.json(), response.headers["X-Request-Id"]
        )


@pytest.mark.parametrize("key", list(SPELLINGS.values()), ids=list(SPELLINGS))
async def test_another_spelling_of_a_checked_name_in_a_form_body_is_refused(
    tmp_path: Path, key: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            "/search/things",
            data=f"q=x&{key}=4",
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": FORM},
        )
        await _refused(
            stack, victim, response.status, await response.json(), response.headers["X-Request-Id"]
        )


JSON_SPELLINGS = {
    "upper case": {"thing": 1, "THING": 4},
    "title case": {"thing": 1, "Thing": 4},
    "alone in another case": {"Thing": 4},
    "nested item key in upper case": {"thing": 1, "order": {"items": [{"THING": 4}]}},
    "nested in another case": {"thing": 1, "order": {"ITEMS": [{"thing": 4}]}},
    "trailing space": {"thing ": 4},
}


@pytest.mark.parametrize("document", list(JSON_SPELLINGS.values()), ids=list(JSON_SPELLINGS))
async def test_another_spelling_of_a_checked_json_key_is_refused(
    tmp_path: Path, document: dict[str, object]
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            "/json/things",
            data=json.dumps(document),
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": "application/json"},
        )
        await _refused(
            stack, victim, response.status, await response.json(), response.headers["X-Request-Id"]
        )


DUPLICATES = {
    "top level": b'{"thing": 1, "thing": 4}',
    "inside an item": b'{"order": {"items": [{"thing": 1, "thing": 4}]}}',
    "on the way to the id": (
        b'{"order": {"items": [{"thing": 1}]}, "order": {"items": [{"thing": 4}]}}'
    ),
    "elsewhere in the document": b'{"thing": 1, "note": {"a": 1, "a": 2}}',
}


@pytest.mark.parametrize("body", list(DUPLICATES.values()), ids=list(DUPLICATES))
async def test_duplicate_json_keys_are_refused(tmp_path: Path, body: bytes) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            "/json/things",
            data=body,
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": "application/json"},
        )
        await _refused(
            stack,
            victim,
            response.status,
            await response.json(),
            response.headers["X-Request-Id"],
            reason="body-invalid",
        )


SEMICOLONS = {
    "form": ("/form/things", "thing=1;thing=4", FORM),
    "form after another field": ("/form/things", "thing=1&note=x;thing=4", FORM),
}


@pytest.mark.parametrize(("path", "body", "ctype"), list(SEMICOLONS.values()), ids=list(SEMICOLONS))
async def test_a_semicolon_separated_id_in_a_form_is_refused(
    tmp_path: Path, path: str, body: str, ctype: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            path, data=body, headers=stack.cookie("alice@acme.test") | API | {"Content-Type": ctype}
        )
        assert response.status == 400
        assert victim.hits(response.headers["X-Request-Id"]) == 0


async def test_a_semicolon_separated_id_in_the_query_is_refused(tmp_path: Path) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.get(
            "/search/things?q=x;invoice_id=4", headers=stack.cookie("alice@acme.test") | API
        )
        await _refused(
            stack, victim, response.status, await response.json(), response.headers["X-Request-Id"]
        )


CROSS_SOURCE = {
    "query id in a form body": ("/search/things", "", b"invoice_id=4", FORM),
    "query id in a JSON body": ("/search/things", "", b'{"invoice_id": 4}', "application/json"),
    "form id in the query": ("/form/things", "?thing=4", b"thing=1", FORM),
    "JSON id in the query": ("/json/things", "?thing=4", b'{"thing": 1}', "application/json"),
    "nested JSON id in the query, Rails style": (
        "/json/things",
        "?order[items][][thing]=4",
        b'{"thing": 1}',
        "application/json",
    ),
    "nested form id in the query": ("/nested/things", "?order[thing]=4", b"order[thing]=1", FORM),
}


@pytest.mark.parametrize(
    ("path", "query", "body", "ctype"), list(CROSS_SOURCE.values()), ids=list(CROSS_SOURCE)
)
async def test_an_id_name_is_checked_wherever_frameworks_merge_it_from(
    tmp_path: Path, path: str, query: str, body: bytes, ctype: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            path + query,
            data=body,
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": ctype},
        )
        await _refused(
            stack,
            victim,
            response.status,
            await response.json(),
            response.headers["X-Request-Id"],
            status=404,
            reason="object-not-found",
            audited="tenant-foreign",
        )


@pytest.mark.parametrize(
    ("path", "query", "body", "ctype"), list(CROSS_SOURCE.values()), ids=list(CROSS_SOURCE)
)
async def test_own_ids_in_merged_places_still_pass(
    tmp_path: Path, path: str, query: str, body: bytes, ctype: str
) -> None:
    own_query, own_body = query.replace("4", "3"), body.replace(b"4", b"3")
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            path + own_query,
            data=own_body,
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": ctype},
        )
        assert response.status == 200, await response.text()
        assert victim.seen(response.headers["X-Request-Id"])["body"] == own_body.decode()


VALUES = {
    "every value of a repeated field": (b"thing=1&thing=4", FORM, 404),
    "every value, foreign first": (b"thing=4&thing=1", FORM, 404),
    "JSON float": (b'{"thing": 4.0}', "application/json", 400),
    "JSON bool": (b'{"thing": true}', "application/json", 400),
    "JSON object": (b'{"thing": {"id": 4}}', "application/json", 400),
    "JSON array": (b'{"thing": [4]}', "application/json", 400),
    "JSON exponent": (b'{"thing": 4e0}', "application/json", 400),
    "JSON foreign in a list": (
        b'{"order": {"items": [{"thing": 1}, {"thing": 4}]}}',
        "application/json",
        404,
    ),
    "JSON string id": (b'{"thing": "4"}', "application/json", 404),
}


@pytest.mark.parametrize(("body", "ctype", "status"), list(VALUES.values()), ids=list(VALUES))
async def test_every_id_value_is_checked_and_only_ids_are_accepted(
    tmp_path: Path, body: bytes, ctype: str, status: int
) -> None:
    path = "/form/things" if ctype == FORM else "/json/things"
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            path, data=body, headers=stack.cookie("alice@acme.test") | API | {"Content-Type": ctype}
        )
        assert response.status == status, await response.text()
        assert victim.hits(response.headers["X-Request-Id"]) == 0


@pytest.mark.parametrize("path", ["/form/things", "/json/things", "/search/things"])
async def test_an_empty_body_names_no_ids_and_passes(tmp_path: Path, path: str) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(path, headers=stack.cookie("alice@acme.test") | API)
        assert response.status == 200, await response.text()
        assert victim.hits(response.headers["X-Request-Id"]) == 1


async def test_exact_names_still_pass(tmp_path: Path) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        alice = stack.cookie("alice@acme.test") | API
        own = await stack.client.get("/search/things?invoice_id=3&q=x", headers=alice)
        assert own.status == 200
        encoded = await stack.client.get(f"/search/things?{quote('invoice_id')}=3", headers=alice)
        assert encoded.status == 200
        foreign = await stack.client.get("/search/things?invoice_id=4", headers=alice)
        assert foreign.status == 404
        unrelated = await stack.client.get("/search/things?invoice_ids=4&invoice=4", headers=alice)
        assert unrelated.status == 200, "names that are not a spelling of invoice_id are not ids"


async def test_a_large_multipart_upload_is_scanned_in_place_for_ids(tmp_path: Path) -> None:
    """A 3 MiB upload on a route that checks ``invoice_id`` passes; one naming a foreign
    invoice in a field after the file is judged on it."""
    boundary = "b0undary"

    def upload(name: str, value: str) -> bytes:
        """A 3 MiB file part, then one text field."""
        return (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + bytes(range(256)) * 12288
            + (
                f"\r\n--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'
                f"\r\n--{boundary}--\r\n"
            ).encode()
        )

    ctype = f"multipart/form-data; boundary={boundary}"
    async with guarded_victim(tmp_path) as (stack, victim):
        alice = stack.cookie("alice@acme.test") | API | {"Content-Type": ctype}
        plain = upload("note", "x")
        response = await stack.client.post("/search/things", data=io.BytesIO(plain), headers=alice)
        assert response.status == 200, await response.text()
        assert victim.seen(response.headers["X-Request-Id"])["body"] == plain.decode("latin-1")
        foreign = upload("invoice_id", "4")
        response = await stack.client.post(
            "/search/things", data=io.BytesIO(foreign), headers=alice
        )
        assert response.status == 404
        assert victim.hits(response.headers["X-Request-Id"]) == 0
        variant = upload("Invoice_Id", "4")
        response = await stack.client.post(
            "/search/things", data=io.BytesIO(variant), headers=alice
        )
        assert response.status == 400
