"""Which values read as ids of which type, and which as words."""

from __future__ import annotations

import pytest

from gateway.learn.shapes import id_type_of, split_suffix, widest

UUID = "0b0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", "int"),
        ("000123", "int"),
        (UUID, "uuid"),
        (UUID.upper(), "uuid"),
        ("r-acme-1", "slug"),
        ("r-1a2b3c4d", "slug"),
        ("a1b2c3d4e5", "slug"),
        ("5f6a7b8c9d0e1f2a3b", "slug"),
        ("export", None),
        ("recent", None),
        ("v2", None),
        ("V1.1", None),
        ("oauth2", None),
        ("md5", None),
        ("my-report", None),
        ("", None),
        ("a.b", None),
        ("1234567890123456789", "slug"),  # longer than an int id (18 digits): still an id
    ],
)
def test_id_type_of(value: str, expected: str | None) -> None:
    assert id_type_of(value) == expected


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("7.json", ("7", ".json")),
        ("r-acme-1.pdf", ("r-acme-1", ".pdf")),
        (f"{UUID}.csv", (UUID, ".csv")),
        ("report.pdf", ("report.pdf", "")),
        ("7", ("7", "")),
        ("7.", ("7.", "")),
        ("7.json.bak", ("7.json.bak", "")),
    ],
)
def test_a_file_extension_after_an_id_is_a_suffix(segment: str, expected: tuple[str, str]) -> None:
    assert split_suffix(segment) == expected


def test_widest_type_every_value_fits() -> None:
    assert widest({"int"}) == "int"
    assert widest({"int", "slug"}) == "slug"
    assert widest({"int", "uuid"}) == "slug"
    assert widest({"int", ""}) == ""
