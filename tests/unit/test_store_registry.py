"""The ownership registry: object → owning tenant, upserts and CSV import."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import registry


async def test_an_unknown_object_has_no_owner(engine: AsyncEngine) -> None:
    assert await registry.get_owner(engine, "report", "1") is None


async def test_set_owner_records_and_then_changes_the_owner(engine: AsyncEngine) -> None:
    await registry.set_owner(engine, "report", "1", "acme")
    assert await registry.get_owner(engine, "report", "1") == "acme"
    await registry.set_owner(engine, "report", "1", "globex")
    assert await registry.get_owner(engine, "report", "1") == "globex"
    assert await registry.get_owner(engine, "invoice", "1") is None


async def test_learning_an_owner_never_moves_an_existing_object(engine: AsyncEngine) -> None:
    await registry.set_owner(engine, "report", "1", "acme")
    await registry.set_owner(engine, "report", "1", "globex", replace=False)
    await registry.set_owner(engine, "report", "2", "globex", replace=False)

    assert await registry.get_owner(engine, "report", "1") == "acme"
    assert await registry.get_owner(engine, "report", "2") == "globex"


async def test_remove_owner(engine: AsyncEngine) -> None:
    await registry.set_owner(engine, "report", "1", "acme")
    assert await registry.remove_owner(engine, "report", "1")
    assert not await registry.remove_owner(engine, "report", "1")
    assert await registry.get_owner(engine, "report", "1") is None


async def test_csv_import_writes_every_row(engine: AsyncEngine) -> None:
    lines = [
        "resource_type,object_id,tenant",
        "report,1,acme",
        "report, 2 ,globex",
        "",
        "doc,a-1,acme",
    ]

    assert await registry.import_csv(engine, lines) == 3
    assert await registry.get_owner(engine, "report", "2") == "globex"
    assert await registry.get_owner(engine, "doc", "a-1") == "acme"


@pytest.mark.parametrize(
    ("lines", "problems"),
    [
        (["type,id", "report,1"], ["line 1: the header must be resource_type,object_id,tenant"]),
        ([], ["line 1: the header must be resource_type,object_id,tenant"]),
        (
            ["resource_type,object_id,tenant", "report,1", "report,2,acme", "report,,acme"],
            [
                "line 2: expected 3 non-empty fields (resource_type,object_id,tenant), "
                "got ['report', '1']",
                "line 4: expected 3 non-empty fields (resource_type,object_id,tenant), "
                "got ['report', '', 'acme']",
            ],
        ),
    ],
    ids=[
        "a file with the wrong header is refused",
        "an empty file is refused",
        "every bad line is reported at once",
    ],
)
async def test_a_bad_csv_imports_nothing_and_names_every_problem(
    engine: AsyncEngine, lines: list[str], problems: list[str]
) -> None:
    with pytest.raises(registry.CsvImportError) as raised:
        await registry.import_csv(engine, lines)
    assert raised.value.problems == problems
    assert await registry.get_owner(engine, "report", "2") is None
