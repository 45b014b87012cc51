"""Properties of any log: the draft loads, and routes every request it took as evidence
(and, with its method, nothing the log never showed)."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config.loader import check_rules_text
from gateway.ingress import canonicalize
from gateway.learn.cluster import NEVER_METHODS, NOISE_METHODS, is_evidence
from gateway.learn.run import Learned, LearnFailed, LearnOptions, TextSource, learn
from gateway.model import Rejection, RouteMatch
from gateway.routing import Router

SEGMENTS = st.sampled_from(
    ["api", "invoices", "export", "v2", "7", "8", "123456", "r-acme-1", "a1b2c3d4e5",
     "0b0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e", "7.json", "8.json", "x.pdf", "app.css",
     "caf%C3%A9", "%7Bx%7D", "a%2Fb", "..", "", "items", "{id}", "a:b", "~u", "*", "yes"]
)  # fmt: skip
QUERIES = st.sampled_from(["", "?invoice=7", "?page=2&q=x", "?id=r-acme-1", "?a[b]=1", "?x=%0A"])
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
STATUSES = st.sampled_from([200, 201, 204, 302, 400, 403, 404, 405, 422, 500])
REQUEST = st.tuples(METHODS, st.lists(SEGMENTS, min_size=0, max_size=4), QUERIES, STATUSES)
BRACES = {"{", "}"}
LINE = '1.2.3.4 - - [29/Nov/2026:10:00:00 +0000] "{m} {t} HTTP/1.1" {s} 1 "-" "-"'


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(REQUEST, min_size=1, max_size=25), st.integers(2, 6))
def test_any_log_gives_a_draft_that_loads_and_routes_its_evidence(
    requests: list[tuple[str, list[str], str, int]], max_literals: int
) -> None:
    lines, evidence = [], []
    for method, segments, query, status in requests:
        target = "/" + "/".join(segments) + query
        lines.append(LINE.format(m=method, t=target, s=status))
        canonical = canonicalize(target)
        kept = method not in NEVER_METHODS | NOISE_METHODS and is_evidence(status)
        if kept and not isinstance(canonical, Rejection) and not BRACES & set(unquote(target)):
            evidence.append((method, canonical))
    result = learn(
        [TextSource("log", "\n".join(lines))], [], LearnOptions(max_literals=max_literals)
    )
    if not evidence:
        assert isinstance(result, LearnFailed)
        assert result.problems[0].startswith("nothing to learn")
        return
    assert isinstance(result, Learned), result
    ruleset, problems = check_rules_text(result.text, source="draft", env={})
    assert ruleset is not None, problems
    router = Router(ruleset.routes)
    for method, target in evidence:
        matched = router.match(target, method)
        assert isinstance(matched, RouteMatch), (method, target.raw, result.text)
    seen_methods = {method for method, _ in evidence}
    for route in ruleset.routes:
        assert route.methods is not None and route.methods <= seen_methods | {"HEAD"}
