"""``gatehold access …`` and ``gatehold reviews …``, run as real subprocesses on a real store.

A request is made as the signed-in page makes it (the admin service, as the person);
the commands list, approve and decline it (the decision is mailed to the outbox), then
review the tenant, attest, export the CSV and revoke a member. Refusals exit 2 with the
message, never a trace.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from gateway.admin import access
from gateway.admin.service import Admin, admin_context
from gateway.config.settings import load_settings
from gateway.store import users as user_store
from gateway.store.access_requests import AccessRequestRow
from tests.integration.test_cli import config, gatehold

__all__ = ["config"]
DAVE = "dave@example.test"


async def ask(config: Path, tenant: str) -> int:
    settings = load_settings(config, env=os.environ, cwd=config.parent)
    async with admin_context(settings, Admin(DAVE)) as ctx:
        user = await user_store.get_user_by_email(ctx.engine, DAVE)
        assert user is not None
        row = await access.request_access(
            ctx, user_id=user.id, tenant=tenant, what="/api/invoices", why="month end\nclose"
        )
    assert isinstance(row, AccessRequestRow), row
    return row.id


def ok(*args: str, config: Path) -> str:
    result = gatehold(*args, config=config)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(*args: str, config: Path) -> str:
    result = gatehold(*args, config=config)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    return result.stderr


async def test_requests_are_listed_approved_and_declined(config: Path) -> None:
    ok("users", "add", DAVE, config=config)
    to_acme, to_globex = await ask(config, "acme"), await ask(config, "globex")

    lines = ok("access", "list", config=config).splitlines()
    assert [line.split("\t")[:4] for line in lines] == [
        [str(to_acme), "pending", "acme", DAVE],
        [str(to_globex), "pending", "globex", DAVE],
    ]
    assert lines[0].endswith("\t/api/invoices\tmonth end close")  # one line per request
    only = ok("access", "list", "--tenant", "globex", config=config).splitlines()
    assert [line.split("\t")[0] for line in only] == [str(to_globex)]

    assert "no role" in refused("access", "approve", str(to_acme), config=config)
    approved = ok("access", "approve", str(to_acme), "--role", "standard", config=config)
    assert f"request {to_acme} approved: {DAVE} holds standard in acme" in approved
    assert "standard in acme" in ok("users", "list", config=config)
    mails = [p.read_text() for p in (config.parent / "outbox").glob("*.eml")]
    assert any("Subject: Your access request for acme was approved" in m for m in mails)
    again = refused("access", "approve", str(to_acme), "--role", "standard", config=config)
    assert f"access request {to_acme} was approved already by cli" in again

    ok("access", "decline", str(to_globex), "--comment", "Not this quarter.", config=config)
    assert ok("access", "list", config=config) == ""
    every = ok("access", "list", "--all", config=config).splitlines()
    assert [line.split("\t")[1] for line in every] == ["approved", "declined"]
    assert "no access request 999" in refused("access", "approve", "999", config=config)
    assert "not-a-number" not in refused("access", "decline", "x", config=config)


async def test_reviews_show_attest_export_and_revoke(config: Path, tmp_path: Path) -> None:
    ok("users", "add", DAVE, "--tenant", "acme", "--role", "standard", config=config)
    ok("users", "add", "erin@acme.test", "--tenant", "acme", "--role", "admin", config=config)

    shown = ok("reviews", "show", "acme", config=config).splitlines()
    assert shown == [
        f"{DAVE}\tstandard\tnever\tIDLE",
        "erin@acme.test\tadmin\tnever\tIDLE",
        "never reviewed",
    ]
    attested = ok("reviews", "attest", "acme", "--comment", "Q4 review", config=config)
    assert attested.startswith("acme reviewed by cli at ")
    assert (
        ok("reviews", "show", "acme", config=config)
        .splitlines()[-1]
        .startswith("last reviewed by cli at ")
    )

    out = tmp_path / "acme-review.csv"
    ok("reviews", "export", "acme", "--output", str(out), config=config)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["tenant"], r["email"], r["roles"], r["idle"]) for r in rows] == [
        ("acme", DAVE, "standard", "true"),
        ("acme", "erin@acme.test", "admin", "true"),
    ]
    assert all(r["last_attestation"].startswith("cli at ") for r in rows)

    assert "holds nothing in acme" in ok("reviews", "revoke", "acme", DAVE, config=config)
    assert DAVE not in ok("reviews", "show", "acme", config=config)
    assert "no member" in refused("reviews", "revoke", "acme", DAVE, config=config)
    assert "no tenant 'nosuch'" in refused("reviews", "show", "nosuch", config=config)
    missing = tmp_path / "never.csv"
    refused("reviews", "export", "nosuch", "--output", str(missing), config=config)
    assert not missing.exists()
    bad_days = refused("reviews", "show", "acme", "--idle-days", "0", config=config)
    assert "from 1 to 3650" in bad_days
