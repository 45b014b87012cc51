"""Identity and routing headers in any spelling a server might fold together never reach the app.

CGI, WSGI, PHP and Apache turn ``-``, ``_``, ``.`` and other punctuation of a header name
into one character and ignore case, so ``X.Gatehold.Tenant`` or ``True_Client_IP`` can
arrive at the app as the header it trusts. The requests go over a raw socket (HTTP
clients would rewrite the names) to a real Ledger that echoes what it received.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config.settings import Settings
from tests.integration.plumbing_rules import PLUMBING_RULES
from tests.support.rawhttp import raw_request
from tests.support.stack import Stack, running_stack

# Headers a proxy sets and an app behind it commonly trusts: identity, tenant, client
# address, original path/host. Each must be removed in every spelling.
TRUSTED_BY_APPS = (
    "X-Gatehold-Tenant",
    "X-Gatehold-User",
    "X-Gatehold-Roles",
    "True-Client-IP",
    "X-Cluster-Client-IP",
    "X-WEBAUTH-USER",
    "X-Webauth-Email",
    "X-Envoy-Original-Path",
    "X-Envoy-External-Address",
    "X-Tenant-ID",
    "X-Tenant",
    "X-User-ID",
    "X-User-Email",
    "X-Username",
    "CF-Connecting-IP",
    "CF-Access-Authenticated-User-Email",
    "Fastly-Client-IP",
    "X-ProxyUser-Ip",
    "X-Real-IP",
    "X-Client-IP",
    "X-Forwarded-User",
    "X-Forwarded-Prefix",
    "X-Original-URL",
    "X-Original-Host",
    "X-Remote-User",
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "X-Auth-Request-Email",
    "X-Amzn-Oidc-Identity",
    "X-Amzn-Oidc-Data",
    "X-Ms-Client-Principal-Name",
    "X-Ms-Client-Principal",
    "X-Goog-Authenticated-User-Email",
    "X-Goog-Iap-Jwt-Assertion",
    "X-Pomerium-Jwt-Assertion",
    "X-SSL-Client-Cert",
    "X-Client-Cert",
    "Tailscale-User-Login",
    "X-Http-Method-Override",
    "X-Rewrite-URL",
)

# Every punctuation character aiohttp accepts in a field name (RFC 9110 tchar), since
# some server folds each of them into '_' or '-'.
SEPARATORS = ("-", "_", ".", "~", "+", "!", "|", "*", "'", "^", "`", "#", "$", "%", "&")


def spelled(name: str, separator: str) -> str:
    return name.replace("-", separator)


def marker(index: int) -> str:
    return f"spoofed{index:03d}"


async def echoed_headers(stack: Stack, headers: dict[str, str]) -> dict[str, str]:
    server = stack.client.server
    assert server.port is not None
    cookie = stack.cookie("alice@acme.test")
    response = await raw_request(
        "127.0.0.1",
        server.port,
        "GET",
        "/api/echo/who",
        {**headers, **cookie, "Accept": "application/json"},
    )
    assert response.status == 200, response.body
    seen: dict[str, str] = response.json()["headers"]
    return seen


def leaked(seen: dict[str, str]) -> list[str]:
    return [f"{k}: {v}" for k, v in seen.items() if re.search(r"spoofed\d{3}", v)]


@pytest.mark.parametrize(
    "separator", SEPARATORS, ids=[f"with {s!r} between words" for s in SEPARATORS]
)
async def test_app_trusted_headers_are_stripped_in_every_punctuation(
    tmp_path: Path, separator: str
) -> None:
    headers = {spelled(n, separator): marker(i) for i, n in enumerate(TRUSTED_BY_APPS)}
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        seen = await echoed_headers(stack, headers)
    assert leaked(seen) == []
    assert seen["X-Gatehold-Tenant"] == "acme"
    assert seen["X-Gatehold-Email"] == "alice@acme.test"


@pytest.mark.parametrize(
    "case",
    [str.lower, str.upper, str.swapcase],
    ids=["in lower case", "in upper case", "in swapped case"],
)
async def test_app_trusted_headers_are_stripped_in_any_case(tmp_path: Path, case: object) -> None:
    assert callable(case)
    headers = {case(spelled(n, "_")): marker(i) for i, n in enumerate(TRUSTED_BY_APPS)}
    headers |= {case(n): marker(i + 500) for i, n in enumerate(TRUSTED_BY_APPS)}
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        seen = await echoed_headers(stack, headers)
    assert leaked(seen) == []


async def test_ordinary_headers_still_reach_the_app(tmp_path: Path) -> None:
    headers = {
        "X-App-Trace": "keep-1",
        "If-None-Match": '"keep-3"',
        "Accept-Language": "keep-4",
    }
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES) as stack:
        seen = await echoed_headers(stack, headers)
    assert seen["X-App-Trace"] == "keep-1"
    assert seen["If-None-Match"] == '"keep-3"'
    assert seen["Accept-Language"] == "keep-4"


async def test_configured_names_and_prefixes_are_stripped_and_a_passed_one_goes_through(
    tmp_path: Path,
) -> None:
    configured = {"strip": ["X-Acme-Role", "X-Acme-Sso-*"], "pass": ["True-Client-IP"]}
    headers = {
        "X.Acme.Role": "spoofed001",
        "x_acme_sso_subject": "spoofed002",
        "X-Acme-Sso-Groups": "spoofed003",
        "X-Tenant-Id": "spoofed004",
        "True-Client-IP": "203.0.113.9",
        "X-Acme-Theme": "dark",
    }
    async with running_stack(tmp_path, rules_text=PLUMBING_RULES, headers=configured) as stack:
        seen = await echoed_headers(stack, headers)
    assert leaked(seen) == []
    assert seen["True-Client-IP"] == "203.0.113.9"
    assert seen["X-Acme-Theme"] == "dark"


@pytest.mark.parametrize(
    "entry",
    ["X-Gatehold-User", "x_forwarded_user", "Remote.User", "X-Auth-*", "Host", "Connection"],
    ids=lambda e: f"passing {e} is refused",
)
def test_headers_pass_cannot_let_the_gateways_own_or_i4_headers_through(entry: str) -> None:
    with pytest.raises(ValidationError, match=r"headers\.pass|cannot be let through"):
        Settings.model_validate({"headers": {"pass": [entry]}})


@pytest.mark.parametrize("entry", ["X User", "X-User:", "", "*", "X-*-Id"])
def test_malformed_strip_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValidationError, match="not a header name"):
        Settings.model_validate({"headers": {"strip": [entry]}})
