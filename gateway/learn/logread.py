"""Access log lines → requests: nginx/Apache combined and common, Gatehold's JSON.

Each line is read on its own; a line that is not a request of the format is counted
with its line number and why, never raised. Only what a line really says is kept:
the method, the target as logged, the status, and whether the target could carry a
query string at all (Gatehold's own access line never writes one, since magic-link
tokens travel there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

LogFormat = Literal["auto", "combined", "common", "gatehold-json"]
FORMATS: Final[tuple[LogFormat, ...]] = ("auto", "combined", "common", "gatehold-json")

_COMMON: Final = (
    r'(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" '
    r"(?P<status>[0-9]{3}) (?P<bytes>[0-9]+|-)"
)
COMMON: Final = re.compile(_COMMON + r"\s*")
COMBINED: Final = re.compile(
    _COMMON + r' "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"(?: .*)?\s*'
)
"""Combined: common plus referer and user agent; anything a site appends after them
(nginx's ``$request_time``, an upstream address) is ignored."""
_REQUEST_LINE: Final = re.compile(r"(?P<method>[A-Z][A-Z-]{0,19}) (?P<target>\S+) HTTP/[0-9.]+")
ACCESS_LOGGER: Final = "gatehold.access"


@dataclass(frozen=True, slots=True)
class Request:
    """One request a log says the app (or the gateway) answered."""

    method: str
    target: str
    """The request target as logged: a path, with ``?query`` when the format has one."""
    status: int
    query_known: bool
    """Whether the format writes query strings (no query then means there was none)."""
    where: str
    """``file:line``, for the evidence comments."""
    refused_by_gateway: bool = False
    """Gatehold's JSON log: the gateway refused it, so it never reached the app."""


@dataclass(frozen=True, slots=True)
class LineProblem:
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


KEPT_PROBLEMS: Final = 100
"""Unreadable lines kept with their number (all are counted)."""


@dataclass(slots=True)
class LogCounts:
    """What the lines of one or more logs gave, counted as they stream by."""

    requests: int = 0
    unreadable: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    """The first ``KEPT_PROBLEMS`` unreadable lines."""
    other_lines: int = 0
    """Well-formed lines that are not access lines (Gatehold's start or shutdown line)."""
    blank: int = 0


def iter_log(
    lines: Iterable[str], *, source: str, counts: LogCounts, format: LogFormat = "auto"
) -> Iterator[Request]:
    """Each request in ``lines``, one at a time (``source`` names the file in
    messages); everything else is counted in ``counts``."""
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            counts.blank += 1
            continue
        parsed = _parse(line, f"{source}:{number}", format)
        if isinstance(parsed, Request):
            counts.requests += 1
            yield parsed
        elif parsed is None:
            counts.other_lines += 1
        else:
            counts.unreadable += 1
            if len(counts.problems) < KEPT_PROBLEMS:
                counts.problems.append(LineProblem(f"{source}:{number}", parsed))


def read_log(
    lines: Iterable[str], *, source: str, format: LogFormat = "auto"
) -> tuple[list[Request], LogCounts]:
    """Every request in ``lines`` at once, and the counts."""
    counts = LogCounts()
    return list(iter_log(lines, source=source, counts=counts, format=format)), counts


def _parse(line: str, where: str, format: LogFormat) -> Request | str | None:
    """A request, ``None`` for a line that is well-formed but no request, or why not."""
    if format == "gatehold-json" or (format == "auto" and line.lstrip().startswith("{")):
        return _json_line(line, where)
    if format in ("combined", "auto"):
        found = COMBINED.fullmatch(line)
        if found is not None:
            return _request_line(found["request"], found["status"], where)
        if format == "combined":
            return "not a combined log line"
    found = COMMON.fullmatch(line)
    if found is None:
        return f"not a {'common' if format == 'common' else 'combined or common'} log line"
    return _request_line(found["request"], found["status"], where)


def _request_line(request: str, status: str, where: str) -> Request | str:
    found = _REQUEST_LINE.fullmatch(request)
    if found is None:
        shown = request if len(request) <= 40 else request[:40] + "…"
        return f"no request line in {shown!r}"
    return Request(found["method"], found["target"], int(status), True, where)


def _json_line(line: str, where: str) -> Request | str | None:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return "not a JSON object"
    if not isinstance(data, dict):
        return "not a JSON object"
    logger = data.get("logger")
    if logger is not None and logger != ACCESS_LOGGER:
        return None
    method, path, status = data.get("method"), data.get("path"), data.get("status")
    if logger is None and method is None and path is None:
        return None
    if method == "" and path == "" and isinstance(status, int):
        return None  # a request the parser refused: the line names nothing to learn
    if not isinstance(method, str) or not re.fullmatch(r"[A-Z][A-Z-]{0,19}", method):
        return "an access line without a method"
    if not isinstance(path, str) or not path.startswith("/"):
        return "an access line without a path"
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return "an access line without a status"
    refused = data.get("decision") == "deny"
    return Request(method, path, status, False, where, refused_by_gateway=refused)
