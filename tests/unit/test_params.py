"""Parameter names as frameworks read them: which keys are another spelling of a checked name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.params import (
    ambiguous_key,
    exact,
    key_paths,
    name_from_key,
    name_from_pointer,
    related,
    semicolon_keys,
    split_brackets,
)

INVOICE_ID = name_from_key("invoice_id")

SAME_NAME_OTHER_SPELLING = {
    "upper case": "INVOICE_ID",
    "title case": "Invoice_Id",
    "array suffix": "invoice_id[]",
    "index": "invoice_id[0]",
    "key": "invoice_id[a]",
    "deeper": "invoice_id[a][b]",
    "dot (PHP)": "invoice.id",
    "space (PHP)": "invoice id",
    "unclosed bracket (PHP)": "invoice[id",
    "leading space": " invoice_id",
    "trailing NUL": "invoice_id\0",
    "still encoded": "invoice_id%5B%5D",
    "encoded twice": "invoice_id%255B%255D",
    "encoded underscore left over": "invoice%5Fid",
}


@pytest.mark.parametrize(
    "key", list(SAME_NAME_OTHER_SPELLING.values()), ids=list(SAME_NAME_OTHER_SPELLING)
)
def test_other_spellings_reach_the_name_but_are_not_it(key: str) -> None:
    assert related(key, INVOICE_ID)
    assert not exact(key, INVOICE_ID)
    assert ambiguous_key([key], [INVOICE_ID]) == key


@pytest.mark.parametrize(
    "key", ["invoice_ids", "invoice", "invoiceid", "x_invoice_id", "note"], ids=str
)
def test_other_names_are_not_related(key: str) -> None:
    assert not related(key, INVOICE_ID)


def test_nested_names_compare_segment_by_segment() -> None:
    item = name_from_pointer("/order/items/*/thing")
    assert exact("order[items][][thing]", item) and exact("order[items][3][thing]", item)
    assert related("Order[items][0][THING]", item) and not exact("Order[items][0][THING]", item)
    assert related("order[items][0][thing][]", item)
    assert not related("order[items][0][name]", item)
    assert related("order.items", name_from_key("order[items]")), "ASP.NET dotted binding"


def test_brackets_split_like_php() -> None:
    assert split_brackets("a[b][]") == ("a", ("b", "*"))
    assert split_brackets("a[b") == ("a[b", ())
    assert split_brackets("[a]") == ("[a]", ())
    assert key_paths("A.B[c]") == (("a_b", "c"), ("a", "b", "c"))


def test_semicolons_reveal_the_keys_a_lenient_parser_sees() -> None:
    assert list(semicolon_keys("a=1;invoice_id=4&b=2")) == ["invoice_id"]
    assert list(semicolon_keys("a=1&b=2")) == []


@given(st.from_regex(r"[a-z_]{1,12}(\[[a-z0-9]{0,4}\]){0,2}", fullmatch=True))
def test_a_checked_name_is_itself_and_its_case_variants_are_not(key: str) -> None:
    name = name_from_key(key)
    assert exact(key, name) and related(key, name)
    upper = key.upper()
    if upper != key:
        assert related(upper, name) and not exact(upper, name)
