"""The admin API's request and response bodies (pydantic v2); the OpenAPI document's schemas.

Request bodies refuse unknown fields (a typo must not pass silently as a no-op).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.admin.service import Admin
from gateway.model import Membership
from gateway.store.api_keys import ApiKeyRow
from gateway.store.audit_log import AuditRow
from gateway.store.sessions import SessionRow
from gateway.store.tenants import TenantRow
from gateway.store.users import UserRow

Text = Annotated[str, StringConstraints(max_length=320)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- who


class Me(BaseModel):
    """Who calls, what they administer, and the CSRF token for state changes."""

    name: str
    superadmin: bool
    tenants: list[str]
    """Tenants administered (every tenant for a superadmin)."""
    via: Literal["session", "api-key"]
    csrf_token: str | None
    """Send as ``X-CSRF-Token`` on every state change made with the session cookie."""

    @classmethod
    def of(cls, admin: Admin, csrf_token: str | None) -> Me:
        return cls(
            name=admin.name,
            superadmin=admin.superadmin,
            tenants=sorted(admin.tenants),
            via="session" if csrf_token is not None else "api-key",
            csrf_token=csrf_token,
        )


# ---------------------------------------------------------------- people


class Grant(Strict):
    """A role in a tenant."""

    tenant: Name
    role: Name

    def membership(self) -> Membership:
        return Membership(self.tenant, self.role)


class User(BaseModel):
    email: str
    display_name: str
    active: bool
    superadmin: bool
    memberships: list[Grant]
    created_at: float

    @classmethod
    def of(cls, row: UserRow, actor: Admin) -> User:
        """The person as ``actor`` may see them: a tenant admin sees only their tenants' roles."""
        shown = [m for m in row.memberships if actor.superadmin or actor.manages(m.tenant)]
        return cls(
            email=row.email,
            display_name=row.display_name,
            active=row.active,
            superadmin=row.superadmin,
            memberships=[Grant(tenant=m.tenant, role=m.role) for m in shown],
            created_at=row.created_at,
        )


class Users(BaseModel):
    items: list[User]


class NewUser(Strict):
    """A person to add (or memberships to add to an existing one)."""

    email: Text
    memberships: list[Grant] = Field(default_factory=list, max_length=50)
    superadmin: bool = False


class RoleChange(Strict):
    role: Name


class Session(BaseModel):
    id: str
    """The first 16 hex digits of the session's id hash."""
    created_at: float
    last_seen: float
    auth_method: str
    active_tenant: str | None
    client_ip: str
    user_agent: str
    absolute_expiry: float

    @classmethod
    def of(cls, row: SessionRow) -> Session:
        return cls(
            id=row.id_hash[:16],
            created_at=row.created_at,
            last_seen=row.last_seen,
            auth_method=row.auth_method,
            active_tenant=row.active_tenant,
            client_ip=row.client_ip,
            user_agent=row.user_agent,
            absolute_expiry=row.absolute_expiry,
        )


class Sessions(BaseModel):
    items: list[Session]


class Ended(BaseModel):
    """How many sessions a change ended."""

    sessions: int


class FactorsReset(BaseModel):
    """A reset of a person's second factors: what they had, and what it ended."""

    totp: bool
    """They had an authenticator app (now removed)."""
    recovery_codes: int
    """Unused recovery codes removed."""
    passkeys: int
    """Passkeys removed."""
    password_kept: bool
    """They have a password, which stays."""
    sessions: int
    """Sessions ended."""
    pending_sign_ins: int
    """Sign-ins begun and not finished, dropped."""


# ---------------------------------------------------------------- tenants


class Tenant(BaseModel):
    id: str
    display_name: str
    active: bool
    created_at: float

    @classmethod
    def of(cls, row: TenantRow) -> Tenant:
        return cls(
            id=row.id, display_name=row.display_name, active=row.active, created_at=row.created_at
        )


class Tenants(BaseModel):
    items: list[Tenant]


class NewTenant(Strict):
    id: Name
    display_name: Text = ""


class TenantChange(Strict):
    display_name: Text


# ---------------------------------------------------------------- API keys


class ApiKey(BaseModel):
    id: int
    label: str
    tenant: str
    role: str
    admin: bool
    """Works only at the admin API; the proxy refuses it."""
    state: Literal["live", "revoked", "expired"]
    created_at: float
    expires_at: float
    revoked_at: float | None

    @classmethod
    def of(cls, row: ApiKeyRow, now: float) -> ApiKey:
        state: Literal["live", "revoked", "expired"] = (
            "live" if row.live(now) else ("revoked" if row.revoked_at is not None else "expired")
        )
        return cls(
            id=row.id,
            label=row.label,
            tenant=row.tenant,
            role=row.role,
            admin=row.admin,
            state=state,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


class ApiKeys(BaseModel):
    items: list[ApiKey]


class NewApiKey(Strict):
    tenant: Name
    role: Name
    label: Text = ""
    expires: Annotated[str, StringConstraints(max_length=20)] = "90d"
    """Lifetime, e.g. ``30d``, ``8h``."""
    admin: bool = False
    """An admin API key (superadmins only); tenant ``*`` makes it a superadmin's key."""


class CreatedApiKey(BaseModel):
    """The new key: ``key`` is shown only in this answer, never again."""

    key: str
    api_key: ApiKey


# ---------------------------------------------------------------- simulate


class SimulateRequest(Strict):
    """Exactly one of ``user`` (an email) or ``api_key`` (a key id)."""

    user: Text | None = None
    api_key: int | None = Field(default=None, ge=1, le=2**53)
    tenant: Name | None = None
    """The user's active tenant (a user's first tenant by default)."""
    method: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,16}$")]
    target: Annotated[str, StringConstraints(min_length=1, max_length=8192, pattern=r"^/")]
    version: int | None = Field(default=None, ge=1, le=2**53)
    """A rules version to decide under (a draft, say); the active rules by default."""


class Simulation(BaseModel):
    decision: Literal["allow", "deny", "observed"]
    reason: str
    steps: list[str]


# ---------------------------------------------------------------- audit

Filter = Annotated[str, StringConstraints(max_length=320)]


class AuditFilters(Strict):
    """Audit rows to read; times are ISO-8601 or Unix seconds, ``to`` exclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    user: Filter | None = None
    tenant: Filter | None = None
    route: Filter | None = None
    decision: Literal["allow", "deny", "observed"] | None = None
    since: Filter | None = Field(default=None, alias="from")
    until: Filter | None = Field(default=None, alias="to")


class AuditQuery(AuditFilters):
    limit: int = Field(default=100, ge=1, le=500)
    cursor: int | None = Field(default=None, ge=1, le=2**62)
    """``next_cursor`` of the page before."""


class ExportQuery(AuditFilters):
    format: Literal["csv", "jsonl"] = "jsonl"


class AuditRecord(BaseModel):
    seq: int
    ts: float
    kind: str
    request_id: str
    actor: str
    tenant: str
    route: str
    decision: str
    reason: str
    method: str
    path: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: AuditRow) -> AuditRecord:
        return cls.model_validate(row.record())


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: int | None
    """Pass as ``cursor`` for the next (older) page; ``null`` on the last page."""


# ---------------------------------------------------------------- ownership registry


class RegistryEntry(BaseModel):
    """The recorded owner of one object."""

    resource_type: str
    object_id: str
    tenant: str


class OwnerMove(Strict):
    """The tenant that owns the object from now on."""

    tenant: Name


class RegistryChange(BaseModel):
    """An object's owner before and after (``null``: not registered)."""

    resource_type: str
    object_id: str
    before: str | None
    after: str | None


class RegistryImport(Strict):
    """A ``resource_type,object_id,tenant`` CSV, header first; imported all or nothing."""

    csv: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]


class RegistryImported(BaseModel):
    changes: list[RegistryChange]
    """The objects whose owner the import set or changed (unchanged rows are left out)."""
