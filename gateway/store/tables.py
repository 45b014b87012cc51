"""The store's schema: one SQLAlchemy Core ``MetaData`` for SQLite and PostgreSQL.

Times are Unix seconds as floats. Alembic revisions in ``migrations/`` create exactly
this schema; ``tests/unit/test_migrations.py`` checks that they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first audit record."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite makes an INTEGER PRIMARY KEY the rowid itself: audit rows are stored in seq order.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("superadmin", Boolean, nullable=False, server_default=false()),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
    Column("invited_at", Float, nullable=True),
    Column("invited_by", Text, nullable=False, server_default=""),
    Column("first_login_at", Float, nullable=True),
    Column("last_login_at", Float, nullable=True),
    CheckConstraint("email = lower(email)", name="email_lower_case"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("user_id", "tenant", "role"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column(
        "user_id",
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("auth_time", Float, nullable=False),
    Column("auth_method", Text, nullable=False),
    Column("idle_timeout", Float, nullable=False),
    Column("absolute_expiry", Float, nullable=False),
    Column("active_tenant", Text, nullable=True),
    Column("client_ip", Text, nullable=False, server_default=""),
    Column("user_agent", Text, nullable=False, server_default=""),
    Column("revoked_at", Float, nullable=True, index=True),
    Column("mfa_time", Float, nullable=True),
)

registry = Table(
    "registry",
    metadata,
    Column("resource_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("resource_type", "object_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("ts", Float, nullable=False, index=True),
    Column("kind", Text, nullable=False),
    Column("request_id", Text, nullable=False, index=True),
    Column("actor", Text, nullable=False, index=True),
    Column("tenant", Text, nullable=False, index=True),
    Column("route", Text, nullable=False),
    Column("decision", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

HASHED_COLUMNS = tuple(c.name for c in audit_log.columns if c.name != "hash")
"""Every audit column the record hash covers (all but ``hash`` itself)."""

__all__ = [
    "GENESIS_HASH",
    "HASHED_COLUMNS",
    "audit_head",
    "audit_log",
    "memberships",
    "metadata",
    "registry",
    "sessions",
    "users",
]

login_links = Table(
    "login_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("email", Text, nullable=False, index=True),
    Column("rd", Text, nullable=False, server_default="/"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("client_ip", Text, nullable=False, server_default=""),
    Column("binding_hash", String(64), nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("label", Text, nullable=False, server_default=""),
    Column("tenant", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("admin", Boolean, nullable=False, server_default=false()),
)

external_accounts = Table(
    "external_accounts",
    metadata,
    Column("issuer", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("provider", Text, nullable=False),
    Column("granted", Text, nullable=False, server_default="[]"),
    Column("created_at", Float, nullable=False),
    Column("last_login", Float, nullable=False),
    PrimaryKeyConstraint("issuer", "subject"),
)

sso_invites = Table(
    "sso_invites",
    metadata,
    Column("email", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float, nullable=True),
    PrimaryKeyConstraint("email", "provider"),
)
"""Invites addressed to one OIDC provider: the only way email alone links a new account."""

tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
)
"""Tenants as objects: memberships, API keys and admins name one of these by ``id``."""

access_requests = Table(
    "access_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "user_id",
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("tenant", Text, nullable=False, index=True),
    Column("role_wanted", Text, nullable=True),
    Column("what", Text, nullable=False),
    Column("why", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("decided_by", Text, nullable=True),
    Column("decided_at", Float, nullable=True),
    Column("granted_role", Text, nullable=True),
    Column("comment", Text, nullable=False, server_default=""),
    CheckConstraint("state IN ('pending', 'approved', 'declined')", name="known_state"),
)
"""A signed-in person asking a tenant's admins for access; decided once."""

review_attestations = Table(
    "review_attestations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False, index=True),
    Column("reviewer", Text, nullable=False),
    Column("at", Float, nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
)
""""Reviewed by X at T": an admin's statement that a tenant's access was reviewed."""
rule_versions = Table(
    "rule_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("yaml", Text, nullable=False),
    Column("source_hash", String(64), nullable=False, index=True),
    Column("author", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("activated_at", Float, nullable=True),
)
"""Every rules version ever proposed; ``activated_at`` is its latest activation."""

rules_active = Table(
    "rules_active",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column(
        "version_id", Integer, ForeignKey("rule_versions.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("activated_at", Float, nullable=False),
    Column("activated_by", Text, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)
"""THE active rules version: one row, replaced in one transaction."""

rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    Column("bucket", String(64), nullable=False),
    Column("item", String(64), nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    PrimaryKeyConstraint("bucket", "item"),
)
"""Hits every replica counts against one limit: a hit leaves its window at ``expires_at``.

``bucket`` and ``item`` are digests (``gateway/store/rate_limits.py``), never the raw
address, email or object id."""

enumeration_blocks = Table(
    "enumeration_blocks",
    metadata,
    Column("principal", Text, primary_key=True, autoincrement=False),
    Column("blocked_until", Float, nullable=False, index=True),
)
"""Principals blocked for probing object ids, until when; every replica polls these."""

registry_changes = Table(
    "registry_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("resource_type", Text, nullable=False),
    Column("object_id", Text, nullable=True),
    Column("changed_at", Float, nullable=False, index=True),
    sqlite_autoincrement=True,
)
"""Recent registry writes (``object_id`` NULL: the whole type), read by replicas that
poll instead of hearing ``NOTIFY gatehold_registry``; swept after an hour. ``seq`` only
grows (SQLite too: AUTOINCREMENT never reuses a swept one), so pollers keep a cursor."""

share_links = Table(
    "share_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("route", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("object_type", Text, nullable=False, server_default=""),
    Column("object_id", Text, nullable=False, server_default=""),
    Column("tenant", Text, nullable=False, index=True),
    Column("recipient", Text, nullable=False, index=True),
    Column("created_by", Text, nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_by", Text, nullable=True),
)
"""Share links of files (``gateway/shares.py``): a random token, stored as its SHA-256,
bound to one canonical download path, the object and owner it named when minted, the
person it is for (``recipient``, a normalized email) and an expiry. Read on every open."""


def _user_fk(*, index: bool = True, nullable: bool = False) -> Column[int]:
    return Column(
        "user_id",
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=nullable,
        index=index,
    )


passwords = Table(
    "passwords",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The Argon2id hash in PHC form (``$argon2id$v=19$m=…``): its parameters with it.
    Column("hash", Text, nullable=False),
    Column("set_at", Float, nullable=False),
)

totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The shared secret, sealed (Fernet) with a key kept outside the database.
    Column("secret", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # ``None`` while enrolment waits for its first code: not yet a factor.
    Column("confirmed_at", Float, nullable=True),
    # The newest time step a code was accepted for: that code and older ones are refused.
    Column("last_step", Integer, nullable=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _user_fk(),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _user_fk(),
    # base64url of the authenticator's credential id.
    Column("credential_id", Text, nullable=False, unique=True),
    # The COSE public key the authenticator registered.
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", Integer, nullable=False, server_default="0"),
    Column("transports", Text, nullable=False, server_default="[]"),
    Column("name", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)

pending_sign_ins = Table(
    "pending_sign_ins",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    _user_fk(),
    # The first factor already shown (``AuthMethod`` value).
    Column("method", Text, nullable=False),
    # ``sign-in`` (no session yet) or ``step-up`` (a live session asks again).
    Column("purpose", Text, nullable=False),
    Column("rd", Text, nullable=False),
    # JSON: what the first factor adds to the login's audit record, its auth time.
    Column("details", Text, nullable=False, server_default="{}"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    Column("challenge_hash", String(64), primary_key=True),
    # ``None`` for a password-less sign-in: the passkey names its owner.
    _user_fk(nullable=True),
    # ``register`` or ``authenticate``.
    Column("purpose", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("sealed", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt", Float, nullable=False, index=True),
    Column("claimed_until", Float, nullable=False, server_default="0"),
    Column("claim", String(32), nullable=False, server_default=""),
    Column("last_error", Text, nullable=False, server_default=""),
)

shadow_runs = Table(
    "shadow_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "version_id", Integer, ForeignKey("rule_versions.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("started_at", Float, nullable=False),
    Column("started_by", Text, nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("stopped_at", Float, nullable=True),
    Column("stopped_by", Text, nullable=True),
    Column("decided", Integer, nullable=False, server_default="0"),
    Column("agreed", Integer, nullable=False, server_default="0"),
    Column("unjudged", Integer, nullable=False, server_default="0"),
    Column("dropped", Integer, nullable=False, server_default="0"),
)
"""Rules versions run in shadow; the one with no ``stopped_at`` is running (one at most)."""

shadow_groups = Table(
    "shadow_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("shadow_runs.id", ondelete="CASCADE"), nullable=False),
    Column("live_version", Integer, nullable=False),
    Column("live_route", Text, nullable=False),
    Column("shadow_route", Text, nullable=False),
    Column("live_decision", String(8), nullable=False),
    Column("live_reason", Text, nullable=False),
    Column("shadow_decision", String(8), nullable=False),
    Column("shadow_reason", Text, nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    UniqueConstraint(
        "run_id",
        "live_version",
        "live_route",
        "shadow_route",
        "live_decision",
        "live_reason",
        "shadow_decision",
        "shadow_reason",
    ),
)
"""Differences of a shadow run, one row per (routes, decisions and reasons), counted."""

shadow_samples = Table(
    "shadow_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "group_id",
        Integer,
        ForeignKey("shadow_groups.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("at", Float, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("method", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("principal", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("live_detail", Text, nullable=False),
    Column("shadow_detail", Text, nullable=False),
)
"""A few sample requests of each difference group (capped per group)."""
