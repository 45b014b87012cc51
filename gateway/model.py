"""Values that cross stage boundaries.

Every stage of the pipeline takes and returns these frozen values, so stages import
types from here and never from each other. Nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy


class Reason(StrEnum):
    """Stable reason codes: audit rows, metric labels and problem ``type`` use them."""

    # allowed
    PUBLIC_ROUTE = "public-route"
    ROLE_ALLOWED = "role-allowed"
    # refused before a route is known
    TARGET_AMBIGUOUS = "target-ambiguous"
    HEADER_INVALID = "header-invalid"
    BODY_TOO_LARGE = "body-too-large"
    BODY_INVALID = "body-invalid"
    ROUTE_NOT_FOUND = "route-not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    # identity
    AUTH_REQUIRED = "auth-required"
    SESSION_INVALID = "session-invalid"
    CREDENTIAL_INVALID = "credential-invalid"
    # decision
    ROLE_FORBIDDEN = "role-forbidden"
    TENANT_FOREIGN = "tenant-foreign"
    TENANT_UNSELECTED = "tenant-unselected"
    OBJECT_NOT_FOUND = "object-not-found"
    ID_INVALID = "id-invalid"
    RESOLVER_FAILED = "resolver-failed"
    STEP_UP_REQUIRED = "step-up-required"
    MFA_REQUIRED = "mfa-required"
    ENUMERATION_BLOCKED = "enumeration-blocked"
    # infrastructure and response
    AUDIT_UNAVAILABLE = "audit-unavailable"
    STORE_UNAVAILABLE = "store-unavailable"
    UPSTREAM_REFUSED = "upstream-refused"
    UPSTREAM_TIMEOUT = "upstream-timeout"
    UPSTREAM_INVALID = "upstream-invalid"
    UPSTREAM_RESET = "upstream-reset"
    GUARD_BLOCKED = "guard-blocked"
    INTERNAL_ERROR = "internal-error"
    RATE_LIMITED = "rate-limited"
    IDS_TOO_MANY = "ids-too-many"
    BODY_UNSUPPORTED = "body-unsupported"
    PARAM_AMBIGUOUS = "param-ambiguous"
    METHOD_OVERRIDE_INVALID = "method-override-invalid"
    BODY_TIMEOUT = "body-timeout"
    IN_FLIGHT_LIMIT = "in-flight-limit"
    ORIGIN_FORBIDDEN = "origin-forbidden"
    REQUEST_MALFORMED = "request-malformed"
    CONNECTION_LIMIT = "connection-limit"
    PARAM_FORBIDDEN = "param-forbidden"
    PARAM_MISSING = "param-missing"
    TENANT_MISMATCH = "tenant-mismatch"
    # forward-auth (``forward_auth.py``)
    PROXY_UNTRUSTED = "proxy-untrusted"
    FULL_PROXY_REQUIRED = "full-proxy-required"
    # uploads (``uploads.py``)
    FILE_TOO_LARGE = "file-too-large"
    FILE_TYPE_REFUSED = "file-type-refused"
    FILE_NAME_REFUSED = "file-name-refused"
    UPLOAD_LIMIT = "upload-limit"
    FILE_INFECTED = "file-infected"
    SCANNER_UNAVAILABLE = "scanner-unavailable"


ALLOWING_REASONS = frozenset({Reason.PUBLIC_ROUTE, Reason.ROLE_ALLOWED})


class AuthMethod(StrEnum):
    """How a principal proved who they are."""

    SESSION = "session"
    MAGIC_LINK = "magic-link"
    OIDC = "oidc"
    PASSWORD = "password"  # noqa: S105 - the method's name, not a secret
    PASSKEY = "passkey"
    """A passkey alone (password-less): possession and a local PIN or biometric."""
    BEARER_JWT = "bearer-jwt"
    API_KEY = "api-key"
    CLI_MINT = "cli-mint"
    NONE = "none"


MACHINE_METHODS = frozenset({AuthMethod.API_KEY, AuthMethod.BEARER_JWT})
"""Credentials of programs, not people: they cannot show a second factor."""


@dataclass(frozen=True, slots=True)
class Target:
    """The one canonical request target (I2): matched against rules and sent upstream."""

    path: str
    """Canonical percent-encoded path, exactly what routes match and the upstream gets."""
    query: str
    """Raw query string without ``?``, validated, forwarded byte for byte."""

    @property
    def raw(self) -> str:
        """Path plus query as it appears on the upstream request line."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass(frozen=True, slots=True)
class Rejection:
    """An early refusal from ingress or identity, before any decision was made."""

    reason: Reason
    """Stable code for audit, metrics and the problem ``type``."""
    detail: str = ""
    """What went wrong, phrased for the person who sent the request."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that passed ingress."""

    target: Target
    """The canonical target."""
    request_id: str
    """Request id (random, 128 bits, hex) sent upstream as ``X-Request-Id``."""
    client_ip: str
    """Client address after applying the trusted-proxies list."""
    scheme: str
    """``http`` or ``https`` as the client used it (trusted proxies may say)."""


@dataclass(frozen=True, slots=True)
class Membership:
    """A role held in one tenant; ``tenant == "*"`` marks a global-scope grant."""

    tenant: str
    role: str


GLOBAL_TENANT = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user_id: str
    """Stable user id (string of the store's integer id, or ``apikey:<id>``)."""
    email: str
    """Login email, lower-cased."""
    memberships: tuple[Membership, ...]
    """Every (tenant, role) the user holds, in grant order."""
    auth_method: AuthMethod
    """How this request was authenticated."""
    auth_time: float
    """Unix time of the last interactive authentication (for step-up, I6)."""
    session_hash: str | None = None
    """SHA-256 hex of the session id, if a session carried the request."""
    active_tenant: str | None = None
    """Tenant used for routes without an object; ``None`` when the user has none."""
    superadmin: bool = False
    """May use the whole admin API."""
    expires_at: float | None = None
    """Unix time the credential ends at the latest (session absolute expiry, key or
    token expiry); what outlives a request (a WebSocket) is closed then."""
    mfa_time: float | None = None
    """Unix time a second factor (TOTP, recovery code, passkey) was last shown in this
    session; ``None`` when the session rests on one factor."""

    def roles_in(self, tenant: str) -> tuple[str, ...]:
        """Roles held in ``tenant`` itself (global grants are not included)."""
        return tuple(m.role for m in self.memberships if m.tenant == tenant)

    def global_roles(self) -> tuple[str, ...]:
        """Roles granted with ``tenant == "*"``."""
        return self.roles_in(GLOBAL_TENANT)


@dataclass(frozen=True, slots=True)
class Anonymous:
    """No credential was presented."""


ANONYMOUS = Anonymous()


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object id a request names."""

    type: str
    """Resource type from the rules (``invoice``)."""
    id: str
    """The id as text, already checked against the route's id type."""
    source: str
    """Where it came from: ``path.invoice_id``, ``query.id``, ``body:/related``, ``form.x``."""


@dataclass(frozen=True, slots=True)
class Owned:
    """The resolver found the object; it belongs to ``tenant``."""

    tenant: str


@dataclass(frozen=True, slots=True)
class NotFound:
    """The resolver says the object does not exist."""


@dataclass(frozen=True, slots=True)
class ResolverFailed:
    """The resolver could not answer (timeout, bad answer, store error). Fails closed."""

    detail: str


OwnerAnswer = Owned | NotFound | ResolverFailed


@dataclass(frozen=True, slots=True)
class ResolvedRef:
    """An object reference with its resolver's answer."""

    ref: ObjectRef
    answer: OwnerAnswer


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request. Built only by ``policy.decide``; rendered by ``responses``."""

    allowed: bool
    """True only when a rule explicitly allowed the request."""
    reason: Reason
    """Stable reason code."""
    action: str | None = None
    """Action judged (``read``, ``write``, ``export``…)."""
    tenant: str | None = None
    """Tenant the request acts in (owning tenant, path tenant or active tenant)."""
    roles: tuple[str, ...] = ()
    """Roles that granted the action (empty on denials)."""
    explain: tuple[str, ...] = ()
    """Reason chain, one human sentence per step (``rules simulate``, audit detail)."""
    objects: tuple[ResolvedRef, ...] = ()
    """Every object checked, with its owner."""
    detail: str = ""
    """What the client is told on a denial it can fix (the parameter refused); most
    denials tell nothing beyond their reason."""

    @property
    def resource(self) -> ObjectRef | None:
        """The first object named by the request, if any."""
        return self.objects[0].ref if self.objects else None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened after forwarding, recorded once the response is done."""

    status: int
    bytes_sent: int
    duration_ms: float
    guard: GuardReport | None = None
    """What the response guard did to the answer (guarded routes only)."""
    cut: bool = False
    """The upstream broke off the body midway (reset, closed early, stalled): the client's
    connection was closed, and ``bytes_sent`` says how far the answer got."""
    client_gone: bool = False
    """The client closed its connection before the whole answer went out (a person who
    navigated away, a client that timed out): ``bytes_sent`` says how far it got."""


@dataclass(slots=True)
class AuditEntry:
    """One audit record before it is written; the writer adds sequence and hashes."""

    kind: str
    """``request`` or an event name (``login``, ``session-minted``, ``outcome``…)."""
    request_id: str = ""
    actor: str = ""
    tenant: str = ""
    route: str = ""
    decision: str = ""
    reason: str = ""
    method: str = ""
    path: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    """Everything else of SPEC §6 (roles, auth method, client, user agent, ids…)."""


@dataclass(frozen=True, slots=True)
class AuditReceipt:
    """Proof that an entry is durably committed."""

    seq: int
    request_id: str


class IdSource(StrEnum):
    """Where in a request an object id is read from."""

    PATH = "path"
    QUERY = "query"
    BODY = "body"
    FORM = "form"


@dataclass(frozen=True, slots=True)
class IdSpec:
    """One place a route reads an object id from."""

    type: str
    """Resource type (a key of ``resources`` in the rules)."""
    source: IdSource
    key: str
    """Path parameter, query parameter, form field, or JSON pointer for ``body``."""
    id_type: str
    """``int``, ``uuid``, ``slug`` or ``regex:<pattern>``; checked before resolving."""
    required: bool = False
    """A ``query_ids`` parameter the query string must carry (absent: refused)."""

    @property
    def label(self) -> str:
        """``path.invoice_id``, ``query.id``, ``body:/related``, ``form.doc``."""
        return f"body:{self.key}" if self.source is IdSource.BODY else f"{self.source}.{self.key}"


class GuardMode(StrEnum):
    BLOCK = "block"
    FILTER = "filter"


@dataclass(frozen=True, slots=True)
class GuardSpec:
    """Response guard for JSON bodies (a second line of defence when the app leaks)."""

    tenant_field: str | None
    """JSON pointer with ``*`` wildcards to each item's tenant (``/items/*/tenant``);
    ``None`` when the guard only strips fields."""
    mode: GuardMode
    fields: FieldAllowance | None = None
    """Members the answer may keep; every other one is removed before it is relayed."""


@dataclass(frozen=True, slots=True)
class FieldAllowance:
    """``guard.fields``: the members kept in each object ``at`` names (``""``: the answer)."""

    allow: frozenset[str]
    at: str = ""


@dataclass(frozen=True, slots=True)
class GuardReport:
    """What the response guard did to one answer, for the request's audit outcome."""

    pointer: str | None = None
    """The tenant pointer checked, if any."""
    foreign: int = 0
    """Values at the pointer that were not the caller's tenant (or missing)."""
    removed: int = 0
    """Items ``filter`` dropped from the answer."""
    stripped: tuple[str, ...] = ()
    """Names of the members ``fields`` removed (sorted, distinct, at most 20)."""
    stripped_at: str | None = None
    refused: str = ""
    """Why the answer was refused; empty when it was relayed."""

    def as_data(self) -> dict[str, Any]:
        """The audit form: only what the guard found or did."""
        data: dict[str, Any] = {}
        if self.pointer is not None:
            data |= {"pointer": self.pointer, "foreign": self.foreign}
        if self.removed:
            data["removed"] = self.removed
        if self.stripped_at is not None:
            data |= {"fields_at": self.stripped_at, "stripped": list(self.stripped)}
        if self.refused:
            data["refused"] = self.refused
        return data


@dataclass(frozen=True, slots=True)
class QueryRules:
    """Which parameters a route's query string may carry (``query: {allow, deny, require}``).

    Names are compared folded, as ``gateway.params`` reads them; patterns take ``*``.
    """

    allow: tuple[str, ...] | None = None
    """Patterns every parameter's name must match; ``None``: any name not denied."""
    deny: tuple[str, ...] = ()
    """Patterns no parameter's name, nor any part of it (``filter[tenant]``), may match."""
    require: tuple[str, ...] = ()
    """Names that must be present, spelled exactly."""


@dataclass(frozen=True, slots=True)
class TenantBinding:
    """Parameters and headers set to the tenant the request acts in (``bind:``)."""

    query: tuple[str, ...] = ()
    """Query parameters: every spelling the client sent is removed, then the one set."""
    headers: tuple[str, ...] = ()
    """Request headers: every spelling the client sent is removed, then the one set."""


@dataclass(frozen=True, slots=True)
class BodyTenant:
    """The tenant field of a write's body, which must name the request's tenant."""

    pointer: str | None = None
    """JSON pointer to the field in JSON bodies (``/tenant``, ``/rows/*/tenant``)."""
    field: str | None = None
    """Field name in urlencoded forms (``tenant``)."""
    set_missing: bool = True
    """``on_missing: set`` (add the field when absent) or ``refuse`` (``False``)."""


@dataclass(frozen=True, slots=True)
class UploadRules:
    """A route's ``upload:`` block: what files its requests may carry (``uploads.py``)."""

    types: frozenset[str]
    """Allowed types by content (``filetypes.TYPES`` names: ``pdf``, ``png``, …)."""
    max_file: int = 10 * 1024 * 1024
    """Bytes one file (or form field) may hold."""
    max_parts: int = 10
    """Parts a multipart form may have, files and fields together."""
    max_part_header: int = 4 * 1024
    """Bytes of one part's header block."""
    refuse_bad_names: bool = False
    """``filename: refuse``: a name sanitizing would change is refused, not rewritten."""
    scan: bool = False
    """Every file is scanned by ``clamd`` before anything is forwarded."""
    scan_unavailable_allow: bool = False
    """``scan.on_unavailable: allow``: a file the scanner gives no verdict on passes
    (recorded as unscanned); by default such an upload is refused (503)."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file (or the raw body) of an upload, as checked."""

    field: str
    """The form field it came in (``""`` for a raw body)."""
    original: str | None
    """The file name as sent, control and format characters escaped; ``None``: none."""
    name: str | None
    """The name forwarded to the app (sanitized); ``None`` when none was sent."""
    declared: str | None
    """The Content-Type the client declared for it."""
    kind: str
    """The type its content was found to be (``png``; ``empty``)."""
    size: int


@dataclass(frozen=True, slots=True)
class UploadReport:
    """What the upload check saw of a request's files, for its audit record."""

    files: tuple[UploadedFile, ...] = ()
    refused: str = ""
    """Why the upload was refused; empty when it was let through."""
    scan: str = ""
    """The virus scan: ``clean``, ``unscanned`` (scanner unavailable, let through), or
    empty when the route does not scan or the upload was refused before the verdict."""

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "files": [
                {
                    "field": f.field,
                    "original_name": f.original,
                    "name": f.name,
                    "declared": f.declared,
                    "type": f.kind,
                    "size": f.size,
                }
                for f in self.files
            ]
        }
        if self.refused:
            data["refused"] = self.refused
        if self.scan:
            data["scan"] = self.scan
        return data


@dataclass(frozen=True, slots=True)
class RoleDef:
    """A role of the RBAC matrix."""

    name: str
    can: frozenset[str]
    """Actions this role allows."""
    scope_global: bool = False
    """A global-scope role applies in every tenant."""
    mfa_required: bool = False
    """``mfa: required``: its holders sign in with a second factor, and a request this
    role grants needs one in the session."""


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled route rule (built once by ``routing.compile_routes``)."""

    name: str
    pattern: str
    """The path template as written in the rules."""
    methods: frozenset[str] | None
    """Allowed methods (upper case); ``None`` means any."""
    upstream: str
    """Name of the upstream in the rules."""
    action: str | None = None
    """Explicit action; ``None`` derives it from the method."""
    public: bool = False
    step_up_seconds: float | None = None
    """Maximum age of the last authentication for this route (I6)."""
    tenant_param: str | None = None
    """Path parameter that names the tenant (``tenant: path.tenant``)."""
    ids: tuple[IdSpec, ...] = ()
    """Every object id the route carries; the first is the primary resource."""
    guard: GuardSpec | None = None
    file_disposition: str | None = None
    """``attachment`` or ``inline`` for file routes (SPEC §7)."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Request bodies larger than this are refused while streaming."""
    websocket: bool = False
    """Whether a WebSocket upgrade may pass on this route."""
    sensitive: bool = False
    """Audited in full (I6); true for export, delete, download and admin actions."""
    creates: str | None = None
    """Resource type whose new objects this route creates: a ``201`` with a ``Location``
    naming one registers its owner (``learn_on_create``). No other route teaches owners."""
    ignored_lints: frozenset[str] = frozenset()
    """Lint codes (``config.lints``) its author accepts for this route."""
    query: QueryRules | None = None
    """Constraints on the query string's parameter names (``query_rules``)."""
    bind: TenantBinding | None = None
    """Query parameters and headers set to the request's tenant (``tenant_binding``)."""
    body_tenant: BodyTenant | None = None
    """The body field that must name the request's tenant (``body_tenant``)."""
    upload: UploadRules | None = None
    """Files its requests carry are checked (type by content, size, names): ``uploads``."""
    mfa_required: bool = False
    """``mfa: required``: only a session that has shown a second factor passes; machine
    credentials (API keys, bearer tokens) never do."""
    observe_until: float | None = None
    """Unix time until which the route observes (``observe.py``): a refusal of a signed-in
    caller's authorization is forwarded and audited as the rules' would-be decision.
    ``None``: the route enforces (its own ``mode: enforce``, or nobody asked to observe)."""
    required_params: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())
    """Every parameter the query string must carry (``query.require`` and the required
    ``query_ids``): derived once here, not on every request."""

    def __post_init__(self) -> None:
        names = self.query.require if self.query else ()
        ids = (s.key for s in self.ids if s.source is IdSource.QUERY and s.required)
        object.__setattr__(self, "required_params", tuple(dict.fromkeys((*names, *ids))))


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route and the path parameters it captured (decoded)."""

    route: Route
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No route pattern matched the path."""


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    """A route matched the path but none allows the method."""

    allowed: frozenset[str]


MatchResult = RouteMatch | NoRoute | MethodNotAllowed

ACTION_BY_METHOD: dict[str, str] = {
    "GET": "read",
    "HEAD": "read",
    "OPTIONS": "read",
    "POST": "write",
    "PUT": "write",
    "PATCH": "write",
    "DELETE": "delete",
}
SENSITIVE_ACTIONS = frozenset({"export", "delete", "download", "manage_users", "admin"})


def action_for(route: Route, method: str) -> str:
    """The action a request performs: the route's own, else derived from the method.

    Methods outside the table become their own lower-case action word, so only a role
    that names that word may use them (default deny).
    """
    if route.action:
        return route.action
    return ACTION_BY_METHOD.get(method.upper(), method.lower())


@dataclass(frozen=True, slots=True)
class UpstreamDef:
    """An app behind the gateway."""

    name: str
    url: str
    """Base URL, scheme://host:port with no trailing slash."""
    timeout_seconds: float = 30.0
    preserve_host: bool = False
    """Forward the gateway's public host (``server.public_url``) as ``Host``, not the
    app's own: for apps that build links from ``Host`` and read no ``X-Forwarded-Host``."""


@dataclass(frozen=True, slots=True)
class RegistryOwner:
    """Owner kept in the gateway's registry (admin API, CSV import, learned on create)."""

    learn_on_create: bool = False


@dataclass(frozen=True, slots=True)
class HttpOwner:
    """Owner looked up over HTTP at the system of record.

    ``url`` may hold ``{upstream}`` (the route's upstream base URL) and ``{id}``.
    200 → the tenant at ``tenant_field`` (a JSON pointer); 404 → not found; else failed.
    """

    method: str
    url: str
    tenant_field: str
    upstream: str | None = None
    """Upstream whose URL fills ``{upstream}``; defaults to the route's upstream."""


@dataclass(frozen=True, slots=True)
class SqlOwner:
    """Owner read with one read-only SQL query; ``:id`` is bound, the first column is the tenant."""

    query: str
    dsn: str


OwnerSpec = RegistryOwner | HttpOwner | SqlOwner


@dataclass(frozen=True, slots=True)
class ResourceDef:
    """How to find the tenant that owns one type of object."""

    name: str
    owner: OwnerSpec
    id_type: str = "slug"
    """Type of ids read outside the path: ``int``, ``uuid``, ``slug`` or ``regex:…``."""
    cache_seconds: float = 60.0
    """How long a found owner is cached."""
    negative_cache_seconds: float = 10.0
    """How long a "not found" answer is cached."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated, compiled rule set. Built by ``config.loader``; never mutated."""

    upstreams: dict[str, UpstreamDef]
    roles: dict[str, RoleDef]
    resources: dict[str, ResourceDef]
    routes: tuple[Route, ...]
    source: str = ""
    """File the rules came from (for messages)."""
    digest: str = ""
    """SHA-256 of the source text: identifies the active version."""
    mfa_tenants: frozenset[str] = frozenset()
    """``mfa: {tenants: […]}``: a person acting in one of these needs a second factor."""


@dataclass
class UpstreamReply:
    """An upstream answer, still streaming (``response``) or buffered (``body``)."""

    status: int
    reason: str
    headers: CIMultiDict[str]
    response: aiohttp.ClientResponse | None
    body: bytes | None
    upstream: str


class BodyReader(Protocol):
    """The body stream of a request, as deciding reads it (aiohttp's ``StreamReader``)."""

    async def readany(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        ...


class IncomingRequest(Protocol):
    """What deciding reads from a request.

    aiohttp's requests satisfy it as they are; ``rules simulate`` builds a plain value
    over an in-memory body, so both are decided by the very same code.
    """

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def version(self) -> tuple[int, int]: ...
    @property
    def headers(self) -> CIMultiDictProxy[str]: ...
    @property
    def cookies(self) -> Mapping[str, str]: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def scheme(self) -> str: ...
    @property
    def body_exists(self) -> bool: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> BodyReader: ...
