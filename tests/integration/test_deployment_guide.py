"""The settings the deployment guide shows are settings the gateway accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config.settings import load_settings

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
ENV = {
    "GATEHOLD_STORE_DSN": "postgresql://gatehold@db.internal/gatehold",
    "GATEHOLD_AUDIT_KEY": "k" * 64,
}


def settings_blocks() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    return [block for block in blocks if re.match(r"(server|store|audit):", block)]


def test_the_guide_shows_settings() -> None:
    assert len(settings_blocks()) >= 2


@pytest.mark.parametrize("block", settings_blocks(), ids=lambda b: b.split("\n", 1)[0][:40])
def test_every_settings_example_in_the_guide_loads(tmp_path: Path, block: str) -> None:
    config = tmp_path / "gatehold.yaml"
    config.write_text(block)
    settings = load_settings(config, env=ENV, cwd=tmp_path)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.admin_port == 9090
