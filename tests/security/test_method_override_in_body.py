"""A ``_method`` field in a POST body makes Rails, Laravel and Symfony run another method.

Authorizing the POST while the app runs DELETE lets a caller who may write delete.
The gateway reads ``_method`` from urlencoded, multipart and JSON POST bodies and
routes and decides the request as the method the app will run (a legacy form's
``_method=patch`` keeps working where PATCH is allowed), refuses what it cannot read
unambiguously, and forwards exactly the bytes it inspected. The victim app behind
honours ``_method`` like Rails, so the tests show what would have run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.stack import Stack
from tests.support.victim import Victim, guarded_victim

API = {"Accept": "application/json"}
FORM = "application/x-www-form-urlencoded"
BOUNDARY = "gatehold-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*fields: tuple[str, str], boundary: str = BOUNDARY) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


DELETE_IN = {
    "urlencoded": (b"note=x&_method=DELETE", FORM),
    "urlencoded, lower case": (b"_method=delete", FORM),
    "multipart": (multipart(("note", "x"), ("_method", "DELETE")), MULTIPART),
    "JSON": (b'{"note": "x", "_method": "DELETE"}', "application/json"),
    "no Content-Type (Rack reads it as a form)": (b"_method=DELETE", None),
}


async def _post(
    stack: Stack, path: str, body: bytes, content_type: str | None, who: str = "alice@acme.test"
) -> aiohttp.ClientResponse:
    headers = stack.cookie(who) | API
    if content_type is None:
        return await stack.client.post(
            path, data=body, headers=headers, skip_auto_headers=("Content-Type",)
        )
    headers["Content-Type"] = content_type
    data = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns on big bytes
    return await stack.client.post(path, data=data, headers=headers)


async def _refused(
    stack: Stack, victim: Victim, response: aiohttp.ClientResponse, status: int, reason: str
) -> dict[str, object]:
    problem = await response.json()
    assert response.status == status, problem
    assert str(problem["type"]).endswith(f"/{reason}")
    request_id = response.headers["X-Request-Id"]
    assert victim.hits(request_id) == 0, "nothing reached the app"
    rows = await stack.audit_rows(request_id)
    assert rows[0]["decision"] == "deny" and rows[0]["reason"] == reason
    return rows[0]


@pytest.mark.parametrize(("body", "ctype"), list(DELETE_IN.values()), ids=list(DELETE_IN))
async def test_a_post_overridden_to_delete_is_judged_as_a_delete(
    tmp_path: Path, body: bytes, ctype: str | None
) -> None:
    """Alice may write but not delete: her POST carrying ``_method=DELETE`` is a delete."""
    async with guarded_victim(tmp_path) as (stack, victim):
        assert stack.http is not None
        async with stack.http.post(
            f"{victim.url}/things/3",
            data=body,
            headers={"X-Request-Id": "direct"} | ({"Content-Type": ctype} if ctype else {}),
        ):
            pass
        if ctype is not None:
            assert victim.seen("direct")["method"] == "DELETE", "the app would have deleted"
        response = await _post(stack, "/things/3", body, ctype)
        row = await _refused(stack, victim, response, 403, "role-forbidden")
        assert row["method"] == "DELETE"
        assert json.loads(row["data"])["method_override"] == "POST"


@pytest.mark.parametrize(("body", "ctype"), list(DELETE_IN.values()), ids=list(DELETE_IN))
async def test_an_override_is_followed_for_whoever_may_run_it(
    tmp_path: Path, body: bytes, ctype: str | None
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/things/3", body, ctype, who="admin@example.test")
        assert response.status == 200, await response.text()
        request_id = response.headers["X-Request-Id"]
        seen = victim.seen(request_id)
        assert seen["body"] == body.decode(), "forwarded exactly as inspected"
        rows = await stack.audit_rows(request_id)
        assert rows[0]["method"] == "DELETE" and rows[0]["route"] == "thing-delete"


async def test_a_legacy_form_patch_keeps_working_where_patch_is_allowed(tmp_path: Path) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/things/3", b"_method=patch&name=new", FORM)
        assert response.status == 200
        request_id = response.headers["X-Request-Id"]
        assert victim.seen(request_id)["method"] == "PATCH"
        rows = await stack.audit_rows(request_id)
        assert (rows[0]["method"], rows[0]["route"]) == ("PATCH", "thing-update")
        assert json.loads(rows[0]["data"])["method_override"] == "POST"
        foreign = await _post(stack, "/things/4", b"_method=patch", FORM)
        assert foreign.status == 404, "a foreign thing is still a foreign thing"


async def test_an_override_to_a_method_the_route_lacks_is_refused(tmp_path: Path) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/notes", b"_method=DELETE&text=hi", FORM)
        await _refused(stack, victim, response, 405, "method-not-allowed")
        public = await stack.client.post(
            "/public/post", data=b"_method=DELETE", headers=API | {"Content-Type": FORM}
        )
        await _refused(stack, victim, public, 405, "method-not-allowed")


INVALID = {
    "two different values": (b"_method=PATCH&_method=DELETE", FORM, "method-override-invalid"),
    "to GET": (b"_method=GET", FORM, "method-override-invalid"),
    "to POST": (b"_method=POST", FORM, "method-override-invalid"),
    "to HEAD": (b"_method=HEAD", FORM, "method-override-invalid"),
    "to OPTIONS": (b"_method=OPTIONS", FORM, "method-override-invalid"),
    "padded value": (b"_method=+PUT", FORM, "method-override-invalid"),
    "JSON non-string": (b'{"_method": ["DELETE"]}', "application/json", "method-override-invalid"),
    "multipart, two values": (
        multipart(("_method", "PUT"), ("_method", "DELETE")),
        MULTIPART,
        "method-override-invalid",
    ),
    "upper-case name": (b"_METHOD=DELETE", FORM, "param-ambiguous"),
    "array name": (b"_method[]=DELETE", FORM, "param-ambiguous"),
    "dotted name (PHP reads _method)": (b".method=DELETE", FORM, "param-ambiguous"),
    "JSON name in another case": (b'{"_Method": "DELETE"}', "application/json", "param-ambiguous"),
    "semicolon-separated": (b"note=x;_method=DELETE", FORM, "param-ambiguous"),
}


@pytest.mark.parametrize(("body", "ctype", "reason"), list(INVALID.values()), ids=list(INVALID))
async def test_an_override_that_is_not_unambiguous_is_refused(
    tmp_path: Path, body: bytes, ctype: str, reason: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/things/3", body, ctype, who="admin@example.test")
        await _refused(stack, victim, response, 400, reason)


def _raw_multipart(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


AMBIGUOUS_MULTIPART = {
    "no boundary": (multipart(("_method", "DELETE")), "multipart/form-data", 400),
    "two boundaries": (
        multipart(("_method", "DELETE")),
        f"{MULTIPART}; boundary=other",
        415,
    ),
    "boundary after a bare LF inside a part": (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\n--{BOUNDARY}\n'
            f'Content-Disposition: form-data; name="_method"\n\nDELETE\r\n--{BOUNDARY}--\r\n'
        ).encode(),
        MULTIPART,
        400,
    ),
    "preamble": (b"hello\r\n" + multipart(("_method", "DELETE")), MULTIPART, 400),
    "Content-Transfer-Encoding": (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_method"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\nREVMRVRF\r\n--{BOUNDARY}--\r\n"
        ).encode(),
        MULTIPART,
        400,
    ),
    "utf-16 field": (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_method"\r\n'.encode()
        + b"Content-Type: text/plain; charset=utf-16-le\r\n\r\n"
        + "DELETE".encode("utf-16-le")
        + f"\r\n--{BOUNDARY}--\r\n".encode(),
        MULTIPART,
        415,
    ),
    "RFC 2231 name": (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name*=UTF-8''_method\r\n\r\n"
            f"DELETE\r\n--{BOUNDARY}--\r\n"
        ).encode(),
        MULTIPART,
        400,
    ),
    "not closed": (multipart(("_method", "DELETE"))[: -len(f"--{BOUNDARY}--\r\n")], MULTIPART, 400),
    "data after the end": (multipart(("_method", "DELETE")) + b"--x\r\n", MULTIPART, 400),
    "_method as a file": (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_method"; filename="m"\r\n'
            f"\r\nDELETE\r\n--{BOUNDARY}--\r\n"
        ).encode(),
        MULTIPART,
        400,
    ),
}


@pytest.mark.parametrize(
    ("body", "ctype", "status"), list(AMBIGUOUS_MULTIPART.values()), ids=list(AMBIGUOUS_MULTIPART)
)
async def test_a_multipart_body_that_cannot_be_read_unambiguously_is_refused(
    tmp_path: Path, body: bytes, ctype: str, status: int
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/notes", body, ctype)
        assert response.status == status, await response.text()
        assert victim.hits(response.headers["X-Request-Id"]) == 0


async def test_overrides_can_be_refused_by_setting(tmp_path: Path) -> None:
    async with guarded_victim(tmp_path, policy={"method_override": "refuse"}) as (stack, victim):
        response = await _post(stack, "/things/3", b"_method=PATCH", FORM)
        await _refused(stack, victim, response, 400, "method-override-invalid")
        plain = await _post(stack, "/things/3", b"name=x", FORM)
        assert plain.status == 200


async def test_a_large_upload_is_spooled_and_an_override_at_its_end_still_found(
    tmp_path: Path,
) -> None:
    big = "x" * (3 * 1024 * 1024)
    async with guarded_victim(tmp_path) as (stack, victim):
        plain = await _post(stack, "/notes", multipart(("text", big)), MULTIPART)
        assert plain.status == 200
        assert len(victim.seen(plain.headers["X-Request-Id"])["body"]) > 3 * 1024 * 1024
        hidden = multipart(("text", big), ("_method", "DELETE"))
        response = await _post(stack, "/notes", hidden, MULTIPART)
        await _refused(stack, victim, response, 405, "method-not-allowed")


async def test_only_posts_are_read_for_overrides(tmp_path: Path) -> None:
    """Frameworks override POST only; a PUT carrying ``_method`` runs as PUT."""
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.put(
            "/things/3",
            data=b"_method=DELETE",
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": FORM},
        )
        assert response.status == 200
        assert victim.seen(response.headers["X-Request-Id"])["method"] == "PUT"


async def test_the_overridden_methods_route_limits_the_body(tmp_path: Path) -> None:
    """POST /items/1 takes 10 MiB, PATCH only 1 KiB: an override to PATCH gets PATCH's limit."""
    body = b"_method=PATCH&note=" + b"x" * 2048
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/items/1", body, FORM)
        await _refused(stack, victim, response, 413, "body-too-large")
        plain = await _post(stack, "/items/1", body[len(b"_method=PATCH&") :], FORM)
        assert plain.status == 200


async def test_a_binary_upload_sent_as_a_form_still_passes_where_no_ids_are_checked(
    tmp_path: Path,
) -> None:
    """curl's --data-binary labels anything a form; the override check reads only keys."""
    body = bytes(range(256)) * 8
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await _post(stack, "/notes", body, FORM)
        assert response.status == 200
        assert victim.seen(response.headers["X-Request-Id"])["body"] == body.decode("latin-1")
        hidden = body + b"&_method=DELETE"
        refused = await _post(stack, "/notes", hidden, FORM)
        await _refused(stack, victim, refused, 405, "method-not-allowed")


QUERY_SPELLINGS = ["_METHOD=DELETE", ".method=DELETE", "_method[]=DELETE", "x=1;_method=DELETE"]


@pytest.mark.parametrize("query", QUERY_SPELLINGS)
async def test_every_spelling_of_method_in_the_query_is_refused_at_ingress(
    tmp_path: Path, query: str
) -> None:
    """Symfony also reads ``_method`` from the query, and PHP folds ``.method`` into it."""
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            f"/things/3?{query}", headers=stack.cookie("admin@example.test") | API
        )
        problem = await response.json()
        assert response.status == 400 and problem["type"].endswith("/target-ambiguous")
        assert victim.hits(problem["request_id"]) == 0
        rejected = await stack.events("rejected")
        assert [e["reason"] for e in rejected] == ["target-ambiguous"]
