"""docs/architecture.md stays true: every module it names exists, and every entry point
of its module-contracts table can be imported under the name it gives.

Renaming a stage's function without the guide would otherwise leave the guide lying
quietly; this test makes it a failure instead.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "architecture.md"
PACKAGE = REPO / "gateway"
_CODE = re.compile(r"`([^`]+)`")
_CALL_ARGS = re.compile(r"\([^()]*\)")


def _contracts() -> list[tuple[str, str]]:
    """(module file, entry point) for each entry of the module-contracts table."""
    text = GUIDE.read_text(encoding="utf-8")
    table = text.split("## Module contracts", 1)[1].split("\n## ", 1)[0]
    rows: list[tuple[str, str]] = []
    module = ""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or set(cells[0]) <= {"-", " "} and cells[0] != "" or cells[0] == "module":
            continue
        if cells[0]:
            module = _CODE.findall(cells[0])[0]
        for code in _CODE.findall(cells[1]):
            rows.append((module, code))
    return rows


def _dotted(entry: str) -> str:
    """``Router(routes).match(target)`` → ``Router.match``; ``read_body(r, n)`` → ``read_body``."""
    previous = None
    while previous != entry:
        previous, entry = entry, _CALL_ARGS.sub("", entry)
    return entry.strip()


def _module_name(path: str) -> str:
    return "gateway." + path.removesuffix(".py").replace("/", ".")


CONTRACTS = _contracts()


def test_the_guide_has_a_contracts_table() -> None:
    assert len(CONTRACTS) >= 20, "the module-contracts table was not found or lost its rows"


@pytest.mark.parametrize(("module", "entry"), CONTRACTS, ids=[f"{m}:{e}" for m, e in CONTRACTS])
def test_every_entry_point_named_in_the_guide_exists(module: str, entry: str) -> None:
    target: object = importlib.import_module(_module_name(module))
    for part in _dotted(entry).split("."):
        assert hasattr(target, part), f"docs/architecture.md names {module} {entry}: no {part!r}"
        target = getattr(target, part)


def test_every_file_the_guide_names_exists() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    named = {code for code in _CODE.findall(text) if re.fullmatch(r"[a-z_/]+\.py", code)}
    files = {
        str(p.relative_to(REPO)) for p in (*PACKAGE.rglob("*.py"), *REPO.glob("tests/**/*.py"))
    }
    missing = sorted(n for n in named if not any(f == n or f.endswith("/" + n) for f in files))
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def _is_setting(dotted: str) -> bool:
    """``headers.strip``, ``server.public_url``: a settings key, not a module attribute."""
    from gateway.config.settings import Settings

    model: object = Settings
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict):
            return False
        field = fields.get(part) or fields.get(part + "_")
        if field is None:
            return False
        model = field.annotation
    return True


def test_module_qualified_names_in_the_guide_exist() -> None:
    """``context.Gateway``, ``app.build_deciders``, ``pipeline.decide`` … anywhere in the text."""
    text = GUIDE.read_text(encoding="utf-8")
    modules = {
        _module_name(str(p.relative_to(PACKAGE))).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
    }
    missing = []
    for code in sorted(set(_CODE.findall(text))):
        found = re.fullmatch(r"([a-z_]+(?:\.[a-z_]+)*)\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", code)
        if not found or found.group(2) == "py" or _is_setting(code):
            continue
        if "gateway." + found.group(1) not in modules:
            continue
        target: object = importlib.import_module("gateway." + found.group(1))
        for part in found.group(2).split("."):
            if not hasattr(target, part):
                missing.append(code)
                break
            target = getattr(target, part)
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"
