"""The attack corpus: which tests attack each category, and how many cases each has.

    python -m tests.security.corpus            # cases per category and in total
    python -m tests.security.corpus --check    # also fail if a category has no case

Each category names *selectors*: a test file, or a test in it, or the start of a
parametrized case's id. A case counts once per category it serves and once in the
total. The counts come from pytest's own collection of the named files, so a case
that is renamed away, or a category whose tests are deleted, shows up at once
(``test_corpus_covers_every_category.py`` runs ``--check``).

What every case asserts (its status, that nothing reached the upstream — counted by
request id or in total where no id exists yet — and the audit row) is in each
file's docstring; the few tests that show a defence other than a refusal (a forwarded
request whose headers are cleaned, a redirect sent home) say so there too.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEC = "tests/security/"
INT = "tests/integration/"
RAW = (
    SEC
    + "test_smuggling_over_a_raw_socket.py::test_a_smuggling_or_malformed_request_is_refused_alone["
)
"""The raw-socket table's cases, selected by the start of their ids."""

CATEGORIES: dict[str, tuple[str, ...]] = {
    "path normalization and encoding": (
        INT + "test_i2_canonical_target.py",
        SEC + "test_parameters_inside_a_segment.py",
        "tests/fuzz/test_ingress_fuzz.py",
    ),
    "ids in path, query, JSON, form, multipart and arrays": (
        SEC + "test_id_parameter_spellings.py",
        SEC + "test_charset_smuggled_body_ids.py",
        SEC + "test_id_type_of_the_resource.py",
        SEC + "test_id_flood_before_decision.py",
        SEC + "test_admin_api_idor.py",
        SEC + "test_file_downloads_every_method_and_range.py::test_a_foreign_file",
        SEC + "test_list_filters_and_write_tenants.py::test_a_batch_must_name_the_tenant",
        SEC + "test_list_filters_and_write_tenants.py::test_a_row_naming_another_tenant",
        INT + "test_i3_idor_matrix.py",
    ),
    "method override": (SEC + "test_method_override_in_body.py",),
    "identity and routing header spoofing": (
        SEC + "test_spoofed_identity_header_spellings.py",
        SEC + "test_second_authorization_header.py",
        INT + "test_i4_header_hygiene.py",
    ),
    "hop-by-hop abuse": (SEC + "test_hop_by_hop_abuse.py",),
    "Host and absolute-form tricks": (
        RAW + "absolute",
        RAW + "Host",
        RAW + "two Host",
        RAW + "no Host",
        "tests/fuzz/test_ingress_fuzz.py::test_an_ambiguous_target_is_refused['http",
        INT + "test_upstream_links_use_the_public_address.py",
    ),
    "request smuggling over a raw socket": (
        SEC + "test_smuggling_over_a_raw_socket.py",
        SEC + "test_unreadable_requests_and_connection_limits.py::test_requests_the_parser_refuses",
    ),
    "open redirects": (
        SEC + "test_open_redirects_every_entry.py",
        INT + "test_magic_link.py::test_after_sign_in_the_browser_stays_on_this_site",
        SEC + "test_password_pages_bad_input.py::test_odd_bodies_and_foreign_redirects",
    ),
    "session fixation and cookie tossing": (
        SEC + "test_session_cookie_tossing.py",
        INT + "test_i7_sessions.py::test_a_planted_session_cookie_is_worthless_after_login",
        SEC + "test_websocket_upgrades_to_forbidden_routes.py::"
        "test_a_forbidden_upgrade_is_refused_before_the_app_is_dialled[two session",
    ),
    "CSRF on every gateway and admin endpoint": (
        SEC + "test_csrf_every_state_change.py",
        SEC + "test_admin_ui_every_route.py::test_every_state_change_needs_this_sessions_csrf",
        SEC + "test_magic_link_login_csrf.py",
        SEC + "test_passkey_answers_forged.py::test_a_cross_site_request_is_refused",
        SEC + "test_totp_second_factor_attacks.py::test_a_code_posted_from_another_site",
        INT + "test_admin_api.py::test_a_change_without_the_csrf_token",
        INT + "test_i7_sessions.py::test_logout_needs_the_csrf_token",
    ),
    "magic-link reuse, expiry and enumeration": (
        SEC + "test_magic_link_reuse_expiry_enumeration.py",
        INT + "test_magic_link.py::test_a_mailed_link_signs_in_once",
        INT + "test_magic_link.py::test_tokens_are_stored_only_as_hashes_and_expire",
        INT + "test_magic_link.py::test_known_and_unknown_addresses_get_the_same_answer",
        INT + "test_magic_link.py::test_too_many_requests_are_answered_429",
        SEC + "test_magic_link_throttle_per_forwarded_client.py",
        SEC + "test_email_address_smuggling.py::test_the_magic_link_form_refuses_them_all",
    ),
    "OIDC callback tampering": (
        INT + "test_oidc.py::test_a_tampered_state_is_refused",
        INT + "test_oidc.py::test_a_nonce_other_than_the_one_sent_is_refused",
        INT + "test_oidc.py::test_a_replayed_code_is_refused",
        INT + "test_oidc.py::test_a_response_naming_another_issuer_is_refused_mix_up",
        INT + "test_oidc.py::test_a_callback_carried_to_another_browser_is_worthless_there",
        SEC + "test_oidc_account_takeover_by_email.py",
    ),
    "forged, expired and alg:none JWTs": (
        SEC + "test_forged_bearer_jwts.py",
        INT + "test_oidc_id_tokens.py::test_a_forged_or_broken_id_token_is_refused",
        INT + "test_api_clients.py::test_bearer_jwts_are_verified_and_follow_key_rotation",
    ),
    "WebSocket upgrades to forbidden routes": (
        SEC + "test_websocket_upgrades_to_forbidden_routes.py",
        SEC + "test_websockets_end_with_their_credential.py",
        INT + "test_forwarding.py::test_websocket_upgrade_is_checked_then_proxied",
    ),
    "oversized headers and bodies": (
        SEC + "test_body_limits_and_depth.py",
        SEC + "test_request_bodies_forwarded_as_inspected.py",
        SEC + "test_uploads_untrusted.py::TestLimits",
        SEC + "test_unreadable_requests_and_connection_limits.py::"
        "test_requests_the_parser_refuses_get_the_gateways_audited_400[oversized",
        RAW + "a header",
        RAW + "a request line",
        RAW + "two hundred",
    ),
    "slow clients": (
        SEC + "test_slow_bodies_and_in_flight_cap.py",
        SEC + "test_unreadable_requests_and_connection_limits.py::test_a_request_head_must_arrive",
        SEC + "test_unreadable_requests_and_connection_limits.py::test_an_idle_connection",
        SEC + "test_unreadable_requests_and_connection_limits.py::test_one_address_may_hold",
    ),
    "CRLF and control characters in logs and the audit export": (
        SEC + "test_control_characters_in_logs_and_exports.py",
        SEC + "test_audit_query_cut_without_a_trace.py",
        SEC + "test_email_address_smuggling.py",
    ),
}
"""The issue's categories, each with the tests that attack it."""


def files_of(categories: dict[str, tuple[str, ...]]) -> list[str]:
    return sorted({selector.split("::", 1)[0] for s in categories.values() for selector in s})


def collect(files: Iterable[str]) -> list[str]:
    """Node ids of every test pytest collects from ``files`` (in a subprocess)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"collection failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return [line for line in done.stdout.splitlines() if "::" in line]


def cases_per_category(
    nodes: list[str], categories: dict[str, tuple[str, ...]] = CATEGORIES
) -> tuple[dict[str, list[str]], list[str]]:
    """The cases of each category, and every selector that matches no case."""
    found: dict[str, list[str]] = {}
    unmatched: list[str] = []
    for category, selectors in categories.items():
        cases: list[str] = []
        for selector in selectors:
            matched = [n for n in nodes if n == selector or n.startswith(_prefix(selector))]
            if not matched:
                unmatched.append(selector)
            cases += [n for n in matched if n not in cases]
        found[category] = cases
    return found, unmatched


def _prefix(selector: str) -> str:
    return selector if "::" in selector else selector + "::"


def report(found: dict[str, list[str]]) -> str:
    width = max(len(category) for category in found)
    lines = [f"{category:<{width}}  {len(cases):>4}" for category, cases in found.items()]
    total = len({case for cases in found.values() for case in cases})
    lines.append(f"{'distinct cases in the corpus':<{width}}  {total:>4}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    found, unmatched = cases_per_category(collect(files_of(CATEGORIES)))
    print(report(found))
    empty = [category for category, cases in found.items() if not cases]
    for selector in unmatched:
        print(f"no case matches {selector}", file=sys.stderr)
    for category in empty:
        print(f"category without a case: {category}", file=sys.stderr)
    return 1 if "--check" in argv and (empty or unmatched) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
