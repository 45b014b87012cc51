"""``rules/demo.yaml`` is the one copy of the demo rules, in a checkout and when installed.

The package ships ``gateway/demo/demo-rules.yaml`` (a link to ``rules/demo.yaml``) for
installs without the source tree. These tests prove the demo reads exactly
``rules/demo.yaml``'s content either way, and that a built sdist and the files a wheel
is made of (``build_py``) carry that content as a regular file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from gateway.config.loader import load_rules
from gateway.demo import run as demo

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "demo.yaml"
PACKAGED = "demo/demo-rules.yaml"
ENV = {"LEDGER_URL": "http://127.0.0.1:9", "LEDGER_DB_DSN": "sqlite:///unused.db"}


def test_the_package_copy_is_rules_demo_yaml() -> None:
    assert demo.PACKAGED_RULES.read_bytes() == RULES.read_bytes()
    if demo.PACKAGED_RULES.is_symlink():
        assert demo.PACKAGED_RULES.resolve() == RULES.resolve()
    assert demo.demo_rules_path().read_bytes() == RULES.read_bytes()


def test_the_demo_loads_the_same_rules_from_either_place() -> None:
    digest = hashlib.sha256(RULES.read_bytes()).hexdigest()
    assert load_rules(demo.PACKAGED_RULES, env=ENV).digest == digest
    assert load_rules(demo.demo_rules_path(), env=ENV).digest == digest


def test_pyproject_ships_the_demo_rules_with_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = project["tool"]["setuptools"]
    assert any(
        fnmatch.fnmatch("gateway.demo", p) for p in setuptools["packages"]["find"]["include"]
    )
    assert any(fnmatch.fnmatch(PACKAGED, p) for p in setuptools["package-data"]["gateway"])


def _source_copy(tmp_path: Path) -> Path:
    """The files a build reads, copied (links kept as links) so builds leave no trace here."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "rules", source / "rules")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("gateway", "admin_ui"):
        shutil.copytree(ROOT / package, source / package, symlinks=True, ignore=ignore)
    return source


def _python(code: str, cwd: Path, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env or None
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_sdist_carries_the_demo_rules_content(tmp_path: Path) -> None:
    source = _source_copy(tmp_path)
    name = (
        _python(
            f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))",
            source,
        )
        .strip()
        .splitlines()[-1]
    )
    with tarfile.open(tmp_path / name) as sdist:
        [member] = [m for m in sdist.getmembers() if m.name.endswith(f"/gateway/{PACKAGED}")]
        assert member.isfile(), "a regular file, not a link to a file the sdist lacks"
        extracted = sdist.extractfile(member)
        assert extracted is not None and extracted.read() == RULES.read_bytes()


def test_an_installed_package_reads_the_demo_rules_content(tmp_path: Path) -> None:
    """``build_py`` lays out what a wheel installs; there the demo has no source tree."""
    source = _source_copy(tmp_path)
    site = tmp_path / "site"
    _python(
        "import sys, setuptools; "
        f"sys.argv = ['setup.py', '-q', 'build_py', '--build-lib', {str(site)!r}]; "
        "setuptools.setup()",
        source,
    )
    shipped = site / "gateway" / PACKAGED
    assert shipped.is_file() and not shipped.is_symlink()
    assert shipped.read_bytes() == RULES.read_bytes()
    read = _python(
        "from gateway.demo.run import demo_rules_path; "
        "import sys; sys.stdout.write(str(demo_rules_path()))",
        tmp_path,
        PYTHONPATH=str(site),
        PATH="/usr/bin:/bin",
    )
    assert Path(read) == shipped
    # The admin UI ships its templates and static files with it.
    for shipped_file in ("templates/layout.html", "static/admin.css", "static/htmx-2.0.11.min.js"):
        assert (site / "admin_ui" / shipped_file).is_file(), shipped_file
