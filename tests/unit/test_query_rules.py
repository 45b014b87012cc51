"""Query constraints, query binding and body tenant checks, on values (no servers).

Every spelling a framework reads as a name counts as that name: percent-encoded,
double-encoded, upper case, array and nested forms, PHP's mangling, ``;``-hidden keys.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.bodies import Body
from gateway.body_tenant import check_body
from gateway.model import (
    BodyTenant,
    IdSource,
    IdSpec,
    QueryRules,
    Rejection,
    Route,
    Target,
    TenantBinding,
)
from gateway.query_rules import check_query, refused_name
from gateway.tenant_binding import bind_headers, bound_target

TENANT_SPELLINGS = [
    "tenant",
    "TENANT",
    "Tenant",
    "%74enant",
    "%2574enant",
    "tenant[]",
    "tenant[0]",
    "tenant%5B%5D",
    "tenant.x",
    "tenant%00",
    "%20tenant",
    "ｔｅｎａｎｔ",
]


def route(**fields: Any) -> Route:
    return Route(name="r", pattern="/rows", methods=None, upstream="app", **fields)


def reason(found: Rejection | None) -> str | None:
    return found.reason.value if found is not None else None


@pytest.mark.parametrize("key", TENANT_SPELLINGS)
def test_every_spelling_of_a_denied_name_is_refused(key: str) -> None:
    denied = route(query=QueryRules(deny=("tenant",)))
    assert reason(check_query(f"{key}=globex", denied)) == "param-forbidden"
    assert reason(check_query(f"page=1&{key}=globex", denied)) == "param-forbidden"


@pytest.mark.parametrize("key", TENANT_SPELLINGS)
def test_every_spelling_of_a_name_outside_the_allow_list_is_refused(key: str) -> None:
    allowed = route(query=QueryRules(allow=("page", "sort")))
    assert reason(check_query(f"page=1&{key}=globex", allowed)) == "param-forbidden"


def test_a_name_hidden_behind_a_semicolon_is_judged_too() -> None:
    assert reason(check_query("page=1;tenant=globex", route(query=QueryRules(deny=("tenant",)))))
    assert reason(check_query("page=1;where=x", route(query=QueryRules(allow=("page",)))))


@pytest.mark.parametrize(
    "key", ["filter[tenant]", "filter.tenant", "filter%5Btenant%5D", "q[where][x]"]
)
def test_a_denied_name_nested_in_another_parameter_is_refused(key: str) -> None:
    denied = route(query=QueryRules(deny=("tenant", "where")))
    assert reason(check_query(f"{key}=globex", denied)) == "param-forbidden"


@pytest.mark.parametrize(
    "key", ["_facet_tenant", "_FACET_tenant", "%5Ffacet_x", "_facet", "_facet[tenant]"]
)
def test_patterns_match_every_spelling(key: str) -> None:
    denied = route(query=QueryRules(deny=("_facet*",)))
    assert reason(check_query(f"{key}=1", denied)) == "param-forbidden"


def test_allowed_names_pass_in_any_order_and_repeated() -> None:
    allowed = route(query=QueryRules(allow=("page", "sort", "_sort*"), deny=("where",)))
    assert check_query("page=1&sort=name&page=2&_sort_dir=asc&Page=3", allowed) is None
    assert check_query("", allowed) is None


def test_a_name_allowed_to_one_framework_but_read_otherwise_by_another_is_refused() -> None:
    # PHP reads 'page.size' as 'page_size', which the route does not take.
    allowed = route(query=QueryRules(allow=("page",)))
    assert reason(check_query("page.size=10", allowed)) == "param-forbidden"
    assert check_query("page[size]=10", allowed) is None


def test_a_required_name_must_be_spelled_exactly() -> None:
    required = route(query=QueryRules(require=("q",)))
    assert check_query("q=x", required) is None
    assert check_query("%71=x", required) is None  # percent-decoding is universal
    for query in ("", "Q=x", "q[]=x", "qq=x"):
        assert reason(check_query(query, required)) == "param-missing", query


def test_a_required_query_id_must_be_present() -> None:
    spec = IdSpec("row", IdSource.QUERY, "row", "int", required=True)
    required = route(ids=(spec,))
    assert check_query("row=1", required) is None
    assert reason(check_query("page=1", required)) == "param-missing"
    optional = route(ids=(IdSpec("row", IdSource.QUERY, "row", "int"),))
    assert check_query("page=1", optional) is None


def test_a_query_that_is_not_utf8_is_malformed() -> None:
    denied = route(query=QueryRules(deny=("x",)))
    assert reason(check_query("a=%FF", denied)) == "request-malformed"


def test_bound_names_are_not_judged_they_are_replaced() -> None:
    bound = route(query=QueryRules(allow=("page",)), bind=TenantBinding(query=("tenant",)))
    assert check_query("page=1&TENANT=globex&tenant[]=x", bound) is None


def test_refused_name_is_what_the_loader_checks_ids_against() -> None:
    assert refused_name("where", None, ("wh*",))
    assert refused_name("row", ("page",), ())
    assert not refused_name("page", ("page",), ("where",))


@pytest.mark.parametrize("key", TENANT_SPELLINGS)
def test_binding_removes_every_spelling_and_sets_the_tenant(key: str) -> None:
    target = Target("/rows", f"page=2&{key}=globex&sort=name")
    bound = bound_target(target, ("tenant",), "acme")
    assert bound == Target("/rows", "page=2&sort=name&tenant=acme")


def test_binding_keeps_the_rest_byte_for_byte_and_adds_to_an_empty_query() -> None:
    assert bound_target(Target("/rows", ""), ("tenant",), "acme").query == "tenant=acme"  # type: ignore[union-attr]
    kept = bound_target(Target("/rows", "q=a%20b+c&tenant_id=9"), ("tenant",), "ac me")
    assert kept == Target("/rows", "q=a%20b+c&tenant_id=9&tenant=ac%20me")


def test_a_bound_name_hidden_behind_a_semicolon_is_refused() -> None:
    found = bound_target(Target("/rows", "page=1;tenant=globex"), ("tenant",), "acme")
    assert reason(found if isinstance(found, Rejection) else None) == "param-ambiguous"


def test_bound_headers_replace_every_spelling_sent() -> None:
    headers = CIMultiDict(
        [("x-tenant", "globex"), ("X_Tenant", "globex"), ("X.TENANT", "x"), ("Accept", "*/*")]
    )
    bind_headers(headers, route(bind=TenantBinding(headers=("X-Tenant",))), "acme")
    assert list(headers.items()) == [("Accept", "*/*"), ("X-Tenant", "acme")]


class _Request:
    def __init__(self, content_type: str | None) -> None:
        pairs = [("Content-Type", content_type)] if content_type else []
        self.headers = CIMultiDictProxy(CIMultiDict(pairs))


def checked(
    data: bytes,
    content_type: str | None = "application/json",
    *,
    spec: BodyTenant | None = None,
    method: str = "POST",
) -> bytes | str:
    """The forwarded body, or the reason the body was refused."""
    spec = spec or BodyTenant(pointer="/tenant", field="tenant")
    body = Body(data, None, len(data)) if data else None
    found = check_body(spec, _Request(content_type), method, body, "acme")  # type: ignore[arg-type]
    if isinstance(found, Rejection):
        return found.reason.value
    if isinstance(found, Body):
        return found.content()
    return found or b""


def test_a_json_body_naming_the_tenant_goes_as_sent() -> None:
    data = b'{"name": "x",  "tenant": "acme"}'
    assert checked(data) == data


@pytest.mark.parametrize(
    "data",
    [
        b'{"tenant": "globex"}',
        b'{"tenant": null}',
        b'{"tenant": ["acme", "globex"]}',
        b'{"tenant": ""}',
        b'{"tenant": "ACME"}',
    ],
)
def test_a_json_body_naming_anything_else_is_refused(data: bytes) -> None:
    assert checked(data) == "tenant-mismatch"


@pytest.mark.parametrize(
    "data", [b'{"Tenant": "globex"}', b'{"TENANT": "globex", "tenant": "acme"}', b'{" tenant": 1}']
)
def test_another_spelling_of_the_json_field_is_ambiguous(data: bytes) -> None:
    assert checked(data) == "param-ambiguous"


def test_a_repeated_json_key_is_refused_as_the_gateway_refuses_it_everywhere() -> None:
    assert checked(b'{"tenant": "acme", "tenant": "globex"}') == "body-invalid"


def test_a_missing_json_field_is_set_or_refused() -> None:
    added = checked(b'{"name": "n\\u00e9"}')
    assert isinstance(added, bytes)
    assert json.loads(added) == {"name": "né", "tenant": "acme"}
    assert checked(b"", "application/json") != "tenant-mismatch"
    refuse = BodyTenant(pointer="/tenant", set_missing=False)
    assert checked(b'{"name": "x"}', spec=refuse) == "tenant-mismatch"


def test_every_row_of_a_batch_is_checked_and_filled() -> None:
    spec = BodyTenant(pointer="/rows/*/tenant")
    filled = checked(b'{"rows": [{"tenant": "acme"}, {"name": "b"}]}', spec=spec)
    assert isinstance(filled, bytes)
    assert json.loads(filled) == {"rows": [{"tenant": "acme"}, {"name": "b", "tenant": "acme"}]}
    assert checked(b'{"rows": [{"tenant": "acme"}, {"tenant": "globex"}]}', spec=spec) == (
        "tenant-mismatch"
    )
    # ``*`` walks an object's members as it walks an array's items (one pointer
    # reading for the guard, body ids and body tenants): rows keyed by id are checked.
    assert checked(b'{"rows": {"a": {"tenant": "x"}}}', spec=spec) == "tenant-mismatch"
    assert checked(b'{"rows": {"a": {"tenant": "acme"}}}', spec=spec) != "tenant-mismatch"
    assert checked(b"[1, 2]", spec=BodyTenant(pointer="/tenant")) == "body-invalid"


FORM = "application/x-www-form-urlencoded"


def test_a_form_is_checked_and_filled() -> None:
    assert checked(b"name=x&tenant=acme", FORM) == b"name=x&tenant=acme"
    assert checked(b"name=x", FORM) == b"name=x&tenant=acme"
    assert checked(b"", FORM) == b"tenant=acme"
    for data in (b"tenant=globex", b"tenant=acme&tenant=globex", b"tenant="):
        assert checked(data, FORM) == "tenant-mismatch", data


@pytest.mark.parametrize(
    "key", ["Tenant", "TENANT", "tenant[]", "tenant%5B%5D", "%74enant[x]", "tenant.x", "ten%00"]
)
def test_another_spelling_of_the_form_field_is_ambiguous(key: str) -> None:
    found = checked(f"name=x&{key}=globex".encode(), FORM)
    if key == "ten%00":
        assert found == b"name=x&ten%00=globex&tenant=acme"  # 'ten' is another name
    else:
        assert found == "param-ambiguous", key


def test_a_form_field_hidden_behind_a_semicolon_is_ambiguous() -> None:
    assert checked(b"name=x;tenant=globex&tenant=acme", FORM) == "param-ambiguous"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"tenant=globex", "multipart/form-data; boundary=x"),
        (b"<tenant>globex</tenant>", "application/xml"),
        (b'{"tenant": "globex"}', "application/json; charset=utf-16"),
        (b'{"tenant": "globex"}', None),
    ],
)
def test_a_body_the_route_cannot_read_is_refused(data: bytes, content_type: str | None) -> None:
    assert checked(data, content_type) == "body-unsupported"


def test_a_body_of_a_type_the_route_does_not_name_is_refused() -> None:
    assert checked(b"tenant=acme", FORM, spec=BodyTenant(pointer="/tenant")) == ("body-unsupported")
    assert checked(b'{"tenant": "acme"}', spec=BodyTenant(field="tenant")) == "body-unsupported"


def test_bodiless_reads_and_deletes_pass_but_a_write_without_a_body_does_not() -> None:
    assert checked(b"", None, method="GET") == b""
    assert checked(b"", None, method="DELETE") == b""
    assert checked(b"", None, method="POST") == "tenant-mismatch"
    assert checked(b'{"tenant": "globex"}', method="DELETE") == "tenant-mismatch"
