"""I2 + I4 through real front proxies in forward-auth mode (exported nginx and Caddy
configs): what Gatehold judged is exactly what the app receives, and identity comes
only from Gatehold.

nginx matches its locations on its own normalized ``$uri`` but forwards the raw
``$request_uri``; Caddy forwards the raw target to both sides. The exported configs ask
``/.gatehold/auth`` with the raw target and forward the raw target, so the only way to
be judged one way and forwarded another would be a gap between the endpoint's
canonical target and the bytes the app gets. Each target of the bypass corpus (and a
fixed sample of generated ones) goes over a raw socket to each proxy and to Gatehold
alone: the answers must be the same, an allowed one's audited path must equal the raw
path Ledger's echo received, and a refused one must never reach Ledger.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from multidict import CIMultiDict

from gateway.export_plan import IDENTITY_HEADERS
from tests.integration.test_i2_canonical_target import BYPASSES, RULES, TOKENS
from tests.support.front_proxy import ForwardAuthStack, forward_auth_stack
from tests.support.rawhttp import RawResponse, raw_request

pytestmark = pytest.mark.asyncio(loop_scope="module")

ECHO_RULES = RULES.replace(
    "routes:\n",
    """routes:
  - name: public-echo
    match: {path: "/api/echo/pub/{rest:path}", methods: [GET]}
    upstream: ledger
    public: true
""",
)
"""The I2 rules, and a public echo: an allowed answer with no identity to copy."""

FORWARDED = {
    "plain": "/api/echo/a/b",
    "dot-dot inside the echo": "/api/echo/a/../b",
    "dot segment": "/api/echo/a/./b",
    "double slash inside the echo": "/api/echo/a//b",
    "encoded dot-dot inside the echo": "/api/echo/a/%2e%2e/b",
    "encoded slash inside the echo": "/api/echo/a%2Fb",
    "encoded unreserved letter": "/api/echo/%61/b",
    "encoded tilde": "/api/echo/%7Euser",
    "encoded space": "/api/echo/a%20b",
    "upper-case UTF-8 escape": "/api/echo/%C3%A9",
    "lower-case UTF-8 escape": "/api/echo/%c3%a9",
    "repeated query parameter": "/api/echo/a?x=1&x=2",
    "dot-dot in the query": "/api/echo/a?next=/c/../d",
    "above the root": "/../api/echo/x",
    "climbing out of the echo": "/api/echo/a/../../../admin",
    "sub-delims and colons": "/api/echo/a;b=c/:@!$&'()*+,=",
    "unreserved punctuation": "/api/echo/a-b_c.d~e",
    "escaped percent": "/api/echo/%2541",
    "escaped euro sign": "/api/echo/%E2%82%AC",
    "escaped space in the query": "/api/echo/x?q=%20x",
    "public echo": "/api/echo/pub/x",
    "public echo, climbing to the admin area": "/api/echo/pub/../../../admin/x",
}


def generated(count: int, seed: int = 18) -> dict[str, str]:
    """A fixed sample of targets built from the I2 property test's tokens."""
    rng = random.Random(seed)
    found: dict[str, str] = {}
    while len(found) < count:
        segments = ["".join(rng.choices(TOKENS, k=rng.randint(0, 6))) for _ in range(3)]
        target = "/api/echo/s/" + "/".join(segments) + rng.choice(["", "?a=1", "?b=%41"])
        if target.isascii() and " " not in target:
            found[f"generated {len(found)}"] = target
    return found


CORPUS = {**{f"bypass: {k}": v for k, v in BYPASSES.items()}, **FORWARDED, **generated(60)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ForwardAuthStack]:
    data: Path = tmp_path_factory.mktemp("front-i2")
    async with forward_auth_stack(data, rules_text=ECHO_RULES) as running:
        yield running


async def send(
    fa: ForwardAuthStack, port: int, target: str, headers: dict[str, str] | None = None
) -> RawResponse:
    sent = {"Accept": "application/json"} | fa.stack.cookie("alice@acme.test")
    return await raw_request("127.0.0.1", port, "GET", target.encode(), sent | (headers or {}))


def gateway_port(fa: ForwardAuthStack) -> int:
    return int(fa.stack.client.server.port or 0)


async def test_every_target_is_forwarded_exactly_as_judged_or_refused_unseen(
    fa: ForwardAuthStack,
) -> None:
    wrong: list[str] = []
    forwarded = refused = 0
    for name, target in CORPUS.items():
        alone = await send(fa, gateway_port(fa), target)
        for kind, proxy in fa.proxies.items():
            before = await fa.stack.ledger_total()
            answer = await send(fa, proxy.port, target)
            reached = await fa.stack.ledger_total() - before
            said = f"{kind} {name} {target!r}"
            respelled = alone.status < 300 and alone.json()["raw_path"] != target
            if respelled and answer.status != 400:
                # Gatehold alone forwards its canonical spelling; a front proxy cannot.
                wrong.append(f"{said}: respelled alone, so must be 400, got {answer.status}")
            elif not respelled and (answer.status < 300) != (alone.status < 300):
                wrong.append(f"{said}: {answer.status} through {kind}, {alone.status} alone")
            if answer.status >= 500:
                wrong.append(f"{said}: {answer.status} (a client mistake must be a 4xx)")
            if answer.status >= 300:
                refused += 1
                if reached:
                    wrong.append(f"{said}: refused ({answer.status}) but Ledger was reached")
                continue
            forwarded += 1
            rows = await fa.stack.audit_rows(answer.headers.get("x-request-id", "none"))
            received = answer.json()["raw_path"]
            if reached != 1 or not rows or rows[0]["decision"] != "allow":
                wrong.append(f"{said}: allowed, but Ledger hit {reached}x, audit {rows[:1]}")
            elif received.split("?")[0] != rows[0]["path"]:
                wrong.append(f"{said}: judged {rows[0]['path']!r}, the app got {received!r}")
            elif received != target:
                wrong.append(f"{said}: sent {target!r}, the app got {received!r}")
    assert not wrong, f"{len(wrong)} wrong:\n" + "\n".join(wrong)
    assert forwarded >= 16 and refused >= 2 * len(BYPASSES), (forwarded, refused)
    print(f"front proxies, canonical target: {forwarded} forwarded as judged, {refused} refused")


SPOOFED = {
    "X-Gatehold-User": "mallory",
    "X-Gatehold-Email": "mallory@globex.test",
    "X-Gatehold-Tenant": "globex",
    "X-Gatehold-Roles": "admin",
    "X-Gatehold-Assertion": "forged.jwt.value",
    "X-Gatehold-Cookie": "__Host-gatehold=stolen",
    "X-Gatehold-Authorization": "Bearer stolen",
    "X-GATEHOLD-ROLES": "admin",
    "x_gatehold_user": "mallory",
    "X-Forwarded-User": "mallory",
    "X-Remote-User": "mallory",
    "Remote-User": "mallory",
    "X-Auth-Request-Email": "mallory@globex.test",
    "X-Original-URI": "/api/echo/pub/x",
    "X-Original-Method": "GET",
    "X-Forwarded-Uri": "/api/echo/pub/x",
    "X-Original-URL": "http://127.0.0.1/api/echo/pub/x",
    "X-Request-Id": "chosen-by-the-client",
    "X-Real-IP": "10.9.8.7",
}
"""Client headers that would name an identity, a tenant, a request id or another
target if any of them reached the endpoint or the app as the client wrote it."""

GATEHOLD_SETS = {h.lower() for h in (*IDENTITY_HEADERS, "Cookie", "Authorization")}
"""Headers the app does get, with Gatehold's values."""


@pytest.mark.parametrize("header", SPOOFED)
async def test_a_client_identity_header_never_reaches_the_app(
    fa: ForwardAuthStack, header: str
) -> None:
    """Each header alone, to a route alice may use and to an anonymous public one: the
    request is refused unseen, or the app gets Gatehold's values and nothing else."""
    value = SPOOFED[header]
    for kind, proxy in fa.proxies.items():
        for target, person in (("/api/echo/x", "alice@acme.test"), ("/api/echo/pub/x", None)):
            sent = {header: value}
            if person is None:
                sent["Cookie"] = ""
            before = await fa.stack.ledger_total()
            answer = await send(fa, proxy.port, target, sent)
            reached = await fa.stack.ledger_total() - before
            if answer.status >= 300:
                assert reached == 0, (kind, header, target, answer.status)
                assert answer.status < 500, (kind, header, target, answer.status)
                continue
            got = CIMultiDict(answer.json()["headers"])
            ours = header.lower() in GATEHOLD_SETS
            leaked = [
                f"{k}: {v}"
                for k, v in got.items()
                if value in v or (k.lower() == header.lower() and not ours)
            ]
            assert not leaked, (kind, header, target, leaked)
            rows = await fa.stack.audit_rows(answer.headers["x-request-id"])
            assert rows and rows[0]["path"] == target, (kind, header, rows[:1])
            assert got.get("X-Request-Id") == answer.headers["x-request-id"]
            if person is not None:
                assert got["X-Gatehold-Email"] == person, (kind, header, got)
                assert got["X-Gatehold-Tenant"] == "acme"


async def test_an_anonymous_allowed_answer_carries_no_placeholder_text(
    fa: ForwardAuthStack,
) -> None:
    """Debian's Caddy 2.6 forwards ``{http.reverse_proxy.header.X-…}`` for a copied header
    the auth answer lacks. The endpoint sends every identity header, empty when there is
    no value, so the app sees no placeholder and no identity for an anonymous caller."""
    for kind, proxy in fa.proxies.items():
        answer = await raw_request(
            "127.0.0.1", proxy.port, "GET", "/api/echo/pub/x", {"Accept": "application/json"}
        )
        assert answer.status == 200, (kind, answer.status, answer.body[:300])
        got = CIMultiDict(answer.json()["headers"])
        assert not [v for v in got.values() if "{http." in v], (kind, got)
        for name in ("X-Gatehold-User", "X-Gatehold-Email", "X-Gatehold-Assertion"):
            assert got.get(name, "") == "", (kind, name, got)
        assert "Authorization" not in got or got["Authorization"] == ""


async def test_gatehold_s_cookie_and_credentials_stay_out_of_the_app(
    fa: ForwardAuthStack,
) -> None:
    session = fa.stack.cookies["alice@acme.test"]
    for kind, proxy in fa.proxies.items():
        cookie = f"theme=dark; __Host-gatehold={session}; lang=en"
        answer = await raw_request(
            "127.0.0.1",
            proxy.port,
            "GET",
            "/api/echo/y",
            {"Accept": "application/json", "Cookie": cookie, "Authorization": "Basic YXBwOmFwcA=="},
        )
        assert answer.status == 200, (kind, answer.status, answer.body[:300])
        got = CIMultiDict(answer.json()["headers"])
        assert session not in str(got), kind
        assert got["Cookie"] == "theme=dark; lang=en", (kind, got["Cookie"])
        assert got["Authorization"] == "Basic YXBwOmFwcA==", kind  # the app's own credential


async def test_the_decision_endpoint_is_not_answered_to_clients(fa: ForwardAuthStack) -> None:
    for kind, proxy in fa.proxies.items():
        for target in ("/.gatehold/auth", "/.gatehold/auth?x=1", "/.gatehold/x/../auth"):
            answer = await send(
                fa,
                proxy.port,
                target,
                {"X-Original-URI": "/api/echo/z", "X-Original-Method": "GET"},
            )
            assert answer.status in (400, 404), (kind, target, answer.status)
            assert "x-gatehold-assertion" not in answer.headers, (kind, target)
