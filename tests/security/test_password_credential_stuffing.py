"""Credential stuffing against the password form is throttled, and gains no session.

An attacker replays leaked (email, password) pairs from one address, through the
trusted proxy as a real client would arrive. After ``free_failures`` wrong tries the
client must wait, doubling; every refused try is audited; no pair signs in, even the
one right pair in the list once the client is throttled; nothing reaches Ledger.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.passwords import ALICE_PASSWORD, give_password, password_settings, sign_in
from tests.support.stack import running_stack

PROXIED = {"server": {"public_url": "http://gatehold.test", "trusted_proxies": ["127.0.0.1/32"]}}
LEAKED = [
    ("bob@globex.test", "Summer2024!"),
    ("carol@acme.test", "qwerty123456"),
    ("dave@acme.test", "iloveyou2024"),
    ("erin@globex.test", "P@ssw0rd2023"),
    ("frank@acme.test", "letmein12345"),
    ("alice@acme.test", ALICE_PASSWORD),  # the one pair that would work
]


async def test_leaked_pairs_from_one_client_are_throttled_and_none_signs_in(
    tmp_path: Path,
) -> None:
    settings = password_settings(free_failures=3, backoff_base="30s", backoff_max="15m")
    async with running_stack(tmp_path, **PROXIED, **settings) as stack:
        await give_password(stack, "alice@acme.test")
        reached = await stack.ledger_total()
        statuses = []
        for email, password in LEAKED:
            answer = await sign_in(stack, email, password, client="203.0.113.66")
            statuses.append(answer.status)
            assert answer.headers.getall("Set-Cookie", []) == [], email
        assert statuses == [400, 400, 400, 429, 429, 429]
        assert await stack.ledger_total() == reached
        reasons = [e["reason"] for e in await stack.events("login-failed")]
        assert reasons.count("password-throttled") == 3
        assert not [e for e in await stack.events("login") if e["method"] == "password"]
        # The owner, from their own address, is not locked out by the attacker's client.
        own = await sign_in(stack, "alice@acme.test", ALICE_PASSWORD, client="192.0.2.10")
        assert own.status == 303
