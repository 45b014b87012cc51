"""The attack corpus (``corpus.py``) covers every category the threat model names,
with at least 150 distinct cases, and every test it names still exists."""

from __future__ import annotations

from tests.security.corpus import CATEGORIES, cases_per_category, collect, files_of, report

REQUIRED = (
    "path normalization and encoding",
    "ids in path, query, JSON, form, multipart and arrays",
    "method override",
    "identity and routing header spoofing",
    "hop-by-hop abuse",
    "Host and absolute-form tricks",
    "request smuggling over a raw socket",
    "open redirects",
    "session fixation and cookie tossing",
    "CSRF on every gateway and admin endpoint",
    "magic-link reuse, expiry and enumeration",
    "OIDC callback tampering",
    "forged, expired and alg:none JWTs",
    "WebSocket upgrades to forbidden routes",
    "oversized headers and bodies",
    "slow clients",
    "CRLF and control characters in logs and the audit export",
)


def test_every_category_has_cases_and_every_named_test_exists() -> None:
    assert tuple(CATEGORIES) == REQUIRED
    found, unmatched = cases_per_category(collect(files_of(CATEGORIES)))
    print("\n" + report(found))
    assert unmatched == [], "the corpus names tests that no longer exist"
    assert [category for category, cases in found.items() if not cases] == []
    assert len({case for cases in found.values() for case in cases}) >= 150
