"""Uploads are untrusted: a route's ``upload:`` rules, applied before the app sees a byte.

An allowed request on a route with ``upload`` rules has its body read here, under the
route's ``max_body`` (counted as it streams; 413 the moment it is passed), and judged
as it arrives: a ``multipart/form-data`` form part by part (``upload_form``), any other
body as one file (``RawUpload``). Each file's type is decided by its content, its
size bounded by ``max_file`` and its name sanitized or refused (``upload_files``).

The body is spooled (memory up to 1 MiB, then a temporary file) and forwarded only
once every file passed, so a refused upload reaches the app not even in part. The
check runs inside ``pipeline.decide`` like the tenant binding: ``rules simulate``
refuses what live traffic refuses, and the refusal is the request's audited
decision, with what was seen of each file (``UploadReport``) in the audit record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from gateway.bodies import Body, BodyKind, Spool, limit_refusal, request_media_type
from gateway.body_stream import CHUNK, RequestBody
from gateway.clamd import Clamd
from gateway.errors import BodyStalled, BodyTooLarge
from gateway.model import (
    IncomingRequest,
    Rejection,
    Route,
    UploadedFile,
    UploadReport,
    UploadRules,
)
from gateway.upload_files import FileInspector
from gateway.upload_form import FormUpload
from gateway.upload_scan import ScanEvent, ScanRun


@dataclass(frozen=True, slots=True)
class UploadChecked:
    """The result of the upload check: what to forward, or why not, and what was seen."""

    body: Body | None
    """The body to forward (a form written out anew); ``None`` when refused or absent."""
    report: UploadReport | None
    """The files seen; ``None`` when the request carried no body."""
    refusal: Rejection | None = None


NOTHING = UploadChecked(None, None)


class RawUpload:
    """A body that is not a form: one file, forwarded byte for byte."""

    def __init__(self, rules: UploadRules, declared: str | None) -> None:
        self.spool = Spool()
        self._file = FileInspector(rules=rules, name=None, declared=declared)
        self.files: list[UploadedFile] = []
        self.scanning = False
        self.scan_events: list[ScanEvent] = []

    def feed(self, chunk: bytes) -> Rejection | None:
        if chunk:
            self.spool.write(chunk)
            if self.scanning:
                self.scan_events.append(ScanEvent(0, self._file.what, chunk))
            return self._file.feed(chunk)
        size = self.spool.size
        kind = self._file.finish(lambda: self.spool.window(0, size))
        if isinstance(kind, Rejection):
            return kind
        self.files.append(self._facts(kind))
        if self.scanning:
            self.scan_events.append(ScanEvent(0, self._file.what, b""))
        return None

    def in_progress(self) -> UploadedFile | None:
        return None if self.files else self._facts("refused")

    def _facts(self, kind: str) -> UploadedFile:
        declared = self._file.declared
        return UploadedFile("", None, None, declared, kind, self._file.size)


class UploadInspector:
    """Checks the files of requests on upload routes (built once, shared by requests)."""

    def __init__(
        self,
        *,
        body_idle_timeout: float = 10.0,
        body_total_timeout: float = 120.0,
        scanner: Clamd | None = None,
    ) -> None:
        self._idle = body_idle_timeout
        self._total = body_total_timeout
        self._scanner = scanner

    async def check(
        self, request: IncomingRequest, route: Route, body: bytes | IO[bytes] | None
    ) -> UploadChecked:
        """Read and judge the body of an allowed request on ``route`` (which has rules).

        ``body`` is the body when an earlier stage already read it (a method override
        check), else the request's stream is read here.
        """
        rules = route.upload
        if rules is None or (body is None and not request.body_exists):
            return NOTHING
        if request.content_length is not None and request.content_length > route.max_body_bytes:
            return _refused(limit_refusal(BodyTooLarge()), [])
        media = request_media_type(request)
        if isinstance(media, Rejection):
            return _refused(media, [])
        reader: FormUpload | RawUpload | Rejection
        if media is not None and media.kind is BodyKind.MULTIPART:
            reader = FormUpload.open(media, rules)
        else:
            reader = RawUpload(rules, media.type if media is not None else None)
        if isinstance(reader, Rejection):
            return _refused(reader, [])
        scan = None
        if rules.scan:
            scan = ScanRun(self._scanner, allow_unavailable=rules.scan_unavailable_allow)
            reader.scanning = True
        try:
            return await self._read(reader, self._chunks(request, route, body), scan)
        finally:
            if scan is not None:
                scan.close()

    async def _read(
        self, reader: FormUpload | RawUpload, chunks: AsyncIterator[bytes], scan: ScanRun | None
    ) -> UploadChecked:
        refused: Rejection | None = None
        try:
            async for chunk in chunks:
                if (refused := await _feed(reader, chunk, scan)) is not None:
                    break
            else:
                refused = await _feed(reader, b"", scan)
        except (BodyTooLarge, BodyStalled) as failure:
            refused = limit_refusal(failure)
        if refused is not None:
            reader.spool.discard()
            current = reader.in_progress()
            return _refused(refused, [*reader.files, *([current] if current else [])])
        report = UploadReport(tuple(reader.files), scan=scan.summary if scan else "")
        return UploadChecked(reader.spool.body(), report)

    def _chunks(
        self, request: IncomingRequest, route: Route, body: bytes | IO[bytes] | None
    ) -> AsyncIterator[bytes]:
        if body is not None:
            return _pieces(body)
        deadline = time.monotonic() + self._total
        reader = RequestBody(
            request, limit=route.max_body_bytes, idle=self._idle, deadline=deadline
        )
        return reader.stream()


async def _feed(
    reader: FormUpload | RawUpload, chunk: bytes, scan: ScanRun | None
) -> Rejection | None:
    """The next bytes to the reader, and the file bytes it noted on to the scan."""
    refused = reader.feed(chunk)
    if refused is None and scan is not None and reader.scan_events:
        refused = await scan.take(reader.scan_events)
    reader.scan_events.clear()
    return refused


async def _pieces(body: bytes | IO[bytes]) -> AsyncIterator[bytes]:
    """A body already read, in ``CHUNK`` pieces."""
    if isinstance(body, bytes):
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]
        return
    body.seek(0)
    while piece := body.read(CHUNK):
        yield piece


def _refused(rejection: Rejection, files: list[UploadedFile]) -> UploadChecked:
    report = UploadReport(tuple(files), refused=rejection.detail or rejection.reason.value)
    return UploadChecked(None, report, rejection)
