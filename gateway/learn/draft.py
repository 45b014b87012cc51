"""Endpoints → a draft rule set: routes, the ids they name, resources to fill in.

Only what was seen becomes a route (default deny does the rest): one route per
template and method (``GET`` covers ``HEAD``). Every typed path parameter is taken to
name an object — a parameter that names none is a person's call to make, never the
draft's — so the route gets a ``resource``; a second one in the same path is a
question in a comment, since a route checks one path object. Query parameters named
or shaped like ids become ``query_ids``; a document's body and form ids become
``body_ids``/``form_ids``. A ``GET`` whose template ends in a literal (a list or a
search) gets a query allow-list of the parameters seen.

Each resource gets an owner lookup that cannot answer: an ``http`` lookup against a
host under ``.invalid`` (RFC 6761: it never resolves). The draft loads and passes
``rules check``; every request naming such an object is refused (the lookup fails,
and a failed lookup is a refusal) until a person writes the real lookup, and
``rules check --probe`` fails on each one left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from gateway.learn.cluster import identifier, singular
from gateway.learn.evidence import Endpoint, IdField, MethodSeen, QuerySeen
from gateway.learn.openapi import name_reads_as_id, resource_of
from gateway.learn.shapes import fits, widest

QUESTION: Final = "QUESTION"
"""The mark of everything a person must answer before the rules go live."""
NOT_IDS: Final = frozenset(
    {"page", "per_page", "perpage", "page_size", "pagesize", "limit", "offset", "size"}
    | {"count", "start", "end", "from", "to", "year", "month", "day", "max", "min"}
    | {"skip", "take", "top", "n", "v", "version", "ts", "t", "_", "timestamp"}
    | {"width", "height", "w", "h", "q", "sort", "order", "format", "lang", "debug"}
    | {"duration", "delay", "numbytes", "code", "status_code", "retry", "timeout"}
)
"""Query parameters whose numbers count, page or time things rather than name objects."""


def owner_placeholder(resource: str) -> str:
    """The unanswerable lookup of ``resource``'s owner."""
    return f"GET http://{QUESTION}-owner-of-{resource.replace('_', '-')}.invalid/{{id}}"


TENANT_PLACEHOLDER: Final = f"/{QUESTION}-tenant-field"
ANY_SEGMENT: Final = "regex:[^/]+"
"""The id type of a parameter whose values are not all slugs (``/base64/{value}``)."""


@dataclass(slots=True)
class DraftResource:
    name: str
    id_types: set[str] = field(default_factory=set)
    used_by: list[str] = field(default_factory=list)

    @property
    def id_type(self) -> str:
        if "" in self.id_types or not self.id_types:
            return ANY_SEGMENT
        return widest(self.id_types) or ANY_SEGMENT


@dataclass(slots=True)
class DraftRoute:
    name: str
    path: str
    method: str
    resource: tuple[str, str] | None = None
    """(resource type, path parameter)."""
    query_ids: list[IdField] = field(default_factory=list)
    body_ids: list[IdField] = field(default_factory=list)
    form_ids: list[IdField] = field(default_factory=list)
    query_allow: list[str] | None = None
    tenant: str | None = None
    """The path parameter that names the tenant."""
    evidence: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Draft:
    routes: list[DraftRoute] = field(default_factory=list)
    resources: dict[str, DraftResource] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    """Methods seen fewer times than asked for (``--min-requests``)."""

    def resource(self, name: str, id_type: str, route: str) -> str:
        found = self.resources.setdefault(name, DraftResource(name))
        found.id_types.add(id_type)
        if route not in found.used_by:
            found.used_by.append(route)
        return name


def merge_endpoints(groups: Iterable[list[Endpoint]]) -> list[Endpoint]:
    """One endpoint per template shape: a document's names win, a log's evidence adds."""
    merged: dict[str, Endpoint] = {}
    for endpoints in groups:
        for endpoint in endpoints:
            key = _shape(endpoint.template)
            if key not in merged:
                merged[key] = endpoint
                continue
            into = merged[key]
            for method, seen in endpoint.methods.items():
                target = into.method(method)
                target.count += seen.count
                target.statuses.update(seen.statuses)
                target.sources |= seen.sources
                target.body_ids += [b for b in seen.body_ids if b not in target.body_ids]
                target.form_ids += [f for f in seen.form_ids if f not in target.form_ids]
                target.summary = target.summary or seen.summary
            for name, q in endpoint.query.items():
                into_q = into.query.setdefault(name, QuerySeen())
                into_q.count += q.count
                into_q.samples += [s for s in q.samples if s not in into_q.samples][:3]
                into_q.types |= q.types
                into_q.declared_id |= q.declared_id
            into.query_known |= endpoint.query_known
            into.samples += [s for s in endpoint.samples if s not in into.samples][:3]
            for mine, theirs in zip(into.params, endpoint.params, strict=False):
                mine.samples += [s for s in theirs.samples if s not in mine.samples][:3]
    return list(merged.values())


def _shape(template: str) -> str:
    return re.sub(r"\{[^{}]*\}", "{}", template)


def build_draft(endpoints: list[Endpoint], *, min_requests: int = 1) -> Draft:
    draft = Draft()
    names: set[str] = set()
    for endpoint in endpoints:
        methods = dict(endpoint.methods)
        if "GET" in methods and "HEAD" in methods:
            head = methods.pop("HEAD")
            methods["GET"] = _with_head(methods["GET"], head)
        for method, seen in sorted(methods.items()):
            if (
                "log" in seen.sources
                and "openapi" not in seen.sources
                and seen.count < min_requests
            ):
                draft.left_out.append(f"{method} {endpoint.template} ({seen.count} requests)")
                continue
            draft.routes.append(_route(draft, endpoint, method, seen, names))
    return draft


def _with_head(get: MethodSeen, head: MethodSeen) -> MethodSeen:
    combined = MethodSeen(get.count + head.count, get.statuses + head.statuses)
    combined.sources = get.sources | head.sources
    combined.body_ids, combined.form_ids, combined.summary = get.body_ids, get.form_ids, get.summary
    combined.samples = get.samples + [s for s in head.samples if s not in get.samples][:1]
    return combined


def _route_name(method: str, template: str, taken: set[str]) -> str:
    words = [re.sub(r":[a-z]+\}|[{}]", "", s) for s in template.split("/") if s]
    base = identifier("-".join([method.lower(), *words]).replace("-", "_")).replace("_", "-")
    base = base if len(words) else f"{method.lower()}-root"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _route(
    draft: Draft, endpoint: Endpoint, method: str, seen: MethodSeen, names: set[str]
) -> DraftRoute:
    route = DraftRoute(_route_name(method, endpoint.template, names), endpoint.template, method)
    route.evidence = _evidence(endpoint, seen)
    literals = [s for s in endpoint.template.split("/") if s and "{" not in s]
    fallback = identifier(singular(literals[-1])) if literals else "object"
    route.tenant = next((p.name for p in endpoint.params if p.is_tenant), None)
    ids = [p for p in endpoint.params if p.is_id]
    if ids:
        last = ids[-1]
        name = identifier(re.sub(r"_id$", "", last.name)) if last.name != "id" else fallback
        resource = resource_of(last.name, fallback) if name_reads_as_id(last.name) else name
        id_type = last.type if last.type else _plain_type(last.samples)
        route.resource = (draft.resource(resource, id_type, route.name), last.name)
        for other in ids[:-1]:
            route.questions.append(
                f"{{{other.name}}} is not checked: a route checks one path object. If it "
                "names an object of its own, give it a route that checks it, or name the "
                "tenant it is (tenant: path.…)."
            )
    for q_name, q in sorted(endpoint.query.items()):
        query_type = _query_id_type(q_name, q)
        if query_type is not None:
            resource = draft.resource(resource_of(q_name, fallback), query_type, route.name)
            route.query_ids.append(IdField(q_name, resource, query_type))
    for field_id in seen.body_ids:
        resource = draft.resource(field_id.resource, field_id.id_type, route.name)
        route.body_ids.append(IdField(field_id.where, resource, field_id.id_type))
    for field_id in seen.form_ids:
        resource = draft.resource(field_id.resource, field_id.id_type, route.name)
        route.form_ids.append(IdField(field_id.where, resource, field_id.id_type))
    _query_constraints(route, endpoint, method)
    names_ids = (
        route.resource or route.query_ids or route.body_ids or route.form_ids or route.tenant
    )
    if method not in ("GET", "HEAD") and not names_ids:
        route.questions.append(
            "this write names no object or tenant the gateway can check (writes-unchecked): "
            "name the ids its body carries (body_ids, form_ids), the tenant in its path, or "
            "bind the body's tenant (body_tenant)."
        )
    for literal in endpoint.beside_ids:
        route.questions.append(
            f"is {literal} an object rather than an endpoint? This route reaches it "
            "without checking it: if so, drop this route (the id route checks it)."
        )
    if endpoint.static:
        route.questions.append(
            "static assets: if none is secret, `public: true` lets them load before sign-in."
        )
    if method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        route.questions.append(
            f"{method} is its own action ({method.lower()}): only a role naming it may use it."
        )
    return route


def _plain_type(samples: list[str]) -> str:
    return "slug" if samples and all(fits(s, "slug") for s in samples) else ""


def _query_id_type(name: str, seen: QuerySeen) -> str | None:
    """The id type of a query parameter that names objects, else ``None``."""
    types = seen.types - {None}
    if seen.declared_id or name_reads_as_id(name):
        known = {t for t in types if t}
        return widest(known) or "slug" if known else "slug"
    if seen.count == 0:
        return None  # a document's parameter is an id only when it says so
    if name.lower() in NOT_IDS or not types or None in seen.types:
        return None
    if types <= {"int", "uuid"}:
        return widest({t for t in types if t})
    return None


def _query_constraints(route: DraftRoute, endpoint: Endpoint, method: str) -> None:
    last = endpoint.template.rstrip("/").rsplit("/", 1)[-1]
    is_list = method in ("GET", "HEAD") and "{" not in last and not endpoint.static
    is_list = is_list and route.tenant is None
    seen = sorted(endpoint.query)
    if is_list:
        route.query_allow = seen
        route.questions.append(
            "a list or search? Bind its tenant parameter (bind: {query: {NAME: caller.tenant}}) "
            "and guard its answer (guard: {tenant_field: …}): see docs/rules.md, "
            '"Protecting list and search endpoints".'
        )
        if not endpoint.query_known:
            route.questions.append(
                "the log shows no query strings: add the parameters this list takes to "
                "query.allow (every other one is refused)."
            )
    elif seen:
        route.questions.append(
            "query parameters seen: "
            + ", ".join(seen)
            + "; consider query: {allow: [...]} so no other reaches the app."
        )
    if endpoint.skipped_names:
        route.questions.append(
            "parameters the draft cannot list (nested or dotted names, refused under an "
            "allow-list): " + ", ".join(_clean(n) for n in endpoint.skipped_names[:5])
        )


def _evidence(endpoint: Endpoint, seen: MethodSeen) -> list[str]:
    lines: list[str] = []
    if "log" in seen.sources:
        statuses = ", ".join(f"{code}×{n}" for code, n in sorted(seen.statuses.items()))
        lines.append(f"seen {seen.count} time{'s' if seen.count != 1 else ''}: {statuses}")
        samples = seen.samples or endpoint.samples
        if samples:
            lines.append("e.g. " + ", ".join(_clean(s) for s in samples))
    if "openapi" in seen.sources:
        summary = f": {_clean(seen.summary)}" if seen.summary else ""
        lines.append(f"declared in the OpenAPI document{summary}")
    for param in endpoint.params:
        if param.samples:
            values = ", ".join(_clean(s) for s in param.samples)
            lines.append(f"{{{param.name}}} values: {values}")
    for name, q in sorted(endpoint.query.items()):
        if q.samples:
            lines.append(f"?{name} values: " + ", ".join(_clean(s) for s in q.samples))
    return lines


def _clean(text: str, limit: int = 60) -> str:
    """A value safe inside a one-line YAML comment: printable, short."""
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
