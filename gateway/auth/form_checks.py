"""Checks every sign-in and account form shares: where a POST came from, and whether
the person proved who they are recently enough to change how they sign in.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from gateway.model import Principal

RECENT_PROOF = 600.0
"""Seconds after a sign-in or a second factor during which a person may add, replace or
remove a factor: a session stolen later cannot change how its owner signs in."""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, as browsers send ``Origin``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def from_own_pages(request: web.BaseRequest, origin: str) -> bool:
    """Whether a POST may have come from the gateway's own pages (``origin``).

    Browsers say where a request comes from in ``Sec-Fetch-Site`` and ``Origin``. Our
    pages send ``Referrer-Policy: no-referrer``, under which a form's ``Origin`` is
    ``null``; that, like a missing header (a script: no browser to protect), proves
    nothing either way, and the form's own binding decides (the session's CSRF token,
    or the pending sign-in's SameSite cookie). An origin naming another site, or a
    cross-site fetch, is refused.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    sent = request.headers.get("Origin")
    return sent is None or sent == "null" or sent.lower() == origin


def proved_recently(principal: Principal, now: float) -> bool:
    """A sign-in or a second factor within ``RECENT_PROOF`` seconds."""
    return now - max(principal.auth_time, principal.mfa_time or 0.0) <= RECENT_PROOF
