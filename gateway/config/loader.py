"""Rules file → validated, compiled ``RuleSet``; every problem reported at once.

Each problem reads ``file:line: field.path: what is wrong — what to do``. Line numbers
come from the YAML node marks, so they point at the offending key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config import yamlsource
from gateway.config.durations import parse_duration, parse_size
from gateway.config.envvars import substitute, unset_problem
from gateway.config.observe_window import route_window, window_problems
from gateway.config.rules import (
    GuardModel,
    HttpOwnerModel,
    RegistryOwnerModel,
    ResourceModel,
    RoleModel,
    RouteModel,
    RulesModel,
    UpstreamModel,
)
from gateway.config.yamlsource import Loc
from gateway.errors import ConfigError
from gateway.idtypes import problem as id_type_problem
from gateway.jsonpointer import WILDCARD
from gateway.jsonpointer import parse as parse_pointer
from gateway.jsonpointer import problem as pointer_problem
from gateway.model import (
    SENSITIVE_ACTIONS,
    BodyTenant,
    FieldAllowance,
    GuardMode,
    GuardSpec,
    HttpOwner,
    IdSource,
    IdSpec,
    OwnerSpec,
    QueryRules,
    RegistryOwner,
    ResourceDef,
    RoleDef,
    Route,
    RuleSet,
    SqlOwner,
    TenantBinding,
    UploadRules,
    UpstreamDef,
)
from gateway.query_rules import refused_name
from gateway.routing import overlap_problems, parse_template
from gateway.tenant_binding import bound_header_problem

RESERVED_PREFIX = "/.gatehold/"


def load_rules(path: Path, *, env: Mapping[str, str]) -> RuleSet:
    """Read, validate and compile a rules file; raises ``ConfigError`` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read the rules file: {error.strerror}"]) from None
    return load_rules_text(text, source=str(path), env=env)


def check_rules_file(path: Path, env: Mapping[str, str]) -> list[str]:
    """Every problem of a rules file; empty when it is valid."""
    try:
        load_rules(path, env=env)
    except ConfigError as error:
        return error.problems
    return []


def load_rules_text(text: str, *, source: str, env: Mapping[str, str]) -> RuleSet:
    """Validate and compile rules given as text (``source`` names it in messages)."""
    ruleset, problems = check_rules_text(text, source=source, env=env)
    if ruleset is None:
        raise ConfigError([str(problem) for problem in problems])
    return ruleset


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rules text: where (``line`` from 1, if known) and what."""

    source: str
    line: int | None
    message: str
    """``field.path: what is wrong — what to do`` (without the source and line)."""

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"


def check_rules_text(
    text: str, *, source: str, env: Mapping[str, str]
) -> tuple[RuleSet | None, list[RuleProblem]]:
    """The compiled rules, or ``None`` and every problem found in ONE pass.

    Schema problems of one upstream, role, resource or route do not hide the
    cross-reference and compile problems of the others: the parts that validate are
    compiled too, and a name whose own definition is broken counts as defined (so it
    is reported once, where it is broken).
    """
    try:
        data, lines = yamlsource.read(text, source)
    except ConfigError as error:
        return None, [_located(source, problem) for problem in error.problems]
    problems = _Problems(source, lines)
    model: RulesModel | None
    try:
        model = RulesModel.model_validate(data)
        broken = _Broken()
    except ValidationError as error:
        for item in error.errors():
            problems.add(tuple(item["loc"]), _explain(item))
        model, broken = _valid_parts(data)
    ruleset = _Compiler(model, problems, env, broken).compile() if model is not None else None
    if problems.items or ruleset is None:
        return None, problems.items
    return (
        RuleSet(
            upstreams=ruleset.upstreams,
            roles=ruleset.roles,
            resources=ruleset.resources,
            routes=ruleset.routes,
            source=source,
            digest=hashlib.sha256(text.encode()).hexdigest(),
            mfa_tenants=ruleset.mfa_tenants,
        ),
        [],
    )


def _located(source: str, problem: str) -> RuleProblem:
    """A problem already worded as ``source:line: message`` (a YAML syntax error)."""
    head, line, message = problem.removeprefix(f"{source}:").partition(": ")
    if line and head.isdigit():
        return RuleProblem(source, int(head), message)
    return RuleProblem(source, None, problem.removeprefix(f"{source}: "))


@dataclass(frozen=True, slots=True)
class _Broken:
    """Names whose definitions failed the schema: defined, but not compiled."""

    upstreams: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    route_positions: tuple[int, ...] | None = None
    """Where each compiled route stands in the file, when some routes were left out."""


def _valid_parts(data: Any) -> tuple[RulesModel | None, _Broken]:
    """The upstreams, roles, resources and routes that validate on their own."""
    if not isinstance(data, dict):
        return None, _Broken()
    sections: dict[str, dict[str, Any]] = {}
    broken: dict[str, set[str]] = {}
    for section, item_model in (
        ("upstreams", UpstreamModel),
        ("roles", RoleModel),
        ("resources", ResourceModel),
    ):
        raw = data.get(section)
        sections[section] = {}
        broken[section] = set()
        for name, value in raw.items() if isinstance(raw, dict) else ():
            try:
                sections[section][str(name)] = item_model.model_validate(value)
            except ValidationError:
                broken[section].add(str(name))
    routes: list[tuple[int, RouteModel]] = []
    raw_routes = data.get("routes")
    for index, value in enumerate(raw_routes if isinstance(raw_routes, list) else ()):
        try:
            routes.append((index, RouteModel.model_validate(value)))
        except ValidationError:
            continue
    model = RulesModel.model_construct(
        version=1,
        upstreams=sections["upstreams"],
        roles=sections["roles"],
        resources=sections["resources"],
        routes=[route for _, route in routes],
    )
    return model, _Broken(
        frozenset(broken["upstreams"]),
        frozenset(broken["resources"]),
        tuple(index for index, _ in routes),
    )


class _Problems:
    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source = source
        self._lines = lines
        self.items: list[RuleProblem] = []

    @property
    def lines(self) -> list[str]:
        return [str(item) for item in self.items]

    def add(self, loc: Loc, message: str) -> None:
        line = yamlsource.line_of(loc, self._lines)
        field = _field_path(loc) or "(top level)"
        self.items.append(RuleProblem(self.source, line, f"{field}: {message}"))


def _field_path(loc: Loc) -> str:
    """The path as written in the file: without the owner union's tag pydantic adds."""
    kept: list[str | int] = []
    for part in loc:
        if part in ("http", "sql", "registry") and kept and kept[-1] == "owner":
            continue  # the union tag; the key itself is reported
        kept.append(part)
    return yamlsource.field_path(kept)


def _explain(error: Any) -> str:
    if error["type"] == "literal_error" and tuple(error["loc"]) == ("version",):
        return "unsupported version — write 'version: 1'"
    return yamlsource.explain(error, lambda loc: yamlsource.keys_at(RulesModel, loc) or _all_keys())


def _all_keys() -> list[str]:
    from gateway.config import rules as models

    keys: set[str] = set()
    for model in vars(models).values():
        if isinstance(model, type) and issubclass(model, models.Strict):
            keys.update(model.model_fields)
    return sorted(keys)


def _guard_problems(pointer: str, mode: str) -> list[str]:
    """What is wrong with a guard's pointer (RFC 6901, and a ``*`` to filter by)."""
    if (message := pointer_problem(pointer)) is not None:
        return [message]
    if mode == "filter" and WILDCARD not in parse_pointer(pointer):
        return [f"{pointer!r} has no '*': filter mode drops items of the array a '*' walks"]
    return []


def _guard_fields_problems(guard: GuardModel) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with a guard as a whole and with its ``fields`` (field path, message)."""
    found: list[tuple[tuple[str, ...], str]] = []
    if guard.tenant_field is None and guard.fields is None:
        found.append(((), "a guard needs tenant_field, fields, or both"))
    if guard.tenant_field is None and guard.mode == "filter":
        found.append((("mode",), "filter mode needs a tenant_field to filter by"))
    if guard.fields is None:
        return found
    at = guard.fields.at
    if at == "/":
        found.append(
            (
                ("fields", "at"),
                '\'/\' names the member "" (RFC 6901); omit `at` or write "" for the whole answer',
            )
        )
    elif (message := pointer_problem(at)) is not None:
        found.append((("fields", "at"), message))
    return found


def _guard_spec(guard: GuardModel) -> GuardSpec:
    fields = guard.fields
    allowance = FieldAllowance(frozenset(fields.allow), fields.at) if fields else None
    return GuardSpec(guard.tenant_field, GuardMode(guard.mode), allowance)


def _query_and_tenant_problems(r: RouteModel) -> list[tuple[Loc, str]]:
    """What is wrong with a route's ``query``, ``bind``, ``body_tenant`` and required ids."""
    found: list[tuple[Loc, str]] = []
    if r.public and (r.bind or r.body_tenant):
        found.append((("public",), "a public route has no tenant to bind: remove bind/body_tenant"))
    q = r.query
    if q is not None:
        both = sorted(set(q.allow or ()) & set(q.deny))
        if both:
            found.append((("query",), f"{', '.join(both)} is both allowed and denied"))
        for n, name in enumerate(q.require):
            if refused_name(name, q.allow, q.deny):
                found.append((("query", "require", n), f"{name!r} is required but refused"))
    bound = set(r.bind.query) if r.bind else set()
    for n, spec in enumerate(r.query_ids):
        if q is not None and refused_name(spec.param, q.allow, q.deny):
            found.append(
                (("query_ids", n, "param"), f"{spec.param!r} is refused by 'query' — allow it")
            )
        if spec.param in bound:
            found.append((("query_ids", n, "param"), f"{spec.param!r} is also bound by 'bind'"))
    if r.bind is not None:
        for name in r.bind.headers:
            if (bad := bound_header_problem(name)) is not None:
                found.append((("bind", "headers", name), bad))
        if not r.bind.query and not r.bind.headers:
            found.append((("bind",), "bind needs a 'query' or 'headers' entry"))
    bt = r.body_tenant
    if bt is not None:
        if bt.pointer is None and bt.field is None:
            found.append(
                (("body_tenant",), "give 'pointer' (JSON bodies), 'field' (forms) or both")
            )
        if bt.pointer is not None and (bad_pointer := pointer_problem(bt.pointer)) is not None:
            found.append((("body_tenant", "pointer"), bad_pointer))
        elif bt.pointer is not None and parse_pointer(bt.pointer)[-1] == WILDCARD:
            found.append((("body_tenant", "pointer"), "the pointer must end in a field name"))
    return found


def _query_and_tenant_fields(r: RouteModel) -> dict[str, Any]:
    """The compiled ``query``, ``bind`` and ``body_tenant`` of a route (already checked)."""
    fields: dict[str, Any] = {}
    if r.query is not None:
        allow = tuple(r.query.allow) if r.query.allow is not None else None
        fields["query"] = QueryRules(allow, tuple(r.query.deny), tuple(r.query.require))
    if r.bind is not None:
        fields["bind"] = TenantBinding(tuple(r.bind.query), tuple(r.bind.headers))
    if r.body_tenant is not None:
        bt = r.body_tenant
        fields["body_tenant"] = BodyTenant(bt.pointer, bt.field, bt.on_missing == "set")
    return fields


MIN_PART_HEADER = 256
MAX_PART_HEADER = 64 * 1024


def _upload_rules(r: RouteModel, max_body: int, problem: Any) -> UploadRules | None:
    """The compiled ``upload`` block of a route; its problems go to ``problem``."""
    upload = r.upload
    if upload is None:
        return None
    sizes: dict[str, int] = {}
    for key, value in (("max_file", upload.max_file), ("max_part_header", upload.max_part_header)):
        try:
            sizes[key] = parse_size(value)
        except ValueError as error:
            problem(("upload", key), str(error))
    if len(sizes) < 2:
        return None
    max_file, header = sizes["max_file"], sizes["max_part_header"]
    if max_file > max_body > 0:
        problem(
            ("upload", "max_file"),
            f"{upload.max_file} is more than the route's max_body ({r.max_body}) — raise "
            "max_body or lower max_file",
        )
    if not MIN_PART_HEADER <= header <= MAX_PART_HEADER:
        problem(
            ("upload", "max_part_header"),
            f"{upload.max_part_header} is out of range — write between 256 and 64KiB",
        )
    if r.websocket:
        problem(("upload",), "a WebSocket route carries no uploads — remove upload or websocket")
    return UploadRules(
        types=frozenset(upload.types),
        max_file=max_file,
        max_parts=upload.max_parts,
        max_part_header=header,
        refuse_bad_names=upload.filename == "refuse",
        scan=upload.scan is not None,
        scan_unavailable_allow=upload.scan is not None and upload.scan.on_unavailable == "allow",
    )


class _Compiler:
    """Cross-reference checks and compilation into ``model`` values."""

    def __init__(
        self, model: RulesModel, problems: _Problems, env: Mapping[str, str], broken: _Broken
    ) -> None:
        self.model = model
        self.problems = problems
        self.env = env
        self.broken = broken
        self.now = time.time()
        """When the rules are loaded: observe windows are bounded from here."""
        positions = broken.route_positions
        self.routes = list(
            enumerate(model.routes)
            if positions is None
            else zip(positions, model.routes, strict=True)
        )

    def compile(self) -> RuleSet:
        upstreams = {
            name: UpstreamDef(
                name,
                self._substitute(u.url, ("upstreams", name, "url")).rstrip("/"),
                self._duration(u.timeout, ("upstreams", name, "timeout")),
                preserve_host=u.preserve_host,
            )
            for name, u in self.model.upstreams.items()
        }
        roles = {
            name: RoleDef(
                name, frozenset(r.can), r.scope == "global", mfa_required=r.mfa == "required"
            )
            for name, r in self.model.roles.items()
        }
        for name, u in self.model.upstreams.items():
            what = f"upstream {name!r}"
            for field, message in window_problems(u.mode, u.observe_until, what=what, now=self.now):
                self.problems.add(("upstreams", name, field), message)
        resources = {name: self._resource(name, r) for name, r in self.model.resources.items()}
        routes = tuple(
            route for index, r in self.routes if (route := self._route(index, r)) is not None
        )
        self._check_names(routes)
        for problem in overlap_problems(routes):
            self.problems.add(("routes",), problem)
        mfa_tenants = frozenset(self.model.mfa.tenants) if self.model.mfa else frozenset()
        return RuleSet(upstreams, roles, resources, routes, mfa_tenants=mfa_tenants)

    def _substitute(self, value: str, loc: Loc) -> str:
        result, missing = substitute(value, self.env)
        for name in missing:
            self.problems.add(loc, unset_problem(name))
        return result

    def _duration(self, value: str | float, loc: Loc) -> float:
        try:
            return parse_duration(value)
        except ValueError as error:
            self.problems.add(loc, str(error))
            return 0.0

    def _resource(self, name: str, model: ResourceModel) -> ResourceDef:
        loc: Loc = ("resources", name)
        owner_model = model.owner
        owner: OwnerSpec
        if isinstance(owner_model, HttpOwnerModel):
            method, url = owner_model.http.split(" ", 1)
            if "{id}" not in url:
                self.problems.add((*loc, "owner"), "the http lookup URL needs an {id} placeholder")
            if owner_model.upstream and not self._upstream_defined(owner_model.upstream):
                self.problems.add(
                    (*loc, "owner", "upstream"), self._unknown_upstream(owner_model.upstream)
                )
            if (message := pointer_problem(owner_model.tenant_field)) is not None:
                self.problems.add((*loc, "owner", "tenant_field"), message)
            owner = HttpOwner(method, url, owner_model.tenant_field, owner_model.upstream)
        elif isinstance(owner_model, RegistryOwnerModel):
            owner = RegistryOwner(owner_model.learn_on_create)
        else:
            if ":id" not in owner_model.sql:
                self.problems.add((*loc, "owner", "sql"), "the query must use the :id parameter")
            dsn = self._substitute(owner_model.dsn, (*loc, "owner", "dsn"))
            owner = SqlOwner(owner_model.sql, dsn)
        if (bad_type := id_type_problem(model.id_type)) is not None:
            self.problems.add((*loc, "id_type"), bad_type)
        return ResourceDef(
            name,
            owner,
            id_type=model.id_type,
            cache_seconds=self._duration(model.cache, (*loc, "cache")),
            negative_cache_seconds=self._duration(model.negative_cache, (*loc, "negative_cache")),
        )

    def _upstream_defined(self, name: str) -> bool:
        return name in self.model.upstreams or name in self.broken.upstreams

    def _unknown_upstream(self, name: str) -> str:
        known = ", ".join(sorted(self.model.upstreams))
        return f"unknown upstream {name!r} — define it under 'upstreams:' or use one of: {known}"

    def _route(self, index: int, r: RouteModel) -> Route | None:
        loc: Loc = ("routes", index)
        ok = True

        def problem(where: Loc, message: str) -> None:
            nonlocal ok
            ok = False
            self.problems.add((*loc, *where), message)

        template = parse_template(r.match.path)
        if isinstance(template, str):
            problem(("match", "path"), template)
            return None
        if r.match.path.startswith(RESERVED_PREFIX):
            problem(("match", "path"), f"paths under {RESERVED_PREFIX} belong to the gateway")
        params = dict(template.params)
        if not self._upstream_defined(r.upstream):
            problem(("upstream",), self._unknown_upstream(r.upstream))
        ids = self._ids(r, params, problem)
        tenant_param = r.tenant.split(".", 1)[1] if r.tenant else None
        if tenant_param is not None and tenant_param not in params:
            problem(("tenant",), f"{r.tenant} names no parameter of {r.match.path}")
        if r.public and (ids or r.step_up or r.tenant):
            problem(("public",), "a public route cannot carry object ids, step_up or tenant")
        if r.public and r.mfa == "required":
            problem(("mfa",), "a public route asks nobody for anything: drop 'mfa' or 'public'")
        if r.guard is not None and r.guard.tenant_field is not None:
            for guard_problem in _guard_problems(r.guard.tenant_field, r.guard.mode):
                problem(("guard", "tenant_field"), guard_problem)
        if r.guard is not None:
            for field_path, guard_problem in _guard_fields_problems(r.guard):
                problem(("guard", *field_path), guard_problem)
        for n, b in enumerate(r.body_ids):
            if (bad_pointer := pointer_problem(b.pointer)) is not None:
                problem(("body_ids", n, "pointer"), bad_pointer)
        methods = frozenset(m.upper() for m in r.match.methods) if r.match.methods else None
        try:
            max_body = parse_size(r.max_body)
        except ValueError as error:
            problem(("max_body",), str(error))
            max_body = 0
        step_up = self._duration(r.step_up, (*loc, "step_up")) if r.step_up is not None else None
        if r.creates is not None and (bad_creates := self._creates_problem(r.creates)):
            problem(("creates",), bad_creates)
        for where, message in _query_and_tenant_problems(r):
            problem(where, message)
        upload = _upload_rules(r, max_body, problem) if r.upload is not None else None
        what = f"route {r.name!r}"
        for field, message in window_problems(r.mode, r.observe_until, what=what, now=self.now):
            problem((field,), message)
        if not ok:
            return None
        sensitive = r.sensitive
        if sensitive is None:
            sensitive = r.action in SENSITIVE_ACTIONS or methods == frozenset({"DELETE"})
        return Route(
            name=r.name,
            pattern=r.match.path,
            methods=methods,
            upstream=r.upstream,
            action=r.action,
            public=r.public,
            step_up_seconds=step_up,
            tenant_param=tenant_param,
            ids=ids,
            guard=_guard_spec(r.guard) if r.guard else None,
            file_disposition=r.file.disposition if r.file else None,
            max_body_bytes=max_body,
            websocket=r.websocket,
            sensitive=sensitive,
            creates=r.creates,
            ignored_lints=frozenset(r.ignore_lints),
            upload=upload,
            mfa_required=r.mfa == "required",
            observe_until=route_window(r, self.model.upstreams.get(r.upstream)),
            **_query_and_tenant_fields(r),
        )

    def _creates_problem(self, name: str) -> str | None:
        """Why a route cannot declare ``creates: name``, or ``None``."""
        resource = self.model.resources.get(name)
        if resource is None and name in self.broken.resources:
            return None  # reported where the resource is defined
        if resource is None:
            known = ", ".join(sorted(self.model.resources)) or "none defined"
            return f"unknown resource type {name!r} — define it under 'resources:' ({known})"
        owner = resource.owner
        if not isinstance(owner, RegistryOwnerModel) or not owner.learn_on_create:
            return (
                f"resource {name!r} does not learn owners on create — give it "
                "'owner: {registry: true, learn_on_create: true}' or remove 'creates'"
            )
        return None

    def _ids(self, r: RouteModel, params: dict[str, str], problem: Any) -> tuple[IdSpec, ...]:
        ids: list[IdSpec] = []
        resources = self.model.resources

        def resource_type(name: str, where: Loc) -> str | None:
            if name in resources:
                return resources[name].id_type
            if name in self.broken.resources:
                return None  # reported where the resource is defined
            known = ", ".join(sorted(resources)) or "none defined"
            problem(
                where, f"unknown resource type {name!r} — define it under 'resources:' ({known})"
            )
            return None

        if r.resource is not None:
            param = r.resource.id.split(".", 1)[1]
            id_type = resource_type(r.resource.type, ("resource", "type"))
            if param not in params:
                problem(("resource", "id"), f"{r.resource.id} names no parameter of {r.match.path}")
            elif id_type is not None:
                # The resource's type, whatever the template's: the owner lookup relies on
                # it (a {id:slug} path must not carry a non-int id to an int resource).
                ids.append(IdSpec(r.resource.type, IdSource.PATH, param, id_type))
        for n, b in enumerate(r.body_ids):
            if (t := resource_type(b.type, ("body_ids", n, "type"))) is not None:
                ids.append(IdSpec(b.type, IdSource.BODY, b.pointer, t))
        for n, q in enumerate(r.query_ids):
            if (t := resource_type(q.type, ("query_ids", n, "type"))) is not None:
                ids.append(IdSpec(q.type, IdSource.QUERY, q.param, t, required=q.required))
        for n, f in enumerate(r.form_ids):
            if (t := resource_type(f.type, ("form_ids", n, "type"))) is not None:
                ids.append(IdSpec(f.type, IdSource.FORM, f.field, t))
        return tuple(ids)

    def _check_names(self, routes: tuple[Route, ...]) -> None:
        seen: set[str] = set()
        for index, route in self.routes:
            if route.name in seen:
                self.problems.add(
                    ("routes", index, "name"), f"route name {route.name!r} is used twice"
                )
            seen.add(route.name)
