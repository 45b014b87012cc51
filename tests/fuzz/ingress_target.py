"""Fuzz target for ingress canonicalization (I2), run by atheris (libFuzzer).

    python -m tests.fuzz.ingress_target -max_total_time=60    # ``make fuzz`` runs it longer

Arbitrary bytes become a request-target (as aiohttp hands ``raw_path`` over: latin-1
text) and go through ``gateway.ingress.canonicalize``, with and without a public host
for absolute-form targets. Each result must satisfy what the module promises:

* it is a ``Target`` or a ``Rejection`` with the reason ``target-ambiguous``; nothing
  else is raised;
* an accepted path starts with ``/``, is ASCII, and holds no empty or dot segment, no
  backslash, ``;`` or control byte, and no encoded ``/`` or ``\\`` (I2's list);
* every escape in it is ``%`` and two upper-case hex digits, a segment decodes once to
  valid UTF-8 and holds no escape after decoding (no double encoding);
* the canonical form is a fixed point: canonicalizing it again gives the same target,
  so the form rules match is the form the upstream receives and reads the same way;
* ``Ingress.admit`` (with a fuzzed ``Host`` header too) raises nothing, admits exactly
  the canonical target, and never a Host with a path, userinfo, space or control byte.

``check`` is the property itself, so tests can run it on chosen inputs without atheris.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.model import Reason, Rejection, Target

PUBLIC_HOST = "gatehold.test"
_ESCAPE = re.compile(r"%(..)?")
_UPPER_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_QUERY_FORBIDDEN = re.compile(r"[\x00-\x20\x7f#]")


class PropertyBroken(AssertionError):
    """A canonicalization result that breaks one of the promises above."""


def _require(holds: bool, what: str, raw: str, result: object) -> None:
    if not holds:
        raise PropertyBroken(f"{what}: {raw!r} -> {result!r}")


def _check_segment(segment: str, raw: str, target: Target) -> None:
    for escape in _ESCAPE.finditer(segment):
        _require(bool(_UPPER_HEX_ESCAPE.fullmatch(escape.group(0))), "bad escape", raw, target)
    _require(segment not in (".", ".."), "dot segment", raw, target)
    decoded = unquote_to_bytes(segment).decode("utf-8")  # raises on invalid UTF-8
    _require(decoded not in (".", ".."), "encoded dot segment", raw, target)
    _require("/" not in decoded and "\\" not in decoded, "encoded slash", raw, target)
    _require(not any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded), "control char", raw, target)
    _require(not re.search(r"%[0-9A-Fa-f]{2}", decoded), "double encoding", raw, target)
    _require(unicodedata.normalize("NFKC", decoded) == decoded, "compatibility form", raw, target)


def check(raw: str, *, public_host: str | None = PUBLIC_HOST) -> Target | Rejection:
    """Canonicalize ``raw`` and raise ``PropertyBroken`` if the result breaks a promise."""
    from gateway.ingress import canonicalize

    result = canonicalize(raw, public_host=public_host)
    if isinstance(result, Rejection):
        _require(result.reason is Reason.TARGET_AMBIGUOUS, "unexpected reason", raw, result)
        return result
    _require(isinstance(result, Target), "neither Target nor Rejection", raw, result)
    path = result.path
    _require(path.startswith("/") and path.isascii(), "not an ASCII origin path", raw, result)
    _require("\\" not in path and ";" not in path and "?" not in path, "bad char", raw, result)
    _require(not _QUERY_FORBIDDEN.search(result.raw), "space or control", raw, result)
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        _require(bool(segment) or last, "empty segment", raw, result)
        _check_segment(segment, raw, result)
    again = canonicalize(result.raw, public_host=public_host)
    _require(again == result, "not idempotent", raw, (result, again))
    return result


@dataclass
class _Request:
    """The parts of a request ingress reads (``model.IncomingRequest``)."""

    raw_path: str
    headers: CIMultiDictProxy[str]
    method: str = "GET"
    cookies: dict[str, str] = field(default_factory=dict)
    remote: str | None = "127.0.0.1"
    scheme: str = "http"
    body_exists: bool = False
    content_length: int | None = None
    content: object = None
    version: tuple[int, int] = (1, 1)


def check_admit(raw: str, host: str) -> None:
    """Admit a request with ``Host: host``: an admitted one names one plain host and
    carries exactly the canonical target; nothing is raised."""
    from gateway.ingress import Ingress, canonicalize

    ingress = Ingress(public_url=f"http://{PUBLIC_HOST}")
    result = ingress.admit(_Request(raw, CIMultiDictProxy(CIMultiDict(Host=host))))
    if isinstance(result, Rejection):
        return
    _require(result.target == canonicalize(raw, public_host=PUBLIC_HOST), "target", raw, result)
    _require(not _HOST_FORBIDDEN.search(host), "host admitted", host, result)


_HOST_FORBIDDEN = re.compile(r"[\x00-\x20\x7f/\\@?#]")


def one_input(data: bytes) -> None:
    """libFuzzer's entry point: the first byte picks the shape, the rest is the target
    (and, for odd shapes above 7, a Host header before the first newline)."""
    if not data:
        return
    shape, rest = data[0], data[1:].decode("latin-1")
    host = PUBLIC_HOST
    if shape >= 8 and shape % 2:
        host, _, rest = rest.partition("\n")
    if shape % 3 == 0:
        rest = "/" + rest  # most real targets: spend the effort past the first check
    elif shape % 3 == 1:
        rest = f"http://{PUBLIC_HOST}/" + rest
    check(rest, public_host=PUBLIC_HOST if shape & 4 else None)
    check_admit(rest, host)


def main(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        import gateway.ingress  # noqa: F401 - instrumented for coverage feedback

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
