"""The virus scan of an upload: each file streamed to ``clamd`` as its parts arrive.

The upload readers (``upload_form``, ``uploads.RawUpload``) note each file's bytes as
they pass (``ScanEvent``); ``ScanRun`` sends them on to a scan of that file, one
``clamd`` connection per file, and reads the verdict when the file ends. Nothing is
forwarded before every verdict is in (``uploads``): a file carrying malware is refused
(422 ``file-infected``) before the app sees a byte of the request. A scanner that gives
no verdict refuses the upload (503 ``scanner-unavailable``, fail closed) unless the
route says ``on_unavailable: allow``; then the upload passes, recorded as unscanned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from gateway.clamd import Clamd, ClamdScan, ScanVerdict
from gateway.errors import ScannerUnavailable
from gateway.model import Reason, Rejection


class ScanEvent(NamedTuple):
    """A piece of one file, in order; ``data == b""`` ends the file."""

    file: int
    """Which file of the request (0, 1, …)."""
    what: str
    """``the file 'a.pdf'``, for the refusal."""
    data: bytes


class ScanRun:
    """The scans of one request's files."""

    def __init__(self, scanner: Clamd | None, *, allow_unavailable: bool) -> None:
        self._scanner = scanner
        self._allow = allow_unavailable
        self._open: ClamdScan | None = None
        self.unscanned = False
        """The scanner failed and the route let the upload through unscanned."""

    @property
    def summary(self) -> str:
        """``clean`` or ``unscanned``, for the audit record."""
        return "unscanned" if self.unscanned else "clean"

    async def take(self, events: Iterable[ScanEvent]) -> Rejection | None:
        """Send ``events`` on; the refusal as soon as a file is infected or unscannable."""
        for event in events:
            if self.unscanned:
                return None
            try:
                verdict = await self._step(event)
            except ScannerUnavailable:
                self.close()
                if not self._allow:
                    return Rejection(
                        Reason.SCANNER_UNAVAILABLE,
                        "the virus scanner is not available, so uploads here are refused "
                        "for now; try again later",
                    )
                self.unscanned = True
                return None
            if verdict is not None and not verdict.clean:
                return Rejection(
                    Reason.FILE_INFECTED,
                    f"{event.what} carries malware ({(verdict.signature or '')[:80]}); "
                    "nothing was passed on",
                )
        return None

    async def _step(self, event: ScanEvent) -> ScanVerdict | None:
        if event.data:
            if self._open is None:
                if self._scanner is None:
                    raise ScannerUnavailable("no scanner is configured")
                self._open = await self._scanner.open()
            await self._open.send(event.data)
            return None
        scan, self._open = self._open, None
        return await scan.verdict() if scan is not None else None  # an empty file: nothing

    def close(self) -> None:
        """Drop a scan left open (the upload was refused half-way)."""
        if self._open is not None:
            self._open.close()
            self._open = None
