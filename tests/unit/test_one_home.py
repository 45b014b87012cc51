"""Each concept has one home module; nothing else spells it out again.

A second copy of a JSON-pointer escape, an id regex or a YAML line walk drifts from the
first; these scans of the gateway's source find such a copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).resolve().parent

HOMES = {
    "JSON-pointer escapes": ("jsonpointer.py", ['"~1"', '"~0"', "'~1'", "'~0'"]),
    "id type patterns": ("idtypes.py", ["[0-9A-Fa-f]{8}", "[0-9]{1,18}", "[A-Za-z0-9_-]{0,127}"]),
    "YAML source lines": ("config/yamlsource.py", ["start_mark", "yaml.compose", "difflib"]),
    "file names": ("filenames.py", ["collapse_rfc2231_value", '"CONIN$"', "filename*="]),
}


@pytest.mark.parametrize("concept", sorted(HOMES))
def test_the_concept_is_spelt_out_only_in_its_home(concept: str) -> None:
    home, needles = HOMES[concept]
    assert (PACKAGE / home).is_file()
    elsewhere = [
        f"{path.relative_to(PACKAGE)}: {needle}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / home
        for needle in needles
        if needle in path.read_text(encoding="utf-8")
    ]
    assert elsewhere == []


@pytest.mark.parametrize("concept", sorted(HOMES))
def test_the_home_does_spell_it_out(concept: str) -> None:
    """The scan looks for text the home really has, so it can find a copy."""
    home, needles = HOMES[concept]
    text = (PACKAGE / home).read_text(encoding="utf-8")
    assert any(needle in text for needle in needles)
