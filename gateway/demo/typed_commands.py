"""Commands the demo prints, spelled so they run when pasted where the demo started.

``make demo`` runs ``.venv/bin/gatehold`` without activating the virtualenv, so a bare
``gatehold`` in the banner would be "command not found". The executable and the
settings file are shown relative to the current folder when they are inside it (from
the repository root: ``.venv/bin/gatehold … --config var/demo/gatehold.yaml``), as a
bare ``gatehold`` when that name on ``PATH`` is this same executable (an activated
virtualenv), and as absolute paths otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def as_typed(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(cwd))
    except ValueError:
        return str(absolute)


def gatehold_executable(cwd: Path) -> str:
    """How to call this installation's ``gatehold`` from ``cwd``."""
    beside = Path(os.path.abspath(sys.executable)).parent / "gatehold"
    on_path = shutil.which("gatehold")
    if on_path is not None and Path(os.path.abspath(on_path)) == beside:
        return "gatehold"
    if beside.exists():
        typed = as_typed(beside, cwd)
        return typed if "/" in typed else f"./{typed}"
    return f"{shlex.quote(os.path.abspath(sys.executable))} -m gateway"


def gatehold_command(args: str, *, config: Path, cwd: Path | None = None) -> str:
    """``<gatehold> ARGS --config <config>``, runnable as typed in ``cwd``."""
    here = Path(os.path.abspath(cwd or Path.cwd()))
    return f"{gatehold_executable(here)} {args} --config {shlex.quote(as_typed(config, here))}"
