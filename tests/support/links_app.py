"""A small Flask app that builds absolute links, for tests of what apps behind the
gateway are told about its public address.

``proxied`` is the app behind Werkzeug's ``ProxyFix`` reading ``X-Forwarded-Proto``,
``-Host`` and ``-Prefix`` (not ``-For``), as such apps are deployed behind a proxy;
``plain`` is the same app reading nothing but the request itself. Both answer
``GET /<area>/links`` with the links Flask builds and every ``HTTP_*`` value the app
received; ``/<area>/away`` redirects there with an absolute URL. Serve one with
waitress: ``python -m waitress tests.support.links_app:proxied``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix


def _received_headers(environ: dict[str, Any]) -> dict[str, str]:
    """Every ``HTTP_*`` value as it arrived (before ``ProxyFix`` replaced ``HTTP_HOST``)."""
    received = {**environ, **environ.get("werkzeug.proxy_fix.orig", {})}
    return {k: v for k, v in received.items() if k.startswith("HTTP_") and v is not None}


def _links_app() -> Flask:
    app = Flask(__name__)

    @app.get("/<area>/links")
    def links(area: str) -> Any:
        return jsonify(
            external=url_for("links", area=area, _external=True),
            host_url=request.host_url,
            url=request.url,
            seen=_received_headers(request.environ),
        )

    @app.get("/<area>/away")
    def away(area: str) -> Any:
        return redirect(url_for("links", area=area, _external=True))

    return app


plain = _links_app()
proxied = _links_app()
proxied.wsgi_app = ProxyFix(  # type: ignore[method-assign]
    proxied.wsgi_app, x_for=0, x_proto=1, x_host=1, x_prefix=1
)
