"""Which routes forward-auth can decide: a table over one small rule set.

The endpoint never sees a body or the app's answer; a route whose rules need either is
refused there (``full-proxy-required``) and goes to the full proxy.
"""

from __future__ import annotations

import pytest

from gateway.config.loader import load_rules_text
from gateway.forward_auth_fit import refusal, unfit_routes
from gateway.model import Reason, Route

RULES = """
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  standard: {can: [read, write, delete]}
resources:
  thing: {id_type: int, owner: {registry: true, learn_on_create: true}}
routes:
  - {name: read, match: {path: "/things/{id:int}", methods: [GET]}, upstream: app,
     resource: {type: thing, id: path.id}}
  - {name: delete, match: {path: "/things/{id:int}", methods: [DELETE]}, upstream: app,
     resource: {type: thing, id: path.id}}
  - {name: update, match: {path: "/things/{id:int}", methods: [PUT]}, upstream: app,
     resource: {type: thing, id: path.id}, body_ids: [{type: thing, pointer: /other}]}
  - {name: create, match: {path: "/things", methods: [POST]}, upstream: app, creates: thing,
     ignore_lints: [writes-unchecked]}
  - {name: list, match: {path: "/things", methods: [GET]}, upstream: app,
     guard: {tenant_field: "/items/*/tenant", mode: filter}}
  - {name: area, match: {path: "/area/{rest:path}"}, upstream: app}
"""
ROUTES = {r.name: r for r in load_rules_text(RULES, source="t.yaml", env={}).routes}


def route(name: str) -> Route:
    return ROUTES[name]


@pytest.mark.parametrize(
    ("name", "method", "override", "refused"),
    [
        ("read", "GET", True, False),
        ("delete", "DELETE", True, False),
        ("update", "PUT", True, True),  # body ids
        ("update", "PUT", False, True),
        ("create", "POST", False, True),  # its owner is learned from the 201
        ("list", "GET", True, True),  # guarded answer
        ("area", "GET", True, False),
        ("area", "POST", True, True),  # the body may say _method=DELETE
        ("area", "POST", False, False),  # unless no app reads one
    ],
    ids=lambda v: str(v),
)
def test_a_route_is_refused_exactly_when_it_needs_the_body_or_the_answer(
    name: str, method: str, override: bool, refused: bool
) -> None:
    found = refusal(route(name), method, apps_read_method_override=override)
    assert (found is not None) == refused, found
    if found is not None:
        assert found.reason is Reason.FULL_PROXY_REQUIRED


def test_the_listing_names_each_unfit_route_once_and_why() -> None:
    listed = {u.route: u for u in unfit_routes(list(ROUTES.values()))}
    assert set(listed) == {"update", "create", "list", "area"}
    assert listed["area"].only_post and not listed["create"].only_post
    assert any(why.startswith("body_ids") for why in listed["update"].why)
    assert any(why.startswith("learn_on_create") for why in listed["create"].why)
    relaxed = {
        u.route for u in unfit_routes(list(ROUTES.values()), apps_read_method_override=False)
    }
    assert relaxed == {"update", "create", "list"}
