"""An upload form read as a stream, checked part by part, and written out anew.

The parts are split by the ``multipart`` package's push parser (strict mode, limits on
the number of parts and on header size), so no part is ever held whole in memory. The
gateway's own strict rules for forms (``gateway.multipart``) hold here too, or an
upload route would be a way around them: no preamble and nothing after the closing
boundary (``BoundaryWatch``), every occurrence of the boundary a delimiter line, one
``Content-Disposition: form-data`` with ``name`` and maybe ``filename``, and a
``Content-Type``, nothing else.

What is forwarded is the form written out again (``FormUpload.spool``): same boundary,
same fields and bytes, each part's headers in one plain spelling, each file under the
name it was checked as. The app then reads what the gateway read, whatever its own
parser makes of odd quoting; ``Content-Length`` is the rewritten body's.
"""

from __future__ import annotations

from dataclasses import dataclass

import multipart as push_multipart

from gateway.bodies import MediaType, Spool, invalid, parse_media_type
from gateway.model import Reason, Rejection, UploadedFile, UploadRules
from gateway.multipart import form_delimiter, header_problem, read_disposition
from gateway.upload_files import UNNAMED, FileInspector, escaped, forwarded_name
from gateway.upload_scan import ScanEvent

_CRLF = b"\r\n"


class BoundaryWatch:
    """Every ``--boundary`` in the stream is a delimiter line, and the form ends at its
    closing one: refuses what a lax parser would split differently from a strict one."""

    def __init__(self, delimiter: bytes) -> None:
        self._delimiter = delimiter
        self._tail = b""
        self._offset = 0
        """Stream offset of ``_tail[0]``."""
        self._checked = 0
        """Occurrences starting before this offset were judged."""
        self._epilogue: bytes | None = None
        """Bytes after the closing delimiter; ``None`` until it was seen."""

    @property
    def closed(self) -> bool:
        """The closing delimiter has gone by."""
        return self._epilogue is not None

    def feed(self, chunk: bytes) -> str | None:
        """Watch the next bytes; the problem with them, if any."""
        if self._epilogue is not None:
            self._epilogue += chunk
            return self._epilogue_problem()
        buffer = self._tail + chunk
        found = buffer.find(self._delimiter, max(0, self._checked - self._offset))
        if self._offset == 0 and len(buffer) >= len(self._delimiter):
            if not buffer.startswith(self._delimiter):
                return "the multipart body must start with its boundary (no preamble)"
        size = len(self._delimiter)
        while found != -1 and found + size + 2 <= len(buffer):
            if found and buffer[found - 2 : found] != _CRLF:
                return "the multipart boundary appears inside a part"
            after = buffer[found + size : found + size + 2]
            if after == b"--":
                self._epilogue = buffer[found + size + 2 :]
                return self._epilogue_problem()
            if after != _CRLF:
                return "a multipart boundary line carries extra characters"
            self._checked = self._offset + found + 1
            found = buffer.find(self._delimiter, found + 1)
        keep = max(0, len(buffer) - size - 3)
        self._tail = buffer[keep:]
        self._offset += keep
        return None

    def finish(self) -> str | None:
        if self._epilogue is None:
            return "the multipart body is not closed"
        return self._epilogue_problem() or (
            None if self._epilogue in (b"", _CRLF) else "the multipart body is not closed cleanly"
        )

    def _epilogue_problem(self) -> str | None:
        if self._epilogue is not None and not _CRLF.startswith(self._epilogue):
            return "the multipart body has data after its closing boundary"
        return None


@dataclass(slots=True)
class _Part:
    """The part being read: its field, headers to write, and its file if it is one."""

    field: str
    content_type: str | None
    original: str | None
    file: FileInspector | None
    name: str | None
    """The name forwarded (``forwarded_name``); ``None`` for a field."""
    index: int = -1
    """Which file of the form it is (``ScanEvent.file``)."""
    start: int = -1
    """Where its content starts in the spool; ``-1`` until its header is written."""


class FormUpload:
    """Feed a form's bytes in order; ``finish`` gives its files, or why it is refused."""

    def __init__(self, rules: UploadRules, delimiter: bytes) -> None:
        self._rules = rules
        self._delimiter = delimiter
        self._watch = BoundaryWatch(delimiter)
        self._parser = push_multipart.PushMultipartParser(
            delimiter[2:],
            max_header_size=rules.max_part_header,
            max_segment_count=rules.max_parts,
            strict=True,
        )
        self.spool = Spool()
        self.files: list[UploadedFile] = []
        self.scanning = False
        """Note each file's bytes in ``scan_events`` for the virus scan."""
        self.scan_events: list[ScanEvent] = []
        self._part: _Part | None = None
        self._file_count = 0

    @classmethod
    def open(cls, media: MediaType, rules: UploadRules) -> FormUpload | Rejection:
        delimiter = form_delimiter(media)
        if isinstance(delimiter, Rejection):
            return delimiter
        return cls(rules, delimiter)

    def feed(self, chunk: bytes) -> Rejection | None:
        """The next bytes of the body (``b""`` at its end)."""
        ended = self._watch.closed
        problem = self._watch.finish() if not chunk else self._watch.feed(chunk)
        if problem is not None:
            return invalid(problem)
        if chunk and ended:
            return None  # the CRLF after the closing boundary (``BoundaryWatch`` checked it)
        try:
            for event in self._parser.parse(chunk):
                refused = self._on(event)
                if refused is not None:
                    return refused
        except push_multipart.ParserLimitReached as error:
            return self._limit(str(error))
        except push_multipart.MultipartError as error:
            return invalid(f"the multipart body could not be read ({str(error)[:80]})")
        if not chunk:
            self.spool.write(_CRLF + self._delimiter + b"--" + _CRLF)
        return None

    def _limit(self, message: str) -> Rejection:
        if "segment count" in message:
            detail = f"the form has more than {self._rules.max_parts} parts"
        else:
            detail = f"a part's headers are longer than {self._rules.max_part_header} bytes"
        return Rejection(Reason.UPLOAD_LIMIT, detail)

    def _on(self, event: push_multipart.MultipartSegment | bytes | None) -> Rejection | None:
        if isinstance(event, push_multipart.MultipartSegment):
            return self._start(event)
        part = self._part
        if part is None:  # pragma: no cover - the parser starts every part with a segment
            return invalid("the multipart body could not be read")
        if event is None:
            return self._end(part)
        if part.start < 0:
            if part.name == "" and (refused := self._name_unnamed(part)):
                return refused
            self._write_header(part, empty=False)
        self.spool.write(event)
        if part.file is not None:
            if self.scanning:
                self.scan_events.append(ScanEvent(part.index, part.file.what, event))
            return part.file.feed(event)
        if self.spool.size - part.start > self._rules.max_file:
            return Rejection(
                Reason.FILE_TOO_LARGE, f"the field {part.field[:40]!r} is larger than allowed"
            )
        return None

    def _start(self, segment: push_multipart.MultipartSegment) -> Rejection | None:
        seen: list[str] = []
        size = 0
        for name, value in segment.headerlist:
            if (refused := header_problem(name.lower(), seen)) is not None:
                return refused
            seen.append(name.lower())
            size += len(name) + len(value) + 4
        if size > self._rules.max_part_header:
            return self._limit("header")
        headers = {name.lower(): value for name, value in segment.headerlist}
        read = read_disposition(headers.get("content-disposition", ""), literal_backslashes=True)
        if isinstance(read, Rejection):
            return read
        field, filename = read
        raw_type = headers.get("content-type")
        media = parse_media_type(raw_type) if raw_type is not None else None
        if raw_type is not None and media is None:
            return invalid("a multipart part's Content-Type could not be read")
        declared = media.type if media is not None else None
        if filename is None and declared not in (None, "text/plain"):
            return invalid(f"the field {field[:40]!r} has a Content-Type but no file name")
        inspector, name = None, None
        if filename is not None:
            name = forwarded_name(
                filename, refuse=self._rules.refuse_bad_names, boundary=self._delimiter[2:]
            )
            if isinstance(name, Rejection):
                return name
            inspector = FileInspector(rules=self._rules, name=name, declared=declared)
            self._file_count += 1
        self._part = _Part(field, raw_type, filename, inspector, name, self._file_count - 1)
        return None

    def _name_unnamed(self, part: _Part) -> Rejection | None:
        """A file with content and an empty name: named ``UNNAMED``, or refused."""
        if self._rules.refuse_bad_names:
            return Rejection(Reason.FILE_NAME_REFUSED, "a file came without a name; rename it")
        part.name = UNNAMED
        return None

    def _write_header(self, part: _Part, *, empty: bool) -> None:
        """Write the part's delimiter and headers, with the name the file is forwarded as.

        An empty file with an empty name is a file input left blank: it stays so."""
        disposition = f'form-data; name="{part.field}"'
        if part.name is not None:
            disposition += f'; filename="{part.name}"'
        lines = [f"Content-Disposition: {disposition}"]
        if part.content_type is not None:
            lines.append(f"Content-Type: {part.content_type}")
        head = "".join(line + "\r\n" for line in lines).encode() + _CRLF
        self.spool.write((_CRLF if self.spool.size else b"") + self._delimiter + _CRLF + head)
        part.start = self.spool.size

    def _end(self, part: _Part) -> Rejection | None:
        if part.start < 0:
            self._write_header(part, empty=True)
        if part.file is not None:
            end = self.spool.size
            kind = part.file.finish(lambda: self.spool.window(part.start, end))
            if isinstance(kind, Rejection):
                return kind
            self.files.append(_uploaded(part, kind))
            if self.scanning:
                self.scan_events.append(ScanEvent(part.index, part.file.what, b""))
        self._part = None
        return None

    def in_progress(self) -> UploadedFile | None:
        """The file being read when the form was refused, for the audit record."""
        part = self._part
        if part is None or part.file is None:
            return None
        return _uploaded(part, "refused")


def _uploaded(part: _Part, kind: str) -> UploadedFile:
    inspector = part.file
    return UploadedFile(
        field=part.field,
        original=escaped(part.original) if part.original is not None else None,
        name=part.name,
        declared=inspector.declared if inspector is not None else None,
        kind=kind,
        size=inspector.size if inspector is not None else 0,
    )
