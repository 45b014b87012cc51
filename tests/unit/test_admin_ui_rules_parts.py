"""The rules pages' pure parts: a text as numbered lines with its problems, a diff as
marked lines, ids and simulate forms read from what a browser sent."""

from __future__ import annotations

import pytest

from admin_ui.pages.rules_parts import (
    LineProblem,
    ListingLine,
    SimulationAsk,
    diff_lines,
    form_text,
    numbered,
    version_id,
)
from gateway.admin.rules_drafts import MAX_DRAFT_CHARS, draft_problem
from gateway.admin.service import AdminError
from gateway.config.loader import check_rules_text


def test_each_problem_sits_under_its_line_and_stray_lines_are_listed_only() -> None:
    listing, problems = numbered("a: 1\nb: 2\n", [(2, "bad b"), (None, "whole"), (9, "past")])
    assert listing == [ListingLine(1, "a: 1"), ListingLine(2, "b: 2", ("bad b",))]
    assert problems == [
        LineProblem(2, "bad b", True),
        LineProblem(None, "whole", False),
        LineProblem(9, "past", False),
    ]


def test_a_diff_keeps_its_prefixes_and_marks_each_line() -> None:
    marked = diff_lines("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n z\n")
    assert [(d.kind, d.text) for d in marked] == [
        ("file", "--- a"),
        ("file", "+++ b"),
        ("hunk", "@@ -1 +1 @@"),
        ("del", "-x"),
        ("add", "+y"),
        ("same", " z"),
    ]


def test_a_textarea_sends_crlf_which_is_read_as_typed() -> None:
    assert form_text("a: 1\r\nb: 2\r\n") == "a: 1\nb: 2\n"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("7", 7), ("0", None), ("-1", None), ("abc", None), ("٣", None), ("9" * 30, None)],
    ids=["a number", "zero", "negative", "letters", "a non-ASCII digit", "too long"],
)
def test_a_version_id_from_an_address(sent: str, expected: int | None) -> None:
    assert version_id(sent) == expected


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("anonymous", None),
        ("user:rita@acme.test", "rita@acme.test"),
        ("key:3", 3),
        ("key:x", AdminError),
        ("bob@globex.test", AdminError),
    ],
    ids=["anonymous", "a person", "an API key", "a key that is no number", "no kind"],
)
def test_the_simulate_form_names_its_caller(caller: str, expected: object) -> None:
    found = SimulationAsk(caller=caller).caller_of()
    if expected is AdminError:
        assert isinstance(found, AdminError)
    else:
        assert found == expected


def test_the_caller_is_shown_as_a_person_reads_it() -> None:
    labels = [SimulationAsk(caller=c).caller_label for c in ("user:a@b.test", "key:3", "anonymous")]
    assert labels == ["a@b.test", "API key 3", "anonymous"]


def test_the_simulate_form_refuses_a_path_without_a_slash_and_an_unknown_method() -> None:
    assert SimulationAsk(target="/api/invoices/7").problem() is None
    assert SimulationAsk(target="api").problem() is not None
    assert SimulationAsk(method="BREW", target="/").problem() is not None


def test_a_nul_character_or_an_oversized_text_is_refused_with_where_and_what() -> None:
    nul = draft_problem("version: 1\nroles: {}\x00\n")
    assert nul is not None and nul.problems[0][0] == 2
    assert draft_problem("#" * (MAX_DRAFT_CHARS + 1)) is not None
    assert draft_problem("version: 1\n") is None


def test_a_control_character_is_reported_at_its_line() -> None:
    _, problems = check_rules_text("version: 1\n\nroles: {}\x07\n", source="draft", env={})
    assert [(p.line, p.message) for p in problems] == [
        (3, "not valid YAML: the character U+0007 is not allowed — remove it")
    ]
