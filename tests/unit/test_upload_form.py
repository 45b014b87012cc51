"""Upload forms read as a stream: every disguise refused, every genuine file passed on.

Each class is one kind of attack, sent as the whole class (every spelling in the
table), fed to the reader in pieces of several sizes so that a signature, a boundary
or a header split across two network reads is judged the same as one in a piece.
What the reader passes on is parsed back with an independent reader (the ``multipart``
package's blocking parser, as an app would) to show the app gets a well-formed form
with the checked names and the very bytes sent.
"""

from __future__ import annotations

import io

import multipart as push_multipart
import pytest

from gateway.bodies import parse_media_type
from gateway.filenames import sanitize_filename
from gateway.model import Reason, Rejection, UploadRules
from gateway.upload_form import FormUpload
from tests.support import upload_samples as s

ALL_BUT_SVG = frozenset({"pdf", "png", "jpeg", "gif", "webp", "txt", "csv", "zip", "docx", "xlsx"})
RULES = UploadRules(types=ALL_BUT_SVG, max_file=256 * 1024, max_parts=5, max_part_header=1024)
PIECES = [3, 64, 64 * 1024]
"""Sizes the body is fed in: tiny (every boundary and signature split), small, whole."""


def read(
    body: bytes, content_type: str, *, rules: UploadRules = RULES, piece: int = 64 * 1024
) -> tuple[FormUpload, Rejection | None]:
    media = parse_media_type(content_type)
    assert media is not None
    reader = FormUpload.open(media, rules)
    assert isinstance(reader, FormUpload)
    for start in range(0, len(body), piece):
        refused = reader.feed(body[start : start + piece])
        if refused is not None:
            return reader, refused
    return reader, reader.feed(b"")


def forwarded(reader: FormUpload, content_type: str) -> list[tuple[str, str | None, bytes]]:
    """The passed-on form as an app's parser reads it: (field, filename, content)."""
    raw = reader.spool.body().content()
    boundary = content_type.split("boundary=", 1)[1]
    parser = push_multipart.MultipartParser(io.BytesIO(raw), boundary, strict=True)
    read = []
    for part in parser:
        read.append((part.name, part.filename, part.raw))
        part.close()
    return read


GENUINE = {
    "a PDF": ("report.pdf", "application/pdf", s.pdf(), "pdf"),
    "a PNG": ("photo.png", "image/png", s.png(), "png"),
    "a JPEG named .jpg": ("photo.jpg", "image/jpeg", s.jpeg(), "jpeg"),
    "a GIF": ("anim.gif", "image/gif", s.gif(), "gif"),
    "a WebP": ("pic.webp", "image/webp", s.webp(), "webp"),
    "a UTF-8 text": ("notes.txt", "text/plain", s.TEXT, "txt"),
    "a CSV sent as Excel's type": ("rows.csv", "application/vnd.ms-excel", s.CSV, "csv"),
    "a ZIP": ("bundle.zip", "application/zip", s.plain_zip(), "zip"),
    "a DOCX": (
        "letter.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        s.docx(),
        "docx",
    ),
    "an XLSX declared as octet-stream": (
        "sheet.xlsx",
        "application/octet-stream",
        s.xlsx(),
        "xlsx",
    ),
    "a PNG with no name extension": ("photo", "image/png", s.png(), "png"),
    "a large text": ("big.txt", "text/plain", "ö€𝄞 line\n".encode() * 9000, "txt"),
}


class TestGenuineFilesPassUnchanged:
    @pytest.mark.parametrize("piece", PIECES)
    @pytest.mark.parametrize("case", GENUINE, ids=list(GENUINE))
    def test_the_file_reaches_the_app_byte_for_byte(self, case: str, piece: int) -> None:
        name, declared, data, kind = GENUINE[case]
        body, content_type = s.form(
            ("title", None, None, b"Quarterly"), ("file", name, declared, data)
        )
        reader, refused = read(body, content_type, piece=piece)
        assert refused is None, refused
        assert [(f.field, f.name, f.kind, f.size) for f in reader.files] == [
            ("file", name, kind, len(data))
        ]
        assert forwarded(reader, content_type) == [
            ("title", None, b"Quarterly"),
            ("file", name, data),
        ]

    def test_a_file_input_left_empty_stays_empty(self) -> None:
        body, content_type = s.form(("file", "", "application/octet-stream", b""))
        reader, refused = read(body, content_type)
        assert refused is None
        assert forwarded(reader, content_type) == [("file", "", b"")]


DISGUISES = {
    "HTML as a .pdf declared application/pdf": (
        "invoice.pdf", "application/pdf", s.HTML, "an HTML page"),
    "HTML after a byte-order mark and blank lines, as .txt": (
        "notes.txt", "text/plain", b"\xef\xbb\xbf\r\n  " + s.HTML, "an HTML page"),
    "HTML tags inside a text file": (
        "notes.txt", "text/plain", b"hello <img src=x onerror=alert(1)>", "HTML tags"),
    "an SVG with script as image/svg+xml": (
        "logo.svg", "image/svg+xml", s.SVG_SCRIPT, "an SVG image"),
    "an SVG with script renamed .png": ("logo.png", "image/png", s.SVG_SCRIPT, "an SVG image"),
    "an XML document as .txt": (
        "data.txt", "text/plain", b'<?xml version="1.0"?><a/>', "an XML document"),
    "an ELF executable renamed .png": ("cat.png", "image/png", s.elf(), "Linux executable"),
    "a PE executable renamed .pdf": ("cv.pdf", "application/pdf", s.pe(), "Windows executable"),
    "a PE executable as octet-stream with no extension": (
        "setup", "application/octet-stream", s.pe(), "Windows executable"),
    "a shell script as .txt": (
        "run.txt", "text/plain", b"#!/bin/sh\ncurl x | sh\n", "a script"),
    "a polyglot: PDF magic after an HTML prefix": (
        "doc.pdf", "application/pdf", b"<html><script>x</script>\n" + s.pdf(), "an HTML page"),
    "a polyglot: PNG magic after junk": (
        "a.png", "image/png", b"\x00\x01junk" + s.png(), "binary data"),
    "a PNG named .html": ("page.html", "image/png", s.png(), "named '.html'"),
    "a PNG named .php": ("shell.php", "image/png", s.png(), "named '.php'"),
    "a PNG declared as text/html": ("a.png", "text/html", s.png(), "declared as text/html"),
    "a ZIP declared as a DOCX": (
        "letter",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        s.plain_zip(),
        "declared as application/vnd.openxmlformats",
    ),
    "a ZIP named .docx": ("letter.docx", "application/octet-stream", s.plain_zip(), ".docx"),
    "a macro document named .docx": (
        "letter.docx", "application/octet-stream", s.docm(), "with macros"),
    "a DOCX named .zip": ("bundle.zip", "application/zip", s.docx(), "named '.zip'"),
    "a truncated ZIP": ("b.zip", "application/zip", s.plain_zip()[:40], "damaged ZIP"),
    "text that is not UTF-8": ("l.txt", "text/plain", "café".encode("latin-1"), "binary data"),
    "UTF-16 text": ("u.txt", "text/plain", "hello".encode("utf-16"), "binary data"),
    "a text file with a NUL after its head": (
        "n.txt", "text/plain", b"a" * 9000 + b"\x00", "control characters"),
    "a text file broken after its head": (
        "n.txt", "text/plain", b"a" * 9000 + b"\xff", "not UTF-8"),
}  # fmt: skip


class TestTypeDisguisesAreRefused:
    @pytest.mark.parametrize("piece", PIECES)
    @pytest.mark.parametrize("case", DISGUISES, ids=list(DISGUISES))
    def test_the_upload_is_refused_saying_what_it_is(self, case: str, piece: int) -> None:
        name, declared, data, said = DISGUISES[case]
        body, content_type = s.one_file(name, declared, data)
        reader, refused = read(body, content_type, piece=piece)
        assert refused is not None and refused.reason is Reason.FILE_TYPE_REFUSED
        assert said in refused.detail
        assert reader.files == []


SVGS = {
    "a script element": (s.SVG_SCRIPT, "<script>"),
    "an onload handler": (s.SVG_ONLOAD, "event handler"),
    "a javascript: link spelled with a character reference": (s.SVG_ENCODED_LINK, "script"),
    "a script under another namespace prefix": (s.SVG_PREFIXED_SCRIPT, "<script>"),
    "an entity declaration": (s.SVG_ENTITY, "DOCTYPE"),
    "an entity expansion bomb": (s.SVG_LAUGHS, "DOCTYPE"),
}


class TestSvgOnlyWhenAllowedAndNeverWithScript:
    def test_a_clean_svg_is_refused_unless_svg_is_listed(self) -> None:
        body, content_type = s.one_file("logo.svg", "image/svg+xml", s.SVG_CLEAN)
        _, refused = read(body, content_type)
        assert refused is not None and "SVG can carry script" in refused.detail
        reader, refused = read(body, content_type, rules=with_svg())
        assert refused is None and reader.files[0].kind == "svg"

    @pytest.mark.parametrize("piece", PIECES)
    @pytest.mark.parametrize("case", SVGS, ids=list(SVGS))
    def test_an_allowed_svg_with_script_is_refused(self, case: str, piece: int) -> None:
        data, said = SVGS[case]
        body, content_type = s.one_file("logo.svg", "image/svg+xml", data)
        _, refused = read(body, content_type, rules=with_svg(), piece=piece)
        assert refused is not None and refused.reason is Reason.FILE_TYPE_REFUSED
        assert said in refused.detail


def with_svg() -> UploadRules:
    return UploadRules(types=ALL_BUT_SVG | {"svg"}, max_file=RULES.max_file)


BAD_NAMES = {
    "a path with slashes": "../../etc/passwd",
    "a path with backslashes": "..\\..\\windows\\photo.png",
    "a zero-width space and a BOM": "pho\u200bto\ufeff.png",
    "a right-to-left override": "invoice\u202egnp.exe.png",
    "a Windows device name": "CON.png",
    "a device name with a second extension": "nul.tar.png",
    "a 300-byte name": "a" * 296 + ".png",
    "a leading dot": ".htaccess.png",
    "a trailing dot and space": "photo.png. ",
    "a percent escape an HTML5 reader decodes": "a%22b%0A.png",
}


class TestFileNamesAreSanitizedOrRefused:
    @pytest.mark.parametrize("case", BAD_NAMES, ids=list(BAD_NAMES))
    def test_the_app_gets_the_sanitized_name(self, case: str) -> None:
        original = BAD_NAMES[case]
        body, content_type = s.one_file(original.replace('"', "%22"), "image/png", s.png())
        reader, refused = read(body, content_type)
        assert refused is None, refused
        (sent,) = forwarded(reader, content_type)
        name = sent[1]
        assert name and name == reader.files[0].name
        assert sanitize_filename(name) == name
        assert not set(name) & set("/\\\x00\u202e%") and len(name.encode()) <= 200
        assert sent[2] == s.png()
        assert "\x00" not in (reader.files[0].original or "")
        assert "\u202e" not in (reader.files[0].original or "")

    @pytest.mark.parametrize("case", BAD_NAMES, ids=list(BAD_NAMES))
    def test_with_refuse_the_upload_is_refused(self, case: str) -> None:
        body, content_type = s.one_file(BAD_NAMES[case], "image/png", s.png())
        rules = UploadRules(types=ALL_BUT_SVG, refuse_bad_names=True)
        reader, refused = read(body, content_type, rules=rules)
        assert refused is not None and refused.reason is Reason.FILE_NAME_REFUSED
        assert "rename" in refused.detail
        assert "\x00" not in refused.detail and "\u202e" not in refused.detail

    @pytest.mark.parametrize("refuse", [False, True], ids=["sanitize", "refuse"])
    @pytest.mark.parametrize(
        "name", ["a\x00.png", "in\x01vo\x1bice.png", "a\x7f.png"], ids=["NUL", "ESC", "DEL"]
    )
    def test_raw_control_characters_make_the_form_unreadable(self, name: str, refuse: bool) -> None:
        """Browsers never send them raw; the strict form reader refuses such a header."""
        body, content_type = s.one_file(name, "image/png", s.png())
        rules = UploadRules(types=ALL_BUT_SVG, refuse_bad_names=refuse)
        _, refused = read(body, content_type, rules=rules)
        assert refused is not None and refused.reason is Reason.BODY_INVALID
        assert "control characters" in refused.detail

    def test_an_empty_name_on_a_file_gets_a_neutral_one(self) -> None:
        body, content_type = s.one_file("", "image/png", s.png())
        reader, refused = read(body, content_type)
        assert refused is None and forwarded(reader, content_type)[0][1] == "upload"

    def test_a_name_that_only_loses_its_boundary_disguise_is_refused(self) -> None:
        hidden = "--" + s.BOUNDARY[:5] + "\u200b" + s.BOUNDARY[5:]
        body, content_type = s.one_file(hidden, "image/png", s.png())
        _, refused = read(body, content_type)
        assert refused is not None and refused.reason is Reason.FILE_NAME_REFUSED


def raw_form(text: str) -> tuple[bytes, str]:
    b = s.BOUNDARY
    return text.replace("{b}", b).encode(), f"multipart/form-data; boundary={b}"


FILE_PART = 'Content-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nhello'
AMBIGUOUS = {
    "a preamble": "junk\r\n--{b}\r\n" + FILE_PART + "\r\n--{b}--\r\n",
    "data after the closing boundary": "--{b}\r\n" + FILE_PART + "\r\n--{b}--\r\nmore",
    "a second form after the closing boundary": "--{b}\r\n"
    + FILE_PART
    + "\r\n--{b}--\r\n--{b}\r\n"
    + FILE_PART
    + "\r\n--{b}--\r\n",
    "a boundary after a bare LF inside a file": "--{b}\r\n"
    + FILE_PART
    + '\n--{b}\r\nContent-Disposition: form-data; name="g"; filename="x.html"\r\n\r\n'
    + "<script>1</script>\r\n--{b}--\r\n",
    "a boundary line with trailing characters": "--{b}\r\n" + FILE_PART + "\r\n--{b}x\r\n",
    "a Content-Transfer-Encoding header": '--{b}\r\nContent-Disposition: form-data; name="f";'
    ' filename="a.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--{b}--\r\n',
    "two Content-Disposition headers": '--{b}\r\nContent-Disposition: form-data; name="f"\r\n'
    + FILE_PART
    + "\r\n--{b}--\r\n",
    "an RFC 2231 filename*": '--{b}\r\nContent-Disposition: form-data; name="f"; '
    "filename*=UTF-8''a.txt\r\n\r\nhi\r\n--{b}--\r\n",
    "a folded header line": '--{b}\r\nContent-Disposition: form-data; name="f";\r\n'
    ' filename="a.txt"\r\n\r\nhi\r\n--{b}--\r\n',
    "a form that is never closed": "--{b}\r\n" + FILE_PART,
    "a field with a Content-Type and no file name": "--{b}\r\nContent-Disposition: form-data;"
    ' name="f"\r\nContent-Type: image/png\r\n\r\nhi\r\n--{b}--\r\n',
}


class TestAmbiguousFormsAreRefusedAsByTheStrictReader:
    @pytest.mark.parametrize("piece", [1, 5, 64 * 1024])
    @pytest.mark.parametrize("case", AMBIGUOUS, ids=list(AMBIGUOUS))
    def test_the_form_is_refused(self, case: str, piece: int) -> None:
        body, content_type = raw_form(AMBIGUOUS[case])
        _, refused = read(body, content_type, piece=piece)
        assert refused is not None and refused.reason is Reason.BODY_INVALID, refused

    @pytest.mark.parametrize("piece", range(1, 12))
    def test_a_clean_form_reads_the_same_in_any_pieces(self, piece: int) -> None:
        body, content_type = raw_form("--{b}\r\n" + FILE_PART + "\r\n--{b}--\r\n")
        reader, refused = read(body, content_type, piece=piece)
        assert refused is None and forwarded(reader, content_type) == [("f", "a.txt", b"hello")]


class TestLimits:
    def test_too_many_parts(self) -> None:
        parts = [(f"f{n}", None, None, b"x") for n in range(6)]
        _, refused = read(*s.form(*parts))
        assert refused is not None and refused.reason is Reason.UPLOAD_LIMIT
        assert "more than 5 parts" in refused.detail

    @pytest.mark.parametrize("piece", PIECES)
    def test_a_huge_part_header(self, piece: int) -> None:
        body, content_type = s.one_file("a" * 5000 + ".png", "image/png", s.png())
        _, refused = read(body, content_type, piece=piece)
        assert refused is not None and refused.reason is Reason.UPLOAD_LIMIT
        assert "1024 bytes" in refused.detail

    def test_many_header_lines_in_a_part(self) -> None:
        lines = "".join(f"X-Filler-{n}: x\r\n" for n in range(12))
        body, content_type = raw_form("--{b}\r\n" + lines + FILE_PART + "\r\n--{b}--\r\n")
        _, refused = read(body, content_type)
        assert refused is not None and refused.reason is Reason.UPLOAD_LIMIT
        assert "headers" in refused.detail

    def test_a_file_over_max_file(self) -> None:
        data = b"a,b\n" * (RULES.max_file // 4 + 1)
        reader, refused = read(*s.one_file("big.csv", "text/csv", data))
        assert refused is not None and refused.reason is Reason.FILE_TOO_LARGE
        assert "256 KiB" in refused.detail
        assert reader.in_progress() is not None

    def test_a_field_over_max_file(self) -> None:
        _, refused = read(*s.form(("note", None, None, b"x" * (RULES.max_file + 1))))
        assert refused is not None and refused.reason is Reason.FILE_TOO_LARGE
