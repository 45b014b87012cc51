"""Signing keys of a trusted issuer, fetched from its JWKS and cached.

A token signed with a key id we have not seen makes us fetch the set again (the issuer
rotated its keys), but at most once per ``refetch_after`` seconds, so a stream of
forged key ids cannot turn the gateway into a JWKS-fetching amplifier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import jwt

log = logging.getLogger("gatehold.jwks")

JwksUrl = Callable[[], Awaitable[str]]
"""Where the set lives; a coroutine because an OIDC provider names it in its discovery."""


class JwksCache:
    """Keys by key id, refetched on an unknown id (rotation), rate-limited."""

    def __init__(
        self, url: JwksUrl, *, http: Callable[[], aiohttp.ClientSession], refetch_after: float
    ) -> None:
        self._url = url
        self._http = http
        self._refetch_after = refetch_after
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id; with no id, the issuer's only key (if it has one)."""
        if self._find(kid) is None and time.monotonic() - self._fetched_at > self._refetch_after:
            async with self._lock:
                if self._find(kid) is None:
                    await self._fetch()
        return self._find(kid)

    async def verify(
        self,
        token: str,
        *,
        algorithms: Sequence[str],
        audience: str,
        issuer: str,
        leeway: float,
    ) -> dict[str, Any] | str:
        """The token's claims, or the reason code it was refused with.

        Only ``algorithms`` are accepted (never ``none``); the key must be one of the
        issuer's; ``exp``, ``iat``, ``iss``, ``aud`` and ``sub`` must be present and valid.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return "token-malformed"
        if header.get("alg") not in algorithms:
            return "token-algorithm"
        key = await self.key(str(header.get("kid") or ""))
        if key is None:
            return "token-key-unknown"
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(algorithms),
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError:
            return "token-signature"
        except jwt.ExpiredSignatureError:
            return "token-expired"
        except jwt.InvalidIssuerError:
            return "token-issuer"
        except jwt.InvalidAudienceError:
            return "token-audience"
        except jwt.PyJWTError:
            return "token-invalid"
        return claims

    def _find(self, kid: str) -> jwt.PyJWK | None:
        if kid:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            url = await self._url()
            async with self._http().get(url) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (TimeoutError, aiohttp.ClientError, ValueError, jwt.PyJWTError) as error:
            log.warning("could not fetch the JWKS: %r", error)
            return
        self._keys = {key.key_id or f"#{index}": key for index, key in enumerate(keys)}
