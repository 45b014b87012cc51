"""Ids hidden in a body by its declared charset, or in a body the gateway cannot parse.

The app behind decodes bodies by the charset the client declares (aiohttp's
``request.post()`` and ``request.json()`` do), so a gateway that reads every body as
UTF-8 checks a decoy while the app acts on another tenant's object. On a route that
inspects body ids, such a body is refused and never forwarded uninspected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.stack import Stack
from tests.support.victim import Victim, guarded_victim

API = {"Accept": "application/json"}
FORM = "application/x-www-form-urlencoded"
UTF7_DECOY = b'{"thing":1,"x":"+ACI-,+ACI-thing+ACI-:4,+ACI-y+ACI-:+ACI-"}'
"""Read as UTF-8 it names thing 1 (acme's); read as UTF-7 it names thing 4 (globex's)."""


async def _post(
    stack: Stack, path: str, body: bytes, content_type: str | None
) -> tuple[int, dict[str, object], str]:
    headers = stack.cookie("alice@acme.test") | API
    if content_type is not None:
        headers["Content-Type"] = content_type
    skip = () if content_type is not None else ("Content-Type",)
    response = await stack.client.post(path, data=body, headers=headers, skip_auto_headers=skip)
    return response.status, await response.json(), response.headers["X-Request-Id"]


async def _assert_refused(
    stack: Stack,
    victim: Victim,
    request_id: str,
    status: int,
    problem: dict[str, object],
    expected_status: int,
    reason: str,
) -> None:
    assert status == expected_status, problem
    assert str(problem["type"]).endswith(f"/{reason}")
    assert victim.hits(request_id) == 0, "nothing reached the app"
    rows = await stack.audit_rows(request_id)
    assert rows and rows[0]["decision"] == "deny" and rows[0]["reason"] == reason


async def test_the_victim_really_decodes_by_the_declared_charset(tmp_path: Path) -> None:
    """The attack's premise, shown without the gateway: utf-16 ``thing=4`` is read as 4."""
    async with guarded_victim(tmp_path) as (stack, victim):
        assert stack.http is not None
        body = "thing=4".encode("utf-16-le")
        async with stack.http.post(
            f"{victim.url}/form/things",
            data=body,
            headers={"Content-Type": f"{FORM}; charset=utf-16-le", "X-Request-Id": "direct"},
        ) as response:
            assert response.status == 200
        assert victim.seen("direct")["params"]["thing"] == ["4"]
        async with stack.http.post(
            f"{victim.url}/json/things",
            data=UTF7_DECOY,
            headers={"Content-Type": "application/json; charset=utf-7", "X-Request-Id": "direct7"},
        ) as response:
            assert response.status == 200
        assert json.loads(UTF7_DECOY)["thing"] == 1, "read as UTF-8 the body names thing 1"
        assert victim.seen("direct7")["params"]["thing"] == ["4"], "the app acts on thing 4"


FORM_CHARSET_ATTACKS = {
    "utf-16-le form": ("thing=4".encode("utf-16-le"), f"{FORM}; charset=utf-16-le", 415),
    "utf-16 form with BOM": ("thing=4".encode("utf-16"), f"{FORM}; charset=utf-16", 415),
    "utf-16-be form": ("thing=4".encode("utf-16-be"), f"{FORM}; charset=UTF-16BE", 415),
    "utf-32 form": ("thing=4".encode("utf-32"), f"{FORM}; charset=utf-32", 415),
    "utf-7 form": ("thing=4".encode("utf-7"), f'{FORM}; charset="utf-7"', 415),
    "latin-1 with non-ASCII": (
        "thing=1&note=caf\xe9".encode("latin-1"),
        f"{FORM}; charset=latin-1",
        415,
    ),
    "cp037 (EBCDIC) form": ("thing=4".encode("cp037"), f"{FORM}; charset=cp037", 415),
    "invalid UTF-8 bytes": (b"thing=1&note=\xff\xfe", FORM, 400),
    "overlong UTF-8": (b"thing=1&note=\xc0\xae", FORM, 400),
    "UTF-8 BOM": (b"\xef\xbb\xbfthing=1", FORM, 400),
    "declared us-ascii, sent UTF-8": (
        "thing=1&n=\u00e9".encode(),
        f"{FORM}; charset=us-ascii",
        400,
    ),
    "two charset parameters": (b"thing=1", f"{FORM}; charset=utf-8; charset=utf-16", 415),
    "text/plain": (b"thing=4", "text/plain", 415),
    "no content type": (b"thing=4", None, 415),
    "form-ish media type": (b"thing=4", "application/x-www-form-urlencoded-x", 415),
    "list of media types": (b"thing=4", f"{FORM}, text/plain", 415),
    "json on a form route": (b'{"thing": 4}', "application/json", 415),
    "octet-stream": (b"thing=4", "application/octet-stream", 415),
    "_charset_ field naming utf-16": (b"_charset_=utf-16&thing=1", FORM, 415),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    list(FORM_CHARSET_ATTACKS.values()),
    ids=list(FORM_CHARSET_ATTACKS),
)
async def test_a_form_the_gateway_cannot_read_as_the_app_does_is_refused(
    tmp_path: Path, body: bytes, content_type: str | None, status: int
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        got, problem, request_id = await _post(stack, "/form/things", body, content_type)
        reason = "body-unsupported" if status == 415 else "body-invalid"
        await _assert_refused(stack, victim, request_id, got, problem, status, reason)


JSON_CHARSET_ATTACKS = {
    "utf-7 hides a second key": (
        UTF7_DECOY,
        "application/json; charset=utf-7",
        415,
    ),
    "utf-16-le JSON": (
        '{"thing": 4}'.encode("utf-16-le"),
        "application/json; charset=utf-16-le",
        415,
    ),
    "utf-16 JSON without a charset": ('{"thing": 4}'.encode("utf-16"), "application/json", 400),
    "utf-32 JSON without a charset": ('{"thing": 4}'.encode("utf-32"), "application/json", 400),
    "latin-1 JSON": (
        '{"thing": 1, "n": "\xe9"}'.encode("latin-1"),
        "application/json; charset=iso-8859-1",
        415,
    ),
    "invalid UTF-8": (b'{"thing": 1, "n": "\xff"}', "application/json", 400),
    "UTF-8 BOM": (b'\xef\xbb\xbf{"thing": 1}', "application/json", 400),
    "text/plain JSON": (b'{"thing": 4}', "text/plain", 415),
    "no content type": (b'{"thing": 4}', None, 415),
    "form on a JSON route": (b"thing=4", FORM, 415),
    "json-ish media type": (b'{"thing": 4}', "application/jsonx", 415),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    list(JSON_CHARSET_ATTACKS.values()),
    ids=list(JSON_CHARSET_ATTACKS),
)
async def test_json_the_gateway_cannot_read_as_the_app_does_is_refused(
    tmp_path: Path, body: bytes, content_type: str | None, status: int
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        got, problem, request_id = await _post(stack, "/json/things", body, content_type)
        reason = "body-unsupported" if status == 415 else "body-invalid"
        await _assert_refused(stack, victim, request_id, got, problem, status, reason)


ACCEPTED = {
    "utf-8 form": ("/form/things", b"thing=1&note=caf\xc3\xa9", f"{FORM}; charset=UTF-8"),
    "ascii form": ("/form/things", b"thing=1", f"{FORM}; charset=us-ascii"),
    "plain form": ("/form/things", b"thing=1", FORM),
    "utf-8 JSON": (
        "/json/things",
        json.dumps({"thing": 1, "n": "\u00e9"}).encode(),
        "application/json; charset=utf-8",
    ),
    "vendor JSON": ("/json/things", b'{"thing": 3}', "application/vnd.api+json"),
}


@pytest.mark.parametrize(
    ("path", "body", "content_type"), list(ACCEPTED.values()), ids=list(ACCEPTED)
)
async def test_utf8_bodies_with_own_ids_still_pass_byte_for_byte(
    tmp_path: Path, path: str, body: bytes, content_type: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        got, problem, request_id = await _post(stack, path, body, content_type)
        assert got == 200, problem
        assert victim.seen(request_id)["body"] == body.decode("latin-1"), "forwarded as inspected"


async def test_a_utf16_form_naming_a_foreign_thing_never_reaches_the_app(tmp_path: Path) -> None:
    """The reported attack end to end: refused, audited, and the app acted on nothing."""
    async with guarded_victim(tmp_path) as (stack, victim):
        body = "thing=4".encode("utf-16-le")
        got, problem, request_id = await _post(
            stack, "/form/things", body, f"{FORM}; charset=utf-16-le"
        )
        await _assert_refused(stack, victim, request_id, got, problem, 415, "body-unsupported")
        assert victim.seen(request_id) == {}
