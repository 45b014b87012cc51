"""Post-login and post-logout targets: same-origin relative paths only (I8)."""

from __future__ import annotations

from urllib.parse import unquote

from gateway.ingress import canonicalize
from gateway.model import Target

HOME = "/"


def safe_next(value: str | None) -> str:
    """``value`` if it is a same-origin relative path, else ``/``.

    Browsers read ``//host``, ``/\\host`` and ``/%5C%5Chost`` as other origins, and
    control characters could split headers, so anything but one plain absolute path
    (as the canonicalizer accepts it) falls back home.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return HOME
    decoded = unquote(value)
    if decoded.startswith(("//", "/\\")) or any(c in decoded for c in "\\\r\n\t\x00"):
        return HOME
    target = canonicalize(value)
    return target.raw if isinstance(target, Target) else HOME
