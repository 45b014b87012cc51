"""The response guard on its own: the pure checks, then ``ResponseGuard.check``.

``check`` is fed real ``aiohttp.ClientResponse`` objects, fetched from a scripted app on
a loopback port that sends each body in chunks, so reading "to the end" and the size
limit are exercised on a real stream. (The guard inside the running gateway is covered
in ``tests/security/test_guard_sees_every_answer.py``.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.forward import UpstreamReply
from gateway.guard import (
    ResponseGuard,
    drop_foreign,
    filter_foreign,
    foreign_in_error,
    foreign_values,
    parse_json,
    strip_fields,
)
from gateway.jsonpointer import MISSING
from gateway.model import (
    Decision,
    FieldAllowance,
    GuardMode,
    GuardReport,
    GuardSpec,
    Reason,
    Rejection,
    Route,
    RouteMatch,
)
from tests.support.scripted_upstream import Answer, Scripted, scripted_upstream

POINTER = "/items/*/tenant"
ACME = Decision(True, Reason.ROLE_ALLOWED, action="read", tenant="acme", roles=("standard",))


def items(*tenants: str) -> dict[str, Any]:
    return {"items": [{"id": n, "tenant": t} for n, t in enumerate(tenants)]}


# --- the pure functions -------------------------------------------------------------


def test_foreign_values_lists_other_tenants_and_missing_places() -> None:
    document = {"items": [{"tenant": "acme"}, {"tenant": "globex"}, {"name": "no tenant"}]}
    assert foreign_values(document, POINTER, "acme") == ["globex", MISSING]
    assert foreign_values(items("acme", "acme"), POINTER, "acme") == []


def test_without_a_tenant_every_value_is_foreign() -> None:
    assert foreign_values(items("acme"), POINTER, None) == ["acme"]
    assert foreign_in_error({"tenant": "acme"}, POINTER, None)


def test_an_error_is_foreign_when_a_member_named_like_the_pointer_is_anywhere() -> None:
    deep = {"error": "boom", "debug": {"rows": [{"row": {"tenant": "globex"}}]}}
    assert foreign_in_error(deep, POINTER, "acme")
    assert foreign_in_error(items("globex"), POINTER, "acme")
    assert not foreign_in_error({"error": "gone", "debug": {"tenant": "acme"}}, POINTER, "acme")
    assert not foreign_in_error({"error": "gone"}, POINTER, "acme"), "names no tenant"


def test_filter_foreign_keeps_only_the_tenants_elements() -> None:
    document = items("acme", "globex", "acme")
    document["items"].append({"id": 9})  # no tenant at all: not the tenant's, dropped
    filtered = filter_foreign(document, POINTER, "acme")
    assert [row["id"] for row in filtered["items"]] == [0, 2]


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({"items": "globex"}, POINTER),  # the list is a string
        ({"items": None}, POINTER),  # the list is null
        ({"rows": []}, POINTER),  # the list is missing
        (items("acme"), "/items/0/tenant"),  # the pointer walks no array
    ],
)
def test_filter_foreign_refuses_a_shape_it_cannot_filter(document: Any, pointer: str) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        filter_foreign(document, pointer, "acme")


@pytest.mark.parametrize(
    "body",
    [
        b'"a bare string"',
        b"42",
        b"null",
        b"<html>acme</html>",
        b'{"tenant": "acme", "tenant": "globex"}',
        b'{"items": [{"tenant": "acme", "tenant": "globex"}]}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
        b"",
        '{"items": [{"tenant": "acme"}]}'.encode("utf-16"),
        '{"items": [{"tenant": "acme"}]}'.encode("utf-16-le"),
        '{"items": [{"tenant": "acme"}]}'.encode("utf-32-be"),
        b'\xef\xbb\xbf{"items": []}',
        b'{"items": [], "total": NaN}',
        b'{"items": [], "total": -Infinity}',
    ],
    ids=[
        "string",
        "number",
        "null",
        "html",
        "duplicate",
        "nested duplicate",
        "not utf-8",
        "too deep",
        "empty",
        "utf-16 with a BOM",
        "utf-16 without one",
        "utf-32",
        "utf-8 BOM",
        "NaN",
        "Infinity",
    ],
)
def test_parse_json_accepts_only_one_unambiguous_object_or_array(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json(body)


def test_parse_json_reads_objects_and_arrays() -> None:
    assert parse_json(b'{"a": [1, {"b": "c"}]}') == {"a": [1, {"b": "c"}]}
    assert parse_json(b"[]") == []


# --- ResponseGuard.check on real streamed answers -------------------------------------


def match_for(mode: GuardMode | None, pointer: str = POINTER) -> RouteMatch:
    guard = None if mode is None else GuardSpec(pointer, mode)
    route = Route("listing", "/api/items", frozenset({"GET", "HEAD"}), "app", guard=guard)
    return RouteMatch(route, {})


def chunks_of(document: Any, pieces: int = 4, status: int = 200) -> Answer:
    data = json.dumps(document).encode()
    size = -(-len(data) // pieces)
    return Answer(
        status=status, chunks=tuple(data[i : i + size] for i in range(0, len(data), size))
    )


@asynccontextmanager
async def app_answering(answers: dict[str, Answer]) -> AsyncIterator[Scripted]:
    async with scripted_upstream("app", answers=answers) as app:
        yield app


@asynccontextmanager
async def reply_from(app: Scripted, path: str, method: str = "GET") -> AsyncIterator[UpstreamReply]:
    """The app's answer as the forwarder hands it to the guard: still streaming."""
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        response = await http.request(method, app.url + path)
        try:
            yield UpstreamReply(
                response.status,
                response.reason or "",
                CIMultiDict(response.headers),
                response,
                None,
                "app",
            )
        finally:
            response.release()


async def checked(
    answer: Answer,
    mode: GuardMode | None,
    *,
    method: str = "GET",
    decision: Decision = ACME,
    guard: ResponseGuard | None = None,
    pointer: str = POINTER,
) -> UpstreamReply | Rejection:
    async with app_answering({"/api/items": answer}) as app:
        async with reply_from(app, "/api/items", method) as reply:
            result = await (guard or ResponseGuard()).check(
                reply, match=match_for(mode, pointer), decision=decision
            )
            if not isinstance(result, Rejection):
                assert result.status == reply.status
                assert result.headers.get("Content-Type") == reply.headers.get("Content-Type")
            if mode is not None and reply.response is not None:
                assert reply.response.connection is None, "the upstream answer was not released"
            return result


def body_of(result: UpstreamReply | Rejection) -> Any:
    assert not isinstance(result, Rejection), result
    assert result.body is not None, "the checked answer must be sent from the checked bytes"
    return json.loads(result.body)


@pytest.mark.parametrize("mode", list(GuardMode))
async def test_a_clean_answer_read_across_chunks_passes_whole(mode: GuardMode) -> None:
    document = items(*["acme"] * 200)
    result = await checked(chunks_of(document, pieces=20), mode)
    assert body_of(result) == document


@pytest.mark.parametrize(
    "document",
    [
        items("acme", "globex"),
        items("globex"),
        {"items": [{"id": 1, "tenant": "acme"}, {"id": 2}]},  # a missing tenant counts
        {"items": [{"id": 1, "tenant": "ACME"}]},  # no case folding
    ],
    ids=["one foreign", "all foreign", "missing", "case"],
)
async def test_block_refuses_an_answer_with_any_foreign_row(document: Any) -> None:
    result = await checked(chunks_of(document), GuardMode.BLOCK)
    assert isinstance(result, Rejection) and result.reason is Reason.GUARD_BLOCKED


async def test_filter_drops_the_foreign_rows_and_sends_the_rest() -> None:
    result = await checked(chunks_of(items("acme", "globex", "acme", "initech")), GuardMode.FILTER)
    assert body_of(result) == {"items": [{"id": 0, "tenant": "acme"}, {"id": 2, "tenant": "acme"}]}


async def test_filter_refuses_an_answer_whose_shape_it_cannot_filter() -> None:
    result = await checked(chunks_of({"items": "globex"}), GuardMode.FILTER)
    assert isinstance(result, Rejection) and result.reason is Reason.GUARD_BLOCKED


async def test_a_caller_without_a_tenant_sees_no_rows() -> None:
    anonymous = Decision(True, Reason.PUBLIC_ROUTE, action="read", tenant=None)
    blocked = await checked(chunks_of(items("acme")), GuardMode.BLOCK, decision=anonymous)
    assert isinstance(blocked, Rejection)
    filtered = await checked(chunks_of(items("acme")), GuardMode.FILTER, decision=anonymous)
    assert body_of(filtered) == {"items": []}


@pytest.mark.parametrize("mode", list(GuardMode))
@pytest.mark.parametrize("status", [400, 404, 409, 500, 503])
async def test_an_error_carrying_a_foreign_row_is_refused(mode: GuardMode, status: int) -> None:
    leak = {"error": "boom", "debug": {"row": {"tenant": "globex", "secret": "s"}}}
    result = await checked(chunks_of(leak, status=status), mode)
    assert isinstance(result, Rejection) and result.reason is Reason.GUARD_BLOCKED


@pytest.mark.parametrize("mode", list(GuardMode))
async def test_an_error_naming_no_tenant_or_the_callers_passes(mode: GuardMode) -> None:
    for document in ({"error": "not found"}, {"error": "x", "tenant": "acme"}):
        result = await checked(chunks_of(document, status=404), mode)
        assert body_of(result) == document


@pytest.mark.parametrize("mode", list(GuardMode))
@pytest.mark.parametrize(
    "answer",
    [
        Answer(chunks=(b"<html>", b"globex", b"</html>"), content_type="text/html"),
        Answer(
            chunks=(
                b'{"items": [{"tenant": "acme", ',
                b'"tenant": "globex"}]}',
            )
        ),
        Answer(chunks=(b'{"items": [{"tenant": "acme"}',)),  # cut short
        Answer(status=500, chunks=(b"Traceback: globex",), content_type="text/plain"),
        Answer(chunks=(b'"acme"',)),
    ],
    ids=["html", "duplicate member", "truncated", "plain-text error", "bare string"],
)
async def test_an_answer_that_cannot_be_checked_is_refused(mode: GuardMode, answer: Answer) -> None:
    result = await checked(answer, mode)
    assert isinstance(result, Rejection) and result.reason is Reason.GUARD_BLOCKED


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_an_answer_over_the_limit_is_refused_whatever_its_framing(chunked: bool) -> None:
    document = items(*["acme"] * 100)
    size = len(json.dumps(document))
    answer = chunks_of(document, pieces=10)
    answer.chunked = chunked
    small = ResponseGuard(max_bytes=size - 1)
    result = await checked(answer, GuardMode.BLOCK, guard=small)
    assert isinstance(result, Rejection) and result.reason is Reason.GUARD_BLOCKED
    exact = await checked(answer, GuardMode.BLOCK, guard=ResponseGuard(max_bytes=size))
    assert body_of(exact) == document


@pytest.mark.parametrize("status", [204, 304])
async def test_a_bodiless_status_passes_unread(status: int) -> None:
    result = await checked(Answer(status=status, content_type=""), GuardMode.BLOCK)
    assert isinstance(result, UpstreamReply) and result.status == status
    assert result.body is None


async def test_an_answer_to_head_passes_unread() -> None:
    result = await checked(chunks_of(items("globex")), GuardMode.BLOCK, method="HEAD")
    assert isinstance(result, UpstreamReply) and result.body is None


async def test_an_unguarded_route_is_passed_on_still_streaming() -> None:
    async with app_answering({"/api/items": chunks_of(items("globex"))}) as app:
        async with reply_from(app, "/api/items") as reply:
            result = await ResponseGuard().check(reply, match=match_for(None), decision=ACME)
            assert result is reply
            assert reply.response is not None and not reply.response.content.at_eof()
            assert json.loads(await reply.response.read()) == items("globex")


async def test_a_buffered_reply_without_a_response_is_passed_on() -> None:
    reply = UpstreamReply(200, "OK", CIMultiDict(), None, b'{"items": []}', "app")
    result = await ResponseGuard().check(reply, match=match_for(GuardMode.BLOCK), decision=ACME)
    assert result is reply


async def test_escaped_pointer_tokens_reach_the_member_they_name() -> None:
    pointer = "/data/a~1b/*/te~0nant"
    leak = {"data": {"a/b": [{"te~nant": "acme"}, {"te~nant": "globex"}]}}
    blocked = await checked(chunks_of(leak), GuardMode.BLOCK, pointer=pointer)
    assert isinstance(blocked, Rejection)
    filtered = await checked(chunks_of(leak), GuardMode.FILTER, pointer=pointer)
    assert body_of(filtered) == {"data": {"a/b": [{"te~nant": "acme"}]}}


# --- array rows, objects keyed by id, field stripping, the audit report ----------------


def test_rows_answered_as_arrays_are_checked_by_index() -> None:
    document = {"columns": ["id", "tenant"], "rows": [[1, "acme"], [2, "globex"], [3]]}
    assert foreign_values(document, "/rows/*/1", "acme") == ["globex", MISSING]
    assert drop_foreign(document, "/rows/*/1", "acme") == 2
    assert document["rows"] == [[1, "acme"]]


def test_filter_drops_the_foreign_members_of_an_object_keyed_by_id() -> None:
    document = {"by_id": {"7": {"tenant": "acme"}, "8": {"tenant": "globex"}, "9": {}}}
    assert drop_foreign(document, "/by_id/*/tenant", "acme") == 2
    assert document == {"by_id": {"7": {"tenant": "acme"}}}


def test_strip_fields_keeps_only_the_allowed_members_where_at_points() -> None:
    document = {"rows": [{"id": 1, "tenant": "acme", "score": 3}], "total": 9, "facets": {}}
    assert strip_fields(document, {"rows"}) == ["total", "facets"]
    assert document == {"rows": [{"id": 1, "tenant": "acme", "score": 3}]}
    assert strip_fields(document, {"id", "tenant"}, "/rows/*") == ["score"]
    assert document == {"rows": [{"id": 1, "tenant": "acme"}]}
    page = {"data": [], "page": {"size": 10, "next": "Z2xvYmV4", "total": 3}}
    assert strip_fields(page, {"size"}, "/page") == ["next", "total"]


@pytest.mark.parametrize(
    ("document", "at"),
    [
        ([{"id": 1}], ""),
        ({"rows": []}, "/page"),
        ({"page": "x"}, "/page"),
        ({"rows": [1]}, "/rows/*"),
    ],
    ids=["an array answer", "missing place", "a string place", "rows that are not objects"],
)
def test_strip_fields_refuses_a_changed_shape_unless_lenient(document: Any, at: str) -> None:
    with pytest.raises(ValueError):
        strip_fields(document, {"id"}, at)
    assert strip_fields(document, {"id"}, at, strict=False) == []


def guarded_match(guard: GuardSpec) -> RouteMatch:
    return RouteMatch(Route("listing", "/api/items", frozenset({"GET"}), "app", guard=guard), {})


async def inspected(answer: Answer, guard: GuardSpec, **kwargs: Any) -> Any:
    async with app_answering({"/api/items": answer}) as app:
        async with reply_from(app, "/api/items") as reply:
            return await ResponseGuard(**kwargs).inspect(
                reply, match=guarded_match(guard), decision=ACME
            )


ONLY_ROWS = FieldAllowance(frozenset({"rows"}))


async def test_fields_alone_strip_counts_tokens_and_facets_and_say_which() -> None:
    document = {
        "rows": [],
        "total": 1,
        "next_page": "eyJ0ZW5hbnQiOiJnbG9iZXgifQ",
        "facets": {"tenant": {"globex": 1}},
    }
    answer = chunks_of(document)
    answer.headers = {"ETag": '"v1"', "Content-Digest": "sha-256=:x:", "Cache-Control": "no-store"}
    guarded = await inspected(answer, GuardSpec(None, GuardMode.BLOCK, ONLY_ROWS))
    assert body_of(guarded.answer) == {"rows": []}
    headers = guarded.answer.headers
    assert "ETag" not in headers and "Content-Digest" not in headers, "they described old bytes"
    assert headers["Cache-Control"] == "no-store"
    assert guarded.report == GuardReport(stripped=("facets", "next_page", "total"), stripped_at="")
    assert guarded.report.as_data() == {
        "fields_at": "",
        "stripped": ["facets", "next_page", "total"],
    }


async def test_a_tenant_check_and_stripping_combine() -> None:
    document = {"rows": [[1, "acme"], [2, "globex"]], "total": 2}
    spec = GuardSpec("/rows/*/1", GuardMode.FILTER, ONLY_ROWS)
    guarded = await inspected(chunks_of(document), spec)
    assert body_of(guarded.answer) == {"rows": [[1, "acme"]]}
    assert guarded.report.as_data() == {
        "pointer": "/rows/*/1",
        "foreign": 1,
        "removed": 1,
        "fields_at": "",
        "stripped": ["total"],
    }


async def test_a_block_refusal_reports_how_many_foreign_values_by_which_pointer() -> None:
    document = {"rows": [[1, "globex"], [2, "globex"], [3, "acme"]]}
    guarded = await inspected(chunks_of(document), GuardSpec("/rows/*/1", GuardMode.BLOCK))
    assert isinstance(guarded.answer, Rejection)
    assert guarded.answer.reason is Reason.GUARD_BLOCKED
    assert guarded.report.as_data() == {
        "pointer": "/rows/*/1",
        "foreign": 2,
        "refused": "the answer held another tenant's data",
    }


async def test_a_clean_answer_is_sent_byte_for_byte_with_its_headers() -> None:
    data = b'{"rows":[[1,"acme"]] ,"total":1}'
    answer = Answer(chunks=(data,), headers={"ETag": '"v1"'})
    guarded = await inspected(answer, GuardSpec("/rows/*/1", GuardMode.FILTER))
    assert guarded.answer.body == data
    assert guarded.answer.headers["ETag"] == '"v1"'
    assert guarded.report == GuardReport("/rows/*/1", 0)


async def test_a_success_without_the_object_to_strip_is_refused() -> None:
    guarded = await inspected(chunks_of([{"id": 1}]), GuardSpec(None, GuardMode.BLOCK, ONLY_ROWS))
    assert isinstance(guarded.answer, Rejection)
    assert guarded.report.refused.startswith("the answer has no object at")


async def test_an_error_is_stripped_where_it_has_the_object_and_else_left_to_the_check() -> None:
    spec = GuardSpec("/rows/*/tenant", GuardMode.BLOCK, FieldAllowance(frozenset({"error"})))
    error = await inspected(chunks_of({"error": "bad sort", "total": 7}, status=400), spec)
    assert body_of(error.answer) == {"error": "bad sort"}
    listed = await inspected(chunks_of([{"error": "x"}], status=500), spec)
    assert body_of(listed.answer) == [{"error": "x"}]


async def test_refusals_before_any_check_are_reported_too() -> None:
    spec = GuardSpec("/rows/*/tenant", GuardMode.BLOCK, ONLY_ROWS)
    large = await inspected(chunks_of({"rows": [{"tenant": "acme"}] * 50}), spec, max_bytes=100)
    assert isinstance(large.answer, Rejection)
    assert large.report.as_data() == {
        "pointer": "/rows/*/tenant",
        "foreign": 0,
        "fields_at": "",
        "stripped": [],
        "refused": "the answer is larger than 100 bytes, too large to check",
    }
    html = await inspected(Answer(chunks=(b"<p>globex</p>",), content_type="text/html"), spec)
    assert isinstance(html.answer, Rejection)
    assert html.report.refused == "the answer is not one JSON object or array"


async def test_a_changed_answer_that_json_cannot_hold_is_refused_not_sent_as_infinity() -> None:
    answer = Answer(chunks=(b'{"rows": [], "total": 1e999}',))
    guarded = await inspected(answer, GuardSpec(None, GuardMode.BLOCK, ONLY_ROWS))
    assert body_of(guarded.answer) == {"rows": []}, "the overflowing member is stripped"
    kept = FieldAllowance(frozenset({"rows", "total"}))
    both = Answer(chunks=(b'{"rows": [], "total": 1e999, "next": "x"}',))
    refused = await inspected(both, GuardSpec(None, GuardMode.BLOCK, kept))
    assert isinstance(refused.answer, Rejection)
    assert refused.report.refused == "the changed answer could not be written as JSON"
