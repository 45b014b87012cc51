"""Process settings: one YAML file plus ``GATEHOLD_<SECTION>__<FIELD>`` overrides.

Validated once at start; every problem is reported with the file, line, field and
what to do. Relative paths are relative to the settings file's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.audit_keys import MIN_SECRET_LENGTH
from gateway.auth.keys import ASSERTION_KEY
from gateway.config import yamlsource
from gateway.config.durations import parse_duration
from gateway.config.envvars import substitute, unset_problem
from gateway.config.yamlsource import Loc
from gateway.errors import ConfigError
from gateway.headers import HeaderStrip, always_stripped, entry_problem

ENV_PREFIX = "GATEHOLD_"

Duration = Annotated[str | float, AfterValidator(parse_duration)]
"""Seconds, or a number with a unit (500ms, 30s, 10m, 8h, 90d); checked when loaded."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = Field("http://127.0.0.1:8080", pattern=r"^https?://[^/]+$")
    trusted_proxies: list[str] = []
    workers: int = Field(1, ge=1, le=64)
    admin_port: int | None = Field(None, ge=1, le=65535)


class ForwardAuthSettings(_Section):
    enabled: bool = Field(
        False,
        description="Answer /.gatehold/auth: decisions for a front proxy (nginx auth_request, "
        "Caddy forward_auth, Traefik forwardAuth, ingress-nginx auth-url) that moves the bytes "
        "itself. Only server.trusted_proxies may ask.",
    )
    apps_read_method_override: bool = Field(
        True,
        description="Whether the apps behind may run a POST as the method a `_method` field "
        "of its body names (Rails, Laravel, Symfony). The decision endpoint never sees the "
        "body, so while true it refuses POST routes: they go to the full proxy.",
    )


class SessionSettings(_Section):
    idle_timeout: str | float = "8h"
    absolute_timeout: str | float = "24h"
    cookie_secure: bool = True

    @field_validator("idle_timeout", "absolute_timeout")
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)


class AssertionSettings(_Section):
    ttl: str | float = "60s"
    key_file: str | None = None
    reuse: str | float = Field(
        "0s",
        description="How long one signed assertion may serve further requests of the same "
        "caller to the same upstream (at most half the ttl). 0 = a new token with its own "
        "jti for every request, so an app can refuse replays; more saves one ES256 "
        "signature per request.",
    )

    @field_validator("ttl", "reuse")
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)


class EnumerationSettings(_Section):
    window: str | float = "60s"
    slow_after: int = Field(10, ge=1)
    block_after: int = Field(30, ge=2)
    block_for: str | float = "15m"

    @field_validator("window", "block_for")
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)

    @property
    def block_for_seconds(self) -> float:
        return parse_duration(self.block_for)


class PolicySettings(_Section):
    foreign_object_status: Literal[403, 404] = 404
    enumeration: EnumerationSettings = EnumerationSettings()
    max_ids_per_request: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Object ids one request may name; more is refused (400 ids-too-many) "
        "before any owner is looked up.",
    )
    max_concurrent_lookups: int = Field(
        16,
        ge=1,
        le=1024,
        description="Owner lookups in flight at once in one gateway process, across all "
        "requests: the most load the gateway puts on a system of record.",
    )
    method_override: Literal["follow", "refuse"] = Field(
        "follow",
        description="A POST whose body names '_method' (PUT, PATCH, DELETE): follow = route, "
        "decide and audit it as that method, as the app will run it; refuse = answer 400.",
    )


class AuditSettings(_Section):
    max_batch: int = Field(1024, ge=1, le=100_000)
    jsonl_path: str | None = Field(
        None, description="Also append every committed record to this file as JSON lines."
    )
    key: str | None = Field(
        None,
        description="The secret that keys the audit chain (at least 32 characters), "
        "usually ${VAR} from the environment; when unset, key_file holds it.",
        repr=False,
    )
    key_file: str | None = Field(
        None,
        description="File holding the audit secret (default <data_dir>/keys/audit-chain.key, "
        "created with mode 0600 on first use). Keep a copy: verifying needs it.",
    )
    checkpoints: str | None = Field(
        None,
        description="Append-only file of signed checkpoints (seq, head hash, time) "
        "(default <data_dir>/audit-checkpoints.jsonl).",
    )
    checkpoint_every: str | float = Field(
        "1s",
        description="Least time between checkpoints while records are written; 0 = each batch.",
    )
    syslog: str | None = Field(
        None,
        description="Also send each checkpoint to syslog: udp://HOST:PORT or a local socket path.",
    )

    @field_validator("checkpoint_every")
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value.strip().encode("utf-8")) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the audit key needs at least {MIN_SECRET_LENGTH} characters; make one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return value

    @field_validator("syslog")
    @classmethod
    def _syslog_address(cls, value: str | None) -> str | None:
        if value is not None:
            syslog_address(value)
        return value


class MailSettings(_Section):
    """Where magic-link mail goes: an outbox folder (embedded default) or SMTP."""

    mode: Literal["outbox", "smtp"] = "outbox"
    outbox: str = "outbox"
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["plain", "starttls", "tls"] = "plain"
    username: str | None = None
    password: str | None = None
    sender: str = "Gatehold <gatehold@localhost>"
    ca_file: str | None = Field(
        None, description="CA certificates to verify the SMTP server with (default: the system's)."
    )
    retry_first: Duration = Field(
        "10s",
        description="Pause before the first retry of a message the mail server did not take; "
        "it doubles with each failed try.",
    )
    retry_max: Duration = Field(
        "5m", description="Longest pause between two tries of a message waiting in the outbox."
    )

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> MailSettings:
        if self.mode == "smtp" and self.password and self.security == "plain":
            raise ValueError(
                "mail.password would cross the network unencrypted: "
                "set mail.security to starttls or tls"
            )
        return self


class Grant(_Section):
    tenant: str
    role: str


class MagicLinkSettings(_Section):
    enabled: bool = True
    ttl: Duration = "15m"
    per_email_per_hour: int = Field(5, ge=1)
    per_client_per_hour: int = Field(30, ge=1)
    bind_browser: bool = Field(
        True,
        description="A link works only in the browser that asked for it (login CSRF).",
    )
    self_signup: dict[str, Grant] = Field(
        default_factory=dict, description="Email domain → the membership a new person gets."
    )


class OidcProviderSettings(_Section):
    """One OpenID Provider people sign in with (authorization code + PKCE)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Used in the callback URL.")
    label: str = ""
    issuer: str = Field(pattern=r"^https?://", description="Exactly as the provider states it.")
    client_id: str
    client_secret: str = Field("", description="Empty for a public client (PKCE only).")
    scopes: list[str] = ["openid", "email"]
    email_claim: str = "email"
    groups_claim: str = "groups"
    group_grants: dict[str, list[Grant]] = Field(
        default_factory=dict,
        description="Value of the groups claim → memberships; re-applied at every sign-in.",
    )
    provisioning: Literal["invite", "jit"] = Field(
        "invite",
        description="invite: only people already added may sign in; jit: create them "
        "on first sign-in with the memberships their groups grant.",
    )
    algorithms: list[Literal["RS256", "ES256", "PS256", "EdDSA"]] = ["RS256", "ES256"]
    discovery_recheck: Duration = Field(
        "5s",
        description="A sign-in start re-reads the provider's discovery document when the "
        "copy in hand is older than this, so a provider that is down gets a clear page "
        "instead of a redirect to it (at most one read per this long).",
    )
    leeway: str | float = Field("60s", description="Clock skew allowed on exp/iat/auth_time.")
    require_verified_email: bool = Field(
        True,
        description="Refuse a sign-in whose email_verified is false; where the email would "
        "tie the sign-in to a person (invite, just-in-time), a missing one counts as false.",
    )
    link_by_email: bool = Field(
        False,
        description="Tie a first sign-in to the existing person with the same email, when "
        "the provider says email_verified: true. Only for a provider whose emails you trust "
        "as much as your own (it can then sign in as anyone whose email it asserts).",
    )

    @field_validator("leeway")
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include 'openid'")
        return value


class BearerSettings(_Section):
    """JWTs a partner's identity provider issues to its systems (OAuth client credentials)."""

    issuer: str
    jwks_url: str
    audience: str
    algorithms: list[Literal["RS256", "ES256", "PS256", "EdDSA"]] = ["RS256", "ES256"]
    subject_label_claim: str = "sub"
    tenant_claim: str = "tenant"
    role_claim: str = "role"
    leeway: Duration = "30s"
    jwks_refetch_after: Duration = Field(
        "30s", description="Least time between JWKS fetches caused by unknown key ids."
    )


class Argon2Settings(_Section):
    """Argon2id cost; a stored hash made with other values is redone at the next sign-in."""

    time_cost: int = Field(3, ge=1, le=20, description="Passes over the memory.")
    memory_cost: int = Field(
        65536, ge=8192, le=4_194_304, description="KiB of memory per hash (64 MiB default)."
    )
    parallelism: int = Field(1, ge=1, le=16, description="Lanes (threads) per hash.")


class PasswordSettings(_Section):
    """Local passwords (NIST SP 800-63B): off unless a deployment turns them on."""

    enabled: bool = False
    min_length: int = Field(12, ge=8, le=64, description="Fewest characters (after NFKC).")
    max_length: int = Field(256, ge=128, le=4096, description="Most characters accepted.")
    min_score: int = Field(
        3, ge=0, le=4, description="Lowest zxcvbn strength score (0-4) a new password needs."
    )
    site_names: list[str] = Field(
        default_factory=list,
        description="Words a password may not contain, besides the public URL's host "
        "and 'gatehold' (the company's or portal's name).",
    )
    argon2: Argon2Settings = Argon2Settings()
    free_failures: int = Field(
        5,
        ge=1,
        le=100,
        description="Wrong passwords per account or per client before each further try "
        "must wait; the wait doubles with every failure.",
    )
    backoff_base: Duration = Field("1s", description="The first wait after the free failures.")
    backoff_max: Duration = Field("15m", description="The longest wait (never a hard lock).")


class TotpSettings(_Section):
    """Authenticator-app codes (RFC 6238) as a second factor."""

    enabled: bool = True
    issuer: str = Field(
        "Gatehold", min_length=1, max_length=64, description="The name authenticator apps show."
    )


class PasskeySettings(_Section):
    """WebAuthn passkeys: a second factor, or a password-less sign-in."""

    enabled: bool = True
    rp_id: str | None = Field(
        None,
        description="The WebAuthn relying-party id; by default the public URL's host. "
        "Changing it later makes every registered passkey useless.",
    )
    rp_name: str = Field("Gatehold", min_length=1, max_length=64)


class MfaSettings(_Section):
    max_attempts: int = Field(
        5, ge=1, le=20, description="Wrong second-factor codes before the sign-in starts over."
    )
    pending_timeout: Duration = Field(
        "10m", description="How long a sign-in may wait for its second factor."
    )

    @property
    def pending_seconds(self) -> float:
        """``pending_timeout`` in seconds (a default is not run through its validator)."""
        return parse_duration(self.pending_timeout)


class AuthSettings(_Section):
    magic_link: MagicLinkSettings = MagicLinkSettings()
    passwords: PasswordSettings = PasswordSettings()
    totp: TotpSettings = TotpSettings()
    passkeys: PasskeySettings = PasskeySettings()
    mfa: MfaSettings = MfaSettings()
    oidc: list[OidcProviderSettings] = []

    @field_validator("oidc")
    @classmethod
    def _unique_names(cls, value: list[OidcProviderSettings]) -> list[OidcProviderSettings]:
        names = [provider.name for provider in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each OIDC provider needs its own name; repeated: {twice}")
        return value

    bearer: BearerSettings | None = None


class HeaderSettings(_Section):
    """Client headers removed before forwarding, beyond the built-in list (I4)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    strip: list[str] = Field(
        default_factory=list,
        description="More header names to remove; a trailing '*' removes every name with "
        "that prefix. Compared like the defaults: any case, '_' '.' and '-' alike.",
    )
    pass_: list[str] = Field(
        default_factory=list,
        alias="pass",
        description="Names from the built-in list of commonly trusted headers (e.g. "
        "True-Client-IP) to forward anyway. The gateway's own and I4's never pass.",
    )

    @field_validator("strip", "pass_")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        problems = [p for p in map(entry_problem, value) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("pass_")
    @classmethod
    def _passable(cls, value: list[str]) -> list[str]:
        problems = [n for n in value if "*" in n or always_stripped(n)]
        if problems:
            raise ValueError(
                f"{problems} cannot be let through: prefixes and the gateway's own and "
                "I4 identity headers (X-Gatehold-*, X-Forwarded-*, X-Auth-*, Remote-User, "
                "Host ...) are always removed; remove them from headers.pass"
            )
        return value

    def build(self) -> HeaderStrip:
        """The strip list forwarding uses."""
        return HeaderStrip.build(strip=self.strip, passed=self.pass_)


SHARE_TTL_CEILING = 24 * 3600.0
"""No share link lives longer than a day, whatever the settings say (SPEC §7)."""
SHARE_DEFAULT_TTL = 3600.0


class FilesSettings(_Section):
    """Files routes: how long a share link may live."""

    share_max_ttl: Duration = Field(
        "24h",
        description="The longest expiry a share link may be minted with; at most 24h.",
    )
    share_default_ttl: Duration | None = Field(
        None,
        description="The expiry of a share link minted without one (default: 1h, or "
        "share_max_ttl when that is shorter).",
    )

    @model_validator(mode="after")
    def _ttls_in_range(self) -> FilesSettings:
        longest = parse_duration(self.share_max_ttl)
        if not 0 < longest <= SHARE_TTL_CEILING:
            raise ValueError("share_max_ttl must be more than 0s and at most 24h")
        if self.share_default_ttl is None:
            return self
        if not 0 < parse_duration(self.share_default_ttl) <= longest:
            raise ValueError("share_default_ttl must be more than 0s and at most share_max_ttl")
        return self


class LimitsSettings(_Section):
    """What one slow or greedy client may hold: connections, bodies, upstream capacity.

    Durations accept ``30s``, ``5m``… or seconds as a number.
    """

    upstream_pool: int = Field(
        100, ge=2, le=10_000, description="Connections to each upstream, at most."
    )
    pool_acquire_timeout: float = Field(
        5.0,
        gt=0,
        description="Longest wait for an upstream connection (a free pooled one, or a new "
        "one dialled), then 504.",
    )
    body_idle_timeout: float = Field(
        10.0, gt=0, description="Longest pause between two pieces of a request body, then 408."
    )
    request_total_timeout: float = Field(
        120.0,
        gt=0,
        description="Longest time to receive a request body and the upstream's answer headers.",
    )
    body_buffer: int = Field(
        64 * 1024,
        ge=0,
        le=16 * 1024 * 1024,
        description="Body bytes read before an upstream connection is taken: a body that "
        "trickles never holds one.",
    )
    in_flight_per_principal: int = Field(
        64, ge=1, description="Requests one caller may have in progress at once; then 429."
    )
    in_flight_per_client: int = Field(
        256,
        ge=1,
        description="Requests one client address may have in progress at once, whoever "
        "they are signed in as; then 429. Behind trusted proxies, the address they name; "
        "a NAT's clients share one.",
    )
    keepalive_timeout: float = Field(
        15.0,
        gt=0,
        description="Idle time a connection is kept; also the deadline for a request's headers.",
    )
    connections_per_client: int = Field(
        64, ge=1, description="Open connections per client address (trusted proxies exempt)."
    )
    websocket_max_lifetime: float = Field(
        3600.0, gt=0, description="A WebSocket is closed (1008) after this long."
    )
    websocket_origins: list[str] = Field(
        default_factory=list,
        description="Origins besides server.public_url allowed to open WebSockets.",
    )

    @field_validator(
        "pool_acquire_timeout",
        "body_idle_timeout",
        "request_total_timeout",
        "keepalive_timeout",
        "websocket_max_lifetime",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)

    @field_validator("websocket_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        bad = [o for o in value if not re.fullmatch(r"https?://[^/\s]+", o)]
        if bad:
            raise ValueError(
                f"each origin is scheme://host[:port] without a path or trailing slash: {bad}"
            )
        return [o.lower() for o in value]


class StoreSettings(_Section):
    dsn: str | None = None
    listen: bool = Field(
        True,
        description="PostgreSQL: hear other replicas' changes (revocations, rules, registry) "
        "at once through LISTEN/NOTIFY. false: poll for them twice a second instead (e.g. "
        "behind a pooler in transaction mode, which cannot LISTEN).",
    )
    statement_timeout: Duration = Field(
        "30s",
        description="PostgreSQL: the longest a serving gateway waits for one statement "
        "(a database host gone quiet mid-query would otherwise hold requests until TCP "
        "gives up, hours later); such a request is answered 503. 0 = no limit.",
    )
    lock_timeout: Duration = Field(
        "10s",
        description="SQLite: the longest a write waits for another process's lock on the "
        "database (a second worker, a backup, a sqlite3 shell left in a transaction); a "
        "request whose audit record cannot be written by then is answered 503.",
    )


class AccessRequestSettings(_Section):
    """How often a person may ask for access (floods of requests reach nobody's queue)."""

    per_person_per_hour: int = Field(5, ge=1, le=1000)
    max_pending_per_person: int = Field(
        3, ge=1, le=100, description="Requests of one person waiting for a decision at once."
    )


class ReviewSettings(_Section):
    """Access reviews."""

    idle_days: int = Field(
        90, ge=1, le=3650, description="A member without activity for longer is flagged idle."
    )


class RulesSettings(_Section):
    """Where the rules come from, and who changes them."""

    path: str = Field("rules.yaml", description="The rules file.")
    managed_by: Literal["file", "admin"] = Field(
        "file",
        description="file: the file is the truth; start and SIGHUP store and activate it as "
        "a new version, edits through the admin service are refused. admin: the file seeds "
        "the first version; later versions are proposed and activated by superadmins.",
    )


class LoggingSettings(_Section):
    """The gateway's own log on stderr (the audit log is separate)."""

    format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line; text: key=value lines."
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description="The least severe records written; at warning only failed requests' "
        "access lines, at error none.",
    )


class ScannerSettings(_Section):
    """The virus scanner of routes with ``upload.scan`` (ClamAV's ``clamd``)."""

    clamd_socket: str = Field(
        "/run/clamav/clamd.ctl",
        description="clamd's local socket (LocalSocket in clamd.conf); its "
        "StreamMaxLength must be at least the largest upload.max_file.",
    )
    timeout: Duration = Field(
        "30s", description="Longest wait for clamd to take a piece or give a verdict."
    )


class Settings(_Section):
    """Everything a gateway process needs besides its rules."""

    server: ServerSettings = ServerSettings()
    forward_auth: ForwardAuthSettings = ForwardAuthSettings()
    data_dir: str = "./var"
    store: StoreSettings = StoreSettings()
    rules: RulesSettings = Field(
        default_factory=RulesSettings,
        description="A rules file path, or {path: FILE, managed_by: file|admin}.",
    )
    rules_env: dict[str, str] = Field(
        default_factory=dict, description="Values for ${VAR} in the rules, over the environment."
    )
    sessions: SessionSettings = SessionSettings()
    assertion: AssertionSettings = AssertionSettings()
    policy: PolicySettings = PolicySettings()
    audit: AuditSettings = AuditSettings()
    auth: AuthSettings = AuthSettings()
    mail: MailSettings = MailSettings()
    headers: HeaderSettings = HeaderSettings()
    limits: LimitsSettings = LimitsSettings()
    access_requests: AccessRequestSettings = AccessRequestSettings()
    reviews: ReviewSettings = ReviewSettings()
    logging: LoggingSettings = LoggingSettings()
    files: FilesSettings = FilesSettings()
    scanner: ScannerSettings = ScannerSettings()
    base_dir: str = Field(".", exclude=True, description="Folder of the settings file.")

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else Path(self.base_dir) / path

    @property
    def data_path(self) -> Path:
        return self._path(self.data_dir)

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_source(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @property
    def rules_source(self) -> RulesSettings:
        """``rules`` as validated; a path string set by ``model_copy`` counts too."""
        value: RulesSettings | str = self.rules
        return RulesSettings(path=value) if isinstance(value, str) else value

    @property
    def rules_path(self) -> Path:
        return self._path(self.rules_source.path)

    @property
    def rules_managed_by(self) -> Literal["file", "admin"]:
        return self.rules_source.managed_by

    @property
    def store_dsn(self) -> str:
        return self.store.dsn or f"sqlite:///{self.data_path / 'gatehold.db'}"

    @property
    def key_path(self) -> Path:
        if self.assertion.key_file:
            return self._path(self.assertion.key_file)
        return self.data_path / "keys" / ASSERTION_KEY

    @property
    def store_statement_timeout(self) -> float:
        return parse_duration(self.store.statement_timeout)

    @property
    def store_lock_timeout(self) -> float:
        return parse_duration(self.store.lock_timeout)

    @property
    def session_idle_timeout(self) -> float:
        return parse_duration(self.sessions.idle_timeout)

    @property
    def session_absolute_timeout(self) -> float:
        return parse_duration(self.sessions.absolute_timeout)

    @property
    def outbox_path(self) -> Path:
        return self.data_path / self.mail.outbox

    @property
    def audit_jsonl_path(self) -> Path | None:
        return self._path(self.audit.jsonl_path) if self.audit.jsonl_path else None

    @property
    def audit_key_path(self) -> Path:
        if self.audit.key_file:
            return self._path(self.audit.key_file)
        return self.data_path / "keys" / "audit-chain.key"

    @property
    def audit_checkpoints_path(self) -> Path:
        if self.audit.checkpoints:
            return self._path(self.audit.checkpoints)
        return self.data_path / "audit-checkpoints.jsonl"

    @property
    def audit_checkpoint_every(self) -> float:
        return parse_duration(self.audit.checkpoint_every)

    @property
    def mail_ca_path(self) -> Path | None:
        return self._path(self.mail.ca_file) if self.mail.ca_file else None

    @property
    def magic_link_ttl(self) -> float:
        return parse_duration(self.auth.magic_link.ttl)

    @property
    def assertion_ttl(self) -> float:
        return parse_duration(self.assertion.ttl)

    @property
    def assertion_reuse(self) -> float:
        return parse_duration(self.assertion.reuse)

    @property
    def share_max_ttl(self) -> float:
        return parse_duration(self.files.share_max_ttl)

    @property
    def share_default_ttl(self) -> float:
        chosen = self.files.share_default_ttl
        if chosen is None:
            return min(SHARE_DEFAULT_TTL, self.share_max_ttl)
        return parse_duration(chosen)


def syslog_address(text: str) -> tuple[str, int] | str:
    """``udp://host:port`` → ``(host, port)``; an absolute path (``/dev/log``) as is.

    Raises ``ValueError`` with what to write instead.
    """
    if text.startswith("/"):
        return text
    if text.startswith("udp://"):
        host, _, port = text[len("udp://") :].rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return host.strip("[]"), int(port)
    raise ValueError(
        f"{text!r} is not a syslog address: use udp://HOST:PORT (e.g. udp://127.0.0.1:514) "
        "or the path of a local socket (e.g. /dev/log)"
    )


def resolve_config_path(path: Path | None, env: Mapping[str, str], cwd: Path) -> Path:
    """Explicit path, else ``$GATEHOLD_CONFIG``, else ``./gatehold.yaml``."""
    if path is not None:
        return path
    if env.get("GATEHOLD_CONFIG"):
        return Path(env["GATEHOLD_CONFIG"])
    return cwd / "gatehold.yaml"


def load_settings(path: Path | None, *, env: Mapping[str, str], cwd: Path) -> Settings:
    """Read, override from the environment, validate; ``ConfigError`` lists every problem."""
    config_path = resolve_config_path(path, env, cwd)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError:
        raise ConfigError(
            [
                f"{config_path}: settings file not found — pass --config FILE, "
                "set GATEHOLD_CONFIG, "
                "or create gatehold.yaml in the current folder"
            ]
        ) from None
    data, lines = yamlsource.read(text, str(config_path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{config_path}:1: the settings file must be a mapping of sections (server:, ...)"]
        )
    problems = _substitute_env(data, env, lines, config_path)
    if problems:
        raise ConfigError(problems)
    if isinstance(data.get("rules"), str):  # the short form, so GATEHOLD_RULES__* apply too
        data["rules"] = {"path": data["rules"]}
    origins, problems = _apply_env_overrides(data, env)
    if problems:
        raise ConfigError(problems)
    data["base_dir"] = str(config_path.parent.resolve())
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        found = []
        for item in error.errors():
            loc = tuple(item["loc"])
            what = (
                f"{yamlsource.field_path(loc)}: "
                f"{yamlsource.explain(item, _known_keys, noun='setting')}"
            )
            variable = next(
                (origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins), None
            )
            if variable is not None:
                found.append((0, f"environment variable {variable}: {what}"))
            else:
                line = yamlsource.line_of(loc, lines)
                found.append((line, f"{config_path}:{line}: {what}"))
        raise ConfigError([text for _, text in sorted(found)]) from None


def _substitute_env(
    node: Any,
    env: Mapping[str, str],
    lines: dict[Loc, int],
    config_path: Path,
    loc: Loc = (),
) -> list[str]:
    """Replace ``${VAR}`` in every string value, in place; the unset ones as problems."""
    problems: list[str] = []
    items = node.items() if isinstance(node, dict) else enumerate(node or [])
    for key, value in list(items):
        child = (*loc, key if isinstance(key, int) else str(key))
        if isinstance(value, str):
            node[key], missing = substitute(value, env)
            where = f"{config_path}:{yamlsource.line_of(child, lines)}"
            problems += [
                f"{where}: {yamlsource.field_path(child)}: {unset_problem(name)}"
                for name in missing
            ]
        elif isinstance(value, dict | list):
            problems += _substitute_env(value, env, lines, config_path, child)
    return problems


def _known_keys(loc: Loc) -> list[str]:
    """The settings allowed beside the unknown one at ``loc`` (for "did you mean")."""
    return yamlsource.keys_at(Settings, loc)


def _apply_env_overrides(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[Loc, str], list[str]]:
    """``GATEHOLD_SERVER__PORT=9000`` sets ``server.port``; values are parsed as YAML scalars.

    Returns each place set and the variable that set it (problems with a value are
    then reported against the variable, not the file), and the values that are not YAML.
    """
    origins: dict[Loc, str] = {}
    problems: list[str] = []
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            try:
                node[path[-1]] = yaml.safe_load(value)
            except yaml.YAMLError as error:
                problems.append(
                    f"environment variable {name}: {yamlsource.field_path(path)}: not a valid "
                    f"YAML value ({getattr(error, 'problem', None) or error}) — quote it: "
                    f"{name}='\"{value}\"'"
                )
                continue
            origins[tuple(path)] = name
    return origins, problems
