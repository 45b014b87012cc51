"""WebAuthn ceremonies: register a passkey, and check an assertion made with one.

Options go to the browser as JSON (``options_to_json``); answers come back as the JSON
form of a ``PublicKeyCredential``. Every answer is checked field by field before
py_webauthn verifies it as a whole, so a refusal names its reason (``origin-mismatch``,
``rp-id-mismatch``, ``challenge-unknown``, ``sign-count-regressed``…) for the audit:

* the challenge is consumed first (once, for this purpose and person) — a replay finds
  it gone;
* the origin must be ``server.public_url`` exactly, the RP id hash that of ``rp_id``;
* the credential must be registered, and the person's own when a person is expected;
* a non-zero signature counter must grow (a cloned authenticator falls behind);
* a password-less sign-in needs user verification (a PIN or biometric on the device).

py_webauthn (with its CBOR and ASN.1 parsers, about 5 MiB) is imported by the
ceremonies themselves, so a process nobody has used a passkey with never holds it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config.settings import PasskeySettings
from gateway.store import passkeys as store
from gateway.store.passkeys import Passkey

if TYPE_CHECKING:
    from webauthn.helpers.structs import (
        AuthenticationCredential,
        PublicKeyCredentialDescriptor,
        RegistrationCredential,
    )

NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a ceremony's answer was not accepted (a stable, kebab-case reason)."""

    reason: str
    malformed: bool = False
    """The answer was not a credential at all (a 400 that says so), not a wrong one."""


@dataclass(frozen=True, slots=True)
class Registered:
    passkey_id: int
    credential_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Asserted:
    """A verified use of a passkey."""

    passkey: Passkey
    user_verified: bool


def user_handle(user_id: int) -> bytes:
    """The WebAuthn user handle of a person: their store id (no email, no name)."""
    return str(user_id).encode("ascii")


def rp_id_of(settings: PasskeySettings, public_url: str) -> str:
    """The relying-party id: as configured, else the public URL's host."""
    return settings.rp_id or (urlsplit(public_url).hostname or "")


def rp_id_problem(rp_id: str, public_url: str) -> str | None:
    """Why browsers would refuse every ceremony with this RP id, or ``None``."""
    host = urlsplit(public_url).hostname or ""
    try:
        ipaddress.ip_address(rp_id)
    except ValueError:
        pass
    else:
        return f"the RP id {rp_id!r} is an IP address; browsers need a domain name"
    if not rp_id or not (host == rp_id or host.endswith(f".{rp_id}")):
        return f"the RP id {rp_id!r} is not the host of server.public_url ({host}) or a parent"
    return None


class Passkeys:
    """Builds options and checks answers; keeps passkeys and challenges in the store."""

    def __init__(
        self,
        settings: PasskeySettings,
        *,
        engine: AsyncEngine,
        public_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.origin = public_url.rstrip("/")
        self.rp_id = rp_id_of(settings, public_url)
        self.clock = clock
        self.problem = rp_id_problem(self.rp_id, public_url)
        """Why passkeys cannot work with these settings (then they are not offered)."""

    # ------------------------------------------------------------ registration

    async def registration_options(self, *, user_id: int, email: str) -> str:
        """Options for ``navigator.credentials.create`` (JSON), with the person's
        existing passkeys excluded so one authenticator is not registered twice."""
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        challenge = await store.issue_challenge(
            self.engine, purpose=store.REGISTER, user_id=user_id, now=self.clock()
        )
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.settings.rp_name,
            user_name=email,
            user_id=user_handle(user_id),
            challenge=challenge,
            timeout=int(store.CHALLENGE_TTL * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=await self._descriptors(user_id),
        )
        return options_to_json(options)

    async def register(self, answer: Any, *, user_id: int, name: str) -> Registered | Refused:
        """Check an attestation answer and store the passkey it creates."""
        from webauthn.helpers import (
            bytes_to_base64url,
            parse_attestation_object,
            parse_client_data_json,
            parse_registration_credential_json,
        )

        try:
            credential = parse_registration_credential_json(answer)
            client = parse_client_data_json(credential.response.client_data_json)
            auth_data = parse_attestation_object(credential.response.attestation_object).auth_data
        except Exception:  # any parser or verifier failure is a refusal, never a 500
            return Refused("passkey-malformed", malformed=True)
        if not await store.consume_challenge(
            self.engine, client.challenge, purpose=store.REGISTER, user_id=user_id, now=self.clock()
        ):
            return Refused("challenge-unknown")
        refused = self._check_origin_and_rp(client.origin, auth_data.rp_id_hash)
        if refused is not None:
            return refused
        verified = self._verified_registration(credential, client.challenge)
        if isinstance(verified, Refused):
            return verified
        credential_id = bytes_to_base64url(verified.credential_id)
        stored_name = name.strip()[:NAME_MAX] or "Passkey"
        passkey_id = await store.add_passkey(
            self.engine,
            user_id=user_id,
            credential_id=credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=[str(t.value) for t in credential.response.transports or []],
            name=stored_name,
            now=self.clock(),
        )
        if passkey_id is None:
            return Refused("credential-exists")
        return Registered(passkey_id, credential_id, stored_name)

    def _verified_registration(self, credential: RegistrationCredential, challenge: bytes) -> Any:
        from webauthn import verify_registration_response

        try:
            return verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
            )
        except Exception:  # any parser or verifier failure is a refusal, never a 500
            return Refused("attestation-invalid")

    # ------------------------------------------------------------ authentication

    async def authentication_options(self, *, user_id: int | None) -> str:
        """Options for ``navigator.credentials.get`` (JSON). For a person (a second
        factor) their passkeys are allowed; with nobody (password-less) the
        authenticator offers its discoverable ones and must verify the user."""
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import UserVerificationRequirement

        challenge = await store.issue_challenge(
            self.engine, purpose=store.AUTHENTICATE, user_id=user_id, now=self.clock()
        )
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=int(store.CHALLENGE_TTL * 1000),
            allow_credentials=[] if user_id is None else await self._descriptors(user_id),
            user_verification=UserVerificationRequirement.REQUIRED
            if user_id is None
            else UserVerificationRequirement.PREFERRED,
        )
        return options_to_json(options)

    async def authenticate(self, answer: Any, *, user_id: int | None) -> Asserted | Refused:
        """Check an assertion: for ``user_id`` (a second factor), or for whoever owns
        the passkey (``None``: password-less, user verification required)."""
        from webauthn.helpers import (
            bytes_to_base64url,
            parse_authentication_credential_json,
            parse_authenticator_data,
            parse_client_data_json,
        )

        try:
            credential = parse_authentication_credential_json(answer)
            client = parse_client_data_json(credential.response.client_data_json)
            auth_data = parse_authenticator_data(credential.response.authenticator_data)
        except Exception:  # any parser or verifier failure is a refusal, never a 500
            return Refused("passkey-malformed", malformed=True)
        if bytes_to_base64url(credential.raw_id) != credential.id:
            return Refused("passkey-malformed", malformed=True)
        if not await store.consume_challenge(
            self.engine,
            client.challenge,
            purpose=store.AUTHENTICATE,
            user_id=user_id,
            now=self.clock(),
        ):
            return Refused("challenge-unknown")
        refused = self._check_origin_and_rp(client.origin, auth_data.rp_id_hash)
        if refused is not None:
            return refused
        passkey = await store.find_passkey(self.engine, credential.id)
        refused = self._check_owner(passkey, credential, user_id)
        if refused is not None or passkey is None:
            return refused or Refused("credential-unknown")
        if user_id is None and not auth_data.flags.uv:
            return Refused("user-not-verified")
        count = auth_data.sign_count
        if (count > 0 or passkey.sign_count > 0) and count <= passkey.sign_count:
            return Refused("sign-count-regressed")
        return await self._verified_assertion(credential, client.challenge, passkey, user_id)

    async def _verified_assertion(
        self,
        credential: AuthenticationCredential,
        challenge: bytes,
        passkey: Passkey,
        user_id: int | None,
    ) -> Asserted | Refused:
        from webauthn import verify_authentication_response

        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=user_id is None,
            )
        except Exception:  # any parser or verifier failure is a refusal, never a 500
            return Refused("signature-invalid")
        if not await store.record_use(
            self.engine, passkey, new_sign_count=verified.new_sign_count, now=self.clock()
        ):
            return Refused("sign-count-regressed")  # another answer with this count won
        return Asserted(passkey, verified.user_verified)

    # ------------------------------------------------------------ checks

    def _check_origin_and_rp(self, origin: str, rp_id_hash: bytes) -> Refused | None:
        if origin != self.origin:
            return Refused("origin-mismatch")
        if rp_id_hash != hashlib.sha256(self.rp_id.encode("utf-8")).digest():
            return Refused("rp-id-mismatch")
        return None

    @staticmethod
    def _check_owner(
        passkey: Passkey | None, credential: AuthenticationCredential, user_id: int | None
    ) -> Refused | None:
        if passkey is None:
            return Refused("credential-unknown")
        if user_id is not None and passkey.user_id != user_id:
            return Refused("credential-not-yours")
        handle = credential.response.user_handle
        if handle is not None and handle != user_handle(passkey.user_id):
            return Refused("user-handle-mismatch")
        return None

    async def _descriptors(self, user_id: int) -> list[PublicKeyCredentialDescriptor]:
        from webauthn import base64url_to_bytes
        from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

        return [
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id),
                transports=[
                    AuthenticatorTransport(t)
                    for t in p.transports
                    if t in AuthenticatorTransport._value2member_map_
                ],
            )
            for p in await store.passkeys_of(self.engine, user_id)
        ]
