"""Signed checkpoints: when the writer makes them, and how they are read back."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter
from gateway.audit_checkpoints import (
    CheckpointWriter,
    checkpoint_line,
    parse_checkpoints,
    read_checkpoints,
)
from gateway.audit_keys import AuditKey
from gateway.metrics import Metrics
from gateway.model import AuditEntry
from gateway.store import audit_log

KEY = AuditKey.from_secret(b"checkpoint unit-test secret, 32+ bytes")


def entry(n: int) -> AuditEntry:
    return AuditEntry(kind="request", request_id=f"req-{n}", actor="a@acme.test", data={"n": n})


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_record_written_just_after_a_checkpoint_is_checkpointed_when_idle(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    file = tmp_path / "checkpoints.jsonl"
    writer = AuditWriter(
        engine, key=KEY, checkpoints=CheckpointWriter(file, KEY), checkpoint_every=0.3
    )
    await writer.start()
    try:
        await writer.begin(entry(1))
        await writer.begin(entry(2))  # inside the interval: owed, not yet written
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and [c["seq"] for c in lines(file)][-1:] != [2]:
            await asyncio.sleep(0.02)
        assert [c["seq"] for c in lines(file)] == [1, 2]
    finally:
        await writer.close()
    assert [c["seq"] for c in lines(file)] == [1, 2], "nothing new to checkpoint at close"


async def test_a_busy_writer_checkpoints_at_most_once_an_interval_and_at_close(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    file = tmp_path / "checkpoints.jsonl"
    writer = AuditWriter(
        engine, key=KEY, checkpoints=CheckpointWriter(file, KEY), checkpoint_every=60
    )
    await writer.start()
    for n in range(20):
        await writer.begin(entry(n))
    await writer.close()
    assert writer.batches_committed == 20
    assert [c["seq"] for c in lines(file)] == [1, 20]
    checkpoints, problems = read_checkpoints(file, KEY)
    assert problems == []
    assert await audit_log.verify_chain(engine, key=KEY.chain, checkpoints=checkpoints) == []


async def test_an_unwritable_checkpoint_file_is_counted_and_requests_go_on(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    writer = AuditWriter(
        engine,
        key=KEY,
        checkpoints=CheckpointWriter(blocker / "checkpoints.jsonl", KEY),
        checkpoint_every=0,
    )
    await writer.start()
    receipts = [await writer.begin(entry(n)) for n in range(3)]
    await writer.close()
    assert [r.seq for r in receipts] == [1, 2, 3]
    assert writer.checkpoint_failures >= 3
    metrics = Metrics()
    metrics.watch_audit(writer)
    exposed = metrics.exposition().decode()
    assert f"gatehold_audit_checkpoint_failures_total {writer.checkpoint_failures}.0" in exposed


class NeverWritten(CheckpointWriter):
    """A checkpoint writer whose checkpoints never land: the process died first."""

    def write(self, *, seq: int, head_hash: str, ts: float) -> None:
        raise OSError("the process was killed before its first checkpoint")


async def test_records_committed_before_the_first_checkpoint_leave_a_file_not_a_deletion(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A crash between a new store's first commit and its first checkpoint: the file
    exists (empty), so verifying reports no deleted checkpoint file."""
    file = tmp_path / "data" / "checkpoints.jsonl"
    writer = AuditWriter(engine, key=KEY, checkpoints=NeverWritten(file, KEY))
    await writer.start()
    await writer.begin(entry(1))
    await writer.close()
    assert writer.entries_committed == 1 and writer.checkpoint_failures >= 1
    checkpoints, problems = read_checkpoints(file, KEY)
    assert (checkpoints, problems) == ([], [])
    assert await audit_log.verify_chain(engine, key=KEY.chain, checkpoints=checkpoints) == []


def test_a_line_collected_by_syslog_reads_as_the_checkpoint() -> None:
    line = checkpoint_line(KEY, seq=7, head_hash="ab" * 32, ts=1700000000.5)
    syslogged = f"<86>Nov 28 21:00:00 host gatehold-audit-checkpoint: {line}\x00"
    [found], problems = parse_checkpoints([syslogged, ""], KEY, origin="syslog")
    assert problems == []
    assert (found.seq, found.head_hash, found.ts, found.origin) == (
        7,
        "ab" * 32,
        1700000000.5,
        "syslog:1",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"seq": True},
        {"seq": 0},
        {"ts": "yesterday"},
        {"head_hash": "AB" * 32},
        {"extra": 1},
    ],
    ids=["a boolean seq", "seq 0", "a text time", "upper-case hex", "an extra field"],
)
def test_a_malformed_checkpoint_is_reported_not_trusted(change: dict[str, object]) -> None:
    line = json.loads(checkpoint_line(KEY, seq=3, head_hash="cd" * 32, ts=1.0))
    found, problems = parse_checkpoints([json.dumps(line | change)], KEY, origin="f")
    assert found == []
    assert len(problems) == 1 and problems[0].startswith("checkpoint f:1: not a checkpoint")


def test_a_checkpoint_signed_with_another_secret_is_forged() -> None:
    other = AuditKey.from_secret(b"another installation's secret, 32+ b")
    line = checkpoint_line(other, seq=3, head_hash="cd" * 32, ts=1.0)
    found, problems = parse_checkpoints([line], KEY, origin="f")
    assert found == []
    assert problems == [
        "checkpoint f:1: forged or edited (its signature does not match; it claims seq 3)"
    ]


def test_checkpoints_reach_a_local_syslog_socket(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    collector = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    collector.bind(str(path))
    collector.settimeout(5)
    writer = CheckpointWriter(tmp_path / "checkpoints.jsonl", KEY, syslog=str(path))
    try:
        writer.write(seq=4, head_hash="ef" * 32, ts=2.5)
        message = collector.recv(65536).decode()
    finally:
        writer.close()
        collector.close()
    assert message.startswith("<")  # the priority of facility authpriv
    [found], problems = parse_checkpoints([message], KEY, origin="syslog")
    assert (problems, found.seq) == ([], 4)


def test_a_missing_syslog_leaves_the_file_copy_written(tmp_path: Path) -> None:
    file = tmp_path / "checkpoints.jsonl"
    writer = CheckpointWriter(file, KEY, syslog=str(tmp_path / "no-such.sock"))
    writer.write(seq=1, head_hash="01" * 32, ts=1.0)
    writer.close()
    checkpoints, problems = read_checkpoints(file, KEY)
    assert problems == [] and [c.seq for c in checkpoints] == [1]
