"""The rules format (SPEC §3) as pydantic models: the one source of ``rules/schema.json``.

Run ``python -m gateway.config.rules > rules/schema.json`` after changing a model;
a test fails while the committed schema is stale.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from gateway.idtypes import RULES_PATTERN

Duration = Annotated[
    str | float,
    Field(description="Seconds, or a number with a unit: 500ms, 30s, 10m, 8h, 90d."),
]
Size = Annotated[str | int, Field(description="Bytes, or a number with a unit: 512KiB, 10MiB.")]
IdType = Annotated[
    str,
    Field(
        pattern=RULES_PATTERN,
        description="int, uuid, slug, or regex:<pattern> (full match).",
    ),
]
PathRef = Annotated[str, Field(pattern=r"^path\.[A-Za-z_][A-Za-z0-9_]*$")]
Pointer = Annotated[str, Field(pattern=r"^(/[^/]*)+$")]
"""A JSON pointer's shape; the loader checks the rest (escapes) with ``gateway.jsonpointer``."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?")


def _written_out(value: object) -> object:
    """Refuse a Unix timestamp (a number, or a string of digits) where a time is meant.

    pydantic would read one as seconds since 1970, in UTC: a typo or a millisecond
    count would then open or close a window at a time nobody wrote down.
    """
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError(
            f"observe_until is a Unix timestamp ({value!r}) — write an ISO 8601 time with "
            f"its zone instead, such as 2026-12-01T18:00:00Z{_as_time(value)}"
        )
    return value


def _as_time(value: object) -> str:
    """``"; as seconds since 1970, 1780000000 would be 2026-05-28T20:26:40Z"``, when the
    number is a time at all (the time it would have meant, to copy)."""
    try:
        when = datetime.fromtimestamp(float(str(value)), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return f"; as seconds since 1970, {value} would be {when:%Y-%m-%dT%H:%M:%SZ}"


ObserveUntil = Annotated[
    AwareDatetime | None,
    BeforeValidator(_written_out),
    Field(
        description="With mode: observe, when observing ends and enforcing starts by itself: "
        "an ISO 8601 time with its zone (2026-12-01T18:00:00Z), at most 30 days ahead; "
        "not a Unix timestamp.",
    ),
]


class UpstreamModel(Strict):
    url: str = Field(
        description="Base URL; ${VAR} and ${VAR:-default} are read from the environment."
    )
    timeout: Duration = "30s"
    preserve_host: bool = Field(
        default=False,
        description="Send the gateway's public host (from server.public_url) as Host, "
        "instead of the app's own address.",
    )
    mode: Literal["enforce", "observe"] = Field(
        default="enforce",
        description="observe: refusals of signed-in people on its routes are forwarded and "
        "audited with the decision the rules would have taken, until observe_until.",
    )
    observe_until: ObserveUntil = None


MfaRequired = Literal["required"] | None
"""``required``: a second factor (TOTP, recovery code, passkey) shown in the session."""
TenantId = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]


class RoleModel(Strict):
    can: list[str] = Field(min_length=1, description="Actions this role allows.")
    scope: Literal["tenant", "global"] = "tenant"
    mfa: MfaRequired = Field(
        default=None,
        description="required: whoever holds this role signs in with a second factor, and "
        "a request it grants needs one.",
    )


class HttpOwnerModel(Strict):
    http: str = Field(
        pattern=r"^(GET|POST) \S+$", description='e.g. "GET {upstream}/internal/invoices/{id}"'
    )
    tenant_field: Pointer = Field(description="JSON pointer to the tenant.")
    upstream: str | None = None


class SqlOwnerModel(Strict):
    sql: str = Field(description="Read-only query; :id is bound; the first column is the tenant.")
    dsn: str


class RegistryOwnerModel(Strict):
    registry: Literal[True]
    learn_on_create: bool = False


def _owner_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("http", "sql", "registry"):
            if kind in value:
                return kind
    return None


OwnerModel = Annotated[
    Annotated[HttpOwnerModel, Tag("http")]
    | Annotated[SqlOwnerModel, Tag("sql")]
    | Annotated[RegistryOwnerModel, Tag("registry")],
    Discriminator(
        _owner_kind,
        custom_error_type="owner_kind",
        custom_error_message="owner needs one of the keys http, sql or registry",
    ),
]


class ResourceModel(Strict):
    owner: OwnerModel
    id_type: IdType = "slug"
    cache: Duration = "60s"
    negative_cache: Duration = "10s"


class MatchModel(Strict):
    path: str = Field(pattern=r"^/", description="Path template: /api/invoices/{id:int}")
    methods: list[str] | None = None


class ResourceRefModel(Strict):
    type: str
    id: PathRef


class BodyIdModel(Strict):
    type: str
    pointer: Pointer


class QueryIdModel(Strict):
    type: str
    param: str = Field(min_length=1)
    required: bool = Field(
        default=False, description="Refuse a request whose query string lacks this parameter."
    )


class FormIdModel(Strict):
    type: str
    field: str = Field(min_length=1)


WholeOrPointer = Annotated[str, Field(pattern=r"^(/[^/]*)*$")]
"""A JSON pointer, or ``""`` for the whole document."""


class GuardFieldsModel(Strict):
    allow: list[str] = Field(
        min_length=1,
        description="Members kept in the object at `at`; every other member is removed.",
    )
    at: WholeOrPointer = Field(
        default="",
        description='Pointer to the object(s) to strip ("" = the whole answer; * walks).',
    )


class GuardModel(Strict):
    tenant_field: Pointer | None = None
    mode: Literal["block", "filter"] = "block"
    fields: GuardFieldsModel | None = None


ParamPattern = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_*-]+$",
        description="A parameter name; '*' stands for any run of characters (_facet*).",
    ),
]
ParamName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")]


class QueryRulesModel(Strict):
    allow: list[ParamPattern] | None = Field(
        default=None, description="Only parameters whose names match one of these."
    )
    deny: list[ParamPattern] = Field(
        default=[], description="Refuse a parameter whose name, or any part of it, matches."
    )
    require: list[ParamName] = Field(
        default=[], description="Refuse a request whose query lacks one of these."
    )


class BindModel(Strict):
    query: dict[ParamName, Literal["caller.tenant"]] = Field(
        default={},
        description="Query parameters set to the request's tenant (every spelling sent is "
        "removed first).",
    )
    headers: dict[HeaderName, Literal["caller.tenant"]] = Field(
        default={}, description="Request headers set to the request's tenant."
    )


class BodyTenantModel(Strict):
    pointer: Pointer | None = Field(default=None, description="JSON bodies: the tenant field.")
    field: ParamName | None = Field(default=None, description="Urlencoded forms: the field.")
    on_missing: Literal["set", "refuse"] = "set"


class FileModel(Strict):
    disposition: Literal["attachment", "inline"] = "attachment"


UploadType = Literal[
    "pdf", "png", "jpeg", "gif", "webp", "txt", "csv", "zip", "docx", "xlsx", "svg"
]


class ScanModel(Strict):
    on_unavailable: Literal["refuse", "allow"] = Field(
        default="refuse",
        description="When clamd gives no verdict: refuse (503, the default) or let the "
        "upload through, recorded as unscanned.",
    )


class UploadModel(Strict):
    types: list[UploadType] = Field(
        min_length=1,
        description="Types accepted, judged by content (magic bytes), not by name or "
        "declared type. svg only when listed, and an SVG with script is refused anyway.",
    )
    max_file: Size = Field(default="10MiB", description="Largest file (or form field).")
    max_parts: int = Field(
        default=10, ge=1, le=1000, description="Most parts (files and fields) in a form."
    )
    max_part_header: Size = Field(default="4KiB", description="Largest header block of a part.")
    filename: Literal["sanitize", "refuse"] = Field(
        default="sanitize",
        description="sanitize: the app gets a safe name (no path, controls, reserved "
        "names); refuse: a name that would need it is refused.",
    )
    scan: ScanModel | None = Field(
        default=None,
        description="Scan every file with ClamAV (clamd, settings scanner.clamd_socket) "
        "before anything is forwarded.",
    )


class RouteModel(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    match: MatchModel
    upstream: str
    action: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    public: bool = False
    step_up: Duration | None = None
    tenant: PathRef | None = None
    resource: ResourceRefModel | None = None
    body_ids: list[BodyIdModel] = []
    query_ids: list[QueryIdModel] = []
    form_ids: list[FormIdModel] = []
    guard: GuardModel | None = None
    file: FileModel | None = None
    max_body: Size = "10MiB"
    websocket: bool = False
    sensitive: bool | None = None
    creates: str | None = Field(
        default=None,
        description="Resource type this route creates (registry owner with learn_on_create): "
        "its 201 answer's Location registers the new object's owner. Only such a route "
        "teaches owners.",
    )
    ignore_lints: list[str] = Field(
        default=[],
        description="Lint codes of `gatehold rules check` this route is meant to trip "
        "(say why in a comment), e.g. [writes-unchecked].",
    )
    query: QueryRulesModel | None = None
    bind: BindModel | None = None
    body_tenant: BodyTenantModel | None = None
    upload: UploadModel | None = Field(
        default=None,
        description="Requests carry untrusted files: checked by content, size and name "
        "before anything is forwarded.",
    )
    mfa: MfaRequired = Field(
        default=None,
        description="required: only a session that has shown a second factor passes; "
        "API keys and bearer tokens are refused (they cannot show one).",
    )
    mode: Literal["enforce", "observe"] | None = Field(
        default=None,
        description="observe: refusals of signed-in people are forwarded and audited with the "
        "decision the rules would have taken, until observe_until; enforce: refuse them even "
        "when the upstream observes. Unset: the upstream's mode.",
    )
    observe_until: ObserveUntil = None


class MfaModel(Strict):
    tenants: list[TenantId] = Field(
        min_length=1,
        description="Tenants whose people sign in with a second factor; a person's "
        "request acting in one needs it.",
    )


class RulesModel(Strict):
    version: Literal[1]
    upstreams: dict[str, UpstreamModel] = Field(min_length=1)
    roles: dict[str, RoleModel] = Field(min_length=1)
    resources: dict[str, ResourceModel] = {}
    routes: list[RouteModel] = Field(min_length=1)
    mfa: MfaModel | None = None


def rules_json_schema() -> dict[str, Any]:
    """JSON Schema of the rules format, for editors."""
    schema = RulesModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Gatehold rules"
    return schema


if __name__ == "__main__":
    print(json.dumps(rules_json_schema(), indent=2))
