"""The cost of a rules version in shadow: the same Gatehold with and without one.

``run.py --quick --shadow`` adds the row ``gh1+shadow``: the very process of the ``gh1``
row, measured while a version runs in shadow beside the active one (started before
each of its rounds and stopped before each round of the other rows, so the rounds stay
interleaved). The version in shadow is the active rules plus a comment: it decides
every request exactly like the active one, so each request is judged in full (route,
policy, owner from the cache), the most work a shadow does per request.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from gatehold_env import GateholdSetup, _run, gatehold_bin
from procs import get

KEY = "gh1+shadow"
PICKED_UP_SECONDS = 1.5
"""Time for the serving process to follow a start or stop (it polls every 0.5 s on SQLite)."""


class ShadowToggle:
    """Starts and stops one stored version in shadow, through the CLI, as rows need."""

    def __init__(self, setup: GateholdSetup) -> None:
        data = yaml.safe_load(setup.config.read_text())
        data["rules"] = {"path": data["rules"], "managed_by": "admin"}
        self._config = setup.config.with_name("gatehold-shadow-cli.yaml")
        self._config.write_text(yaml.safe_dump(data, sort_keys=False))
        rules = setup.config.with_name("rules.yaml")
        shadow = setup.config.with_name("rules-shadow.yaml")
        shadow.write_text(Path(rules).read_text() + "# the shadow version\n")
        out = self._cli("rules", "propose", str(shadow), "--comment", "bench shadow")
        self._version = out.split()[2]  # "rules version N stored; …"
        self._running = False

    def _cli(self, *argv: str) -> str:
        return _run([gatehold_bin(), *argv, "--config", str(self._config)])

    def set(self, running: bool) -> None:
        """Run the version in shadow (``True``) or not, and wait until Gatehold follows."""
        if running == self._running:
            return
        if running:
            self._cli("rules", "shadow", "start", self._version)
        else:
            self._cli("rules", "shadow", "stop")
        self._running = running
        time.sleep(PICKED_UP_SECONDS)

    def report(self) -> str:
        """The last line of the report's summary: decisions and agreement."""
        lines = self._cli("rules", "shadow", "report").splitlines()
        return lines[1] if len(lines) > 1 else ""


def shadow_cost(admin_url: str) -> tuple[float, float]:
    """(seconds spent deciding in shadow, requests decided in shadow) from /metrics."""
    _status, body = get(f"{admin_url}/metrics")
    seconds = decided = 0.0
    for line in body.decode().splitlines():
        if line.startswith("gatehold_shadow_seconds_total "):
            seconds = float(line.split()[1])
        elif line.startswith("gatehold_shadow_decisions_total{"):
            decided += float(line.split()[1])
    return seconds, decided
