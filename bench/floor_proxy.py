"""The Python floor: a bare aiohttp pass-through proxy on uvloop, with no checks at all.

Every request goes to one upstream through a pooled ``ClientSession``; bodies stream
in 64 KiB chunks both ways. Only hop-by-hop headers are dropped. Whatever Gatehold
adds on top of this is the cost of its checks.

    python bench/floor_proxy.py --port 9103 --upstream http://127.0.0.1:9101
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

CHUNK = 64 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
CLIENT = web.AppKey("client", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def _forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in HOP_BY_HOP:
            kept.add(name, value)
    return kept


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def proxy(request: web.Request) -> web.StreamResponse:
    url = URL(request.app[UPSTREAM] + request.raw_path, encoded=True)
    data = _body(request) if request.body_exists else None
    async with request.app[CLIENT].request(
        request.method,
        url,
        headers=_forwardable(request.headers),
        data=data,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_forwardable(upstream.headers))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response


async def _client(app: web.Application) -> AsyncIterator[None]:
    app[CLIENT] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=30),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    )
    yield
    await app[CLIENT].close()


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_client)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9101")
    args = parser.parse_args()
    uvloop.install()
    web.run_app(
        build_app(args.upstream), host=args.host, port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
