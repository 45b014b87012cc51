"""Magic links: reuse, expiry, tampering, another browser, and account enumeration.

Each case takes a genuine link just mailed to alice and attacks its confirm step: a
second use, a use after fifteen minutes, a token cut short, changed or made up, the
link opened in another browser (the default binds it to the asking one), a forged
confirm nonce. Each must answer 400, set no session cookie, reach nothing at Ledger,
and leave a ``login-failed`` audit record naming why. Then enumeration: known,
unknown, deactivated and look-alike addresses get the very same answer, and only the
known, active one gets mail. One gateway serves the whole table.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from sqlalchemy import text

from gateway.app import ENGINE
from gateway.auth.handlers import AUTH_PAGES
from gateway.store import users as user_store
from tests.integration.test_magic_link import BROWSER, NONCE, ask_for_link, cookies_set
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE, CAROL = "alice@acme.test", "carol@acme.test"
CONFIRM = "/.gatehold/login/magic/confirm"
SESSION = "__Host-gatehold"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("links")
    limits = {"per_email_per_hour": 1000, "per_client_per_hour": 1000}
    async with running_stack(data, auth={"magic_link": limits}) as running:
        yield running


async def fresh_token(stack: Stack, to: str = ALICE) -> str:
    """Ask for a link as the test browser; the token of the mail that arrives."""
    before = set(stack.settings.outbox_path.glob("*.eml"))
    assert (await ask_for_link(stack, to)).status == 200
    await stack.app[AUTH_PAGES].magic_links.wait_sent()
    (new,) = set(stack.settings.outbox_path.glob("*.eml")) - before
    body = email.message_from_bytes(new.read_bytes()).get_payload(decode=True)
    assert isinstance(body, bytes)
    (link,) = [w for w in body.decode().split() if CONFIRM + "?token=" in w]
    return urlsplit(link).query.removeprefix("token=")


async def confirm(
    stack: Stack,
    token: str,
    *,
    page_token: str | None = None,
    browser: str = BROWSER,
    nonce: str | None = None,
) -> tuple[int, dict[str, str]]:
    """The confirm page for ``page_token`` (the genuine one), then its button with
    ``token``: status and the cookies set."""
    page = await stack.client.get(CONFIRM, params={"token": page_token or token})
    found = NONCE.search(await page.text())
    cookie = cookies_set(page).get("__Host-gatehold-confirm", "")
    answer = await stack.client.post(
        CONFIRM,
        data={"token": token, "nonce": nonce or (found.group(1) if found else "")},
        headers={"Cookie": f"__Host-gatehold-confirm={cookie}; {browser}"},
        allow_redirects=False,
    )
    await answer.read()
    return answer.status, cookies_set(answer)


async def used_once(stack: Stack, token: str) -> tuple[int, dict[str, str]]:
    first, _ = await confirm(stack, token)
    assert first == 303, "the genuine first use signs in"
    # A used token opens no confirm page; the attacker takes a nonce from another one.
    return await confirm(stack, token, page_token=await fresh_token(stack))


async def expired(stack: Stack, token: str) -> tuple[int, dict[str, str]]:
    spare = await fresh_token(stack)
    async with stack.app[ENGINE].begin() as conn:  # fifteen minutes pass for the first
        await conn.execute(
            text("UPDATE login_links SET expires_at = expires_at - 901 WHERE token_hash = :h"),
            {"h": hashlib.sha256(token.encode()).hexdigest()},
        )
    return await confirm(stack, token, page_token=spare)


def changed(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


ATTACKS: dict[str, tuple[Callable[[Stack, str], Awaitable[tuple[int, dict[str, str]]]], str]] = {
    "used a second time": (used_once, "link-invalid"),
    "used after fifteen minutes": (expired, "link-invalid"),
    "cut short by one character": (
        lambda s, t: confirm(s, t[:-1], page_token=t),
        "link-invalid",
    ),
    "one character changed": (lambda s, t: confirm(s, changed(t), page_token=t), "link-invalid"),
    "made up": (lambda s, t: confirm(s, "A" * len(t), page_token=t), "link-invalid"),
    "empty": (lambda s, t: confirm(s, "", page_token=t), "link-invalid"),
    "opened in another browser": (
        lambda s, t: confirm(s, t, browser="__Host-gatehold-bind=another-browser"),
        "link-other-browser",
    ),
    "opened in a browser without the binding": (
        lambda s, t: confirm(s, t, browser="theme=dark"),
        "link-other-browser",
    ),
    "confirmed with a forged nonce": (
        lambda s, t: confirm(s, t, nonce="forged-nonce"),
        "confirm-mismatch",
    ),
}


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_a_link_attack_signs_nobody_in(stack: Stack, name: str) -> None:
    attack, reason = ATTACKS[name]
    token = await fresh_token(stack)
    failed_before = len(await stack.events("login-failed"))
    ledger = await stack.ledger_total()
    status, cookies = await attack(stack, token)
    assert status == 400, (name, status)
    assert SESSION not in cookies, f"{name}: a session was set"
    failed = (await stack.events("login-failed"))[failed_before:]
    assert [e["reason"] for e in failed] == [reason], (name, failed)
    assert await stack.ledger_total() == ledger
    assert token not in str(failed), "the token is in the audit record"


ADDRESSES = (
    ALICE,
    "nobody@acme.test",
    "carol@acme.test",  # deactivated below
    "ALICE@acme.test",
    "alice+x@acme.test",
    "alice@ACME.TEST",
    "nobody@unknown-domain.example",
)


async def test_every_address_gets_the_same_answer_and_only_a_known_one_mail(
    stack: Stack,
) -> None:
    engine = stack.app[ENGINE]
    carol = await user_store.get_user_by_email(engine, CAROL)
    assert carol is not None
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE users SET active = 0 WHERE id = :id"), {"id": carol.id})
    answers: dict[str, tuple[int, str, tuple[str, ...]]] = {}
    before = set(stack.settings.outbox_path.glob("*.eml"))
    for address in ADDRESSES:
        answer = await ask_for_link(stack, address)
        body = re.sub(re.escape(address), "EMAIL", await answer.text(), flags=re.IGNORECASE)
        answers[address] = (answer.status, body, tuple(sorted(cookies_set(answer))))
    await stack.app[AUTH_PAGES].magic_links.wait_sent()
    groups: dict[tuple[int, str, tuple[str, ...]], list[str]] = {}
    for address, answer in answers.items():
        groups.setdefault(answer, []).append(address)
    assert len(groups) == 1, list(groups.values())
    mailed = [
        email.message_from_bytes(p.read_bytes())["To"]
        for p in set(stack.settings.outbox_path.glob("*.eml")) - before
    ]
    assert CAROL not in mailed and not [m for m in mailed if "nobody" in m]
