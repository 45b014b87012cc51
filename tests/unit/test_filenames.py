"""File names: read from ``Content-Disposition``, sanitized, offered again (RFC 6266).

Tables for the cases an attacker would try first, then properties over arbitrary
names: a sanitized name never holds a separator, a control or bidi character, a
Windows device name, a leading dot or a trailing dot or space, fits its byte budget,
is left alone by a second pass, and survives the header the gateway writes, read back
by the standard library's parser and by Werkzeug's.
"""

from __future__ import annotations

import unicodedata
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from gateway.filenames import (
    DEFAULT_NAME,
    MAX_NAME_BYTES,
    content_disposition,
    disposition_filename,
    sanitize_filename,
)

BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{n}" for p in ("COM", "LPT") for n in "0123456789"
}

SANITIZED = {
    "a plain name is kept": ("invoice-2025.pdf", "invoice-2025.pdf"),
    "a non-ASCII name is kept": ("Überweisung €.pdf", "Überweisung €.pdf"),
    "directories are dropped": ("../../etc/passwd", "passwd"),
    "Windows directories are dropped": ("..\\..\\windows\\win.ini", "win.ini"),
    "an absolute path keeps its last segment": ("/var/data/report.csv", "report.csv"),
    "full-width separators are separators": ("..／..／etc／passwd", "passwd"),
    "full-width backslashes are separators": ("c:＼boot.ini", "boot.ini"),
    "NUL cuts nothing off": ("evil.php\x00.jpg", "evil.php.jpg"),
    "CR and LF are removed": ("a\r\nSet-Cookie: x.txt", "aSet-Cookie_ x.txt"),
    "a right-to-left override is removed": ("invoice\u202efdp.exe", "invoicefdp.exe"),
    "isolates and marks are removed": ("\u2066a\u2069\u200eb\u200f.txt", "ab.txt"),
    "zero-width characters are removed": ("in\u200bvoice\ufeff.pdf", "invoice.pdf"),
    "a leading dot is removed": (".htaccess", "htaccess"),
    "leading dots and spaces are removed": (" . ..bashrc", "bashrc"),
    "trailing dots and spaces are removed": ("report.pdf. . ", "report.pdf"),
    "a device name gets a prefix": ("CON", "_CON"),
    "a device name with an extension gets a prefix": ("nul.txt", "_nul.txt"),
    "a device name with two extensions gets a prefix": ("com1.tar.gz", "_com1.tar.gz"),
    "a device name before a space gets a prefix": ("LPT9 .log", "_LPT9 .log"),
    "a superscript device digit is a device": ("COM\u00b9.txt", "_COM1.txt"),
    "a console device gets a prefix": ("conin$", "_conin$"),
    "a longer word is not a device": ("CONSOLE.txt", "CONSOLE.txt"),
    "Windows' forbidden characters become _": ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
    "a quote becomes _": ('report"2025.txt', "report_2025.txt"),
    "other spaces become spaces": ("a\u00a0b\u3000c.txt", "a b c.txt"),
    "an empty name is the default": ("", DEFAULT_NAME),
    "only dots is the default": ("..", DEFAULT_NAME),
    "a trailing separator is the default": ("reports/", DEFAULT_NAME),
    "only invisible characters is the default": ("\u202e\u200b\x00", DEFAULT_NAME),
}


@pytest.mark.parametrize(("name", "expected"), SANITIZED.values(), ids=SANITIZED.keys())
def test_sanitize(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


CUT = {
    "a long ASCII name keeps its extension": ("a" * 300 + ".pdf", "a" * 196 + ".pdf"),
    "a long name is cut between characters": ("é" * 150 + ".txt", "é" * 98 + ".txt"),
    "a long name without extension is cut": ("b" * 300, "b" * 200),
    "an overlong extension is cut like the name": ("c." + "d" * 300, "c." + "d" * 198),
    "a cut that ends in a dot loses it": ("x" * 199 + ". y" + "z" * 50, "x" * 199),
}


@pytest.mark.parametrize(("name", "expected"), CUT.values(), ids=CUT.keys())
def test_long_names_are_cut_to_the_byte_budget(name: str, expected: str) -> None:
    sanitized = sanitize_filename(name)
    assert sanitized == expected
    assert len(sanitized.encode()) <= MAX_NAME_BYTES


def test_a_cut_that_makes_a_device_name_gets_the_prefix() -> None:
    # Windows ignores the spaces before the dot: the cut name would open the console.
    cut = sanitize_filename("CON" + " " * 40 + "x.txt", max_bytes=32)
    assert cut == "_CON" + " " * 24 + ".txt"
    assert sanitize_filename("CON" + "x" * 40 + ".txt", max_bytes=32) == "CON" + "x" * 25 + ".txt"


def test_a_budget_too_small_for_an_extension_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least"):
        sanitize_filename("a.txt", max_bytes=8)


OFFERED = {
    "a quoted name": ('attachment; filename="a.txt"', "a.txt"),
    "a token name": ("attachment; filename=a.txt", "a.txt"),
    "quoted-string escapes": (r'attachment; filename="a\"b\\c.txt"', 'a"b\\c.txt'),
    "a semicolon inside the quotes": ('attachment; filename="a;b.txt"; size=3', "a;b.txt"),
    "filename* after filename wins": (
        "attachment; filename=\"EUR rates.pdf\"; filename*=UTF-8''%E2%82%AC%20rates.pdf",
        "€ rates.pdf",
    ),
    "filename* before filename wins": (
        "attachment; filename*=UTF-8''%E2%82%AC.pdf; filename=\"EUR.pdf\"",
        "€.pdf",
    ),
    "parameter names in any case": ("inline; FileName*=utf-8'en'x%2Fy.txt", "x/y.txt"),
    "another charset": ("attachment; filename*=iso-8859-1''%E9t%E9.txt", "été.txt"),
    "RFC 2231 continuations": ("attachment; filename*0*=UTF-8''a%20; filename*1=b.txt", "a b.txt"),
    "an unterminated quote": ('attachment; filename="report"2025.txt"', 'report"2025.txt'),
    "no file name": ("attachment", None),
    "an empty file name": ('attachment; filename=""', None),
    "no header at all": ("", None),
    "garbage": (";;;=; =", None),
}


@pytest.mark.parametrize(("header", "expected"), OFFERED.values(), ids=OFFERED.keys())
def test_the_offered_name_is_read_with_the_standard_parser(
    header: str, expected: str | None
) -> None:
    assert disposition_filename(header) == expected


def test_the_header_written_has_an_ascii_fallback_and_the_exact_name() -> None:
    assert content_disposition("attachment", "../Überweisung €.pdf") == (
        'attachment; filename="Uberweisung _.pdf"; '
        "filename*=UTF-8''%C3%9Cberweisung%20%E2%82%AC.pdf"
    )
    assert content_disposition("inline", "50% off.txt") == (
        "inline; filename=\"50_ off.txt\"; filename*=UTF-8''50%25%20off.txt"
    )


def test_an_ascii_fallback_that_would_be_a_device_gets_the_prefix() -> None:
    header = content_disposition("attachment", "CÖN.txt")
    assert header.startswith('attachment; filename="_CON.txt";')


# Arbitrary names, with the pieces attacks are made of mixed in (a lone surrogate is what
# a header's undecodable byte becomes).
PIECES = [
    "/", "\\", ".", "..", " ", "\x00", "\r\n", "\t", "\x7f", "\x85", "\u202e", "\u2066",
    "\u200f", "\u200b", "\ufeff", "\u2028", "\ue000", "／", "＼", "＂", "CON", "nul", "Com1",
    "LPT¹", "conout$", ".txt", ".tar.gz", '"', "%", ";", "'", "*", ":", "é", "e\u0301",
    "\u0301", "ﬁ", "日本語", "🙂", "\U0001f469\u200d\U0001f4bb", "\udc80",
]  # fmt: skip
NAMES = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=30).map("".join),
    st.text(),
    st.text(st.characters(codec="utf-8"), min_size=150, max_size=400),
)


def assert_safe(name: str, max_bytes: int = MAX_NAME_BYTES) -> None:
    assert name
    assert "/" not in name and "\\" not in name
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name)
    assert not BIDI & set(name)
    assert not set('<>:"|?*\u2028\u2029') & set(name)
    assert name[0] not in ". " and name[-1] not in ". "
    assert name.split(".")[0].rstrip(" ").upper() not in DEVICES
    assert len(name.encode()) <= max_bytes


@settings(max_examples=600)
@given(NAMES)
def test_a_sanitized_name_is_safe_and_stable(name: str) -> None:
    sanitized = sanitize_filename(name)
    assert_safe(sanitized)
    assert sanitize_filename(sanitized) == sanitized


@settings(max_examples=200)
@given(NAMES, st.integers(min_value=32, max_value=120))
def test_any_budget_is_kept(name: str, budget: int) -> None:
    sanitized = sanitize_filename(name, max_bytes=budget)
    assert_safe(sanitized, budget)
    assert sanitize_filename(sanitized, max_bytes=budget) == sanitized


@settings(max_examples=400)
@given(NAMES, st.sampled_from(["attachment", "inline"]))
def test_the_header_round_trips_through_standard_parsers(name: str, disposition: str) -> None:
    header = content_disposition(disposition, name)
    sanitized = sanitize_filename(name)
    assert header.isascii() and header.isprintable()
    assert disposition_filename(header) == sanitized
    kind, params = parse_options_header(header)
    assert (kind, params["filename"]) == (disposition, sanitized)
    fallback = plain_filename(header)
    assert_safe(fallback)
    assert fallback.isascii() and not set('"\\%') & set(fallback)
    assert sanitize_filename(fallback) == fallback


def plain_filename(header: str) -> str:
    """The ``filename`` parameter alone, read by the email package's modern parser."""
    message = EmailMessage(policy=default_policy)
    message["Content-Disposition"] = header.split("; filename*=")[0]
    value = message["Content-Disposition"].params["filename"]
    assert isinstance(value, str)
    return value
