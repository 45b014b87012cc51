"""Gatehold's side of the benchmark: settings, rules, a user and its session cookies."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
EMAIL = "bench@acme.test"
COOKIE = "__Host-gatehold"


def rules(upstream_url: str) -> dict[str, object]:
    """One upstream, a reader role, the ``item`` resource and two routes."""
    return {
        "version": 1,
        "upstreams": {"app": {"url": upstream_url, "timeout": "30s"}},
        "roles": {"reader": {"can": ["read"]}},
        "resources": {
            "item": {
                "id_type": "int",
                "owner": {"http": "GET {upstream}/internal/items/{id}", "tenant_field": "/tenant"},
                "cache": "60s",
            }
        },
        "routes": [
            {
                "name": "item-read",
                "match": {"path": "/api/items/{item_id:int}", "methods": ["GET"]},
                "upstream": "app",
                "resource": {"type": "item", "id": "path.item_id"},
            },
            {
                "name": "file-download",
                "match": {"path": "/files/{name:slug}", "methods": ["GET"]},
                "upstream": "app",
                "file": {"disposition": "attachment"},
            },
        ],
    }


@dataclass(frozen=True)
class GateholdSetup:
    config: Path
    token: str
    """The session token of ``gatehold session mint`` (the cookie value)."""
    tokens_file: Path
    """That one token, for wrk."""
    many_tokens_file: Path | None
    """Tokens of the extra sessions minted through the store API."""


def gatehold_bin() -> str:
    return str(Path(sys.executable).with_name("gatehold"))


def prepare(
    folder: Path,
    *,
    upstream_url: str,
    port: int,
    many_sessions: int,
    extra_routes: list[dict[str, object]] | None = None,
    extra_settings: dict[str, object] | None = None,
) -> GateholdSetup:
    """Write the settings and rules, add the user, mint its cookie and extra sessions.

    ``extra_routes`` are added to the rules (the user may then also write), and
    ``extra_settings`` to the settings (``upload_scan_rss.py``'s upload route and
    scanner)."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    ruleset = rules(upstream_url)
    if extra_routes:
        ruleset["routes"] = [*ruleset["routes"], *extra_routes]  # type: ignore[misc]
        ruleset["roles"] = {"reader": {"can": ["read", "write"]}}
    (folder / "rules.yaml").write_text(yaml.safe_dump(ruleset, sort_keys=False))
    settings = {
        "data_dir": "./data",
        "rules": "rules.yaml",
        "server": settings_server(port),
        "sessions": {"cookie_secure": False},
        **(extra_settings or {}),
    }
    settings["server"] = {  # merged, not replaced: the port and URL above stay
        **settings_server(port),
        **(extra_settings or {}).get("server", {}),  # type: ignore[dict-item]
    }
    config = folder / "gatehold.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    gatehold = gatehold_bin()
    _run([gatehold, "migrate", "--config", str(config)])
    _run([gatehold, "tenants", "add", "--config", str(config), "acme"])
    _run(
        [gatehold, "users", "add", "--config", str(config), EMAIL, "--tenant", "acme"]
        + ["--role", "reader"]
    )
    minted = _run([gatehold, "session", "mint", "--config", str(config), EMAIL]).strip()
    name, _, token = minted.rpartition("\n")[2].partition("=")
    if name != COOKIE or not token:
        raise RuntimeError(f"unexpected output of `gatehold session mint`: {minted!r}")
    tokens_file = folder / "token.txt"
    tokens_file.write_text(token + "\n")
    many = None
    if many_sessions:
        many = folder / "tokens-many.txt"
        _run(
            [sys.executable, str(BENCH / "mint_sessions.py"), "--config", str(config)]
            + ["--email", EMAIL, "--count", str(many_sessions), "--out", str(many)]
        )
    return GateholdSetup(config, token, tokens_file, many)


def settings_server(port: int) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "workers": 1,
    }


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def variant(setup: GateholdSetup, name: str, settings: dict[str, dict[str, object]]) -> Path:
    """A second settings file beside ``setup.config``: the same data folder (store, keys,
    sessions) and rules, with the sections in ``settings`` merged in."""
    data = yaml.safe_load(setup.config.read_text())
    for section, values in settings.items():
        data[section] = {**data.get(section, {}), **values}
    path = setup.config.with_name(f"gatehold-{name}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
