"""Routing: one parameter between literal text inside a segment (``/items/{id:int}.json``).

The literal prefix and suffix are matched exactly (case-sensitive) on the canonical path,
the suffix at the segment's end, and what lies between must be a whole value of the
parameter's type. The property tests build segments from random text and check that a
match always means: the decoded segment is prefix + value + suffix, letter for letter.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway import idtypes
from gateway.config.loader import check_rules_text, load_rules_text
from gateway.ingress import SEGMENT_SAFE, canonicalize
from gateway.model import IdSource, NoRoute, Rejection, Route, RouteMatch, Target
from gateway.routing import Router, overlap_problems, parse_template


def route(name: str, pattern: str, *methods: str) -> Route:
    return Route(name=name, pattern=pattern, methods=frozenset(methods) or None, upstream="u")


ROUTER = Router(
    [
        route("item-json", "/items/{id:int}.json", "GET"),
        route("item-csv", "/items/{id:int}.csv", "GET"),
        route("item-any", "/items/{name}", "GET"),
        route("item-all", "/items/all.json", "GET"),
        route("export", "/export-{id:slug}.pdf", "GET"),
        route("named-export", "/named/{name}.pdf", "GET"),
        route("version", "/docs/v{n:int}", "GET"),
        route("thing", "/things/{id:uuid}.xml", "GET"),
        route("tarball", "/r/{name}.tar.gz", "GET"),
        route("gzip", "/r/{name}.gz", "GET"),
        route("hex-suffix", "/hex/{name}A9", "GET"),
        route("org", "/org-{org:slug}/summary", "GET"),
    ]
)

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
MATCHES = {
    "an int before a suffix": ("/items/4.json", "item-json", {"id": "4"}),
    "the same id with another suffix is another route": ("/items/4.csv", "item-csv", {"id": "4"}),
    "a literal segment beats a parameter with a suffix": ("/items/all.json", "item-all", {}),
    "a parameter with a suffix beats a whole-segment parameter": (
        "/items/4.json",
        "item-json",
        {"id": "4"},
    ),
    "what fits no typed middle falls to the whole-segment route": (
        "/items/4.JSON",
        "item-any",
        {"name": "4.JSON"},
    ),
    "a slug between a prefix and a suffix": ("/export-r-1.pdf", "export", {"id": "r-1"}),
    "a plain parameter takes everything between, dots too": (
        "/named/a.b.pdf",
        "named-export",
        {"name": "a.b"},
    ),
    "a plain parameter is decoded after matching": (
        "/named/caf%C3%A9.pdf",
        "named-export",
        {"name": "café"},
    ),
    "a prefix only": ("/docs/v12", "version", {"n": "12"}),
    "a uuid before a suffix": (f"/things/{UUID}.xml", "thing", {"id": UUID}),
    "the longer literal text wins": ("/r/a.tar.gz", "tarball", {"name": "a"}),
    "the shorter one where the longer does not fit": ("/r/a.gz", "gzip", {"name": "a"}),
    "a suffix after a percent-escape": ("/hex/%C3%A9A9", "hex-suffix", {"name": "é"}),
    "a tenant between a prefix and nothing": ("/org-acme/summary", "org", {"org": "acme"}),
}


@pytest.mark.parametrize(("path", "name", "params"), MATCHES.values(), ids=MATCHES.keys())
def test_matches(path: str, name: str, params: dict[str, str]) -> None:
    found = ROUTER.match(Target(path, ""), "GET")
    assert isinstance(found, RouteMatch)
    assert (found.route.name, found.params) == (name, params)


NO_ROUTE = {
    "a slug has no dots, so the suffix is not swallowed": "/export-a.b.pdf",
    "an empty middle": "/export-.pdf",
    "the prefix in another case": "/Export-a.pdf",
    "the suffix in another case": "/export-a.PDF",
    "a missing dot": "/export-apdf",
    "text after the suffix": "/export-a.pdfx",
    "a trailing slash": "/export-a.pdf/",
    "a uuid suffix in another case": f"/things/{UUID}.XML",
    "a uuid with text before it": f"/things/x{UUID}.xml",
    "a prefix only, with no value": "/docs/v",
    "a prefix only, with a value of the wrong type": "/docs/v1a",
    "a prefix in another case": "/docs/V1",
    "a suffix may not start inside a percent-escape": "/hex/caf%C3%A9",
    "the tenant prefix in another case": "/Org-acme/summary",
}


@pytest.mark.parametrize("path", NO_ROUTE.values(), ids=NO_ROUTE.keys())
def test_no_route(path: str) -> None:
    assert isinstance(ROUTER.match(Target(path, ""), "GET"), NoRoute)


def test_an_int_with_the_wrong_suffix_never_reaches_the_int_route() -> None:
    for path in ("/items/4.JSON", "/items/4.Json", "/items/4json", "/items/4.json.", "/items/4.5"):
        found = ROUTER.match(Target(path, ""), "GET")
        assert not (isinstance(found, RouteMatch) and found.route.name == "item-json"), path


def test_an_encoded_dot_is_the_dot_itself_in_the_canonical_path() -> None:
    """Ingress decodes ``%2E`` once (it is unreserved); the app receives ``4.json``, so
    the route that checks the id is the one that matches, not a looser one."""
    target = canonicalize("/items/4%2Ejson")
    assert target == Target("/items/4.json", "")
    found = ROUTER.match(target, "GET")
    assert isinstance(found, RouteMatch) and found.route.name == "item-json"
    upper = canonicalize("/items/4%2EJSON")
    assert isinstance(upper, Target) and upper.path == "/items/4.JSON"
    assert isinstance(canonicalize("/items/4%252Ejson"), Rejection), "double encoding"


BAD_TEMPLATES = {
    "two parameters in one segment": ("/a/{x}-{y}", "at most one"),
    "an unmatched brace": ("/a/x{", "unmatched"),
    "a brace inside the literal text": ("/a/{{id}}", "unmatched"),
    "an unknown type beside text": ("/a/{id:float}.json", "is not a parameter"),
    "a rest parameter with text before it": ("/a/x-{rest:path}", "whole segment"),
    "a rest parameter with text after it": ("/a/{rest:path}.json", "whole segment"),
    "the same name twice": ("/a/{id}.json/{id:int}", "appears twice"),
}


@pytest.mark.parametrize(("pattern", "problem"), BAD_TEMPLATES.values(), ids=BAD_TEMPLATES.keys())
def test_bad_templates_are_explained(pattern: str, problem: str) -> None:
    parsed = parse_template(pattern)
    assert isinstance(parsed, str) and problem in parsed, parsed


def test_the_same_text_and_type_around_a_parameter_is_one_shape() -> None:
    problems = overlap_problems(
        [
            route("a", "/i/{id:int}.json", "GET"),
            route("b", "/i/{n:int}.json", "GET"),
            route("c", "/i/{id:int}.csv", "GET"),
            route("d", "/i/{id:slug}.json", "GET"),
        ]
    )
    assert len(problems) == 1 and "'a' and 'b'" in problems[0]


# --- properties ---------------------------------------------------------------------

TYPES = ("", "int", "slug", "uuid")
# Text a template's literal part may hold: letters of both cases, digits, punctuation
# that stays as it is in a canonical segment, characters that get percent-encoded
# (including '%' itself) and non-ASCII letters.
LITERAL_CHARS = st.sampled_from(list("aAbBzZ09.-_~!$&'()*+,=:@% \"<>?#[]^`|") + ["é", "É", "ß"])
ESCAPE_TAILS = st.sampled_from(["A9", "9", "89", "9F", "C3"])
"""Text that ends (or starts) the percent-encoding of é, É and ß: a suffix like this
must not match inside an escape of the middle."""
literal_text = st.one_of(st.text(LITERAL_CHARS, max_size=6), ESCAPE_TAILS)
values = {
    "": st.tuples(
        st.text(st.sampled_from(list("aZ9.-_%~ éÉß")), max_size=8),
        st.sampled_from(["a", "é", "É", "ß"]),
    ).map("".join),
    "int": st.from_regex(idtypes.INT, fullmatch=True),
    "slug": st.from_regex(idtypes.SLUG, fullmatch=True).filter(lambda s: len(s) < 20),
    "uuid": st.uuids().map(str),
}


def _mutated(text: str) -> st.SearchStrategy[str]:
    """``text`` itself, or a near miss: swapped case, left out, a character dropped or
    added."""
    options = [st.just(text), st.just(text.swapcase()), st.just(text.upper()), st.just("")]
    if text:
        options.append(st.integers(0, len(text) - 1).map(lambda i: text[:i] + text[i + 1 :]))
    options.append(
        st.tuples(st.integers(0, len(text)), LITERAL_CHARS).map(
            lambda p: text[: p[0]] + p[1] + text[p[0] :]
        )
    )
    return st.one_of(options)


def _segment_template(prefix: str, kind: str, suffix: str) -> str:
    return prefix + ("{p}" if not kind else "{p:" + kind + "}") + suffix


@st.composite
def template_and_segment(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """A template segment's prefix, type and suffix, and a decoded segment built from
    (perhaps mutated) copies of them around a value of the type or random text."""
    prefix, suffix = draw(literal_text), draw(literal_text)
    kind = draw(st.sampled_from(TYPES))
    assume(prefix or suffix)
    assume(not any(c in prefix + suffix for c in "{}/"))
    middle = draw(st.one_of(values[kind], values[""]))
    segment = draw(_mutated(prefix)) + middle + draw(_mutated(suffix))
    return prefix, kind, suffix, segment


@settings(max_examples=500, deadline=None)
@given(template_and_segment())
def test_a_match_means_the_literal_parts_are_exactly_the_templates(
    case: tuple[str, str, str, str],
) -> None:
    prefix, kind, suffix, segment = case
    assume(segment and "/" not in segment)
    target = canonicalize("/x/" + quote(segment, safe=SEGMENT_SAFE))
    assume(isinstance(target, Target))
    assert isinstance(target, Target)
    router = Router([route("r", "/x/" + _segment_template(prefix, kind, suffix))])
    found = router.match(target, "GET")
    if not isinstance(found, RouteMatch):
        return
    decoded = unquote(target.path.removeprefix("/x/"))
    value = found.params["p"]
    assert decoded == prefix + value + suffix
    assert value and "/" not in value
    if kind:
        assert idtypes.check(value, kind)


@settings(max_examples=300, deadline=None)
@given(
    literal_text,
    st.sampled_from(TYPES).flatmap(lambda k: st.tuples(st.just(k), values[k])),
    literal_text,
)
def test_the_template_text_around_a_value_of_its_type_always_matches(
    prefix: str, typed: tuple[str, str], suffix: str
) -> None:
    kind, value = typed
    assume(prefix or suffix)
    assume(not any(c in prefix + suffix for c in "{}/"))
    target = canonicalize("/x/" + quote(prefix + value + suffix, safe=SEGMENT_SAFE))
    assume(isinstance(target, Target))
    assert isinstance(target, Target)
    found = Router([route("r", "/x/" + _segment_template(prefix, kind, suffix))]).match(
        target, "GET"
    )
    assert isinstance(found, RouteMatch)
    assert found.params["p"] == value


# --- in the rules file ----------------------------------------------------------------

RULES = """\
version: 1
upstreams:
  app: {url: "http://127.0.0.1:9"}
roles:
  standard: {can: [read]}
resources:
  item: {id_type: int, owner: {http: "GET {upstream}/internal/{id}", tenant_field: /tenant}}
routes:
  - name: item-json
    match: {path: "/items/{id:int}.json", methods: [GET]}
    upstream: app
    resource: {type: item, id: path.id}
  - name: org
    match: {path: "/org-{org:slug}/summary", methods: [GET]}
    upstream: app
    tenant: path.org
"""


def test_a_parameter_inside_a_segment_names_an_object_or_a_tenant_in_the_rules() -> None:
    item, org = load_rules_text(RULES, source="rules.yaml", env={}).routes
    assert [(i.source, i.key, i.id_type) for i in item.ids] == [(IdSource.PATH, "id", "int")]
    assert org.tenant_param == "org"


def test_a_bad_segment_is_reported_with_its_line() -> None:
    text = RULES.replace('"/org-{org:slug}/summary"', '"/org-{org:slug}-{n:int}/summary"')
    _, problems = check_rules_text(text, source="rules.yaml", env={})
    assert [(p.line, "at most one" in p.message) for p in problems] == [(14, True)]
