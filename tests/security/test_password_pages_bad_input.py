"""Bad input to the password pages gets a clear 4xx page, never a 500 or a session.

Missing fields, a JSON body, an address with a display name, a password far beyond
the maximum, control characters, and redirect targets to other sites: each answer is
a page of the gateway's own (``nosniff``), and no ``rd`` leaves the origin (I8).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model import AuthMethod
from tests.support.passwords import (
    ALICE_PASSWORD,
    change_password,
    give_password,
    password_settings,
    session_by,
    session_cookie,
)
from tests.support.stack import running_stack

LOGIN = "/.gatehold/login/password"


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({}, 400),
        ({"email": "alice@acme.test"}, 400),
        ({"password": ALICE_PASSWORD}, 400),
        ({"email": "Alice <alice@acme.test>", "password": ALICE_PASSWORD}, 400),
        ({"email": "alice@acme.test\r\nBcc: x@evil.test", "password": ALICE_PASSWORD}, 400),
        ({"email": "alice@acme.test", "password": "x" * 200_000}, 400),
        ({"email": "alice@acme.test", "password": "\x00\x01\u202e"}, 400),
    ],
    ids=[
        "nothing",
        "no password",
        "no email",
        "a display name",
        "a header injection",
        "a password far beyond the maximum",
        "control characters",
    ],
)
async def test_bad_sign_in_forms_get_a_page_not_an_error(
    tmp_path: Path, form: dict[str, str], status: int
) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        answer = await stack.client.post(LOGIN, data=form, allow_redirects=False)
        assert answer.status == status
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "Traceback" not in await answer.text() and session_cookie(answer) is None


async def test_odd_bodies_and_foreign_redirects_are_contained(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        await give_password(stack, "alice@acme.test")
        as_json = await stack.client.post(
            LOGIN, json={"email": "alice@acme.test", "password": ALICE_PASSWORD}
        )
        assert as_json.status == 400 and session_cookie(as_json) is None
        for rd in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            answer = await stack.client.post(
                LOGIN,
                data={"email": "alice@acme.test", "password": ALICE_PASSWORD, "rd": rd},
                allow_redirects=False,
            )
            assert answer.status == 303 and answer.headers["Location"] == "/"
        saved = await stack.client.get(
            "/.gatehold/account/password/saved?rd=//evil.example/", allow_redirects=False
        )
        assert saved.status == 200 and "evil.example" not in await saved.text()
        forgot = await stack.client.get("/.gatehold/login/forgot-password?rd=//evil.example/")
        assert forgot.status == 200 and "evil.example" not in await forgot.text()


async def test_the_password_form_needs_a_session(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        page = await stack.client.get("/.gatehold/account/password", allow_redirects=False)
        assert page.status == 303
        assert page.headers["Location"].startswith("/.gatehold/login?rd=")
        post = await stack.client.post(
            "/.gatehold/account/password",
            data={"new_password": "Blue kettles argue", "repeat_password": "Blue kettles argue"},
            allow_redirects=False,
        )
        assert post.status == 303 and post.headers["Location"] == "/.gatehold/login"


async def test_a_change_to_a_foreign_target_or_with_differing_passwords_is_contained(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **password_settings()) as stack:
        cookie = await session_by(stack, "alice@acme.test", method=AuthMethod.MAGIC_LINK)
        differ = await change_password(
            stack, cookie, "Blue kettles argue quietly", repeat_password="something else"
        )
        assert differ.status == 400 and "The two new passwords differ" in await differ.text()
        foreign = await change_password(
            stack, cookie, "Blue kettles argue quietly", rd="https://evil.example/"
        )
        assert foreign.status == 303
        assert foreign.headers["Location"] == "/.gatehold/account/password/saved?rd=%2F"
