"""Create the folder an embedded SQLite store lives in, before anything opens it.

Every command reaches the store through :func:`gateway.store.engine.open_engine`, so a
fresh settings file works for ``migrate``, ``users add`` and the rest, not only for
``serve``. The folder is created owner-only (0700): it holds the database, the signing
keys and the audit checkpoints. An existing folder keeps its mode.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from gateway.errors import ConfigError

DATA_FOLDER_MODE = 0o700


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_data_folder(folder: Path) -> None:
    """Create ``folder`` (and missing parents) with mode 0700; a clear error if it cannot."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=DATA_FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            [
                f"cannot create the data folder {folder}: {exc.strerror or exc}; "
                "create it or set data_dir to a folder this user can write"
            ]
        ) from exc
    # mkdir's mode is filtered by the umask; the folder must be owner-only regardless.
    folder.chmod(DATA_FOLDER_MODE)


def ensure_sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite database file (nothing for other stores)."""
    path = sqlite_file(url)
    if path is not None:
        ensure_data_folder(path.parent)
