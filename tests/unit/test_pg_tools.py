"""Finding pg_dump/pg_restore, and keeping the password off their command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.pg_tools import PG_BIN_VARIABLE, find_pg_program, libpq_target


def program(folder: Path, name: str = "pg_dump") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def versioned(tmp_path: Path) -> str:
    """A Debian-like tree of versioned bin folders, as a glob pattern."""
    for version in ("9.6", "13", "15"):
        program(tmp_path / "lib" / version / "bin")
    return str(tmp_path / "lib" / "*" / "bin")


def test_the_folder_the_variable_names_is_the_only_place_looked(
    tmp_path: Path, versioned: str
) -> None:
    chosen = program(tmp_path / "chosen")
    on_path = program(tmp_path / "path")
    env = {PG_BIN_VARIABLE: str(chosen.parent), "PATH": str(on_path.parent)}
    assert find_pg_program("pg_dump", env, versioned=versioned) == chosen

    empty = tmp_path / "empty"
    empty.mkdir()
    found = find_pg_program("pg_dump", env | {PG_BIN_VARIABLE: str(empty)}, versioned=versioned)
    assert isinstance(found, str)
    assert f"pg_dump not found in {empty} (${PG_BIN_VARIABLE})" in found


def test_path_comes_before_the_versioned_folders(tmp_path: Path, versioned: str) -> None:
    on_path = program(tmp_path / "path")
    assert find_pg_program("pg_dump", {"PATH": str(on_path.parent)}, versioned=versioned) == on_path


def test_the_newest_versioned_folder_wins(tmp_path: Path, versioned: str) -> None:
    found = find_pg_program("pg_dump", {"PATH": str(tmp_path / "none")}, versioned=versioned)
    assert found == tmp_path / "lib" / "15" / "bin" / "pg_dump"


def test_a_missing_program_says_how_to_get_it(tmp_path: Path) -> None:
    found = find_pg_program(
        "pg_restore", {"PATH": str(tmp_path)}, versioned=str(tmp_path / "no" / "*" / "bin")
    )
    assert isinstance(found, str)
    assert found.startswith("pg_restore not found on PATH")
    assert "postgresql-client" in found
    assert PG_BIN_VARIABLE in found


@pytest.mark.parametrize(
    ("dsn", "uri", "password"),
    [
        ("postgresql://gh:s3cret@db:5433/gatehold", "postgresql://gh@db:5433/gatehold", "s3cret"),
        ("postgres://gh@db/gatehold", "postgresql://gh@db/gatehold", None),
        ("postgresql+asyncpg://gh:p%40ss@db/g", "postgresql://gh@db/g", "p@ss"),
    ],
    ids=["a password moves to the environment", "no password, none set", "a quoted password"],
)
def test_the_password_travels_in_the_environment_only(
    dsn: str, uri: str, password: str | None
) -> None:
    target = libpq_target(dsn)
    assert target.uri == uri
    assert "s3cret" not in repr(target)
    env = target.env({"PATH": "/bin", "PGPASSWORD": "inherited"})
    assert env["PGPASSWORD"] == (password or "inherited")
    assert env["PATH"] == "/bin"
