"""A file route's answer headers: the gateway's values replace the upstream's.

An upstream that sends its own, weaker values (a public cache, a permissive policy, a
second ``Content-Disposition``) must not leave a copy beside the gateway's, since
clients differ in which copy they read.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from multidict import CIMultiDict

from gateway.downloads import FILE_ANSWER_HEADERS, file_answer_headers

SAFE = dict(FILE_ANSWER_HEADERS)


def upstream(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


CONFLICTING = upstream(
    ("Content-Type", "text/html"),
    ("Content-Disposition", 'inline; filename="../../index.html"'),
    ("content-disposition", 'attachment; filename="second.html"'),
    ("Cache-Control", "public, max-age=31536000"),
    ("cache-control", "immutable"),
    ("Content-Security-Policy", "default-src *; script-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "sniff"),
    ("ETag", '"v1"'),
    ("Content-Range", "bytes 0-0/42"),
)


@pytest.mark.parametrize("disposition", ["attachment", "inline"])
def test_the_upstreams_values_are_replaced_not_duplicated(disposition: str) -> None:
    headers = file_answer_headers(CONFLICTING, disposition=disposition, fallback_name="/x")
    for name, value in SAFE.items():
        assert headers.getall(name) == [value], name
    assert headers.getall("Content-Disposition") == [
        f"{disposition}; filename=\"index.html\"; filename*=UTF-8''index.html"
    ]
    assert headers["Content-Type"] == "text/html", "the declared type is kept, never sniffed"
    assert headers["ETag"] == '"v1"' and headers["Content-Range"] == "bytes 0-0/42"
    assert CONFLICTING["Cache-Control"] == "public, max-age=31536000", "input left alone"


NAMED = {
    "the upstream's name": ('attachment; filename="q3.pdf"', "/files/7", "q3.pdf"),
    "the upstream's UTF-8 name": ("inline; filename*=UTF-8''%C3%A9t%C3%A9.txt", "/f/1", "été.txt"),
    "the path when the upstream names none": ("attachment", "/files/report.csv", "report.csv"),
    "the path when there is no header": (None, "/files/../../7", "7"),
    "the default when nothing is left": (None, "/files/", "download"),
}


@pytest.mark.parametrize(("sent", "fallback", "name"), NAMED.values(), ids=NAMED.keys())
def test_the_file_is_named_by(sent: str | None, fallback: str, name: str) -> None:
    headers = upstream(("Content-Disposition", sent)) if sent is not None else upstream()
    safe = file_answer_headers(headers, disposition="attachment", fallback_name=fallback)
    assert safe["Content-Disposition"].startswith("attachment; filename=")
    assert safe["Content-Disposition"].endswith("filename*=UTF-8''" + quote(name, safe=""))
