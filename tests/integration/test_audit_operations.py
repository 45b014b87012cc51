"""Operating the keyed audit trail: an upgraded log, an unusable key, verify beside traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.audit_trail import Attacker, fill, gatehold, plain_sha256, write_config
from tests.support.stack import running_stack


async def test_an_upgraded_log_verifies_with_its_unkeyed_prefix_named(tmp_path: Path) -> None:
    await fill(tmp_path, 2)
    (tmp_path / "audit-checkpoints.jsonl").unlink()
    old = Attacker(tmp_path)  # the log as an earlier version wrote it: plain SHA-256
    old.rehash_from(1, plain_sha256)
    unkeyed = old.last_seq()
    config = write_config(tmp_path)
    assert gatehold("users", "add", "new@acme.test", config=config).returncode == 0

    plain = gatehold("audit", "verify", config=config)
    assert plain.returncode == 1
    assert f"seq 1-{unkeyed}: edited" in plain.stdout
    assert f"seq {unkeyed + 1}" not in plain.stdout, "the keyed rows after it are intact"

    upgraded = gatehold("audit", "verify", "--unkeyed-until", str(unkeyed), config=config)
    assert upgraded.returncode == 0, upgraded.stdout
    assert f"seq 1-{unkeyed} predate the keyed chain" in upgraded.stderr

    old.rewrite(2, actor="mallory@evil.test")
    old.close()
    edited = gatehold("audit", "verify", "--unkeyed-until", str(unkeyed), config=config)
    assert edited.returncode == 1
    assert "seq 2: edited" in edited.stdout


def test_serve_refuses_to_start_with_an_unusable_audit_key(tmp_path: Path) -> None:
    key_file = tmp_path / "short.key"
    key_file.write_text("guessable\n")
    config = write_config(tmp_path, key_file=str(key_file))

    served = gatehold("serve", config=config)
    assert served.returncode == 2
    assert f"{key_file}: the audit secret needs at least 32 characters" in served.stderr
    assert "Traceback" not in served.stderr


async def test_verify_beside_a_busy_gateway_reports_nothing(tmp_path: Path) -> None:
    """Checkpoints written while verify runs never read as a truncated log."""
    config = write_config(tmp_path, checkpoint_every=0)
    stop = asyncio.Event()
    async with running_stack(tmp_path, audit={"checkpoint_every": 0}) as stack:

        async def traffic() -> int:
            sent = 0
            while not stop.is_set():
                response = await stack.client.get(
                    f"/api/invoices/{sent % 3 + 1}", headers=stack.cookie("alice@acme.test")
                )
                await response.read()
                sent += 1
            return sent

        load = [asyncio.create_task(traffic()) for _ in range(4)]
        try:
            runs = [
                await asyncio.to_thread(gatehold, "audit", "verify", config=config, process=True)
                for _ in range(3)
            ]
        finally:
            stop.set()
            sent = sum(await asyncio.gather(*load))
    assert sent > 0
    for verified in runs:
        assert verified.returncode == 0, verified.stdout
