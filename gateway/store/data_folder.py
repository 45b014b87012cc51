"""Create the folder an embedded SQLite store lives in, before anything opens it.

Every command reaches the store through :func:`gateway.store.engine.open_engine`, which
calls :func:`create_folder_on_connect`, so a fresh settings file works for ``migrate``,
``users add`` and the rest, not only for ``serve``. The folder is made when the first
connection is opened, not when the engine is built, so building one has no side effects.
It is created owner-only (0700): it holds the database, and by default the signing keys
and the audit checkpoints. An existing folder keeps its mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable

DATA_FOLDER_MODE = 0o700


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_data_folder(folder: Path) -> None:
    """Create ``folder`` (and missing parents) with mode 0700, or raise
    :class:`StoreUnavailable` saying what to do."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=DATA_FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot create the data folder {folder}: {exc.strerror or exc}; "
            "create it or set data_dir to a folder this user can write"
        ) from exc
    # mkdir's mode is filtered by the umask; the folder must be owner-only regardless.
    folder.chmod(DATA_FOLDER_MODE)


def create_folder_on_connect(engine: AsyncEngine, url: URL) -> None:
    """Before each new connection of a SQLite ``engine``, make sure its folder exists
    (nothing for in-memory databases; cheap once the folder is there)."""
    path = sqlite_file(url)
    if path is None:
        return
    folder = path.parent

    @event.listens_for(engine.sync_engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        ensure_data_folder(folder)
