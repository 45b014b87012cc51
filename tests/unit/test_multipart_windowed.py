"""A spooled form is read in windows, and the strict reader's verdicts do not change.

``multipart.parse_fields`` runs over the body's bytes when it is in memory and over a
``SpooledBytes`` (one window of the spool file at a time) when it was spooled. The
tests below hold the windowed reading to the in-memory one: the same ``find`` and
slices as ``bytes``, and the same fields or the same refusal, word for word, on many
generated forms, with windows small enough that boundaries, CRLFs and header ends
fall across every window edge. Then what it is for: a large form costs a window, not
its size, in heap and in RSS.
"""

from __future__ import annotations

import io
import re
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bodies import CHUNK, MediaType, Spool, SpooledBytes
from gateway.model import Rejection
from gateway.multipart import FILE, parse_fields

MIB = 1024 * 1024
BOUNDARIES = ["bnd", "-", "--", "x" * 70, "a'b(c)+_,./:=?"]


def form_type(boundary: str) -> MediaType:
    return MediaType("multipart/form-data", {"boundary": boundary})


def relevant(name: str) -> bool:
    return name.lower().lstrip("_").startswith("method") or name in ("id", "_charset_")


def spooled(data: bytes, window: int = CHUNK) -> Iterator[SpooledBytes]:
    with tempfile.TemporaryFile() as file:
        file.write(data)
        file.flush()
        yield SpooledBytes(file, len(data), window)


def verdicts(
    data: bytes, boundary: str, window: int
) -> tuple[list[tuple[str, str]] | Rejection, list[tuple[str, str]] | Rejection]:
    """What the reader makes of ``data`` in memory, and spooled with ``window``."""
    media = form_type(boundary)
    for view in spooled(data, window):
        return parse_fields(data, media, relevant), parse_fields(view, media, relevant)
    raise AssertionError("unreachable")


# --- SpooledBytes is bytes, for find and slices -------------------------------------

ALPHABET = st.sampled_from([b"a", b"b", b"\r", b"\n", b"-"])
POSITIONS = st.none() | st.integers(-12, 80)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, object, object, object]]:
    """Finds and slices interleaved, so each runs from whatever window the last left."""
    steps = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            sub = b"".join(draw(st.lists(ALPHABET, min_size=1, max_size=5)))
            steps.append(("find", sub, draw(POSITIONS), draw(POSITIONS)))
        else:
            steps.append(("slice", draw(POSITIONS), draw(POSITIONS), None))
    return steps


@settings(max_examples=400, deadline=None)
@given(
    data=st.lists(ALPHABET, max_size=64).map(b"".join),
    window=st.integers(1, 16),
    steps=operations(),
)
def test_find_and_slices_answer_as_bytes_do(
    data: bytes, window: int, steps: list[tuple[str, object, object, object]]
) -> None:
    for view in spooled(data, window):
        assert len(view) == len(data)
        for kind, first, second, third in steps:
            if kind == "find":
                assert isinstance(first, bytes)
                start = 0 if second is None else second
                assert view.find(first, start, third) == data.find(first, start, third)  # type: ignore[arg-type]
            else:
                assert view[first:second] == data[first:second]  # type: ignore[misc]


def test_empty_patterns_and_strided_slices_are_not_read() -> None:
    for view in spooled(b"abc"):
        with pytest.raises(ValueError):
            view.find(b"")
        with pytest.raises(ValueError):
            view[::2]


# --- parse_fields: the same verdicts in windows as in memory ------------------------

NAMES = ["_method", "_METHOD", "_method[]", "id", "other", "f", "_charset_"]
CLEAN_PIECES = [b"DELETE", b"value", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"-", b"--", b"\xc3\xa9"]
RISKY_PIECES = [b"\xff", b"--", b"\r\n--", b"\r\n---"]
"""Besides the drawn form's delimiter, alone and after a CRLF."""
CLEAN_HEADERS = [
    b"",
    b"",
    b"Content-Type: text/plain\r\n",
    b"Content-Type: text/plain; charset=utf-8\r\n",
]
RISKY_HEADERS = [
    b"Content-Type: text/plain; charset=latin1\r\n",
    b"Content-Type: \r\n",
    b"Content-Length: 3\r\n",
    b"X-Other: 1\r\n",
    b" folded\r\n",
    b'Content-Disposition: form-data; name="again"\r\n',
]


@st.composite
def parts(draw: st.DrawFn, delimiter: bytes, clean: bool) -> bytes:
    """One part: a field or a file, with headers and content a reader must get right,
    or (unless ``clean``) with one of the things the strict reader refuses."""
    name = draw(st.sampled_from(NAMES if clean else [*NAMES, 'a"b', "a\\\\b"])).encode()
    dispositions = [
        b'Content-Disposition: form-data; name="%s"\r\n' % name,
        b'Content-Disposition: form-data; name="%s"; filename="x.txt"\r\n' % name,
        b"Content-Disposition: form-data; name=%s\r\n" % name,
    ]
    headers, pieces = CLEAN_HEADERS, CLEAN_PIECES
    if not clean:
        dispositions += [
            b'Content-Disposition: attachment; name="%s"\r\n' % name,
            b'content-disposition:form-data;name="%s"\r\n' % name,
            b"",
        ]
        headers = CLEAN_HEADERS + RISKY_HEADERS
        pieces = CLEAN_PIECES + RISKY_PIECES + [delimiter, b"\r\n" + delimiter]
    head = draw(st.sampled_from(dispositions)) + draw(st.sampled_from(headers))
    value = b"".join(draw(st.lists(st.sampled_from(pieces), max_size=6)))
    if draw(st.integers(0, 9)) == 0:
        value += b"z" * draw(st.integers(100, 3000))  # longer than many windows
    return head + b"\r\n" + value


@st.composite
def forms(draw: st.DrawFn) -> tuple[str, bytes]:
    """A form, often well made; else spoilt the ways multipart readers disagree on."""
    boundary = draw(st.sampled_from(BOUNDARIES))
    delimiter = b"--" + boundary.encode()
    clean = draw(st.booleans())
    drawn = draw(st.lists(parts(delimiter, clean), max_size=8))
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in drawn)
    endings = [b"--\r\n", b"--"]
    body += delimiter + draw(st.sampled_from(endings if clean else [*endings, b"--\r\nx", b""]))
    if not clean and draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        spoil = draw(st.sampled_from([b"", b"\n", b"\r\n", b"-", delimiter, b"\r\n" + delimiter]))
        cut = draw(st.integers(0, 3))
        body = body[:at] + spoil + body[at + cut :]
    return boundary, body


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=forms(), window=st.integers(1, 90))
def test_windowed_reading_gives_the_in_memory_verdict(form: tuple[str, bytes], window: int) -> None:
    boundary, body = form
    expected, actual = verdicts(body, boundary, window)
    assert actual == expected


SWEPT = {
    "accepted": (
        "bnd",
        b'--bnd\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n'
        b'--bnd\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n--bn\r\n-\r\n\r\n-bnd--\r\n--b\r\n"
        b'--bnd\r\nContent-Disposition: form-data; name="id"\r\n\r\n7\r\n--bnd--\r\n',
    ),
    "self-overlapping boundary, accepted": (
        "-",
        b'---\r\nContent-Disposition: form-data; name="_method"\r\n\r\n--\r\n-- -\r\n'
        b'---\r\nContent-Disposition: form-data; name="x"\r\n\r\n-\r\n--\r\n-----\r\n',
    ),
    "self-overlapping boundary, refused": (
        "-",
        b'---\r\nContent-Disposition: form-data; name="_method"\r\n\r\n--\r\n--\r\n'
        b'---\r\nContent-Disposition: form-data; name="x"\r\n\r\n----\r\n-----',
    ),
    "bare LF before a boundary": (
        "bnd",
        b'--bnd\r\nContent-Disposition: form-data; name="_method"\r\n\r\nPUT\n--bnd\r\n'
        b'Content-Disposition: form-data; name="b"\r\n\r\n2\r\n--bnd--\r\n',
    ),
    "a header block that never ends": (
        "bnd",
        b'--bnd\r\nContent-Disposition: form-data; name="_method"\r\nPUT\r\n--bnd--\r\n',
    ),
    "no headers": ("bnd", b"--bnd\r\n\r\nPUT\r\n--bnd--\r\n"),
    "data after the close": ("bnd", b"--bnd\r\n\r\n\r\n\r\n--bnd--\r\nx"),
}


@pytest.mark.parametrize(("boundary", "body"), list(SWEPT.values()), ids=list(SWEPT))
def test_every_window_edge_gives_the_same_verdict(boundary: str, body: bytes) -> None:
    """Each window size puts the edges elsewhere: every delimiter, CRLF and header end
    of these forms is split across an edge by one of them."""
    expected = parse_fields(body, form_type(boundary), relevant)
    for window in range(1, len(body) + 2):
        assert verdicts(body, boundary, window)[1] == expected, window


def test_many_small_parts_are_read_a_few_times_over_at_most() -> None:
    """Windows move forward; a form of many small parts is not re-read per part."""
    body = (
        b"".join(
            b'--bnd\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n%d\r\n' % (i, i)
            for i in range(20_000)
        )
        + b'--bnd\r\nContent-Disposition: form-data; name="_method"\r\n\r\nPATCH\r\n--bnd--\r\n'
    )
    source = _Counting(body)
    fields = parse_fields(SpooledBytes(source, len(body)), form_type("bnd"), relevant)
    assert fields == parse_fields(body, form_type("bnd"), relevant)
    assert isinstance(fields, list) and fields[-1] == ("_method", "PATCH") and len(fields) == 20_001
    assert source.read_bytes <= 3 * len(body)


class _Counting(io.BytesIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


# --- what it is for: a large form costs a window -----------------------------------

HEAD = b'--bnd\r\nContent-Disposition: form-data; name="f"; filename="big.txt"\r\n\r\n'
TAIL = b'\r\n--bnd\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--bnd--\r\n'


def large_form(mib: int) -> Spool:
    spool = Spool()
    spool.write(HEAD)
    line = b"a line of an uploaded file, with a CR\r and an LF\n and dashes --bn--\r\n"
    piece = line * (MIB // len(line))
    for _ in range(mib):
        spool.write(piece)
    spool.write(TAIL)
    return spool


def test_a_large_form_is_read_in_a_window_of_heap() -> None:
    body = large_form(16).body()
    view = body.view()
    assert isinstance(view, SpooledBytes)
    tracemalloc.start()
    try:
        fields = parse_fields(view, form_type("bnd"), relevant)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fields == [("f", FILE), ("_method", "DELETE")]
    assert peak < 2 * CHUNK + 16 * 1024, peak
    assert fields == parse_fields(body.content(), form_type("bnd"), relevant)


def test_a_small_body_is_scanned_as_its_bytes() -> None:
    spool = Spool()
    spool.write(HEAD + b"x" + TAIL)
    assert spool.body().view() == HEAD + b"x" + TAIL


def _peak_rss() -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) * 1024


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def test_scanning_a_64_mib_form_keeps_rss_flat() -> None:
    """RSS, not only the heap: no page of the spool file is mapped into the process
    (a memory map of it would add the 64 MiB a scan touches to the peak)."""
    body = large_form(64).body()
    _reset_peak_rss()
    before = _peak_rss()
    fields = parse_fields(body.view(), form_type("bnd"), relevant)
    grown = _peak_rss() - before
    assert fields == [("f", FILE), ("_method", "DELETE")]
    assert grown < 16 * MIB, f"peak RSS grew by {grown / MIB:.1f} MiB"
