"""A real OpenID Provider (npm ``oidc-provider``, pinned in ``tests/support/node``) on loopback.

``make test`` installs it with ``npm ci``; the process is started per test with its
clients and accounts, and stopped afterwards. Its development login page accepts any
password; the login name picks the account.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
from yarl import URL

from tests.support.components import require_component
from tests.support.servers_base import free_port

HERE = Path(__file__).resolve().parent / "node"
CLIENT_SECRET = "test-client-secret-not-a-credential"


@dataclass(frozen=True)
class OpenIdProvider:
    issuer: str
    client_id: str
    client_secret: str

    def provider_settings(self, name: str, **extra: Any) -> dict[str, Any]:
        """The gateway's ``auth.oidc`` entry for this provider."""
        return {
            "name": name,
            "label": name.title(),
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": ["openid", "email", "groups"],
            **extra,
        }


@asynccontextmanager
async def openid_provider(
    *,
    redirect_uris: list[str],
    accounts: Mapping[str, Mapping[str, Any]],
    client_id: str = "gatehold",
    port: int | None = None,
    jwks: Mapping[str, Any] | None = None,
) -> AsyncIterator[OpenIdProvider]:
    """The provider on ``port`` (default: a free one), signing with ``jwks`` (private
    keys, default: new ones each start). Start it again with both to restart it."""
    node = shutil.which("node")
    if node is None:
        require_component("node", "install Node.js (Debian package nodejs) to run oidc-provider")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        require_component(
            "oidc-provider", "run `npm ci --prefix tests/support/node` (make test does)"
        )
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}"
    clients = [
        {"client_id": client_id, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}
    ]
    log = tempfile.TemporaryFile()
    process = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "provider.mjs"),
        cwd=HERE,
        env={
            **os.environ,
            "PORT": str(port),
            "CLIENTS": json.dumps(clients),
            "ACCOUNTS": json.dumps(accounts),
            **({"JWKS": json.dumps(jwks)} if jwks is not None else {}),
            "NODE_NO_WARNINGS": "1",
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    try:
        await _wait_ready(issuer, process, log)
        yield OpenIdProvider(issuer, client_id, CLIENT_SECRET)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()


def signing_keys() -> dict[str, Any]:
    """A private JWK set for ``openid_provider(jwks=...)``: one RSA key with a fixed id."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    return {"keys": [{**jwk, "kid": "restart-proof", "use": "sig", "alg": "RS256"}]}


async def _wait_ready(issuer: str, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if process.returncode is not None:
                log.seek(0)
                error = log.read().decode(errors="replace")
                raise RuntimeError(f"oidc-provider exited: {error[-2000:]}")
            try:
                async with http.get(f"{issuer}/.well-known/openid-configuration") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"oidc-provider did not answer at {issuer}")


async def sign_in_at_provider(authorize_url: str, login: str, *, until: str) -> str:
    """Walk the provider's login page like a browser would; the URL it sends us back to.

    Follows redirects by hand, posts the development login form with ``login``, and stops
    at the first redirect that starts with ``until`` (the gateway's callback), without
    opening it — so tests can decide which "browser" delivers the callback.
    """
    jar = aiohttp.CookieJar(unsafe=True)  # the provider lives on an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        url, form = authorize_url, None
        for _ in range(12):
            if form is None:
                response = await http.get(url, allow_redirects=False)
            else:
                response = await http.post(url, data=form, allow_redirects=False)
                form = None
            async with response:
                if response.status in (302, 303):
                    url = str(response.url.join(URL(response.headers["Location"])))
                    if url.startswith(until):
                        return url
                    continue
                page = await response.text()
                action = re.search(r'<form[^>]*action="([^"]+)"', page)
                if response.status != 200 or action is None or 'name="login"' not in page:
                    raise AssertionError(
                        f"unexpected provider page {response.status}: {page[:300]}"
                    )
                url = str(response.url.join(URL(action.group(1))))
                form = {"prompt": "login", "login": login, "password": "any"}
    raise AssertionError("the provider never redirected back")
