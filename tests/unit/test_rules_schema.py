"""rules/schema.json is generated from the pydantic models and must not go stale."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.config.rules import rules_json_schema

SCHEMA = Path(__file__).resolve().parents[2] / "rules" / "schema.json"


def test_the_committed_schema_matches_the_models() -> None:
    committed = json.loads(SCHEMA.read_text())
    assert committed == rules_json_schema(), (
        "rules/schema.json is stale: run `python -m gateway.config.rules > rules/schema.json`"
    )
