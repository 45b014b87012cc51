"""Attack: cut the last records off the audit log and reset the chain head to match.

What is left is a consistent, shorter chain: only the signed checkpoints written
outside the database remember how far it went. The attacker can write the database,
not read the key file.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audit_trail import Attacker, checkpoint_lines, fill, gatehold, write_config
from tests.support.stack import running_stack


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[Attacker]:
    attacker = Attacker(tmp_path)
    yield attacker
    attacker.close()


@pytest.mark.parametrize("cut", [10, 1], ids=["the last 10 records", "the last record"])
async def test_truncation_with_the_head_reset_is_reported(
    tmp_path: Path, attacker: Attacker, cut: int
) -> None:
    await fill(tmp_path, 12)
    config = write_config(tmp_path)
    assert gatehold("audit", "verify", config=config).returncode == 0
    last = attacker.last_seq()

    attacker.truncate(keep=last - cut)

    verified = gatehold("audit", "verify", config=config)
    assert verified.returncode == 1, verified.stdout
    assert f"seq {last - cut + 1}-{last}: truncated" in verified.stdout
    assert f"the log now ends at seq {last - cut}" in verified.stdout
    assert "Traceback" not in verified.stderr


async def test_emptying_the_whole_log_is_reported(tmp_path: Path, attacker: Attacker) -> None:
    await fill(tmp_path, 3)
    last = attacker.last_seq()
    attacker.truncate(keep=0)

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 1
    assert f"seq 1-{last}: truncated" in verified.stdout


async def test_deleting_the_checkpoint_file_too_is_reported(
    tmp_path: Path, attacker: Attacker
) -> None:
    await fill(tmp_path, 3)
    attacker.truncate(keep=attacker.last_seq() - 2)
    (tmp_path / "audit-checkpoints.jsonl").unlink()

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 1
    assert "audit-checkpoints.jsonl: the file does not exist" in verified.stdout


async def test_a_checkpoint_follows_the_last_record_within_a_second(
    tmp_path: Path,
) -> None:
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    async with running_stack(tmp_path) as stack:
        response = await stack.client.get(
            "/api/invoices/1", headers=stack.cookie("alice@acme.test")
        )
        [row, *_] = await stack.audit_rows(response.headers["X-Request-Id"])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if checkpoints.exists() and checkpoint_lines(checkpoints)[-1]["seq"] >= row["seq"]:
                break
            await asyncio.sleep(0.05)
        lines = checkpoint_lines(checkpoints)
        assert lines[-1]["seq"] >= row["seq"], "no checkpoint covers the request while serving"


async def test_a_syslog_copy_of_the_checkpoints_still_shows_the_cut(
    tmp_path: Path, attacker: Attacker
) -> None:
    """The attacker also rewinds the local checkpoint file; the syslog copy remembers."""
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    address = f"udp://127.0.0.1:{collector.getsockname()[1]}"
    try:
        await fill(tmp_path, 6, syslog=address, checkpoint_every=0)
        received = []
        collector.settimeout(0.5)
        try:
            while True:
                received.append(collector.recv(65536).decode())
        except TimeoutError:
            pass
    finally:
        collector.close()
    assert received and all("gatehold-audit-checkpoint: {" in m for m in received)
    syslog_file = tmp_path / "collected-syslog.log"
    syslog_file.write_text("\n".join(received) + "\n")
    local = tmp_path / "audit-checkpoints.jsonl"
    assert len(checkpoint_lines(local)) == len(received)

    keep = attacker.last_seq() - 5
    attacker.truncate(keep=keep)
    kept = [line for line in local.read_text().splitlines() if json.loads(line)["seq"] <= keep]
    local.write_text("".join(line + "\n" for line in kept))  # the local copy is rewound too

    config = write_config(tmp_path)
    assert gatehold("audit", "verify", config=config).returncode == 0, "local copy alone"
    verified = gatehold("audit", "verify", "--checkpoints", str(syslog_file), config=config)
    assert verified.returncode == 1
    assert f"seq {keep + 1}-{keep + 5}: truncated" in verified.stdout
    assert "collected-syslog.log:" in verified.stdout
