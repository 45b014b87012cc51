"""Clustering: which requests are evidence, and which templates they make."""

from __future__ import annotations

from gateway.learn.cluster import cluster, is_evidence, singular
from gateway.learn.evidence import Endpoint
from gateway.learn.logread import Request

UUID_A = "0b0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"
UUID_B = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


def req(target: str, method: str = "GET", status: int = 200, **kw: bool) -> Request:
    return Request(method, target, status, kw.get("query_known", True), "t:1",
                   refused_by_gateway=kw.get("refused", False))  # fmt: skip


def templates(*requests: Request, max_literals: int = 20) -> dict[str, Endpoint]:
    endpoints, _ = cluster(requests, max_literals=max_literals)
    return {e.template: e for e in endpoints}


def test_ids_become_typed_parameters_and_literals_beside_them_stay() -> None:
    found = templates(
        req("/invoices/7"), req("/invoices/8"), req("/invoices/export", "POST"), req("/invoices")
    )
    assert set(found) == {"/invoices", "/invoices/export", "/invoices/{invoice_id:int}"}
    assert found["/invoices/{invoice_id:int}"].methods["GET"].count == 2
    assert found["/invoices/{invoice_id:int}"].params[0].samples == ["7", "8"]
    assert set(found["/invoices/export"].methods) == {"POST"}


def test_uuids_and_slug_ids() -> None:
    found = templates(
        req(f"/docs/{UUID_A}"), req(f"/docs/{UUID_B}"), req("/reports/r-acme-1"),
        req("/reports/r-1a2b3c4d"), req("/reports/recent"),
    )  # fmt: skip
    assert set(found) == {
        "/docs/{doc_id:uuid}",
        "/reports/recent",
        "/reports/{report_id:slug}",
    }


def test_an_int_and_a_slug_id_at_one_place_make_one_slug_parameter() -> None:
    assert set(templates(req("/things/7"), req("/things/t-1a2b3c"))) == {"/things/{thing_id:slug}"}


def test_nested_ids_get_their_own_names() -> None:
    found = templates(req("/orgs/12/invoices/7"), req("/orgs/12/invoices/7/lines/3"))
    assert set(found) == {
        "/orgs/{org_id:int}/invoices/{invoice_id:int}",
        "/orgs/{org_id:int}/invoices/{invoice_id:int}/lines/{line_id:int}",
    }


def test_suffixes_after_ids() -> None:
    found = templates(req("/items/7.json"), req("/items/8.json"), req("/items/7"),
                      req("/items/7.csv"), req("/manual.pdf"))  # fmt: skip
    assert set(found) == {
        "/items/{item_id:int}",
        "/items/{item_id:int}.json",
        "/items/{item_id:int}.csv",
        "/manual.pdf",
    }


def test_percent_encoding_is_read_as_the_gateway_reads_it() -> None:
    found = templates(req("/items/7%2Ejson"), req("/caf%C3%A9/menu"), req("/%61bout"),
                      req("/a%20b"), req("/%7Bx%7D"))  # fmt: skip
    assert set(found) == {"/items/{item_id:int}.json", "/café/menu", "/about", "/a b"}, (
        "templates spell literals decoded; no template can spell a brace"
    )


def test_ambiguous_targets_are_not_evidence() -> None:
    endpoints, skipped = cluster(
        [req("/files/a%2Fb"), req("/a/../etc/passwd"), req("/x%252E"), req("/ok")]
    )
    assert [e.template for e in endpoints] == ["/ok"]
    assert skipped.reasons["refused by the gateway as ambiguous (I2)"] == 3


def test_query_strings_are_kept_per_parameter() -> None:
    found = templates(req("/search?invoice=7&q=acme"), req("/search?invoice=8&page=2"),
                      req("/search?filter[tenant]=globex"))  # fmt: skip
    search = found["/search"]
    assert search.query["invoice"].samples == ["7", "8"]
    assert search.query["invoice"].types == {"int"}
    assert search.query["q"].types == {None}
    assert search.skipped_names == ["filter[tenant]"]
    assert search.query_known


def test_noise_misses_and_failures_are_not_evidence() -> None:
    endpoints, skipped = cluster(
        [
            req("/a/7", "OPTIONS", 204),
            req("/a/7", "TRACE"),
            req("/wp-login.php", status=404),
            req("/a/7", "DELETE", 405),
            req("/b", status=500),
            req("/c", status=503),
            req("/.gatehold/login"),
            req("/d/7", refused=True, status=404),
            req("/e", status=401),
            req("/f", "POST", 422),
            req("/g", status=304),
        ]
    )
    assert sorted(e.template for e in endpoints) == ["/e", "/f", "/g"]
    assert skipped.reasons["5xx (the app failed)"] == 2
    assert skipped.reasons["404 (a miss)"] == 1
    assert skipped.reasons["405 (a miss)"] == 1
    assert skipped.reasons["OPTIONS (preflights are answered for any path)"] == 1
    assert skipped.reasons["TRACE (never routed)"] == 1
    assert skipped.reasons["the gateway's own pages"] == 1
    assert skipped.reasons["refused by the gateway (never reached the app)"] == 1


def test_head_is_kept_as_its_own_method() -> None:
    found = templates(req("/a/7", "HEAD"), req("/a/8"))
    assert set(found["/a/{a_id:int}"].methods) == {"GET", "HEAD"}


def test_static_assets_are_gathered_under_their_first_segment() -> None:
    found = templates(req("/static/css/app.css"), req("/static/js/app.7f3a.js"),
                      req("/static/img/logo.png"), req("/favicon.ico"))  # fmt: skip
    assert set(found) == {"/static/{asset:path}", "/favicon.ico"}
    static = found["/static/{asset:path}"]
    assert static.static and not static.params[0].is_id
    assert static.methods["GET"].count == 3


def test_many_distinct_words_at_one_place_are_values() -> None:
    users = [req(f"/users/{name}/profile") for name in ("alice", "bob", "carol", "dave")]
    assert set(templates(*users, max_literals=3)) == {"/users/{user_id:slug}/profile"}
    assert set(templates(*users, max_literals=20)) == {
        f"/users/{name}/profile" for name in ("alice", "bob", "carol", "dave")
    }


def test_trailing_slash_and_root() -> None:
    assert set(templates(req("/"), req("/api/"), req("/api"))) == {"/", "/api/", "/api"}


def test_evidence_statuses() -> None:
    assert all(is_evidence(s) for s in (200, 201, 204, 301, 302, 304, 400, 401, 403, 422, 429))
    assert not any(is_evidence(s) for s in (404, 405, 410, 414, 500, 502, 503))


def test_singular_names() -> None:
    assert [singular(w) for w in ("invoices", "categories", "boxes", "status", "files", "s")] == [
        "invoice", "category", "box", "status", "file", "s",
    ]  # fmt: skip


def test_tenant_ids_the_operator_names_become_a_tenant_parameter() -> None:
    requests = [req("/t/acme/dashboard"), req("/t/globex/dashboard"), req("/t/acme/invoices/7"),
                req("/t/other/dashboard"), req("/acme-tools/x")]  # fmt: skip
    endpoints, _ = cluster(requests, tenants=frozenset({"acme", "globex"}))
    found = {e.template: e for e in endpoints}
    assert set(found) == {
        "/t/{tenant:slug}/dashboard",
        "/t/{tenant:slug}/invoices/{invoice_id:int}",
        "/t/other/dashboard",
        "/acme-tools/x",
    }, "only whole segments spelled as a named tenant"
    (tenant, invoice) = found["/t/{tenant:slug}/invoices/{invoice_id:int}"].params
    assert tenant.is_tenant and not tenant.is_id
    assert invoice.is_id and not invoice.is_tenant
    assert found["/t/{tenant:slug}/dashboard"].params[0].samples == ["acme", "globex"]


def test_many_words_that_are_not_all_slugs_become_a_plain_parameter() -> None:
    pages = [req(f"/wiki/{name}") for name in ("caf%C3%A9", "tea", "milk", "water")]
    assert set(templates(*pages, max_literals=3)) == {"/wiki/{wiki}"}


def test_an_id_whose_random_letters_hold_no_digit_is_still_an_id() -> None:
    found = templates(req("/reports/r-1a2b3c4d"), req("/reports/r-9f8e7d6c"),
                      req("/reports/r-efdcffaf"), req("/reports/recent"),
                      req("/reports/r-abcdefab.pdf"), req("/reports/r-12345678.pdf"))  # fmt: skip
    assert set(found) == {
        "/reports/{report_id:slug}",
        "/reports/{report_id:slug}.pdf",
        "/reports/recent",
    }, "left a literal, r-efdcffaf's route would reach that one report unchecked"
    assert "r-efdcffaf" in found["/reports/{report_id:slug}"].params[0].samples
    assert found["/reports/recent"].beside_ids == ["recent (where {slug} ids go)"]


def test_literals_an_id_parameter_could_not_match_are_not_questioned() -> None:
    found = templates(req("/invoices/7"), req("/invoices/export"), req("/invoices/export/x"))
    assert found["/invoices/export"].beside_ids == [], "export is no int id"
    assert found["/invoices/export/x"].beside_ids == []
