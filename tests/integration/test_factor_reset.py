"""Resetting a person's second factors through each front end: the admin API, the
admin UI (a confirm step, then the button) and ``gatehold users reset-factors``.
Each removes the factors, keeps the password, ends the person's sessions at once and
is audited as ``factors-reset`` with the admin as actor and the person as subject."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from gateway.app import ENGINE
from gateway.config.settings import load_settings
from gateway.store.engine import open_engine
from gateway.store.factors import Factors, factors_of
from tests.integration.test_cli import config, gatehold  # noqa: F401 - the CLI fixture
from tests.support.admin_api import as_person
from tests.support.factors import enrol, user_id
from tests.support.stack import Stack, running_stack

UI = "/.gatehold/admin"
API = {"Accept": "application/json"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ALICE = "alice@acme.test"


async def alice_factors(stack: Stack) -> Factors:
    engine = stack.app[ENGINE]
    return await factors_of(engine, await user_id(engine, ALICE))


async def session_works(stack: Stack) -> bool:
    answer = await stack.client.get("/documents", headers=stack.cookie(ALICE) | API)
    return answer.status == 200


async def test_the_api_resets_and_ends_every_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await enrol(stack.app[ENGINE], ALICE, codes=4, passkeys=1, password=True)
        assert await session_works(stack)
        carol = await as_person(stack, "carol@acme.test")
        forged = await carol.call(
            "POST", f"/users/{ALICE}/factors/reset", headers={"X-CSRF-Token": "forged"}
        )
        assert forged.status == 403 and (await alice_factors(stack)).totp

        answer = await carol.call("POST", f"/users/{ALICE}/factors/reset")
        assert answer.status == 200, answer.body
        assert answer.body == {
            "totp": True,
            "recovery_codes": 4,
            "passkeys": 1,
            "password_kept": True,
            "sessions": 1,
            "pending_sign_ins": 0,
        }
        assert await alice_factors(stack) == Factors(password=True)
        assert not await session_works(stack), "her session ended at once"
        (event,) = await stack.events("factors-reset")
        assert (event["actor"], event["data"]["subject"]) == ("carol@acme.test", ALICE)

        missing = await carol.call("POST", "/users/nobody@acme.test/factors/reset")
        assert missing.status == 404


async def test_the_person_page_shows_the_factors_and_resets_after_a_confirm_step(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await enrol(stack.app[ENGINE], ALICE, codes=2)
        admin = stack.cookie("admin@example.test")
        page = await stack.client.get(f"{UI}/users/{ALICE}", headers=admin)
        html = await page.text()
        assert page.status == 200
        assert 'id="factors"' in html and "Recovery codes left" in html
        assert "<summary>Reset second factors…</summary>" in html
        assert f"Yes, reset the second factors of {ALICE}" in html
        token = CSRF.search(html)
        assert token is not None

        forged = await stack.client.post(
            f"{UI}/users/{ALICE}/factors/reset",
            data={"csrf": "forged"},
            headers=admin,
            allow_redirects=False,
        )
        assert forged.status == 403 and (await alice_factors(stack)).totp

        done = await stack.client.post(
            f"{UI}/users/{ALICE}/factors/reset",
            data={"csrf": token.group(1)},
            headers=admin,
            allow_redirects=False,
        )
        assert done.status == 303
        after = await stack.client.get(done.headers["Location"], headers=admin)
        shown = await after.text()
        assert "Second factors removed; sessions ended." in shown
        assert "No second factor enrolled." in shown
        assert await alice_factors(stack) == Factors()
        assert not await session_works(stack)
        (event,) = await stack.events("factors-reset")
        assert event["actor"] == "admin@example.test"


async def test_a_tenant_admin_sees_no_button_for_someone_who_belongs_elsewhere_too(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        await enrol(engine, "admin@example.test")
        carol = stack.cookie("carol@acme.test")
        page = await stack.client.get(f"{UI}/users/admin@example.test", headers=carol)
        html = await page.text()
        assert page.status == 200 and "Reset second factors" not in html
        assert "a superadmin resets their second factors" in html
        refused = await stack.client.get(f"{UI}/users/bob@globex.test", headers=carol)
        assert refused.status == 404


def test_the_cli_resets_a_persons_factors(config: Path) -> None:  # noqa: F811
    added = gatehold("users", "add", ALICE, "--tenant", "acme", "--role", "standard", config=config)
    assert added.returncode == 0, added.stderr
    settings = load_settings(config, env=os.environ, cwd=config.parent)

    async def with_store(work: str) -> Factors:
        engine = open_engine(settings.store_dsn)
        try:
            if work == "enrol":
                await enrol(engine, ALICE, codes=1, passkeys=2)
            return await factors_of(engine, await user_id(engine, ALICE))
        finally:
            await engine.dispose()

    assert asyncio.run(with_store("enrol")).passkeys == 2
    done = gatehold("users", "reset-factors", ALICE, config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{ALICE}: removed authenticator app: yes, 1 recovery code(s), 2 passkey(s); "
        "0 session(s) ended"
    )
    assert asyncio.run(with_store("read")) == Factors()
    audit = gatehold("audit", "export", config=config)
    assert '"factors-reset"' in audit.stdout and '"actor": "cli"' in audit.stdout

    unknown = gatehold("users", "reset-factors", "nobody@acme.test", config=config)
    assert unknown.returncode == 2 and "no user 'nobody@acme.test'" in unknown.stderr
