"""Addresses that say two things: one strict addr-spec check everywhere an email enters.

``Eve <admin@example.test>`` is the admin's address to one parser and Eve's to another;
a CR/LF adds mail headers; a fullwidth ``＠`` or a Cyrillic ``а`` looks like what it is
not. The magic-link form, ``gatehold users add`` and OIDC email claims all refuse the
whole class (gateway/auth/emails.py); none is "repaired" into something else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.auth.emails import normalize_email
from gateway.auth.handlers import AUTH_PAGES
from tests.integration.test_magic_link import BROWSER
from tests.support.openid_provider import openid_provider
from tests.support.servers_base import free_port
from tests.support.sso import GRANTS, Sso
from tests.support.stack import running_stack

SMUGGLED = {
    "display name": "Eve <admin@example.test>",
    "angle brackets": "<admin@example.test>",
    "address in brackets after another": "<eve@evil.test>admin@example.test",
    "bracketed name before": "<eve>admin@example.test",
    "comment after": "admin@example.test (Eve)",
    "comment inside": "admin(Eve)@example.test",
    "CR LF header": "admin@example.test\r\nBcc: eve@evil.test",
    "LF": "admin@example.test\nx",
    "quoted local part": '"admin@example.test"@evil.test',
    "quoted with space": '"ad min"@example.test',
    "two at signs": "admin@example.test@evil.test",
    "a list": "eve@evil.test,admin@example.test",
    "space in local part": "ad min@example.test",
    "space in domain": "admin@exa mple.test",
    "tab": "admin\t@example.test",
    "fullwidth at": "admin\uff20example.test",
    "fullwidth letter": "admin@\uff45xample.test",
    "Cyrillic letter": "\u0430dmin@example.test",
    "zero-width space": "admin\u200b@example.test",
    "bad punycode": "admin@xn--a.test",
    "punycode that maps": "admin@xn--fa-hia.test",
    "reserved label": "admin@ab--cd.test",
    "address literal": "admin@[127.0.0.1]",
    "no dot in domain": "admin@localhost",
    "numeric top-level": "admin@example.123",
    "leading dot": ".admin@example.test",
    "double dot": "ad..min@example.test",
    "trailing dot local": "admin.@example.test",
    "trailing dot domain": "admin@example.test.",
    "hyphen-led label": "admin@-example.test",
    "empty label": "admin@example..test",
    "empty local part": "@example.test",
    "empty domain": "admin@",
    "long local part": "a" * 65 + "@example.test",
    "NUL": "admin\x00@example.test",
    "backslash": "admin\\@example.test",
}
PLAIN = {
    "alice@acme.test": "alice@acme.test",
    "Alice@ACME.Test": "alice@acme.test",
    "o'brien&co@acme.test": "o'brien&co@acme.test",
    "first.last+tag@mail.sub.example.co.uk": "first.last+tag@mail.sub.example.co.uk",
    "x@xn--bcher-kva.example": "x@xn--bcher-kva.example",
    "a_b-c@a-b.example": "a_b-c@a-b.example",
}


@pytest.mark.parametrize("address", SMUGGLED.values(), ids=SMUGGLED.keys())
def test_an_address_that_says_two_things_is_refused(address: str) -> None:
    assert normalize_email(address) is None


@pytest.mark.parametrize(("address", "normal"), PLAIN.items(), ids=PLAIN.keys())
def test_a_plain_address_is_accepted_lower_cased(address: str, normal: str) -> None:
    assert normalize_email(address) == normal


async def test_the_magic_link_form_refuses_them_all_and_sends_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for name, address in SMUGGLED.items():
            response = await stack.client.post(
                "/.gatehold/login/magic", data={"email": address}, headers={"Cookie": BROWSER}
            )
            body = await response.text()
            assert response.status == 400, name
            assert "Enter an email address like name@example.com." in body
            assert "<eve@" not in body and "<admin@" not in body  # shown escaped, if at all
        assert (
            await stack.client.post(
                "/.gatehold/login/magic",
                data={"email": "alice@acme.test"},
                headers={"Cookie": BROWSER},
            )
        ).status == 200
        await stack.app[AUTH_PAGES].magic_links.wait_sent()
        async with stack.app[ENGINE].connect() as conn:
            links = (await conn.execute(text("SELECT email FROM login_links"))).scalars().all()
        assert links == ["alice@acme.test"]
        actors = {e["actor"] for e in await stack.events("magic-link-sent")}
        assert actors == {"alice@acme.test"}
        assert await stack.ledger_total() == 0


CLAIMED = {
    name: SMUGGLED[name]
    for name in (
        "display name",
        "bracketed name before",
        "address in brackets after another",
        "CR LF header",
        "two at signs",
        "fullwidth at",
    )
}


@asynccontextmanager
async def provider_claiming(tmp_path: Path) -> AsyncIterator[Sso]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    accounts = {
        f"m{i}": {"email": address, "groups": ["acme-admins"]}
        for i, address in enumerate(CLAIMED.values())
    }
    async with openid_provider(
        redirect_uris=[f"{base}/.gatehold/oidc/corp/callback"], accounts=accounts
    ) as provider:
        settings = provider.provider_settings(
            "corp", provisioning="jit", group_grants=GRANTS, link_by_email=True
        )
        async with running_stack(tmp_path, port=port, auth={"oidc": [settings]}) as stack:
            yield Sso(stack, base, provider)


async def test_an_email_claim_that_says_two_things_signs_nobody_in(tmp_path: Path) -> None:
    async with provider_claiming(tmp_path) as s:
        for i, name in enumerate(CLAIMED):
            callback, flow = await s.provider_callback(f"m{i}")
            s.stack.client.session.cookie_jar.clear()
            status, body, session = await s.deliver(callback, flow)
            assert status == 400 and session is None and "email-missing" in body, name
        failed = await s.failures()
        assert [(f["reason"], f["actor"]) for f in failed] == [
            ("email-missing", f"m{i}") for i in range(len(CLAIMED))
        ]
        async with s.stack.app[ENGINE].connect() as conn:
            assert (
                await conn.execute(text("SELECT count(*) FROM external_accounts"))
            ).scalar() == 0
        assert await s.stack.ledger_total() == 0
