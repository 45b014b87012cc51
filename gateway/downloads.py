"""The headers of every answer on a file route (``file:`` in the rules, SPEC §7).

A file route serves bytes someone uploaded, so the answer must not become a page of
the gateway's origin, nor stay in a shared cache. Whatever the upstream sent, each
answer on such a route (200, 206, 304, 416, an error, a HEAD) carries exactly:

* ``Content-Disposition``: the route's disposition and the upstream's file name,
  sanitized (``filenames``); the request path's last segment when the upstream names
  none.
* ``X-Content-Type-Options: nosniff``: the declared type is the only type.
* ``Cache-Control: private, no-store``: per-user data; nothing keeps a copy.
* ``Content-Security-Policy: sandbox``: opened in the browser anyway (``inline``, or a
  browser that ignores the disposition), HTML, SVG or XML runs no script, submits no
  form and gets an opaque origin, so it cannot read the gateway's cookies or call its
  APIs as the user. It is set on every answer rather than by content type: the type
  comes from the upstream, may be missing or wrong, and text, PDF and unknown types
  are all rendered by some browser. On an answer that is not a document (an image
  fetched by ``<img>``) the policy does nothing, so it costs nothing there. A PDF shown
  inline is refused by browsers whose viewer may not run in a sandbox: a file route
  that must show PDFs inline needs an app of its own, not this default.

The upstream's own values of these headers are replaced, never kept beside the
gateway's: a client reading the first or the last copy reads the same.
"""

from __future__ import annotations

from multidict import CIMultiDict

from gateway.filenames import content_disposition, disposition_filename

__all__ = ["FILE_ANSWER_HEADERS", "file_answer_headers"]

FILE_ANSWER_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "private, no-store"),
    ("Content-Security-Policy", "sandbox"),
)


def file_answer_headers(
    headers: CIMultiDict[str], *, disposition: str, fallback_name: str
) -> CIMultiDict[str]:
    """``headers`` of an upstream's answer on a file route, with the safe ones set.

    ``fallback_name`` names the file when the upstream's ``Content-Disposition`` does
    not (usually the request path); it is sanitized like any other name.
    """
    safe = headers.copy()
    offered = disposition_filename(safe.get("Content-Disposition", ""))
    safe["Content-Disposition"] = content_disposition(disposition, offered or fallback_name)
    for name, value in FILE_ANSWER_HEADERS:
        safe[name] = value
    return safe
