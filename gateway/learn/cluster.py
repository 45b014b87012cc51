"""Requests → endpoints: paths clustered into templates of the rules format.

What counts as evidence that the app serves an address (and so may become a route):

* a request the app answered with 1xx–3xx, or with a 4xx that says the address
  exists (400, 401, 403, 409, 412, 422, 429: bad input, not signed in, refused,
  conflicts, limits). ``404``, ``405``, ``410`` and the other 4xx are misses — scanners
  and typos — and 5xx shows the app failed, not that it serves the address; both are
  counted in the summary, never routes;
* not ``OPTIONS`` (CORS preflights, answered for any path), not ``TRACE`` or
  ``CONNECT`` (never to be let through); ``HEAD`` counts, and is covered by a ``GET``
  route when ``GET`` was seen too;
* not a target the gateway would refuse as ambiguous (I2: ``%2F`` in a segment, dot
  segments…), and not the gateway's own pages (``/.gatehold/``);
* in Gatehold's own JSON log, not a request the gateway refused (it never reached the
  app).

Each path is canonicalised as the gateway does (so ``%2E`` is ``.``) and split into
segments, written decoded as templates spell them (``café``; a path with a brace in
it is skipped, since no template can spell one). A segment is an id when
``shapes.id_type_of`` says so (``7``, a UUID, ``r-acme-1``), also before a file
extension (``7.json`` → ``{id:int}.json``), and a literal otherwise (``export``,
``recent``, ``v2``). Literals beside ids stay literals (``/invoices/export`` next
to ``/invoices/7``). More than ``max_literals`` distinct literals at one place of
one prefix are data, not endpoints, and become one parameter. Files with a static
extension (``.css``, ``.js``, images, fonts) under a first segment are gathered as
``/<first>/{asset:path}``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, unquote

from gateway.ingress import SEGMENT_SAFE, canonicalize
from gateway.learn.evidence import Endpoint, MethodSeen, PathParam, QuerySeen, add_sample
from gateway.learn.logread import Request
from gateway.learn.shapes import fits, id_type_of, split_suffix, widest
from gateway.model import Rejection

EVIDENT_4XX: Final = frozenset({400, 401, 403, 409, 412, 422, 429})
NOISE_METHODS: Final = frozenset({"OPTIONS"})
NEVER_METHODS: Final = frozenset({"TRACE", "CONNECT", "TRACK"})
STATIC_EXTENSIONS: Final = frozenset(
    {"css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif"}
    | {"woff", "woff2", "ttf", "otf", "eot"}
)
DEFAULT_MAX_LITERALS: Final = 20
MAX_SKELETONS: Final = 32
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
RESERVED_PREFIX: Final = "/.gatehold/"
_PARAM_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")


def is_evidence(status: int) -> bool:
    """Whether an answer with ``status`` shows the app serves the address."""
    return status < 400 or status in EVIDENT_4XX


@dataclass(slots=True)
class Skipped:
    """Requests read but not taken as evidence, by why."""

    reasons: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, request: Request) -> None:
        self.reasons[reason] += 1
        add_sample(self.samples.setdefault(reason, []), f"{request.method} {request.target}")


@dataclass(frozen=True, slots=True)
class _Key:
    """One segment of the trie: a literal, or a parameter of a type with a suffix."""

    literal: str | None
    type: str = ""
    suffix: str = ""
    tenant: bool = False
    """A tenant id the operator named (``--tenant``): the path names the tenant."""


@dataclass(slots=True)
class _Hits:
    """The requests that end at one node, counted (a log of millions of lines is
    never held in memory)."""

    methods: dict[str, MethodSeen] = field(default_factory=dict)
    query: dict[str, QuerySeen] = field(default_factory=dict)
    skipped_names: list[str] = field(default_factory=list)
    query_known: bool = False
    paths: list[str] = field(default_factory=list)
    """Sample canonical paths, for the parameters' sample values."""
    samples: list[str] = field(default_factory=list)

    def add(self, request: Request, path: str, query: list[tuple[str, str]]) -> None:
        seen = self.methods.setdefault(request.method, MethodSeen())
        seen.count += 1
        seen.statuses[request.status] += 1
        seen.sources.add("log")
        shown = path + ("?…" if query else "")
        add_sample(self.samples, shown)
        add_sample(seen.samples, shown)
        add_sample(self.paths, path)
        self.query_known |= request.query_known
        for name, value in query:
            if not _PARAM_NAME.fullmatch(name):
                if name not in self.skipped_names:
                    self.skipped_names.append(name)
                continue
            q = self.query.setdefault(name, QuerySeen())
            q.count += 1
            add_sample(q.samples, value)
            q.types.add(id_type_of(value) if value else None)

    def merge(self, other: _Hits) -> None:
        for method, theirs in other.methods.items():
            mine = self.methods.setdefault(method, MethodSeen())
            mine.count += theirs.count
            mine.statuses.update(theirs.statuses)
            mine.sources |= theirs.sources
            for sample in theirs.samples:
                add_sample(mine.samples, sample)
        for name, theirs_q in other.query.items():
            q = self.query.setdefault(name, QuerySeen())
            q.count += theirs_q.count
            q.types |= theirs_q.types
            for sample in theirs_q.samples:
                add_sample(q.samples, sample)
        self.skipped_names += [n for n in other.skipped_names if n not in self.skipped_names]
        self.query_known |= other.query_known
        for sample in other.samples:
            add_sample(self.samples, sample)
        for path in other.paths:
            add_sample(self.paths, path)


@dataclass(slots=True)
class _Node:
    children: dict[_Key, _Node] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)
    """Sample values of the parameter this node stands for."""
    hits: _Hits | None = None
    """The requests whose paths end here."""
    skeletons: set[str] = field(default_factory=set)
    """The shapes (``skeleton``) of the slug ids this node stood for."""

    def hit(self, request: Request, path: str, query: list[tuple[str, str]]) -> None:
        if self.hits is None:
            self.hits = _Hits()
        self.hits.add(request, path, query)


def cluster(
    requests: Iterable[Request],
    *,
    max_literals: int = DEFAULT_MAX_LITERALS,
    tenants: frozenset[str] = frozenset(),
) -> tuple[list[Endpoint], Skipped]:
    """Endpoints seen in ``requests``, and what was left out. A whole segment that is
    one of ``tenants`` (ids the operator knows) becomes a tenant parameter."""
    skipped = Skipped()
    root = _Node()
    for request in requests:
        reason = _not_evidence(request)
        if reason:
            skipped.add(reason, request)
            continue
        target = canonicalize(request.target)
        if isinstance(target, Rejection):
            skipped.add("refused by the gateway as ambiguous (I2)", request)
            continue
        if target.path.startswith(RESERVED_PREFIX):
            skipped.add("the gateway's own pages", request)
            continue
        if "{" in unquote(target.path) or "}" in unquote(target.path):
            skipped.add("a brace in the path (no template can spell it)", request)
            continue
        query = parse_qsl(target.query, keep_blank_values=True)
        _insert(root, target.path, query, request, tenants)
    _generalise(root, max_literals)
    endpoints: list[Endpoint] = []
    _collect(root, [], endpoints, [])
    return endpoints, skipped


def _not_evidence(request: Request) -> str:
    if request.refused_by_gateway:
        return "refused by the gateway (never reached the app)"
    if request.method in NEVER_METHODS:
        return f"{request.method} (never routed)"
    if request.method in NOISE_METHODS:
        return "OPTIONS (preflights are answered for any path)"
    if not is_evidence(request.status):
        return "5xx (the app failed)" if request.status >= 500 else f"{request.status} (a miss)"
    return ""


def _static_key(segments: list[str]) -> bool:
    last = segments[-1]
    extension = last.rsplit(".", 1)[1].lower() if "." in last else ""
    return (
        len(segments) >= 2
        and extension in STATIC_EXTENSIONS
        and id_type_of(unquote(segments[0])) is None
    )


def _insert(
    root: _Node,
    path: str,
    query: list[tuple[str, str]],
    request: Request,
    tenants: frozenset[str],
) -> None:
    segments = path[1:].split("/")
    node = root
    if _static_key(segments):
        node = node.children.setdefault(_Key(unquote(segments[0])), _Node())
        node = node.children.setdefault(_Key(None, "path"), _Node())
        add_sample(node.values, "/".join(segments[1:]))
        node.hit(request, path, query)
        return
    for segment in segments:
        if unquote(segment) in tenants:
            node = node.children.setdefault(_Key(None, "slug", tenant=True), _Node())
            add_sample(node.values, segment)
            continue
        core, suffix = split_suffix(segment)
        id_type = id_type_of(unquote(core)) if core else None
        # Templates spell literals decoded (the loader encodes them as ingress does).
        key = _Key(None, id_type, suffix) if id_type else _Key(unquote(segment))
        node = node.children.setdefault(key, _Node())
        if id_type:
            add_sample(node.values, core)
            if id_type == "slug" and len(node.skeletons) < MAX_SKELETONS:
                node.skeletons.add(skeleton(unquote(core)))
    node.hit(request, path, query)


def _merge(into: _Node, other: _Node) -> None:
    for value in other.values:
        add_sample(into.values, value)
    into.skeletons |= other.skeletons
    if other.hits is not None:
        if into.hits is None:
            into.hits = _Hits()
        into.hits.merge(other.hits)
    for key, child in other.children.items():
        if key in into.children:
            _merge(into.children[key], child)
        else:
            into.children[key] = child


def _generalise(node: _Node, max_literals: int) -> None:
    """Too many literals at one place become a parameter; parameters of several id
    types with one suffix become one of the type all their values fit."""
    literals = [key for key in node.children if key.literal not in (None, "")]
    if len(literals) > max_literals:
        merged = _Node()
        values = [key.literal for key in literals if key.literal is not None]
        for key in literals:
            _merge(merged, node.children.pop(key))
        # The path matched is the canonical (encoded) one: ``café`` is no slug there.
        slugs = all(fits(quote(v, safe=SEGMENT_SAFE), "slug") for v in values)
        merged.values = values[:3]
        key = _Key(None, "slug" if slugs else "")
        if key in node.children:
            _merge(node.children[key], merged)
        else:
            node.children[key] = merged
    by_suffix: dict[str, list[_Key]] = {}
    for key in node.children:
        if key.literal is None and key.type != "path" and not key.tenant:
            by_suffix.setdefault(key.suffix, []).append(key)
    for suffix, keys in by_suffix.items():
        if len(keys) > 1:
            merged = _Node()
            for key in keys:
                _merge(merged, node.children.pop(key))
            node.children[_Key(None, widest({key.type for key in keys}), suffix)] = merged
    _absorb_id_shaped_literals(node)
    for child in node.children.values():
        _generalise(child, max_literals)


def skeleton(value: str) -> str:
    """The shape of an id: hex digits ``h``, other letters ``a``, the rest as is
    (``r-1a2b3c4d`` and ``r-efdcffaf`` are both ``a-hhhhhhhh``)."""
    return "".join("h" if c in _HEX_DIGITS else "a" if c.isalpha() else c for c in value)


def _absorb_id_shaped_literals(node: _Node) -> None:
    """A literal beside slug ids with the very shape of one of them is one of them
    whose random letters held no digit (``r-efdcffaf`` beside ``r-1a2b3c4d``): left a
    literal, its route would reach that one object unchecked."""
    for key in [k for k in node.children if k.literal is None and k.type == "slug"]:
        shapes = node.children[key].skeletons
        for literal in [k for k in node.children if k.literal]:
            text = literal.literal or ""
            core = text[: len(text) - len(key.suffix)] if key.suffix else text
            if (not key.suffix or text.endswith(key.suffix)) and skeleton(core) in shapes:
                child = node.children.pop(literal)
                add_sample(child.values, core)
                _merge(node.children[key], child)


def singular(word: str) -> str:
    """``invoices`` → ``invoice``, ``categories`` → ``category``; a name, not grammar."""
    lower = word.lower()
    if lower.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if lower.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if lower.endswith("s") and not lower.endswith(("ss", "us", "is")) and len(word) > 1:
        return word[:-1]
    return word


def identifier(text: str) -> str:
    """``text`` as a parameter or resource name: letters, digits and ``_``."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    if not name:
        return "object"
    return f"x{name}" if name[0].isdigit() else name


def _param_name(before: str | None, type_: str, taken: set[str], tenant: bool) -> str:
    if tenant:
        base = "tenant"
    elif type_ == "path":
        base = "asset"
    elif before:
        base = identifier(singular(before))
        base = base if type_ == "" else f"{base}_id"
    else:
        base = "id"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def _collect(node: _Node, keys: list[_Key], out: list[Endpoint], beside: list[str]) -> None:
    if node.hits is not None:
        endpoint = _endpoint(keys, node.hits)
        endpoint.beside_ids = beside
        out.append(endpoint)
    for key, child in sorted(node.children.items(), key=lambda item: _order(item[0])):
        _collect(child, [*keys, key], out, beside + _id_shaped(node, key))


def _id_shaped(node: _Node, key: _Key) -> list[str]:
    """``literal (where {type} ids go)`` if ``key`` is a literal that a sibling id
    parameter would also match: an object, maybe, rather than an endpoint."""
    if not key.literal:
        return []
    return [
        f"{key.literal} (where {{{other.type}}} ids go)"
        for other in node.children
        if other.literal is None
        and other.type in ("int", "uuid", "slug")
        and not other.tenant
        and key.literal.endswith(other.suffix)
        and fits(quote(key.literal[: len(key.literal) - len(other.suffix)] or "-",
                       safe=SEGMENT_SAFE), other.type)
    ][:1]  # fmt: skip


def _order(key: _Key) -> tuple[int, str]:
    return (0, key.literal) if key.literal is not None else (1, key.type + key.suffix)


def _endpoint(keys: list[_Key], hits: _Hits) -> Endpoint:
    parts: list[str] = []
    params: list[PathParam] = []
    taken: set[str] = set()
    before: str | None = None
    for key in keys:
        if key.literal is not None:
            parts.append(key.literal)
            before = key.literal if key.literal else before
            continue
        name = _param_name(before, key.type, taken, key.tenant)
        typed = f"{name}:{key.type}" if key.type else name
        parts.append(f"{{{typed}}}{key.suffix}")
        is_id = key.type != "path" and not key.tenant
        params.append(PathParam(name, key.type, is_id=is_id, is_tenant=key.tenant))
        before = None
    endpoint = Endpoint(
        "/" + "/".join(parts),
        params,
        methods=hits.methods,
        query=hits.query,
        query_known=hits.query_known,
        samples=hits.samples,
        static=any(k.type == "path" for k in keys),
        skipped_names=hits.skipped_names,
    )
    _sample_params(endpoint, hits.paths, keys)
    return endpoint


def _sample_params(endpoint: Endpoint, paths: list[str], keys: list[_Key]) -> None:
    """Sample values of each parameter, read back from sample paths."""
    positions = [i for i, key in enumerate(keys) if key.literal is None]
    for param, position in zip(endpoint.params, positions, strict=True):
        key = keys[position]
        for path in paths:
            segments = path[1:].split("/")
            if key.type == "path":
                add_sample(param.samples, "/".join(segments[position:]))
            elif position < len(segments):
                value = segments[position]
                add_sample(param.samples, value[: len(value) - len(key.suffix)] or value)
