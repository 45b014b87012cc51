"""``rules simulate --api-key ID``: decide as a partner's key would be decided live.

The key's principal (its one tenant and role) comes from the same function live traffic
uses. Generated requests are explained as each key and then sent byte for byte with
the key to the running gateway in front of a real Ledger; every committed audit row
must carry the simulated decision and reason. The command itself refuses an unknown,
revoked or expired key, and a key of a deactivated tenant, with a clear message.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import yaml

from gateway.admin import service as admin
from gateway.admin.explain import explain, principal_for_key
from gateway.admin.service import AdminContext
from gateway.app import ENGINE
from gateway.context import GATEWAY
from gateway.model import Principal, Reason
from gateway.store import api_keys as key_store
from tests.integration.test_decide_live_and_simulated_agree import (
    Case,
    decided_rows,
    generated,
    newest_request_id,
)
from tests.support import cli
from tests.support.stack import Stack, running_stack

KEYS = [("acme", "readonly"), ("acme", "standard"), ("globex", "admin")]


def context(stack: Stack) -> AdminContext:
    gw = stack.app[GATEWAY]
    return AdminContext(
        stack.app[ENGINE], gw.audit, admin.CLI_ADMIN, frozenset(stack.ruleset.roles)
    )


async def send(stack: Stack, case: Case, key: str) -> str:
    """Send ``case`` with ``key`` on a fresh connection; returns its request id."""
    server = stack.client.server
    lines = [
        f"{case.method} {case.target} HTTP/1.1",
        f"Host: {server.host}:{server.port}",
        f"Authorization: Bearer {key}",
    ]
    if case.websocket:
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
        lines += ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: http://gatehold.test"]
    else:
        lines.append("Connection: close")
    if case.body:
        lines += [f"Content-Type: {case.content_type}", f"Content-Length: {len(case.body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + case.body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()
    status, *headers = answer.decode("latin-1").split("\r\n")
    for line in headers:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-request-id":
            return value.strip()
    assert " 101 " in status, f"no X-Request-Id in the answer to {case.describe()}: {answer!r}"
    return await newest_request_id(stack)


async def test_simulating_a_key_agrees_with_its_live_traffic(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        gw = stack.app[GATEWAY]
        ctx = context(stack)
        keys: list[tuple[str, Principal]] = []
        for tenant, role in KEYS:
            made = await admin.create_api_key(ctx, tenant=tenant, role=role, label="t", ttl=3600)
            assert not isinstance(made, admin.AdminError), made
            key_id, key = made
            principal = await principal_for_key(gw, key_id)
            assert isinstance(principal, Principal), principal
            assert principal.active_tenant == tenant
            assert [(m.tenant, m.role) for m in principal.memberships] == [(tenant, role)]
            keys.append((key, principal))
        expected: dict[str, tuple[str, str]] = {}
        described: dict[str, str] = {}
        for number, case in enumerate(generated(150)):
            key, principal = keys[number % len(keys)]
            simulated = await explain(
                gw,
                principal=principal,
                method=case.method,
                target=case.target,
                body=case.body,
                content_type=case.content_type,
                headers={"Upgrade": "websocket"} if case.websocket else None,
            )
            request_id = await send(stack, case, key)
            allowed = "allow" if simulated.decision.allowed else "deny"
            expected[request_id] = (allowed, simulated.decision.reason.value)
            described[request_id] = f"{principal.memberships[0]}: {case.describe()}"
        live = await decided_rows(stack, list(expected))
    differ = [
        f"{described[rid]}: simulated {expected[rid]}, live {live[rid]}"
        for rid in expected
        if expected[rid] != live[rid]
    ]
    assert not differ, "\n".join(differ)
    reasons = {reason for _, reason in expected.values()}
    assert {Reason.ROLE_ALLOWED, Reason.ROLE_FORBIDDEN, Reason.TENANT_FOREIGN} <= reasons


def gatehold(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.gatehold(*args, config=config)


async def test_the_command_decides_as_a_key_and_refuses_dead_ones(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ctx = context(stack)
        engine = stack.app[ENGINE]
        made = await admin.create_api_key(ctx, tenant="acme", role="readonly", label="", ttl=99)
        assert not isinstance(made, admin.AdminError)
        live_id, _ = made
        revoked = await admin.create_api_key(ctx, tenant="acme", role="admin", label="", ttl=99)
        assert not isinstance(revoked, admin.AdminError)
        assert not isinstance(await admin.revoke_api_key(ctx, revoked[0]), admin.AdminError)
        expired_id, _ = await key_store.create_key(
            engine, tenant="acme", role="admin", label="", ttl=10, now=time.time() - 60
        )
        globex = await admin.create_api_key(ctx, tenant="globex", role="admin", label="", ttl=99)
        assert not isinstance(globex, admin.AdminError)
        assert not isinstance(await admin.deactivate_tenant(ctx, "globex"), admin.AdminError)
        config = tmp_path / "gatehold.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(tmp_path),
                    "rules": str(stack.settings.rules_path),
                    "rules_env": dict(stack.settings.rules_env),
                }
            )
        )
        simulate = ("rules", "simulate", "--api-key")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return gatehold(config, *simulate, *args)

        read = await asyncio.to_thread(run, str(live_id), "GET", "/api/invoices/7")
        assert read.returncode == 0, read.stderr
        assert read.stdout.startswith("ALLOW role-allowed")
        write = await asyncio.to_thread(run, str(live_id), "DELETE", "/api/invoices/7")
        assert write.returncode == 1 and write.stdout.startswith("DENY role-forbidden")
        foreign = await asyncio.to_thread(run, str(live_id), "GET", "/api/invoices/8")
        assert foreign.returncode == 1 and foreign.stdout.startswith("DENY tenant-foreign")

        refusals = {
            "999": "no API key 999",
            str(revoked[0]): "is revoked",
            str(expired_id): "has expired",
            str(globex[0]): "deactivated tenant 'globex'",
        }
        for key_id, message in refusals.items():
            result = await asyncio.to_thread(run, key_id, "GET", "/api/invoices/7")
            assert result.returncode == 2, (key_id, result.stdout)
            assert message in result.stderr and "Traceback" not in result.stderr
            assert "ALLOW" not in result.stdout
        both = gatehold(config, *simulate, str(live_id), "--user", "alice@acme.test", "GET", "/")
        assert both.returncode == 2 and "exactly one of" in both.stderr
        tenant = gatehold(config, *simulate, str(live_id), "--tenant", "acme", "GET", "/")
        assert tenant.returncode == 2 and "leave out --tenant" in tenant.stderr
