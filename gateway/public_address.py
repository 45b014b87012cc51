"""The gateway's public address, as the apps behind it are told about it.

Apps build absolute links and redirects from the request they receive. Behind the
gateway that request came from the gateway, so each forwarded request says where the
client really was: ``X-Forwarded-Host``, ``X-Forwarded-Proto`` and, when the gateway is
served under a path, ``X-Forwarded-Prefix`` (what Werkzeug's ``ProxyFix``, Django's
``USE_X_FORWARDED_HOST``, Rails and Spring read). All three come from
``server.public_url``, never from the client's ``Host`` or scheme: the client's own
``X-Forwarded-*`` headers are removed before these are set (``gateway.headers``).
An upstream with ``preserve_host: true`` also gets the public host as ``Host``, for
apps that read no ``X-Forwarded-*`` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class PublicAddress:
    """Scheme, host (with port, if any) and path prefix of ``server.public_url``."""

    scheme: str
    host: str
    prefix: str = ""
    """The path the gateway is served under, without a trailing slash; ``""`` at the root."""

    @classmethod
    def of(cls, public_url: str) -> PublicAddress:
        parts = urlsplit(public_url)
        return cls(parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"))

    def forwarded_headers(self) -> tuple[tuple[str, str], ...]:
        """The ``X-Forwarded-*`` headers every forwarded request carries."""
        headers = (("X-Forwarded-Host", self.host), ("X-Forwarded-Proto", self.scheme))
        return (*headers, ("X-Forwarded-Prefix", self.prefix)) if self.prefix else headers
