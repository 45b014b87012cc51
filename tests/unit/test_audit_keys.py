"""The audit key: outside the store, made once (0600, atomically), or given by settings."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from gateway.audit_keys import AuditKey, audit_key, load_key_file
from gateway.config.settings import load_settings
from gateway.errors import ConfigError


def test_a_missing_key_file_is_created_with_mode_0600_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-chain.key"
    first = load_key_file(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    assert load_key_file(path, create=True) == first == load_key_file(path, create=False)
    assert list(path.parent.iterdir()) == [path], "no temporary file is left behind"


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "audit-chain.key"
    keys: list[AuditKey] = []
    start = threading.Barrier(8)

    def load() -> None:
        start.wait()
        keys.append(load_key_file(path, create=True))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert load_key_file(path, create=False) == keys[0]


def test_verification_never_makes_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "audit-chain.key"
    with pytest.raises(ConfigError, match="the audit key file does not exist"):
        load_key_file(path, create=False)
    assert not path.exists()


def test_a_short_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit-chain.key"
    path.write_text("too short\n")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_key_file(path, create=True)


def test_the_two_derived_keys_differ_and_are_never_printed() -> None:
    key = AuditKey.from_secret(b"s" * 32)
    assert key.chain != key.checkpoint
    assert key.chain.hex() not in repr(key) and "s" * 32 not in repr(key)


def test_the_key_can_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "gatehold.yaml").write_text("audit: {key: '${AUDIT_SECRET}'}\n")
    secret = "e" * 40
    settings = load_settings(None, env={"AUDIT_SECRET": secret}, cwd=tmp_path)
    assert audit_key(settings, create=True) == AuditKey.from_secret(secret.encode())
    assert not (tmp_path / "var" / "keys").exists(), "no key file when the key is given"
    assert secret not in repr(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audit: {key: short}\n", "audit.key: the audit key needs at least 32"),
        ("audit: {syslog: 'tcp://x:1'}\n", "audit.syslog: 'tcp://x:1' is not a"),
        ("audit: {syslog: 'udp://host'}\n", "use udp://HOST:PORT"),
        ("audit: {checkpoint_every: soon}\n", "audit.checkpoint_every: 'soon'"),
    ],
    ids=["a short key", "a TCP syslog", "a syslog without port", "a bad checkpoint interval"],
)
def test_bad_audit_settings_say_what_to_write(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "gatehold.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(None, env={}, cwd=tmp_path)
    assert any(expected in problem for problem in raised.value.problems), raised.value.problems


def test_audit_paths_default_under_the_data_folder(tmp_path: Path) -> None:
    (tmp_path / "gatehold.yaml").write_text("data_dir: data\n")
    settings = load_settings(None, env={}, cwd=tmp_path)
    assert settings.audit_key_path == tmp_path / "data" / "keys" / "audit-chain.key"
    assert settings.audit_checkpoints_path == tmp_path / "data" / "audit-checkpoints.jsonl"
    assert settings.audit_checkpoint_every == 1.0
