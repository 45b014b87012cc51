"""A serving process imports only the libraries its settings use.

Each library a process imports stays in its memory for good (zxcvbn's word lists alone
are 12 MiB). A fresh interpreter builds and starts the gateway app as ``gatehold
serve`` does, with the demo rules and default settings on SQLite: no OIDC provider, no
local passwords, no passkey used yet. Then the same with local passwords turned on
and one password checked, which must load zxcvbn — so the check can tell a lazy
import from a library that is simply never installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.memory import limit_malloc_arenas

REPO = Path(__file__).resolve().parents[2]
OPTIONAL = ("zxcvbn", "webauthn", "cbor2", "pyasn1", "authlib", "asyncpg", "alembic")
"""Libraries a default SQLite gateway with no OIDC provider does not need to serve."""

PROBE = """
import asyncio, json, sys
from pathlib import Path
from gateway.app import build_app
from gateway.config.loader import load_rules
from gateway.config.settings import Settings
from gateway.server import GatewayRunner
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate

data, passwords = Path(sys.argv[1]), sys.argv[2] == "on"
settings = Settings.model_validate({
    "server": {"public_url": "http://gatehold.test"},
    "data_dir": str(data),
    "base_dir": str(data),
    "rules": sys.argv[3],
    "rules_env": {"LEDGER_URL": "http://127.0.0.1:9", "LEDGER_DB_DSN": "sqlite:///x.db"},
    "auth": {"passwords": {"enabled": passwords}},
})
OPTIONAL = json.loads(sys.argv[4])

async def main():
    engine = open_engine(settings.store_dsn)
    await migrate(engine)  # as `gatehold migrate` does before `gatehold serve`
    await engine.dispose()
    before = {name for name in OPTIONAL if name in sys.modules}
    app = build_app(settings, load_rules(settings.rules_path, env=settings.rules_env))
    runner = GatewayRunner(app)
    await runner.setup()
    if passwords:
        from gateway.auth.handlers import AUTH_PAGES
        app[AUTH_PAGES].passwords.policy.check("correct horse battery", email="a@b.test")
    loaded = sorted(name for name in OPTIONAL if name in sys.modules and name not in before)
    await runner.cleanup()
    print(json.dumps(loaded))

asyncio.run(main())
"""


def loaded_by_serving(tmp_path: Path, *, passwords: bool) -> list[str]:
    """The optional libraries a fresh process imported to build and start the app."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROBE, str(tmp_path)]
        + ["on" if passwords else "off", str(REPO / "rules" / "demo.yaml"), json.dumps(OPTIONAL)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_default_settings_import_none_of_the_optional_libraries(tmp_path: Path) -> None:
    assert loaded_by_serving(tmp_path, passwords=False) == []


def test_a_password_check_imports_zxcvbn_when_passwords_are_on(tmp_path: Path) -> None:
    assert loaded_by_serving(tmp_path, passwords=True) == ["zxcvbn"]


def test_malloc_arenas_are_left_to_an_operator_who_chose() -> None:
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is False


def test_the_command_line_imports_a_tool_only_when_it_runs() -> None:
    """``gatehold serve`` starts by importing the command line: the rules tools that no
    serving process uses (``rules learn``, ``rules shadow``) are loaded when run."""
    probe = (
        "import sys, json, gateway.cli\n"
        "tools = ('gateway.learn', 'gateway.shadow_cli')\n"
        "before = [m for m in sys.modules if m.startswith(tools)]\n"
        "cmd = gateway.cli.rules.get_command(None, 'learn')\n"
        "after = sorted(m for m in sys.modules if m.startswith(tools))\n"
        "print(json.dumps([before, cmd.name, 'gateway.learn.command' in after]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[], "learn", True]
