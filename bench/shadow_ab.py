"""The cost of a rules version in shadow: the same Gatehold with and without one.

``run.py --quick --shadow`` adds three rows, each the very process of the ``gh1`` row
measured while a version runs in shadow beside the active one (started before each of
its rounds and stopped before each round of the other rows, so the rounds stay
interleaved): ``gh1+shadow``, a version that changes a route the load does not use
(the common case: the loaded route is alike in both versions); ``gh1+shadow-full``, a
version that changes a role (no route is alike: every request is decided again in full,
with the ids and owners the live decision found, its resources being alike); and
``gh1+shadow-resource``, a version that changes the loaded route's resource (the type
of its ids), so that its owners are no longer looked up alike: every request is decided
again in full and its owners looked for in the live cache again, the most work a shadow
does per request. (A changed cache time would not do: owners are looked up alike
whatever the time they are kept, so the live decision's are taken.)
"""

from __future__ import annotations

import time

import yaml
from gatehold_env import GateholdSetup, _run, gatehold_bin
from procs import get

KEY = "gh1+shadow"
FULL_KEY = "gh1+shadow-full"
RESOURCE_KEY = "gh1+shadow-resource"
PICKED_UP_SECONDS = 1.5
"""Time for the serving process to follow a start or stop (it polls every 0.5 s on SQLite)."""


def variants(rules_text: str) -> dict[str, str]:
    """The shadow version of each row: ``KEY`` changes a route the load does not use (the
    loaded route takes the live decision), ``FULL_KEY`` a role the load does not use (no
    route is alike under other roles: every request is decided again in full),
    ``RESOURCE_KEY`` the loaded resource's id type (nor are its owners taken from the live
    decision)."""
    data = yaml.safe_load(rules_text)
    other_route = yaml.safe_load(rules_text)
    other_route["routes"][1]["file"] = {"disposition": "inline"}
    other_role = yaml.safe_load(rules_text)
    other_role["roles"]["auditor"] = {"can": ["read"]}
    other_resource = yaml.safe_load(rules_text)
    other_resource["resources"]["item"]["id_type"] = "slug"
    assert other_route != data and other_role != data and other_resource != data
    return {
        KEY: yaml.safe_dump(other_route, sort_keys=False),
        FULL_KEY: yaml.safe_dump(other_role, sort_keys=False),
        RESOURCE_KEY: yaml.safe_dump(other_resource, sort_keys=False),
    }


class ShadowToggle:
    """Starts and stops stored versions in shadow, through the CLI, as rows need."""

    def __init__(self, setup: GateholdSetup) -> None:
        data = yaml.safe_load(setup.config.read_text())
        data["rules"] = {"path": data["rules"], "managed_by": "admin"}
        self._config = setup.config.with_name("gatehold-shadow-cli.yaml")
        self._config.write_text(yaml.safe_dump(data, sort_keys=False))
        rules = setup.config.with_name("rules.yaml").read_text()
        self._versions: dict[str, str] = {}
        for key, text in variants(rules).items():
            path = setup.config.with_name(f"rules-{key}.yaml")
            path.write_text(text)
            out = self._cli("rules", "propose", str(path), "--comment", f"bench {key}")
            self._versions[key] = out.split()[2]  # "rules version N stored; …"
        self._running: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._versions)

    def _cli(self, *argv: str) -> str:
        return _run([gatehold_bin(), *argv, "--config", str(self._config)])

    def set(self, key: str | None) -> None:
        """Run ``key``'s version in shadow (``None``: none), and wait until Gatehold follows."""
        if key not in self._versions:
            key = None
        if key == self._running:
            return
        if self._running is not None:
            self._cli("rules", "shadow", "stop")
        if key is not None:
            self._cli("rules", "shadow", "start", self._versions[key])
        self._running = key
        time.sleep(PICKED_UP_SECONDS)

    def report(self) -> str:
        """The report's counts line of the last run."""
        lines = self._cli("rules", "shadow", "report").splitlines()
        return lines[1] if len(lines) > 1 else ""


def shadow_cost(admin_url: str) -> tuple[float, float]:
    """(seconds spent deciding the timed requests in shadow, requests timed) from
    /metrics: Gatehold times one shadow decision in ``TIMED_EVERY``."""
    _status, body = get(f"{admin_url}/metrics")
    seconds = timed = 0.0
    for line in body.decode().splitlines():
        if line.startswith("gatehold_shadow_seconds_total "):
            seconds = float(line.split()[1])
        elif line.startswith("gatehold_shadow_timed_decisions_total "):
            timed = float(line.split()[1])
    return seconds, timed
