"""What a file is, judged by its bytes: the upload allow-list's types and their disguises.

A type is decided by the content alone, from a signature at offset 0: PDF readers
accept ``%PDF`` anywhere in the first kilobyte and browsers sniff HTML out of a
"text" file, so a file whose signature comes after a prefix (a polyglot) is taken
for what its first bytes say, never for what its later bytes claim. Text must be
UTF-8 without markup a browser would render (``<html``, ``<svg``, ``<script``,
``<?xml``…). Types outside the allow-list are named in the refusal (``a Windows
executable``, ``an HTML page``) so the person uploading learns what the gateway saw.

The signatures are a table here rather than a general magic library: the decision
needs exact offset-0 matches for a handful of types and the ZIP family told apart by
the archive's own directory (``is_office``), which general libraries guess from the
extension or match at any offset.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from typing import IO

SNIFF_BYTES = 8 * 1024
"""Bytes of a file looked at before its type is decided (or the whole of a smaller one)."""
_TAG_WINDOW = 1024
"""HTML tags anywhere in a text file's first kilobyte make browsers of old render it."""


@dataclass(frozen=True, slots=True)
class FileType:
    """One type of the allow-list."""

    name: str
    """The name used in the rules (``pdf``)."""
    label: str
    """How a person calls it (``a PDF document``)."""
    extensions: frozenset[str]
    """File name extensions it may carry (lower case, no dot)."""
    media_types: frozenset[str]
    """Content-Types it may be declared as (besides ``application/octet-stream``)."""


def _type(name: str, label: str, extensions: str, media_types: str) -> FileType:
    return FileType(name, label, frozenset(extensions.split()), frozenset(media_types.split()))


_ZIP_TYPES = "application/zip application/x-zip-compressed application/x-zip"
TYPES: dict[str, FileType] = {
    t.name: t
    for t in (
        _type("pdf", "a PDF document", "pdf", "application/pdf application/x-pdf"),
        _type("png", "a PNG image", "png", "image/png"),
        _type("jpeg", "a JPEG image", "jpg jpeg jpe jfif", "image/jpeg image/pjpeg"),
        _type("gif", "a GIF image", "gif", "image/gif"),
        _type("webp", "a WebP image", "webp", "image/webp"),
        _type("txt", "a plain text file", "txt text log", "text/plain"),
        # Windows browsers send a .csv as application/vnd.ms-excel when Excel is installed.
        _type(
            "csv",
            "a CSV file",
            "csv",
            "text/csv application/csv text/plain application/vnd.ms-excel",
        ),
        _type("zip", "a ZIP archive", "zip", _ZIP_TYPES),
        _type(
            "docx",
            "a Word document",
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        _type(
            "xlsx",
            "an Excel workbook",
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        _type("svg", "an SVG image", "svg", "image/svg+xml"),
    )
}
"""Every type an upload rule may allow. SVG is never allowed by default (``svg_check``)."""
TEXT_TYPES = frozenset({"txt", "csv"})
ZIP_FAMILY = frozenset({"zip", "docx", "xlsx"})

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
)
"""Allow-list types known by their first bytes (WebP is RIFF….WEBP, see ``sniff``)."""

_DISGUISES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "a Linux executable (ELF)"),
    (b"\xcf\xfa\xed\xfe", "a macOS executable (Mach-O)"),
    (b"\xce\xfa\xed\xfe", "a macOS executable (Mach-O)"),
    (b"\xfe\xed\xfa\xce", "a macOS executable (Mach-O)"),
    (b"\xfe\xed\xfa\xcf", "a macOS executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "a Java class or macOS universal binary"),
    (b"#!", "a script"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office document (may hold macros)"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"FWS", "a Flash file"),
    (b"CWS", "a Flash file"),
    (b"\x00asm", "a WebAssembly module"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
"""What refused content is, to say so (executables first: they are the usual disguise)."""

_MARKUP = re.compile(
    rb"<\s*(?:!doctype\s+html|html|head|body|script|iframe|object|embed|svg|meta|"
    rb"a\s|img\s|style|link|form|base|frameset|title|\?xml)",
    re.IGNORECASE,
)
_HTML_OPENERS = (b"<html", b"<!doctype html", b"<head", b"<body", b"<script")
_SVG_ROOT = re.compile(rb"<(?:[a-z_][\w.-]*:)?svg[\s>/]")
_LEADING = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n\f]*")
_BAD_TEXT = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
"""Control bytes no text or CSV file holds (tab, line ends and form feed are fine)."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the first bytes of a file are."""

    kind: str | None
    """An allow-list type (``pdf``; ``text`` for txt/csv; ``zip`` for the ZIP family),
    or ``None`` when the content is none of them."""
    looks_like: str
    """How to name the content to a person (``an HTML page``)."""


def sniff(head: bytes, *, complete: bool) -> Sniffed:
    """The type of a file from its first ``SNIFF_BYTES`` (``complete``: that is all of it)."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return Sniffed(kind, TYPES[kind].label)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("webp", TYPES["webp"].label)
    for signature, label in _DISGUISES:
        if head.startswith(signature):
            return Sniffed(None, label)
    markup = _markup(head)
    if markup is not None:
        return markup
    if not head:
        return Sniffed(None, "an empty file")
    if text_problem(head, complete=complete) is None:
        return Sniffed("text", "text")
    return Sniffed(None, "binary data of no accepted type")


def _markup(head: bytes) -> Sniffed | None:
    """HTML, SVG or XML: markup at the start, or HTML tags early in a text."""
    leading = _LEADING.match(head)
    lowered = head[leading.end() if leading else 0 :].lower()
    if lowered.startswith(b"<"):
        svg = _SVG_ROOT.search(lowered)
        svg_at = svg.start() if svg else -1
        html_at = min((i for i in map(lowered.find, _HTML_OPENERS) if i != -1), default=-1)
        if svg_at != -1 and (html_at == -1 or svg_at < html_at):
            return Sniffed("svg", TYPES["svg"].label)
        if html_at == -1 and lowered.startswith((b"<?xml", b"<!--")):
            return Sniffed(None, "an XML document")
        return Sniffed(None, "an HTML page")
    if _MARKUP.search(head[:_TAG_WINDOW]):
        return Sniffed(None, "text holding HTML tags")
    return None


def has_control_bytes(data: bytes) -> bool:
    """``data`` holds control bytes no text file has (tab, line ends, form feed are fine)."""
    return _BAD_TEXT.search(data) is not None


def text_problem(data: bytes, *, complete: bool) -> str | None:
    """Why ``data`` (a text file's bytes, or a piece of them) is not plain UTF-8 text."""
    if has_control_bytes(data):
        return "control characters (binary data)"
    try:
        data.decode("utf-8", "strict")
    except UnicodeDecodeError as error:
        # A piece may end inside a character: only a truncated end is forgiven.
        if complete or error.start < len(data) - 3 or error.reason != "unexpected end of data":
            return "bytes that are not UTF-8"
    return None


def is_office(archive: IO[bytes]) -> str | None:
    """``docx``, ``xlsx``, ``zip``; ``None`` when it is no readable ZIP archive.

    An Office document is a ZIP with ``[Content_Types].xml`` and its main part; a
    macro project (``vbaProject.bin``) makes it a macro-enabled document, refused.
    """
    try:
        with zipfile.ZipFile(archive) as opened:
            names = set(opened.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    if any(name.lower().endswith("vbaproject.bin") for name in names):
        return "macro"
    if "[Content_Types].xml" in names and "word/document.xml" in names:
        return "docx"
    if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
        return "xlsx"
    return "zip"


def describe(kind: str) -> str:
    """``a PNG image`` for ``png``."""
    known = TYPES.get(kind)
    return known.label if known is not None else kind
