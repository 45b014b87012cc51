"""Open redirects (I8) through every way a return address enters the sign-in pages.

An attacker hands the victim a genuine sign-in address whose ``rd`` points elsewhere:
after signing in the victim would land on the attacker's look-alike page. Each
spelling below must come back as a same-origin path on every entry: the sign-in
page's form, the magic-link sign-in to its end (the mailed link, its confirm page,
the redirect it answers, and the ``login`` audit record), and the step-up form sent
by someone not signed in. One gateway serves the whole table.
"""

from __future__ import annotations

import email
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio

from gateway.auth.handlers import AUTH_PAGES
from gateway.ingress import canonicalize
from gateway.model import Target
from tests.integration.test_magic_link import ask_for_link, follow_link
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = "alice@acme.test"
EVIL = (
    "//evil.example",
    "///evil.example",
    "////evil.example/",
    "/\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "HTTPS://evil.example",
    "http:evil.example",
    "https:/\\evil.example",
    "//evil.example@gatehold.test/",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "/%5C%5Cevil.example",
    "/%5cevil.example",
    "%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/.gatehold/../..//evil.example",
    "/./%2e%2e//evil.example",
    "  //evil.example",
    "/\t/evil.example",
    "/\u3031evil.example",
    "/\uff0f\uff0fevil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/ok\r\nSet-Cookie: x=1",
    "/ok%0d%0aSet-Cookie:%20x=1",
    "/ok%00evil",
)
RD_FIELD = re.compile(r'name="rd" value="([^"]*)"')


def safe(location: str) -> bool:
    """A same-origin path the canonicalizer keeps as it is, naming nothing evil."""
    target = canonicalize(location)
    return (
        location.startswith("/")
        and not location.startswith(("//", "/\\"))
        and isinstance(target, Target)
        and target.raw == location
        and "evil" not in location.lower()
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data: Path = tmp_path_factory.mktemp("redirects")
    limits = {"per_email_per_hour": 1000, "per_client_per_hour": 1000}
    async with running_stack(data, auth={"magic_link": limits}) as running:
        yield running


async def mailed_link(stack: Stack, sent_before: set[Path]) -> str:
    """The link of the one mail to alice written since ``sent_before``."""
    await stack.app[AUTH_PAGES].magic_links.wait_sent()
    (new,) = set(stack.settings.outbox_path.glob("*.eml")) - sent_before
    message = email.message_from_bytes(new.read_bytes())
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    (link,) = [word for word in body.decode().split() if "/magic/confirm?token=" in word]
    return link


@pytest.mark.parametrize("rd", EVIL, ids=repr)
async def test_the_sign_in_page_form_keeps_only_a_local_path(stack: Stack, rd: str) -> None:
    page = await stack.client.get("/.gatehold/login", params={"rd": rd})
    assert page.status == 200
    found = RD_FIELD.search(await page.text())
    assert found and safe(html.unescape(found.group(1))), found


@pytest.mark.parametrize("rd", EVIL, ids=repr)
async def test_a_magic_link_sign_in_ends_on_this_site(stack: Stack, rd: str) -> None:
    before_mail = set(stack.settings.outbox_path.glob("*.eml"))
    logins = len([e for e in await stack.events("login") if e["actor"] == ALICE])
    ledger = await stack.ledger_total()
    assert (await ask_for_link(stack, ALICE, rd=rd)).status == 200
    signed_in = await follow_link(stack, await mailed_link(stack, before_mail))
    assert signed_in.status == 303
    assert safe(signed_in.headers["Location"]), signed_in.headers["Location"]
    assert "Set-Cookie: x" not in str(signed_in.headers)
    after = [e for e in await stack.events("login") if e["actor"] == ALICE]
    assert len(after) == logins + 1, "the sign-in is audited"
    assert await stack.ledger_total() == ledger, "nothing went to the app on the way"


@pytest.mark.parametrize("rd", EVIL, ids=repr)
async def test_a_step_up_without_a_session_goes_to_a_local_sign_in(stack: Stack, rd: str) -> None:
    answer = await stack.client.post(
        "/.gatehold/login/step-up", data={"rd": rd}, allow_redirects=False
    )
    assert answer.status == 303
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/.gatehold/login" and not location.netloc
    (back,) = parse_qs(location.query).get("rd", ["/"])
    assert safe(back), back
