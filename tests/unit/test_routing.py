"""Routing: exact matches on the canonical path, specificity, methods, overlaps."""

from __future__ import annotations

import pytest

from gateway.model import MethodNotAllowed, NoRoute, Route, RouteMatch, Target
from gateway.routing import Router, overlap_problems, parse_template


def route(name: str, pattern: str, *methods: str) -> Route:
    return Route(name=name, pattern=pattern, methods=frozenset(methods) or None, upstream="u")


ROUTER = Router(
    [
        route("list", "/api/invoices", "GET"),
        route("export", "/api/invoices/export", "POST"),
        route("read", "/api/invoices/{id:int}", "GET"),
        route("by-slug", "/api/invoices/{slug:slug}", "GET"),
        route("uuid", "/api/things/{id:uuid}", "GET"),
        route("plain", "/api/things/{name}", "GET"),
        route("area", "/t/{tenant:slug}/{rest:path}"),
        route("home", "/", "GET"),
    ]
)

CASES = {
    "an exact literal path": ("GET", "/api/invoices", "list", {}),
    "a literal beats a parameter": ("POST", "/api/invoices/export", "export", {}),
    "an int parameter": ("GET", "/api/invoices/42", "read", {"id": "42"}),
    "int beats slug when both match": ("GET", "/api/invoices/7", "read", {"id": "7"}),
    "a slug when it is not an int": ("GET", "/api/invoices/r-7", "by-slug", {"slug": "r-7"}),
    "a uuid": (
        "GET",
        "/api/things/0f8fad5b-d9cb-469f-a165-70867728950e",
        "uuid",
        {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
    ),
    "a plain parameter is decoded after matching": (
        "GET",
        "/api/things/caf%C3%A9",
        "plain",
        {"name": "café"},
    ),
    "a rest parameter spans segments": (
        "DELETE",
        "/t/acme/a/b/c",
        "area",
        {"tenant": "acme", "rest": "a/b/c"},
    ),
    "the root": ("GET", "/", "home", {}),
}


@pytest.mark.parametrize(("method", "path", "name", "params"), CASES.values(), ids=CASES.keys())
def test_matches(method: str, path: str, name: str, params: dict[str, str]) -> None:
    found = ROUTER.match(Target(path, ""), method)
    assert isinstance(found, RouteMatch)
    assert (found.route.name, found.params) == (name, params)


@pytest.mark.parametrize(
    "path",
    [
        "/API/invoices",
        "/api/invoices/",
        "/api/invoices/1/x",
        "/t/acme",
        "/t/acme/",
        "/nowhere",
        "/api/invoices/" + "9" * 19 + "x!",
    ],
    ids=[
        "case is not folded",
        "a trailing slash is another path",
        "an extra segment",
        "a rest parameter may not be empty",
        "nor empty after a slash",
        "an unknown path",
        "a malformed id",
    ],
)
def test_no_route(path: str) -> None:
    assert isinstance(ROUTER.match(Target(path, ""), "GET"), NoRoute)


def test_a_known_path_with_the_wrong_method_lists_the_allowed_ones() -> None:
    found = ROUTER.match(Target("/api/invoices", ""), "DELETE")
    assert found == MethodNotAllowed(frozenset({"GET", "HEAD"}))


def test_a_get_route_answers_head_with_the_same_route() -> None:
    head = ROUTER.match(Target("/api/invoices", ""), "HEAD")
    get = ROUTER.match(Target("/api/invoices", ""), "GET")
    assert isinstance(head, RouteMatch) and head == get


def test_a_head_only_route_beside_a_get_route_of_the_same_shape_is_ambiguous() -> None:
    problems = overlap_problems(
        [route("a", "/z/{id:int}", "GET"), route("b", "/z/{n:int}", "HEAD")]
    )
    assert len(problems) == 1 and "'a' and 'b'" in problems[0]


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("api", "must start with '/'"),
        ("/a/{rest:path}/b", "must be the last segment"),
        ("/a/x{id}-{n}", "at most one"),
        ("/a/{id}/{id}", "appears twice"),
    ],
    ids=["relative", "path not last", "two parameters in a segment", "duplicate parameter"],
)
def test_bad_templates_are_explained(pattern: str, problem: str) -> None:
    parsed = parse_template(pattern)
    assert isinstance(parsed, str) and problem in parsed


def test_same_shape_with_overlapping_methods_is_ambiguous() -> None:
    problems = overlap_problems(
        [
            route("a", "/x/{id:int}", "GET"),
            route("b", "/x/{n:int}", "GET", "POST"),
            route("c", "/y/{id:int}", "GET"),
            route("d", "/y/{id:int}", "DELETE"),
        ]
    )
    assert len(problems) == 1 and "'a' and 'b'" in problems[0]
