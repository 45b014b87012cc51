"""Operating the keyed audit trail: upgrading an unkeyed log, and an unusable key."""

from __future__ import annotations

from pathlib import Path

from tests.support.audit_trail import Attacker, fill, gatehold, plain_sha256, write_config


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
