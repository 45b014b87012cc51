"""Attack: rewrite an audit record, then compute every hash after it again.

With an unkeyed chain anyone who can write the database can do this and the chain
verifies. Keyed, the attacker (who cannot read the key file) can only guess: plain
SHA-256, HMAC under a guessed secret, or the right derivation from a wrong secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audit_trail import (
    Attacker,
    Hasher,
    fill,
    gatehold,
    guessed_key,
    plain_sha256,
    write_config,
)


def derived_from_a_wrong_secret(prev_hash: str, content: str) -> str:
    """Gatehold's own derivation, from a secret the attacker made up."""
    chain_key = hmac.digest(b"0" * 64, b"gatehold audit chain v1", "sha256")
    return hmac.digest(chain_key, (prev_hash + content).encode("ascii"), "sha256").hex()


def the_database_file_as_key(prev_hash: str, content: str) -> str:
    return guessed_key(hashlib.sha256(b"gatehold.db").digest())(prev_hash, content)


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[Attacker]:
    attacker = Attacker(tmp_path)
    yield attacker
    attacker.close()


@pytest.mark.parametrize(
    "hasher",
    [
        plain_sha256,
        guessed_key(b"gatehold"),
        derived_from_a_wrong_secret,
        the_database_file_as_key,
    ],
    ids=[
        "with plain SHA-256",
        "with HMAC under a guessed key",
        "with the right derivation of a wrong secret",
        "with a key derived from the file name",
    ],
)
async def test_a_rewritten_and_rehashed_record_is_reported(
    tmp_path: Path, attacker: Attacker, hasher: Hasher
) -> None:
    await fill(tmp_path, 8)
    config = write_config(tmp_path)
    last = attacker.last_seq()
    target = 5

    attacker.rewrite(target, decision="deny", reason="role-forbidden", actor="mallory@evil.test")
    attacker.rehash_from(target, hasher)

    verified = gatehold("audit", "verify", config=config)
    assert verified.returncode == 1, verified.stdout
    assert f"TAMPERED: seq {target}-{last}: edited" in verified.stdout
    assert f"seq {last}: replaced or re-hashed" in verified.stdout  # the final checkpoint
    assert "Traceback" not in verified.stderr


async def test_rehashing_without_the_checkpoints_is_still_reported(
    tmp_path: Path, attacker: Attacker
) -> None:
    await fill(tmp_path, 4)
    attacker.rewrite(2, path="/api/invoices/999")
    attacker.rehash_from(2, plain_sha256)
    (tmp_path / "audit-checkpoints.jsonl").unlink()

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 1
    assert f"seq 2-{attacker.last_seq()}: edited" in verified.stdout


async def test_verifying_without_the_key_is_a_clear_error(tmp_path: Path) -> None:
    await fill(tmp_path, 1)
    (tmp_path / "keys" / "audit-chain.key").unlink()

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 2
    assert "audit-chain.key: the audit key file does not exist" in verified.stderr
    assert not (tmp_path / "keys" / "audit-chain.key").exists(), "verify made a new key"
    assert "Traceback" not in verified.stderr


@pytest.mark.parametrize("hasher", [plain_sha256, guessed_key(b"k" * 32)], ids=["sha256", "hmac"])
async def test_a_record_appended_outside_the_gateway_is_reported(
    tmp_path: Path, attacker: Attacker, hasher: Hasher
) -> None:
    """A made-up record (to frame someone) added at the end, with the head moved to it."""
    await fill(tmp_path, 2)
    last = attacker.last_seq()
    attacker.db.execute(
        "INSERT INTO audit_log SELECT seq + 1, ts, kind, 'forged', 'bob@globex.test', "
        "tenant, route, decision, reason, method, path, data, hash, hash "
        "FROM audit_log WHERE seq = ?",
        (last,),
    )
    attacker.rehash_from(last + 1, hasher)

    verified = gatehold("audit", "verify", config=write_config(tmp_path))
    assert verified.returncode == 1
    assert f"TAMPERED: seq {last + 1}: edited" in verified.stdout
