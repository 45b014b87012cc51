"""``gatehold init``: a commented starter settings file and rules file.

The templates sit beside this module (``gatehold.yaml``, ``rules.yaml``); both pass
``gatehold check --strict`` as written. Existing files are never overwritten: the
command refuses before writing anything, so a half-initialised folder cannot happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STARTER_FOLDER = Path(__file__).resolve().parent
SETTINGS_NAME = "gatehold.yaml"
RULES_NAME = "rules.yaml"
TEMPLATE_UPSTREAM = "http://127.0.0.1:5000"
"""The app address written into the starter rules unless ``--upstream`` names another."""


@dataclass(frozen=True, slots=True)
class Written:
    settings: Path
    rules: Path


@dataclass(frozen=True, slots=True)
class Refused:
    problems: list[str]


def starter_text(name: str, *, upstream: str) -> str:
    text = (STARTER_FOLDER / name).read_text(encoding="utf-8")
    if name == RULES_NAME:
        text = text.replace(f'"{TEMPLATE_UPSTREAM}"', f'"{upstream}"')
    return text


def upstream_problem(upstream: str) -> str | None:
    """Why ``upstream`` cannot be an app's base URL, or None."""
    scheme, sep, rest = upstream.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or '"' in upstream:
        return f"--upstream {upstream!r}: give the app's base URL, like {TEMPLATE_UPSTREAM}"
    return None


def write_starter(folder: Path, *, upstream: str = TEMPLATE_UPSTREAM) -> Written | Refused:
    """Write ``gatehold.yaml`` and ``rules.yaml`` into ``folder`` (created if missing)."""
    problem = upstream_problem(upstream)
    if problem is not None:
        return Refused([problem])
    targets = {name: folder / name for name in (SETTINGS_NAME, RULES_NAME)}
    existing = [path for path in targets.values() if path.exists()]
    if existing:
        return Refused(
            [
                f"{path} already exists; nothing was written (move it away first)"
                for path in existing
            ]
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in targets.items():
            with path.open("x", encoding="utf-8") as out:  # "x": never replace a file
                out.write(starter_text(name, upstream=upstream))
    except OSError as exc:
        return Refused([f"cannot write the starter files in {folder}: {exc.strerror or exc}"])
    return Written(settings=targets[SETTINGS_NAME], rules=targets[RULES_NAME])
