"""One uploaded file, judged as its bytes stream past: size, type by content, name.

``FileInspector`` is fed a file's bytes in order. Its type is decided from the first
``filetypes.SNIFF_BYTES`` (``filetypes.sniff``), then the rest is held to that type
as it arrives: text stays UTF-8 without control bytes, an SVG (when allowed) stays
free of script (``svg_check``), and a ZIP is told apart (plain, Word, Excel) by its
directory once it is complete. The declared Content-Type and the name's extension
must agree with what the content is; every refusal says what the content looks like.

``forwarded_name`` is the name an app receives: ``filenames.sanitize_filename``'s,
or, with ``filename: refuse``, a refusal whenever sanitizing would change it.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from typing import IO

from gateway.filenames import sanitize_filename
from gateway.filetypes import (
    SNIFF_BYTES,
    TEXT_TYPES,
    TYPES,
    ZIP_FAMILY,
    describe,
    has_control_bytes,
    is_office,
    sniff,
)
from gateway.model import Reason, Rejection, UploadRules
from gateway.svg_check import SvgCheck

OCTET_STREAM = "application/octet-stream"
UNNAMED = "upload"
"""The name given to a file with content sent with an empty name (``filename: sanitize``);
an empty name stays empty on an empty file (a file input left blank)."""
_CSV_DECLARED = frozenset({"text/csv", "application/csv", "application/vnd.ms-excel"})
_PERCENT_ESCAPE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
"""``%22``, ``%0A``: HTML5 form readers decode these in a file name, others do not."""
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MAX_AUDITED_NAME = 300


def type_refused(detail: str) -> Rejection:
    return Rejection(Reason.FILE_TYPE_REFUSED, detail)


def escaped(name: str) -> str:
    """``name`` for a log or an audit row: control and invisible characters (the
    right-to-left override, NUL) as ``\\uXXXX``, at most ``MAX_AUDITED_NAME`` long."""
    return "".join(
        f"\\u{ord(c):04x}" if c == "\\" or unicodedata.category(c) in _ESCAPED else c
        for c in name[:MAX_AUDITED_NAME]
    )


def forwarded_name(original: str, *, refuse: bool, boundary: bytes) -> str | Rejection:
    """The file name the app gets for ``original``, or why it is refused (``""`` when
    nothing of it is left: the form reader names the file or refuses it)."""
    name = _PERCENT_ESCAPE.sub("_", sanitize_filename(original, default=""))
    if refuse and name != original:
        shown = escaped(original)[:80]
        if not name:
            return _name_refused(f"the file name {shown!r} is empty once made safe; rename it")
        return _name_refused(
            f"the file name {shown!r} is not accepted here (it would be stored as "
            f"{name[:80]!r}); rename the file"
        )
    if boundary in name.encode():
        return _name_refused("the file name holds the form's boundary")
    return name


def _name_refused(detail: str) -> Rejection:
    return Rejection(Reason.FILE_NAME_REFUSED, detail)


class FileInspector:
    """One file's bytes, fed in order: its type, or why it is refused."""

    def __init__(self, *, rules: UploadRules, name: str | None, declared: str | None) -> None:
        self._rules = rules
        self._name = name
        self._extension = _extension(name)
        self.declared = declared.lower() if declared else None
        """The Content-Type the client declared (lower case), if any."""
        self._head = bytearray()
        self._kind: str | None = None
        """The type decided from the head; ``None`` until then."""
        self._text = codecs.getincrementaldecoder("utf-8")("strict")
        self._svg: SvgCheck | None = None
        self.size = 0

    @property
    def what(self) -> str:
        """``the file 'a.png'`` or ``the body``, for messages."""
        return f"the file {self._name[:80]!r}" if self._name else "the uploaded file"

    def feed(self, chunk: bytes) -> Rejection | None:
        """The next bytes of the file; a refusal as soon as one is certain."""
        self.size += len(chunk)
        if self.size > self._rules.max_file:
            return Rejection(
                Reason.FILE_TOO_LARGE,
                f"{self.what} is larger than the {_size(self._rules.max_file)} accepted here",
            )
        if self._kind is None:
            self._head += chunk
            if len(self._head) < SNIFF_BYTES:
                return None
            return self._decide(bytes(self._head), complete=False)
        return self._follow(chunk, final=False)

    def finish(self, reopen: Callable[[], IO[bytes]]) -> str | Rejection:
        """The file's type once all of it was fed; ``reopen`` reads it back (ZIPs)."""
        if self.size == 0:
            return "empty"
        if self._kind is None and (refused := self._decide(bytes(self._head), complete=True)):
            return refused
        if (refused := self._follow(b"", final=True)) is not None:
            return refused
        kind = self._kind or ""
        if kind in ZIP_FAMILY:
            with reopen() as archive:
                found = is_office(archive)
            if found is None:
                return type_refused(f"{self.what} is a damaged ZIP archive")
            if found == "macro":
                return type_refused(f"{self.what} is an Office document with macros")
            kind = found
            if (refused := self._fits(kind)) is not None:
                return refused
        return kind

    def _decide(self, head: bytes, *, complete: bool) -> Rejection | None:
        """Decide the type from the first ``SNIFF_BYTES`` of ``head``; follow all of it."""
        sniffed = sniff(head[:SNIFF_BYTES], complete=complete and len(head) <= SNIFF_BYTES)
        if sniffed.kind is None:
            return type_refused(
                f"{self.what} looks like {sniffed.looks_like}; "
                f"this address accepts {self._accepted()}"
            )
        kind = sniffed.kind
        if kind == "text":
            csv = self._extension == "csv" or self.declared in _CSV_DECLARED
            kind = "csv" if csv else "txt"
        self._kind = kind
        if kind == "svg":
            self._svg = SvgCheck()
        if kind in ZIP_FAMILY:  # Word or Excel is known once the archive is complete
            if not ZIP_FAMILY & self._rules.types:
                return self._not_accepted(kind)
        elif (refused := self._fits(kind)) is not None:
            return refused
        return self._follow(head, final=False)

    def _follow(self, data: bytes, *, final: bool) -> Rejection | None:
        """Hold the bytes after the head to the type decided (text stays text…)."""
        if self._kind in TEXT_TYPES:
            problem = "control characters (binary data)" if has_control_bytes(data) else None
            try:
                self._text.decode(data, final)
            except UnicodeDecodeError:
                problem = "bytes that are not UTF-8"
            if problem is not None:
                return type_refused(f"{self.what} is not plain text: it holds {problem}")
        if self._svg is not None and (problem := self._svg.feed(data, final=final)):
            return type_refused(f"{self.what} is an SVG image that is refused: {problem}")
        return None

    def _fits(self, kind: str) -> Rejection | None:
        """The type is allowed here and the name and declared type agree with it."""
        if kind not in self._rules.types:
            return self._not_accepted(kind)
        known = TYPES[kind]
        if self._extension is not None and self._extension not in known.extensions:
            return type_refused(
                f"{self.what} is named '.{self._extension[:20]}' but its content is "
                f"{known.label}; name it {', '.join('.' + e for e in sorted(known.extensions))}"
            )
        declared = self.declared
        if declared and declared != OCTET_STREAM and declared not in known.media_types:
            return type_refused(
                f"{self.what} is declared as {declared[:60]} but its content is {known.label}"
            )
        return None

    def _not_accepted(self, kind: str) -> Rejection:
        why = " (SVG can carry script)" if kind == "svg" else ""
        return type_refused(
            f"{self.what} is {describe(kind)}{why}; this address accepts {self._accepted()}"
        )

    def _accepted(self) -> str:
        return ", ".join(sorted(self._rules.types))


def _extension(name: str | None) -> str | None:
    """The lower-case extension of ``name``; ``None`` when it has none."""
    if not name:
        return None
    stem, dot, extension = name.rpartition(".")
    return extension.lower() if dot and stem and extension else None


def _size(count: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= factor and count % factor == 0:
            return f"{count // factor} {unit}"
    return f"{count} bytes"
