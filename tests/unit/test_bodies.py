"""Content types, charsets, JSON depth and strict multipart reading."""

from __future__ import annotations

import pytest

from gateway.bodies import (
    MAX_JSON_DEPTH,
    BodyKind,
    MediaType,
    charset_problem,
    decode_text,
    json_depth_exceeded,
    parse_json,
    parse_media_type,
)
from gateway.model import Reason, Rejection
from gateway.multipart import FILE, parse_fields

MEDIA = {
    "plain form": ("application/x-www-form-urlencoded", BodyKind.FORM, {}),
    "upper case with charset": (
        "Application/X-WWW-Form-Urlencoded; Charset=UTF-8",
        BodyKind.FORM,
        {"charset": "UTF-8"},
    ),
    "quoted boundary": (
        'multipart/form-data; boundary="a b"',
        BodyKind.MULTIPART,
        {"boundary": "a b"},
    ),
    "vendor JSON": ("application/vnd.api+json", BodyKind.JSON, {}),
    "trailing semicolon": ("application/json;", BodyKind.JSON, {}),
    "other": ("text/plain", BodyKind.OTHER, {}),
}


@pytest.mark.parametrize(("value", "kind", "params"), list(MEDIA.values()), ids=list(MEDIA))
def test_media_types_parse(value: str, kind: BodyKind, params: dict[str, str]) -> None:
    media = parse_media_type(value)
    assert media is not None and media.kind is kind and media.params == params


@pytest.mark.parametrize(
    "value",
    [
        "application/x-www-form-urlencoded, text/plain",
        "application/json; charset=utf-8; charset=utf-7",
        "application/json; charset",
        "json",
        "application/json garbage",
        'text/plain; a="unterminated',
        "",
    ],
    ids=[
        "a list",
        "a repeated parameter",
        "a bare parameter",
        "no subtype",
        "junk",
        "open quote",
        "empty",
    ],
)
def test_ambiguous_media_types_do_not_parse(value: str) -> None:
    assert parse_media_type(value) is None


@pytest.mark.parametrize("charset", ["utf-8", "UTF8", "us-ascii"])
def test_utf8_and_ascii_charsets_are_accepted(charset: str) -> None:
    assert charset_problem(MediaType("application/json", {"charset": charset})) is None


@pytest.mark.parametrize("charset", ["utf-16", "utf-7", "latin-1", "cp037", "x-unknown"])
def test_other_charsets_are_refused(charset: str) -> None:
    problem = charset_problem(MediaType("application/json", {"charset": charset}))
    assert problem is not None and problem.reason is Reason.BODY_UNSUPPORTED


def test_text_must_be_utf8_without_a_bom() -> None:
    assert decode_text("café".encode(), None) == "café"
    assert isinstance(decode_text(b"\xef\xbb\xbfa", None), Rejection)
    assert isinstance(decode_text(b"\xff", None), Rejection)
    ascii_only = MediaType("application/json", {"charset": "us-ascii"})
    assert isinstance(decode_text("é".encode(), ascii_only), Rejection)


def test_json_depth_counts_structure_not_strings() -> None:
    assert not json_depth_exceeded(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert json_depth_exceeded(b"[" * (MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeded(b'["' + b"[" * 1000 + b'\\"{"]')


def test_json_refuses_repeated_keys_and_deep_nesting_without_raising() -> None:
    assert parse_json(b'{"a": {"b": 1}}', None) == {"a": {"b": 1}}
    assert isinstance(parse_json(b'{"a": 1, "a": 2}', None), Rejection)
    assert isinstance(parse_json(b"[" * 100_000 + b"]" * 100_000, None), Rejection)


BOUNDARY = "xyz"
FORM = MediaType("multipart/form-data", {"boundary": BOUNDARY})


def _parts(*parts: bytes) -> bytes:
    return b"".join(b"--xyz\r\n" + part + b"\r\n" for part in parts) + b"--xyz--\r\n"


def test_multipart_fields_are_read_and_files_left_unread() -> None:
    body = _parts(
        b'Content-Disposition: form-data; name="a"\r\n\r\n1',
        b'Content-Disposition: form-data; name="f"; filename="x"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\xff\xfe",
        b'Content-Disposition: form-data; name="big"\r\n\r\nnot read',
    )
    fields = parse_fields(body, FORM, lambda name: name == "a")
    assert fields == [("a", "1"), ("f", FILE), ("big", "")]


MULTIPART_PROBLEMS = {
    "bare LF before a boundary": (
        b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\n--xyz\r\n'
        b'Content-Disposition: form-data; name="b"\r\n\r\n2\r\n--xyz--\r\n'
    ),
    "padding after a boundary": (
        b'--xyz  \r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--'
    ),
    "a longer boundary": _parts(b'Content-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyzw'),
    "a header fold": _parts(b'Content-Disposition: form-data;\r\n name="a"\r\n\r\n1'),
    "a part Content-Length": _parts(
        b'Content-Disposition: form-data; name="a"\r\nContent-Length: 1\r\n\r\n1'
    ),
    "two dispositions": _parts(
        b'Content-Disposition: form-data; name="a"\r\n'
        b'Content-Disposition: form-data; name="b"\r\n\r\n1'
    ),
    "not form-data": _parts(b'Content-Disposition: attachment; name="a"\r\n\r\n1'),
    "two names": _parts(b'Content-Disposition: form-data; name="a"; name="b"\r\n\r\n1'),
    "a backslash in the name": _parts(b'Content-Disposition: form-data; name="a\\\\"\r\n\r\n1'),
    "empty": b"",
}


@pytest.mark.parametrize("body", list(MULTIPART_PROBLEMS.values()), ids=list(MULTIPART_PROBLEMS))
def test_ambiguous_multipart_bodies_are_refused(body: bytes) -> None:
    assert isinstance(parse_fields(body, FORM, lambda name: True), Rejection)
