"""``gatehold registry show|set|remove|import``, run as real subprocesses on a real store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import gatehold
from tests.support.stack import DEMO_RULES


def test_the_registry_is_set_moved_shown_imported_and_removed_each_audited(
    tmp_path: Path,
) -> None:
    config = tmp_path / "gatehold.yaml"
    config.write_text(json.dumps({"data_dir": ".", "rules": str(DEMO_RULES)}))
    for tenant in ("acme", "globex"):
        assert gatehold("tenants", "add", tenant, config=config).returncode == 0

    made = gatehold("registry", "set", "report", "r-1", "acme", config=config)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "report r-1: (none) -> acme"
    moved = gatehold("registry", "set", "report", "r-1", "globex", config=config)
    assert moved.stdout.strip() == "report r-1: acme -> globex"
    assert gatehold("registry", "show", "report", "r-1", config=config).stdout.strip() == "globex"

    refused = gatehold("registry", "set", "invoice", "1", "acme", config=config)
    assert refused.returncode == 2
    assert "not read from the registry" in refused.stderr and "Traceback" not in refused.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("resource_type,object_id,tenant\nreport,r-2,acme\nreport,r-3,umbrella\n")
    failed = gatehold("registry", "import", str(bad), config=config)
    assert failed.returncode == 2
    assert f"{bad}:3: no tenant 'umbrella'" in failed.stderr, failed.stderr
    assert gatehold("registry", "show", "report", "r-2", config=config).returncode == 2

    good = tmp_path / "good.csv"
    good.write_text("resource_type,object_id,tenant\nreport,r-2,acme\nreport,r-1,globex\n")
    imported = gatehold("registry", "import", str(good), config=config)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "report r-2: (none) -> acme"  # r-1 is unchanged

    removed = gatehold("registry", "remove", "report", "r-1", config=config)
    assert removed.stdout.strip() == "report r-1: globex -> (none)"
    assert gatehold("registry", "show", "report", "r-1", config=config).returncode == 2

    exported = gatehold("audit", "export", config=config).stdout.splitlines()
    kinds = [entry["kind"] for line in exported if (entry := json.loads(line))]
    registry_kinds = [k for k in kinds if k.startswith("registry-")]
    assert registry_kinds == [
        "registry-owner-set",
        "registry-owner-set",
        "registry-imported",
        "registry-owner-removed",
    ]
