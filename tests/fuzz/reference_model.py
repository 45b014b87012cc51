"""A reference model of the access rules, written from the specification alone.

It reads SPEC §1 (I1 default deny, I2 one canonical target, I3 the tenant of every
object, I6 step-up) and the rules format (SPEC §3, ``docs/rules.md``), never the
gateway's code: nothing here imports ``gateway``. Given a rule set, a person (or
nobody), the owners of the objects and one raw request, it says whether the request
may reach the app and which answers the specification allows when it may not.

Where the documents leave the order of two refusals open (an anonymous caller naming
a malformed id: 401 or 400?), the verdict lists every status the documents allow;
allow versus deny is never left open.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

GLOBAL = "*"
"""The tenant of a membership granted in every tenant (``--tenant '*'``)."""

# I2: what a canonical path segment keeps as it is (RFC 3986 unreserved characters,
# the sub-delimiters but ';', and ':' '@'); every other byte is written %XX.
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_ID_SHAPES = {
    "int": re.compile(r"[0-9]{1,18}"),
    "slug": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"),
    "uuid": re.compile(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    ),
}
_TENANT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
"""Tenant ids are lower-case letters, digits and '-' (``gatehold tenants add``)."""
_PARAM = re.compile(r"^(?P<prefix>[^{}]*)\{(?P<name>\w+)(?::(?P<kind>\w+))?\}(?P<suffix>[^{}]*)$")
_DEFAULT_ACTION = {"GET": "read", "HEAD": "read", "OPTIONS": "read", "POST": "write"}
_DEFAULT_ACTION |= {"PUT": "write", "PATCH": "write", "DELETE": "delete"}


@dataclass(frozen=True)
class Role:
    can: frozenset[str]
    everywhere: bool = False
    """``scope: global``: the actions are allowed in every tenant."""
    mfa: bool = False
    """``mfa: required``: a person this role grants a request must have shown a second factor."""


@dataclass(frozen=True)
class Route:
    name: str
    template: str
    methods: frozenset[str] | None = None
    """``None``: every method."""
    action: str | None = None
    public: bool = False
    tenant_param: str | None = None
    resource: tuple[str, str] | None = None
    """(resource type, path parameter) of the object the path names."""
    query_ids: tuple[tuple[str, str], ...] = ()
    """(resource type, query parameter) pairs."""
    step_up: float | None = None
    mfa: bool = False


@dataclass(frozen=True)
class Rules:
    roles: Mapping[str, Role]
    id_types: Mapping[str, str]
    """Resource type → ``int``, ``slug`` or ``uuid``."""
    routes: tuple[Route, ...]
    mfa_tenants: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Person:
    memberships: tuple[tuple[str, str], ...]
    """(tenant, role), in the order granted; the first real tenant is the active one."""
    auth_age: float = 0.0
    """Seconds since this session's sign-in."""
    mfa: bool = False
    """Whether the session has shown a second factor."""
    active: str | None = None
    """The tenant the session switched to; the first real membership when it holds none."""
    api_key: bool = False
    """A partner system's API key (one membership, its grant) rather than a person's
    session: it cannot show a second factor and has no sign-in to be recent."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool | None
    """``None``: the documents do not say (a step-up route called with an API key)."""
    statuses: frozenset[int] = field(default_factory=frozenset)
    """When refused: every status the documents allow for this request."""
    why: str = ""
    target: str | None = None
    """When allowed: the canonical target the app must receive, byte for byte."""
    tenant: str | None = None
    """When allowed and acting in exactly one tenant: the tenant the app is told."""


def deny(why: str, *statuses: int) -> Verdict:
    return Verdict(False, frozenset(statuses), why)


# ---------------------------------------------------------------- I2: the target


def _decode(segment: str) -> str | None:
    """The segment's text, or ``None`` for a bad escape or bytes that are not UTF-8."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", segment):
        return None
    try:
        return unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None


def _segment_is_ambiguous(text: str) -> bool:
    return (
        text in (".", "..")
        or "/" in text
        or "\\" in text
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
        or _ESCAPE.search(text) is not None  # encoded twice: read once more by some
        or unicodedata.normalize("NFKC", text) != text  # a fullwidth '/' and the like
    )


def _encode(text: str) -> str:
    return "".join(c if c in _KEEP else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def canonical_path(path: str) -> str | None:
    """The one canonical path, or ``None`` when servers could read it differently."""
    if not path.startswith("/") or "\\" in path or ";" in path:
        return None
    segments = path[1:].split("/")
    out = []
    for index, segment in enumerate(segments):
        if segment == "":
            if index == len(segments) - 1:  # "/" itself or one trailing slash
                out.append("")
                continue
            return None  # '//'
        text = _decode(segment)
        if text is None or _segment_is_ambiguous(text):
            return None
        out.append(_encode(text))
    return "/" + "/".join(out)


def reads_as(key: str, name: str) -> bool:
    """Whether some framework reads the query key ``key`` as the parameter ``name``:
    percent-decoded (twice too), cut at NUL, trimmed, case-folded, PHP's ``.`` ``' '``
    ``[`` as ``_``, and ``a[…]``/``a.b`` as ``a``."""
    for _ in range(3):
        key = unquote(key.replace("+", " "), errors="replace")
    key = key.split("\0", 1)[0].strip().casefold()
    base = key.split("[", 1)[0] if "]" in key else key
    readings = {base, base.split(".", 1)[0], re.sub(r"[ .\[]", "_", base)}
    return name.casefold() in readings


def query_pairs(query: str) -> list[tuple[str, str, bool]]:
    """(key, value, hidden) of a query string split on '&'; ``hidden`` marks a key that
    only frameworks which also split on ';' (older Rack) read: ``a=1;b=2`` is ``a`` with
    the value ``1;b=2`` to most, and ``a`` and ``b`` to those."""
    pairs = []
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        pairs.append((key, value, False))
        for piece in part.split(";")[1:]:
            hidden_key, _, hidden_value = piece.partition("=")
            pairs.append((hidden_key, hidden_value, True))
    return pairs


def _bad_query(query: str) -> bool:
    if re.search(r"%(?![0-9A-Fa-f]{2})", query):
        return True
    return any(reads_as(key, "_method") for key, _, _ in query_pairs(query))


def canonical_target(raw: str, public_host: str) -> tuple[str, str] | None:
    """(path, query) of the canonical target, or ``None``: refused with 400."""
    if not raw or any(ord(c) <= 0x20 or ord(c) >= 0x7F or c == "#" for c in raw):
        return None
    scheme, colon, rest = raw.partition("://")
    if colon and scheme.lower() in ("http", "https"):  # absolute form: this host only
        host, slash, after = rest.partition("/")
        if host.lower() != public_host.lower() or not slash:
            return None
        raw = "/" + after
    path, _, query = raw.partition("?")
    canonical = canonical_path(path)
    if canonical is None or _bad_query(query):
        return None
    return canonical, query


# ---------------------------------------------------------------- routing


def _segment_matches(pattern: str, segment: str) -> tuple[bool, str | None, str]:
    """(matches, parameter name, value) of one template segment."""
    found = _PARAM.match(pattern)
    if found is None:
        return pattern == segment, None, ""
    prefix, suffix, kind = found["prefix"], found["suffix"], found["kind"] or ""
    if len(segment) < len(prefix) + len(suffix) or not segment.startswith(prefix):
        return False, None, ""
    if not segment.endswith(suffix):
        return False, None, ""
    value = segment[len(prefix) : len(segment) - len(suffix)]
    if kind in _ID_SHAPES:
        return _ID_SHAPES[kind].fullmatch(value) is not None, found["name"], value
    if (prefix or suffix) and (value.endswith(("%", "%" + value[-1:])) or not value):
        return False, None, ""  # a suffix never starts inside a percent-escape
    return value != "", found["name"], value


def match(template: str, path: str) -> dict[str, str] | None:
    """The path parameters, if the canonical ``path`` fits ``template``."""
    patterns = template[1:].split("/")
    segments = path[1:].split("/")
    params: dict[str, str] = {}
    for index, pattern in enumerate(patterns):
        if pattern.endswith(":path}") and pattern.startswith("{"):
            rest = segments[index:]
            if not rest or rest[0] == "":
                return None
            params[pattern[1:].split(":")[0]] = "/".join(rest)
            return params
        if index >= len(segments):
            return None
        ok, name, value = _segment_matches(pattern, segments[index])
        if not ok:
            return None
        if name is not None:
            params[name] = value
    return params if len(segments) == len(patterns) else None


def _rank(pattern: str) -> tuple[int, int]:
    found = _PARAM.match(pattern)
    if found is None:
        return (0, 0)
    if found["prefix"] or found["suffix"]:
        return (1, -len(found["prefix"] + found["suffix"]))
    return {"int": (2, 0), "uuid": (2, 0), "slug": (3, 0), "path": (5, 0)}.get(
        found["kind"], (4, 0)
    )


def specificity(template: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """Most specific first: more literal segments, then segment by segment."""
    ranks = tuple(_rank(p) for p in template[1:].split("/"))
    return (-sum(1 for r in ranks if r == (0, 0)), ranks)


def accepts(route: Route, method: str) -> bool:
    if route.methods is None or method in route.methods:
        return True
    return method == "HEAD" and "GET" in route.methods


# ---------------------------------------------------------------- the decision


def _allows(rules: Rules, person: Person, action: str, tenant: str) -> bool:
    for held_in, role_name in person.memberships:
        role = rules.roles.get(role_name)
        if role and action in role.can and (role.everywhere or held_in == tenant):
            return True
    return False


def _member(rules: Rules, person: Person, tenant: str) -> bool:
    """Whether the person holds any role in ``tenant`` (a global-scope one counts)."""
    return any(
        held_in == tenant or ((role := rules.roles.get(name)) is not None and role.everywhere)
        for held_in, name in person.memberships
    )


def _granted_by_mfa_role(rules: Rules, person: Person, action: str, acted: set[str]) -> bool:
    """Whether a role that grants this request (held in a tenant it acts in, or of
    global scope, and allowing the action) asks for a second factor."""
    for held_in, name in person.memberships:
        role = rules.roles.get(name)
        if role and role.mfa and action in role.can and (role.everywhere or held_in in acted):
            return True
    return False


def _allows_anywhere(rules: Rules, person: Person, action: str) -> bool:
    return any(
        (role := rules.roles.get(name)) is not None and action in role.can
        for _, name in person.memberships
    )


def _object_refs(
    rules: Rules, route: Route, params: dict[str, str], query: str
) -> tuple[list[tuple[str, str]], bool]:
    """(resource type, id) of every object named, and whether a checked name was
    spelled otherwise than exactly (400 ``param-ambiguous``)."""
    refs = []
    if route.resource is not None:
        refs.append((route.resource[0], params[route.resource[1]]))
    ambiguous = False
    for kind, name in route.query_ids:
        for key, value, hidden in query_pairs(query):
            if unquote(key) == name and not hidden:  # keys are percent-decoded once
                refs.append((kind, unquote(value)))
            elif reads_as(key, name):
                ambiguous = True
    return refs, ambiguous


def _acted_tenants(
    rules: Rules,
    person: Person,
    action: str,
    route: Route,
    params: dict[str, str],
    refs: list[tuple[str, str]],
    owners: Mapping[tuple[str, str], str],
) -> set[str] | Verdict:
    if route.tenant_param is not None:
        tenant = unquote(params[route.tenant_param])
        if not _TENANT_ID.fullmatch(tenant):  # names no tenant, not even for global roles
            return deny(f"the path names {tenant!r}, which is not a tenant id", 404)
        if not _allows(rules, person, action, tenant):
            return deny(f"no role allows {action} in the path's tenant {tenant!r}", 403, 404)
        return {tenant}
    if refs:
        acted = set()
        for kind, object_id in refs:
            owner = owners.get((kind, owner_key(rules, kind, object_id)))
            if owner is None or not _allows(rules, person, action, owner):
                why = f"{kind} {object_id!r} is foreign or missing (owner {owner})"
                # I3 hides only foreign and missing objects: in a tenant the person is
                # a member of, a role that does not allow the action may say so (403).
                member = owner is not None and _member(rules, person, owner)
                return deny(why, 404, *((403,) if member else ()))
            acted.add(owner)
        return acted
    tenants = [t for t, _ in person.memberships if t != GLOBAL]
    active = person.active if person.active in tenants else next(iter(tenants), None)
    if active is None or not _allows(rules, person, action, active):
        return deny(f"no role allows {action} in the active tenant {active!r}", 403)
    return {active}


def owner_key(rules: Rules, kind: str, object_id: str) -> str:
    """The id as the app reads it: an ``int`` resource's ``007`` is object 7."""
    if rules.id_types[kind] == "int":
        return str(int(object_id))
    return object_id.lower() if rules.id_types[kind] == "uuid" else object_id


def judge(
    rules: Rules,
    person: Person | None,
    owners: Mapping[tuple[str, str], str],
    method: str,
    raw_target: str,
    *,
    public_host: str,
) -> Verdict:
    """What the specification demands for one request to the gateway at ``public_host``."""
    target = canonical_target(raw_target, public_host)
    if target is None:
        return deny("ambiguous target (I2)", 400)
    path, query = target
    matched = [(r, p) for r in rules.routes if (p := match(r.template, path)) is not None]
    if not matched:
        return deny("no route (I1)", 404)
    usable = [(r, p) for r, p in matched if accepts(r, method)]
    if not usable:
        return deny("path matched, method did not", 405)
    order = {r.name: i for i, r in enumerate(rules.routes)}
    route, params = min(usable, key=lambda rp: (specificity(rp[0].template), order[rp[0].name]))
    forwarded = path + (f"?{query}" if query else "")
    if route.public:
        return Verdict(True, why=f"public route {route.name}", target=forwarded)
    action = route.action or _DEFAULT_ACTION.get(method, method.lower())
    refs, ambiguous = _object_refs(rules, route, params, query)
    early = set()  # refused before any lookup; the documents do not order these
    if person is None:
        early.add(401)
    elif not _allows_anywhere(rules, person, action):
        early.add(403)
        if route.tenant_param is not None:  # no lookup needed: the path names the tenant
            early.add(404)
    if ambiguous:
        early.add(400)
    if any(not _ID_SHAPES[rules.id_types[k]].fullmatch(v) for k, v in refs):
        early.add(400)
    if early or person is None:
        return deny(f"{route.name}: refused before any lookup {sorted(early)}", *early)
    acted = _acted_tenants(rules, person, action, route, params, refs, owners)
    if isinstance(acted, Verdict):
        return acted
    if person.api_key:  # route MFA binds machines too; tenant MFA binds people only
        if route.mfa:
            return deny(f"{route.name}: a second factor is required; a key cannot show one", 401)
        if route.step_up is not None:
            return Verdict(None, why=f"{route.name}: step-up with an API key is not specified")
    elif not person.mfa and (
        route.mfa or acted & rules.mfa_tenants or _granted_by_mfa_role(rules, person, action, acted)
    ):
        return deny(f"{route.name}: a second factor is required", 401)
    elif route.step_up is not None and person.auth_age > route.step_up:
        return deny(f"{route.name}: sign-in older than {route.step_up}s", 401)
    why = f"{route.name}: {action} allowed in {sorted(acted)}"
    return Verdict(True, why=why, target=forwarded, tenant=min(acted) if len(acted) == 1 else None)
