"""OIDC single sign-on: authorization code with PKCE (S256), state and nonce (SPEC §4).

A login is a round trip through the person's browser, so everything the callback must
check (state, nonce, PKCE verifier, the provider it was started with, where to go
next) travels in a sealed, short-lived cookie set on the browser that started it. A
callback opened in any other browser has no such cookie and is refused; a tampered
state does not match it; a code can be exchanged once (the provider enforces it).

The callback then checks, in order: the ``iss`` response parameter (RFC 9207, against
provider mix-up), the code exchange, and the ID token — an explicit algorithm list
(never ``none``), a signature by the provider's own JWKS key, issuer, audience,
expiry, and the nonce. People are keyed by (issuer, subject); claims map to
memberships through ``group_grants``. Protocol pieces (PKCE, request building) come
from Authlib, token verification from PyJWT, sealing from ``cryptography``'s Fernet.
Authlib is imported where it is first used, so a gateway without an OIDC provider
never loads it.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.emails import normalize_email
from gateway.auth.jwks import JwksCache
from gateway.auth.keys import fernet_of
from gateway.auth.oidc_accounts import sign_in_person
from gateway.auth.oidc_values import Identified, LinkRequest, OidcSignIn, Refused
from gateway.config.durations import parse_duration
from gateway.config.settings import OidcProviderSettings
from gateway.model import Membership

__all__ = ["FLOW_LIFETIME", "Identified", "LinkRequest", "OidcLogins", "OidcSignIn", "Refused"]

log = logging.getLogger("gatehold.oidc")

FLOW_LIFETIME = 600
"""Seconds a person has between leaving for the provider and coming back."""
JWKS_REFETCH_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class Flow:
    """One login in progress, sealed into the browser's flow cookie."""

    provider: str
    state: str
    nonce: str
    verifier: str
    rd: str
    step_up: bool
    started_at: float
    link: LinkRequest | None = None
    """Set when a signed-in person adds this provider's account to their own."""


class FlowSeal:
    """Encrypts and authenticates flows (Fernet: AES-128-CBC + HMAC-SHA256, timestamped)."""

    def __init__(self, secret: bytes) -> None:
        self._fernet = fernet_of(secret, "flow-sealing")

    def seal(self, flow: Flow) -> str:
        return self._fernet.encrypt(json.dumps(asdict(flow)).encode()).decode()

    def open(self, sealed: str | None) -> Flow | None:
        """The flow, or ``None`` if missing, forged or older than ``FLOW_LIFETIME``."""
        if not sealed:
            return None
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode(), ttl=FLOW_LIFETIME))
            link = data.pop("link", None)
            return Flow(**data, link=LinkRequest(**link) if link is not None else None)
        except (InvalidToken, ValueError, TypeError):
            return None


class Unreachable:
    """The provider could not be reached (refused, reset, timed out): not a refusal."""


UNREACHABLE = Unreachable()


class Provider:
    """One configured OpenID Provider: discovery, authorization URL, code exchange, ID token."""

    def __init__(
        self,
        settings: OidcProviderSettings,
        *,
        redirect_uri: str,
        http: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.settings = settings
        self.leeway = parse_duration(settings.leeway)
        self.redirect_uri = redirect_uri
        self._http = http
        self._metadata: dict[str, Any] | None = None
        self._recheck = parse_duration(settings.discovery_recheck)
        self._checked_at = -float("inf")
        self._reachable = False
        """Whether the last read of the discovery document worked."""
        self.keys = JwksCache(self._jwks_url, http=http, refetch_after=JWKS_REFETCH_AFTER)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    async def metadata(self, *, recheck: bool = False) -> dict[str, Any] | None:
        """The provider's discovery document; ``None`` while it cannot be had.

        Kept once read. With ``recheck`` (a sign-in start) it is read again when older
        than ``discovery_recheck``, and ``None`` means the provider cannot be reached
        now; a callback uses the copy in hand. A failed read is never kept: the next
        one, at most ``discovery_recheck`` later, tries again.
        """
        stale = time.monotonic() - self._checked_at >= self._recheck
        if stale and (self._metadata is None or recheck):
            self._checked_at = time.monotonic()
            document = await self._discover()
            self._reachable = document is not None
            self._metadata = document or self._metadata
        if recheck and not self._reachable:
            return None
        return self._metadata

    async def _discover(self) -> dict[str, Any] | None:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with self._http().get(url) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            log.warning("OIDC provider %s: discovery failed: %r", self.name, error)
            return None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            log.error(
                "OIDC provider %s: discovery names issuer %r, configured %r",
                self.name,
                document.get("issuer") if isinstance(document, dict) else None,
                self.issuer,
            )
            return None
        return document

    async def _jwks_url(self) -> str:
        metadata = await self.metadata()
        if metadata is None or not isinstance(metadata.get("jwks_uri"), str):
            raise aiohttp.ClientError("the provider's discovery is unavailable")
        return str(metadata["jwks_uri"])

    def authorization_url(self, metadata: Mapping[str, Any], flow: Flow) -> str:
        extra: dict[str, str] = {}
        if flow.step_up or flow.link:  # ask the provider to authenticate the person again, now
            extra = {"prompt": "login", "max_age": "0"}
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        url: str = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.settings.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=" ".join(self.settings.scopes),
            state=flow.state,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
            nonce=flow.nonce,
            **extra,
        )
        return url

    async def exchange(
        self, metadata: Mapping[str, Any], code: str, verifier: str
    ) -> str | Unreachable | None:
        """The ID token for this code, ``None`` if the provider refuses the code, or
        ``UNREACHABLE`` when it cannot be asked."""
        s = self.settings
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        body: str = prepare_token_request(
            "authorization_code", code=code, redirect_uri=self.redirect_uri, code_verifier=verifier
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if s.client_secret:  # client_secret_basic, both parts form-encoded (RFC 6749 §2.3.1)
            pair = f"{quote_plus(s.client_id)}:{quote_plus(s.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:  # a public client: PKCE alone
            body += "&client_id=" + quote_plus(s.client_id)
        try:
            async with self._http().post(
                metadata["token_endpoint"], data=body, headers=headers
            ) as response:
                answer = await response.json(content_type=None)
                if response.status != 200:
                    log.info("OIDC provider %s refused the code: %s", self.name, answer)
                    return None
        except (TimeoutError, aiohttp.ClientConnectionError) as error:
            log.warning("OIDC provider %s: token endpoint unreachable: %r", self.name, error)
            return UNREACHABLE
        except (aiohttp.ClientError, ValueError) as error:
            log.warning("OIDC provider %s: token request failed: %r", self.name, error)
            return None
        token = answer.get("id_token") if isinstance(answer, dict) else None
        return token if isinstance(token, str) else None

    async def verify(self, id_token: str, *, nonce: str) -> dict[str, Any] | str:
        """The ID token's claims, or the reason code it was refused with."""
        s = self.settings
        claims = await self.keys.verify(
            id_token,
            algorithms=s.algorithms,
            audience=s.client_id,
            issuer=self.issuer,
            leeway=self.leeway,
        )
        if isinstance(claims, str):
            return claims
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != s.client_id:
            return "token-audience"
        if not secrets.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            return "nonce-mismatch"
        return claims

    def grants_for(self, groups: tuple[str, ...]) -> tuple[Membership, ...]:
        """Memberships the person's groups grant, in configuration order, without repeats."""
        found: dict[Membership, None] = {}
        for group, grants in self.settings.group_grants.items():
            if group in groups:
                for grant in grants:
                    found[Membership(grant.tenant, grant.role)] = None
        return tuple(found)


class OidcLogins:
    """Starts and finishes logins with every configured provider."""

    def __init__(
        self,
        providers: list[OidcProviderSettings],
        *,
        engine: AsyncEngine,
        seal: FlowSeal,
        public_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self.seal = seal
        self._clock = clock
        self._http_session: aiohttp.ClientSession | None = None
        self.providers = {
            p.name: Provider(
                p, redirect_uri=f"{public_url}/.gatehold/oidc/{p.name}/callback", http=self._http
            )
            for p in providers
        }

    async def start(self) -> None:
        self._http_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        if self._http_session is not None:
            await self._http_session.close()

    def _http(self) -> aiohttp.ClientSession:
        assert self._http_session is not None, "OidcLogins.start() was not awaited"  # noqa: S101
        return self._http_session

    async def begin(
        self, name: str, *, rd: str, step_up: bool, link: LinkRequest | None = None
    ) -> tuple[str, str] | Refused:
        """(authorization URL, sealed flow for the cookie), or why the login cannot start."""
        provider = self.providers.get(name)
        if provider is None:
            return Refused("provider-unknown", name)
        metadata = await provider.metadata(recheck=True)
        if metadata is None:
            return Refused("provider-unavailable", name)
        from authlib.common.security import generate_token

        flow = Flow(
            provider=name,
            state=generate_token(43),
            nonce=generate_token(43),
            verifier=generate_token(64),
            rd=rd,
            step_up=step_up,
            started_at=self._clock(),
            link=link,
        )
        return provider.authorization_url(metadata, flow), self.seal.seal(flow)

    async def finish(
        self, name: str, query: Mapping[str, str], sealed_flow: str | None
    ) -> Identified | Refused:
        """Check one callback end to end; never trusts anything the query says alone."""
        provider = self.providers.get(name)
        if provider is None:
            return Refused("provider-unknown", name)
        flow = self.seal.open(sealed_flow)
        if flow is None:
            return Refused("login-expired", name)  # another browser, or far too late
        if flow.provider != name or not secrets.compare_digest(
            query.get("state", "").encode(), flow.state.encode()
        ):
            return Refused("state-mismatch", name)
        if "error" in query:
            return Refused("provider-error", name)
        metadata = await provider.metadata()
        if metadata is None:
            return Refused("provider-unavailable", name)
        iss = query.get("iss")
        if iss is not None and iss != provider.issuer:
            return Refused("issuer-mismatch", name)
        if iss is None and metadata.get("authorization_response_iss_parameter_supported"):
            return Refused("issuer-mismatch", name)
        id_token = await provider.exchange(metadata, query.get("code", ""), flow.verifier)
        if isinstance(id_token, Unreachable):
            return Refused("provider-unavailable", name)
        if id_token is None:
            return Refused("code-rejected", name)
        claims = await provider.verify(id_token, nonce=flow.nonce)
        if isinstance(claims, str):
            return Refused(claims, name)
        return self._identified(provider, flow, claims)

    def _identified(
        self, provider: Provider, flow: Flow, claims: Mapping[str, Any]
    ) -> Identified | Refused:
        s = provider.settings
        claimed = claims.get(s.email_claim)
        email = normalize_email(claimed) if isinstance(claimed, str) else None
        if email is None:
            return Refused("email-missing", provider.name, str(claims["sub"]))
        verified = claims.get("email_verified") is True
        if s.require_verified_email and claims.get("email_verified") is False:
            return Refused("email-unverified", provider.name, email)
        now = self._clock()
        auth_time = claims.get("auth_time")
        if flow.step_up:  # the provider must have authenticated the person again, just now
            if (
                not isinstance(auth_time, int | float)
                or auth_time < flow.started_at - provider.leeway
            ):
                return Refused("reauthentication-missing", provider.name, email)
        signed_in_at = float(auth_time) if isinstance(auth_time, int | float) else now
        raw_groups = claims.get(s.groups_claim, [])
        groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else ()
        return Identified(
            provider=provider.name,
            issuer=provider.issuer,
            subject=str(claims["sub"]),
            email=email,
            groups=groups,
            auth_time=min(signed_in_at, now),
            rd=flow.rd,
            step_up=flow.step_up or flow.link is not None,
            email_verified=verified,
            link=flow.link,
        )

    async def provision(self, who: Identified) -> OidcSignIn | Refused:
        """The gateway user for this external account: found, linked, or created (jit)."""
        provider = self.providers[who.provider]
        return await sign_in_person(
            self._engine,
            who,
            settings=provider.settings,
            grants=provider.grants_for(who.groups),
            now=self._clock(),
        )
