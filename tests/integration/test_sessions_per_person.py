"""An admin lists a person's sessions and ends one or all of them, with the real command.

The gateway and Ledger run in the test; ``gatehold sessions`` runs as a subprocess over
the same store, as an operator would. An ended session is refused on its next request
(after the gateway's revocation poll), nothing reaches Ledger, and the end is audited.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import yaml

from gateway.store.sessions import token_hash
from tests.support import cli
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}
INVOICE = "/api/invoices/7"


def write_config(stack: Stack, data_dir: Path) -> Path:
    path = data_dir / "gatehold.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(data_dir),
                "rules": str(stack.settings.rules_path),
                "rules_env": dict(stack.settings.rules_env),
            }
        )
    )
    return path


async def gatehold(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli.gatehold, *args, config=config)


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"__Host-gatehold={token}"}


async def status(stack: Stack, token: str) -> int:
    response = await stack.client.get(INVOICE, headers=cookie(token) | API)
    await response.read()
    return response.status


async def refused(stack: Stack, token: str) -> None:
    """The session is refused as invalid; nothing reached Ledger; the audit row says so."""
    before = await stack.ledger_total()
    response = await stack.client.get(INVOICE, headers=cookie(token) | API)
    await response.read()
    assert response.status == 401
    request_id = response.headers["X-Request-Id"]
    assert await stack.ledger_total() == before
    assert request_id not in await stack.ledger_hits()
    (row, *_) = await stack.audit_rows(request_id)
    assert (row["decision"], row["reason"]) == ("deny", "session-invalid")


async def test_list_then_end_one_session_then_all(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        config = write_config(stack, tmp_path)
        first = stack.cookies["alice@acme.test"]
        second = await stack.mint("alice@acme.test")
        rita = stack.cookies["rita@acme.test"]
        assert await status(stack, first) == 200 and await status(stack, second) == 200

        listed = await gatehold(config, "sessions", "list", "alice@acme.test")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert len(lines) == 2
        ids = {line.split("\t")[0] for line in lines}
        assert ids == {token_hash(first)[:12], token_hash(second)[:12]}
        assert all("127.0.0.1 tests" in line and "cli-mint" in line for line in lines)
        assert all(token_hash(first) not in line for line in lines)  # only a prefix

        ended = await gatehold(
            config, "sessions", "end", "alice@acme.test", "--session", token_hash(first)[:12]
        )
        assert ended.returncode == 0, ended.stderr
        assert "1 session(s)" in ended.stdout
        await stack.revocations_noticed(sessions=[first])  # the gateway's poll saw it
        await refused(stack, first)
        assert await status(stack, second) == 200
        assert await status(stack, rita) == 200

        (event,) = [e for e in await stack.events("session-revoked") if e["actor"] == "cli"]
        assert event["data"]["subject"] == "alice@acme.test"
        assert event["data"]["session"] == token_hash(first)[:12]
        assert event["data"]["sessions"] == 1

        third = await stack.mint("alice@acme.test")
        everything = await gatehold(config, "sessions", "end", "alice@acme.test")
        assert everything.returncode == 0, everything.stderr
        assert "2 session(s)" in everything.stdout
        await stack.revocations_noticed(sessions=[second, third])
        await refused(stack, second)
        await refused(stack, third)
        assert await status(stack, rita) == 200
        listed = await gatehold(config, "sessions", "list", "alice@acme.test")
        assert listed.returncode == 0 and listed.stdout == ""


async def test_bad_session_names_are_clear_refusals(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        config = write_config(stack, tmp_path)
        ritas = token_hash(stack.cookies["rita@acme.test"])[:12]
        cases = {
            ("alice@acme.test", "--session", ritas): "has no open session",
            ("alice@acme.test", "--session", "abc"): "at least 8 hex digits",
            ("alice@acme.test", "--session", "zzzzzzzzzz"): "at least 8 hex digits",
            ("nobody@acme.test",): "no user",
        }
        for args, message in cases.items():
            result = await gatehold(config, "sessions", "end", *args)
            assert result.returncode == 2, (args, result.stdout)
            assert message in result.stderr and "Traceback" not in result.stderr
        await asyncio.sleep(1.0)
        assert await status(stack, stack.cookies["rita@acme.test"]) == 200
        assert await status(stack, stack.cookies["alice@acme.test"]) == 200
