"""The SQLite store's folder is made owner-only by whatever opens the store.

SQLite only: a PostgreSQL store has no folder of the gateway's."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.errors import StoreUnavailable
from gateway.store.data_folder import ensure_data_folder, sqlite_file
from gateway.store.engine import open_engine


@pytest.mark.parametrize(
    "dsn", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:shared?mode=memory&uri=true"]
)
def test_in_memory_databases_have_no_folder(dsn: str) -> None:
    assert sqlite_file(make_url(dsn)) is None


def test_opening_the_store_creates_its_folder_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    old = os.umask(0)
    try:
        engine = open_engine(f"sqlite:///{folder / 'gatehold.db'}")
        assert not folder.exists()  # building the engine has no side effects

        async def touch() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
            await engine.dispose()

        asyncio.run(touch())
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / "gatehold.db").is_file()


def test_a_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable) as raised:
        ensure_data_folder(tmp_path / "file" / "data")
    assert "cannot create the data folder" in str(raised.value)
