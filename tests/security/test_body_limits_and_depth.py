"""Bodies read for inspection: a depth limit on JSON, the route's max_body, exact bytes.

JSON nested 100,000 levels deep used to end in a 500 (``RecursionError``); a body
buffered for id inspection ignored the route's ``max_body``. Both are refused with a
clear, audited answer, and what is inspected is exactly what the app receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.bodies import MAX_JSON_DEPTH
from tests.support.stack import Stack
from tests.support.victim import Victim, guarded_victim

API = {"Accept": "application/json"}
FORM = "application/x-www-form-urlencoded"


async def _refused(
    stack: Stack, victim: Victim, response: aiohttp.ClientResponse, status: int, reason: str
) -> None:
    problem = await response.json()
    assert response.status == status, problem
    assert str(problem["type"]).endswith(f"/{reason}")
    request_id = response.headers["X-Request-Id"]
    assert victim.hits(request_id) == 0, "nothing reached the app"
    rows = await stack.audit_rows(request_id)
    assert rows[0]["decision"] == "deny" and rows[0]["reason"] == reason


def _nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return ('{"thing": 1, "deep": ' + opener * depth + closer * depth + "}").encode()


DEEP = {
    "100,000 arrays": _nested(100_000),
    "100,000 objects": ('{"thing": 1, "d": ' + '{"a":' * 100_000 + "1" + "}" * 100_001).encode(),
    "one level past the limit": _nested(MAX_JSON_DEPTH),
}


@pytest.mark.parametrize("body", list(DEEP.values()), ids=list(DEEP))
@pytest.mark.parametrize("path", ["/json/things", "/notes"], ids=["id route", "override read"])
async def test_deeply_nested_json_is_refused_not_a_500(
    tmp_path: Path, body: bytes, path: str
) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            path,
            data=body,
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": "application/json"},
        )
        await _refused(stack, victim, response, 400, "body-invalid")


async def test_nesting_up_to_the_limit_and_brackets_in_strings_pass(tmp_path: Path) -> None:
    async with guarded_victim(tmp_path) as (stack, victim):
        alice = stack.cookie("alice@acme.test") | API | {"Content-Type": "application/json"}
        at_limit = _nested(MAX_JSON_DEPTH - 1)
        response = await stack.client.post("/json/things", data=at_limit, headers=alice)
        assert response.status == 200
        in_string = b'{"thing": 1, "note": "' + b"[{" * 10_000 + b'"}'
        response = await stack.client.post("/json/things", data=in_string, headers=alice)
        assert response.status == 200
        assert victim.seen(response.headers["X-Request-Id"])["body"] == in_string.decode()


async def _chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/small/things", "/small/things?via=override"])
async def test_a_buffered_body_over_the_routes_max_body_is_refused(
    tmp_path: Path, chunked: bool, path: str
) -> None:
    """``small-form`` allows 1 KiB; 2 KiB is refused whether or not its length is declared."""
    body = b"thing=1&note=" + b"x" * 2048
    if "override" in path:
        body = b"_method=PATCH&" + body
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            path,
            data=_chunks(body) if chunked else body,
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": FORM},
        )
        await _refused(stack, victim, response, 413, "body-too-large")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_the_app_receives_exactly_the_bytes_inspected(tmp_path: Path, chunked: bool) -> None:
    body = b"thing=1&thing=3&note=caf%C3%A9+%26+more"
    async with guarded_victim(tmp_path) as (stack, victim):
        response = await stack.client.post(
            "/small/things",
            data=_chunks(body, 7) if chunked else body,
            headers=stack.cookie("alice@acme.test") | API | {"Content-Type": FORM},
        )
        assert response.status == 200
        seen = victim.seen(response.headers["X-Request-Id"])
        assert seen["body"] == body.decode() and seen["params"]["thing"] == ["1", "3"]
