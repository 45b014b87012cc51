"""Attack: after cutting records off the log, edit the checkpoint file to match.

The checkpoint lines are signed with a key derived from the audit secret, which the
attacker cannot read: an edited, re-signed or invented line is reported as forged, and
the checkpoints that remain still show the cut.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.audit_trail import Attacker, checkpoint_lines, fill, gatehold, write_config

Forgery = Callable[[dict[str, Any], int, str], str]
"""(the last honest checkpoint, the new last seq, its hash) → the line the attacker writes."""


def canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def moved_back(last: dict[str, Any], seq: int, head_hash: str) -> str:
    """Keep the signature, move seq and hash to the truncated head."""
    return canonical(last | {"seq": seq, "head_hash": head_hash})


def seq_only(last: dict[str, Any], seq: int, head_hash: str) -> str:
    return canonical(last | {"seq": seq})


def signed_with_sha256(last: dict[str, Any], seq: int, head_hash: str) -> str:
    body = {"head_hash": head_hash, "seq": seq, "ts": last["ts"]}
    return canonical(body | {"sig": hashlib.sha256(canonical(body).encode()).hexdigest()})


def signed_with_a_guessed_key(last: dict[str, Any], seq: int, head_hash: str) -> str:
    body = {"head_hash": head_hash, "seq": seq, "ts": last["ts"]}
    sig = hmac.new(b"gatehold audit checkpoint v1", canonical(body).encode(), "sha256")
    return canonical(body | {"sig": sig.hexdigest()})


def not_json(last: dict[str, Any], seq: int, head_hash: str) -> str:
    return f"seq={seq} head={head_hash}"


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[Attacker]:
    attacker = Attacker(tmp_path)
    yield attacker
    attacker.close()


@pytest.mark.parametrize(
    ("forge", "reported"),
    [
        (moved_back, "forged or edited"),
        (seq_only, "forged or edited"),
        (signed_with_sha256, "forged or edited"),
        (signed_with_a_guessed_key, "forged or edited"),
        (not_json, "not a checkpoint"),
    ],
    ids=[
        "moving seq and hash back",
        "moving seq back",
        "re-signed with SHA-256",
        "re-signed with a guessed key",
        "with a line that is not a checkpoint",
    ],
)
async def test_an_edited_checkpoint_file_is_reported(
    tmp_path: Path, attacker: Attacker, forge: Forgery, reported: str
) -> None:
    await fill(tmp_path, 6)
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    honest = checkpoint_lines(checkpoints)
    keep = attacker.last_seq() - 4
    attacker.truncate(keep=keep)
    head_hash = attacker.db.execute("SELECT hash FROM audit_head").fetchone()[0]

    earlier = [line for line in honest if line["seq"] <= keep]
    forged = forge(honest[-1], keep, head_hash)
    checkpoints.write_text("".join(canonical(line) + "\n" for line in earlier) + forged + "\n")

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 1, verified.stdout
    line = len(earlier) + 1
    assert f"checkpoint {checkpoints}:{line}: {reported}" in verified.stdout
    assert "Traceback" not in verified.stderr


async def test_an_untouched_trail_verifies_with_every_checkpoint(tmp_path: Path) -> None:
    await fill(tmp_path, 5)
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    count = len(checkpoint_lines(checkpoints))

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 0, verified.stdout
    assert f"audit chain intact ({count} checkpoint(s) matched)" in verified.stdout
