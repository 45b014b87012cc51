"""The backup manifest: read back as written, damaged files named, no path escapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.backup_manifest import MANIFEST, BackupFile, Manifest, Role


def written(folder: Path) -> Manifest:
    (folder / "keys").mkdir()
    (folder / "gatehold.db").write_bytes(b"store")
    (folder / "keys" / "csrf.key").write_bytes(b"secret")
    manifest = Manifest(
        created="2026-01-02T03:04:05+00:00",
        gatehold_version="0.1.0",
        backend="sqlite",
        audit_last_seq=7,
        audit_head_hash="ab" * 32,
        audit_key_included=False,
        files=(
            BackupFile.of(folder, "gatehold.db", Role.STORE),
            BackupFile.of(folder, "keys/csrf.key", Role.KEY),
        ),
    )
    (folder / MANIFEST).write_text(manifest.to_json())
    return manifest


def test_a_manifest_reads_back_as_written(tmp_path: Path) -> None:
    manifest = written(tmp_path)
    assert Manifest.read(tmp_path) == manifest
    assert [f.damage(tmp_path) for f in manifest.files] == [None, None]
    assert manifest.of_role(Role.KEY)[0].size == len(b"secret")


def test_a_changed_or_missing_file_is_named(tmp_path: Path) -> None:
    store, key = written(tmp_path).files
    (tmp_path / "gatehold.db").write_bytes(b"st0re")
    (tmp_path / "keys" / "csrf.key").unlink()
    assert "differs from the manifest" in (store.damage(tmp_path) or "")
    assert "the backup is incomplete" in (key.damage(tmp_path) or "")


@pytest.mark.parametrize(
    "path", ["../outside", "/etc/passwd", "keys/../../outside"], ids=["up", "absolute", "nested up"]
)
def test_a_file_path_that_leaves_the_backup_folder_is_refused(tmp_path: Path, path: str) -> None:
    written(tmp_path)
    document = json.loads((tmp_path / MANIFEST).read_text())
    document["files"][1]["path"] = path
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    problem = Manifest.read(tmp_path)
    assert isinstance(problem, str)
    assert "leaves the backup folder" in problem


def test_a_folder_without_a_manifest_is_not_a_backup(tmp_path: Path) -> None:
    problem = Manifest.read(tmp_path)
    assert isinstance(problem, str)
    assert "is not a backup made by `gatehold backup`" in problem
