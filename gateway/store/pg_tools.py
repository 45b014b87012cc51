"""PostgreSQL's own client programs (``pg_dump``, ``pg_restore``), found and run safely.

Backups of a PostgreSQL store are made by ``pg_dump`` rather than by reading tables
through the driver: it knows every object of the schema and takes one consistent
snapshot. The programs are looked up in ``$GATEHOLD_PG_BIN`` when it is set (and only
there: it picks one PostgreSQL version on a host with several), else on ``PATH``, else
in Debian's versioned folders ``/usr/lib/postgresql/<version>/bin``, newest first (a
``pg_dump`` must be at least as new as the server it reads).

The password never appears on a command line (``ps`` shows those to every local user):
the programs get the DSN without it and the password through ``PGPASSWORD``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url

PG_BIN_VARIABLE = "GATEHOLD_PG_BIN"
VERSIONED_BIN_DIRS = "/usr/lib/postgresql/*/bin"


@dataclass(frozen=True, slots=True)
class LibpqTarget:
    """A database as libpq programs take it: the URI without password, and the password."""

    uri: str
    password: str | None = field(default=None, repr=False)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus ``PGPASSWORD`` when the DSN carried one."""
        extra = {"PGPASSWORD": self.password} if self.password is not None else {}
        return {**base, **extra}


def libpq_target(dsn: str) -> LibpqTarget:
    """``postgresql://user:secret@host/db`` → ``postgresql://user@host/db`` and ``secret``."""
    url = make_url(dsn)
    bare = URL.create(  # not url.set(password=None): set() leaves a None argument unchanged
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    return LibpqTarget(bare.render_as_string(hide_password=False), url.password)


def find_pg_program(
    name: str, env: Mapping[str, str], *, versioned: str = VERSIONED_BIN_DIRS
) -> Path | str:
    """The path of PostgreSQL client program ``name``, or what to do to install it."""
    chosen = env.get(PG_BIN_VARIABLE)
    if chosen:
        candidate = Path(chosen) / name
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return candidate
        return (
            f"{name} not found in {chosen} (${PG_BIN_VARIABLE}): point it at the bin "
            "folder of a PostgreSQL client installation"
        )
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is not None:
        return Path(found)
    for folder in sorted(Path("/").glob(versioned.lstrip("/")), key=_version, reverse=True):
        if os.access(folder / name, os.X_OK):
            return folder / name
    return (
        f"{name} not found on PATH or in {VERSIONED_BIN_DIRS}: install the PostgreSQL "
        f"client programs (Debian/Ubuntu: apt-get install postgresql-client), or set "
        f"${PG_BIN_VARIABLE} to the folder that holds {name}"
    )


def _version(folder: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` → ``(15,)``, for choosing the newest."""
    return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))


async def run_pg_program(
    program: Path, args: Sequence[str], *, target: LibpqTarget, env: Mapping[str, str]
) -> str | None:
    """Run ``program --dbname=<uri> args...``; ``None`` on success, else why it failed."""
    process = await asyncio.create_subprocess_exec(
        str(program),
        "--no-password",
        f"--dbname={target.uri}",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=target.env(env),
    )
    _, stderr = await process.communicate()
    if process.returncode == 0:
        return None
    said = stderr.decode("utf-8", errors="replace").strip() or "no message"
    return f"{program.name} failed (exit {process.returncode}): {said}"
