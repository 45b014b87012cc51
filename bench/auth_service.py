"""The auth service behind nginx ``auth_request``: one session cookie lookup, 204 or 401.

Session tokens are read once from a file (one token per line) into an in-memory dict;
``GET /check`` answers 204 when the request's ``__Host-gatehold`` cookie is one of them.

    python bench/auth_service.py --port 9102 --tokens tokens.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvloop
from aiohttp import web

COOKIE = "__Host-gatehold"
SESSIONS = web.AppKey("sessions", dict[str, str])


async def check(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE)
    if token is not None and token in request.app[SESSIONS]:
        return web.Response(status=204)
    return web.Response(status=401)


def build_app(tokens: list[str]) -> web.Application:
    app = web.Application()
    app[SESSIONS] = dict.fromkeys(tokens, "bench@acme.test")
    app.router.add_get("/check", check)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=Path, required=True, help="one session token a line")
    args = parser.parse_args()
    tokens = [line.strip() for line in args.tokens.read_text().splitlines() if line.strip()]
    uvloop.install()
    web.run_app(build_app(tokens), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
