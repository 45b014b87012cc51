"""Login CSRF through magic links: a link works only in the browser that asked for it.

An attacker asks for a link to their own address and gets the victim to open it: had
it worked, the victim would go on, signed in as the attacker, typing their data into
the attacker's account. With the default settings the link is bound to the asking
browser, and the confirm page names the account it signs in to.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from gateway.auth.handlers import AUTH_PAGES
from tests.integration.test_magic_link import ask_for_link, cookies_set, mail_settings
from tests.support.smtp import Inbox
from tests.support.stack import running_stack

NONCE = re.compile(r'name="nonce" value="([^"]+)"')
ATTACKER = "o'brien&co@acme.test"


async def test_a_link_opened_in_another_browser_signs_nobody_in(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with running_stack(tmp_path, **mail_settings(port)) as stack:
        attacker = "rita@acme.test"  # the attacker's own, real account here
        asked = await stack.client.post(
            "/.gatehold/login/magic",
            data={"email": attacker},
            headers={"Cookie": "__Host-gatehold-bind=attackers-browser"},
        )
        assert asked.status == 200
        link = urlsplit(Inbox.link_in(await inbox.wait_for(attacker)))
        before = await stack.ledger_total()

        # The victim's browser opens it: the page says whose account this is...
        stack.client.session.cookie_jar.clear()
        page = await stack.client.get(f"{link.path}?{link.query}")
        body = await page.text()
        assert page.status == 200 and f"signing in as <strong>{attacker}</strong>" in body
        nonce = NONCE.search(body)
        assert nonce
        confirm = cookies_set(page)["__Host-gatehold-confirm"]
        # ...and even a click on "Sign in" does not sign the victim's browser in.
        for victim_cookies in ("", "; __Host-gatehold-bind=victims-browser"):
            signed = await stack.client.post(
                "/.gatehold/login/magic/confirm",
                data={"token": link.query.removeprefix("token="), "nonce": nonce.group(1)},
                headers={"Cookie": f"__Host-gatehold-confirm={confirm}{victim_cookies}"},
                allow_redirects=False,
            )
            assert signed.status == 400
            assert "__Host-gatehold" not in cookies_set(signed)
            assert "link-other-browser" in await signed.text() or "link-invalid" in (
                await signed.text()
            )
        failed = await stack.events("login-failed")
        assert [(f["reason"], f["decision"]) for f in failed] == [
            ("link-other-browser", "deny"),
            ("link-invalid", "deny"),  # the first try consumed it: no second chance
        ]
        assert await stack.events("login") == []
        assert await stack.ledger_total() == before
        assert stack.app[AUTH_PAGES].magic_links.settings.bind_browser  # by default


async def test_the_confirm_page_names_the_account_escaped(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    settings = mail_settings(port)
    settings["auth"]["magic_link"]["self_signup"] = {
        "acme.test": {"tenant": "acme", "role": "readonly"}
    }
    async with running_stack(tmp_path, **settings) as stack:
        assert (await ask_for_link(stack, ATTACKER)).status == 200
        link = urlsplit(Inbox.link_in(await inbox.wait_for(ATTACKER)))
        page = await (await stack.client.get(f"{link.path}?{link.query}")).text()
        assert "<strong>o&#39;brien&amp;co@acme.test</strong>" in page
        assert ATTACKER not in page
