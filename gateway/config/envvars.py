"""``${VAR}`` and ``${VAR:-default}`` in configuration files, read from the environment.

Secrets (SMTP passwords, OIDC client secrets) can then stay out of the files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(value: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """``value`` with every reference replaced, and the names that were unset with no default."""
    missing: list[str] = []

    def replace(found: re.Match[str]) -> str:
        name, default = found.group(1), found.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    return REFERENCE.sub(replace, value), missing


def unset_problem(name: str) -> str:
    """What to say about a reference to an unset variable that has no default."""
    return (
        f"environment variable {name} is not set and has no default — set it, "
        f"or give a default: ${{{name}:-value}}"
    )
