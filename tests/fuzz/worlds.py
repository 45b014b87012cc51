"""Random worlds for the model comparison: rule sets, people, owners and requests.

Everything is drawn from a ``random.Random``, so one generator serves hypothesis
(``st.randoms()``, which shrinks) and the long ``make fuzz`` run (a seeded ``Random``).
Requests favour the addresses the rules name, then mangle them the ways attackers and
confused clients do: percent-encoded letters, slashes and dots in either case, ``..``,
``//``, trailing slashes, ``;params``, Unicode (valid, fullwidth, overlong, raw),
control bytes, other spellings of checked query names and ``_method``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from tests.fuzz.reference_model import GLOBAL, Person, Role, Route, Rules

TENANTS = ("t1", "t2", "t3")
ACTIONS = ("read", "write", "delete", "export", "download", "purge")
METHODS = ("GET", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE")
PUBLIC_HOST = "gatehold.test"
"""Where the gateway under test knows itself to be (``server.public_url``)."""
ID_TYPES = {"thing": "int", "doc": "slug", "file": "uuid"}
THING_IDS = tuple(str(n) for n in range(1, 9))
DOC_IDS = ("a1", "b2", "x-y", "Zed", "q_9")
FILE_IDS = ("0e4c8f3a-1b2d-4c5e-8f90-a1b2c3d4e5f6", "7d3f0000-0000-4000-8000-00000000abcd")

# (template, what it names): resource:<type>:<param>, tenant:<param>, query:<type>:<param>,
# public, or nothing.
TEMPLATES = (
    ("/a/things/{id:int}", "resource:thing:id"),
    ("/a/things/{id}", "resource:thing:id"),
    ("/a/docs/{d:slug}", "resource:doc:d"),
    ("/a/docs/{d}", "resource:doc:d"),
    ("/a/files/{f:uuid}", "resource:file:f"),
    ("/a/items/{id:int}.json", "resource:thing:id"),
    ("/a/{kind}/{id:int}", "resource:thing:id"),
    ("/t/{org}/reports", "tenant:org"),
    ("/t/{org}/{rest:path}", "tenant:org"),
    ("/a/search", "query:thing:thing_id"),
    ("/a/things", ""),
    ("/a/{rest:path}", ""),
    ("/pub/{rest:path}", "public"),
    ("/", ""),
)


@dataclass
class World:
    """One rule set, its people, its objects' owners and the requests to try."""

    rules: Rules
    people: list[Person]
    owners: dict[tuple[str, str], str]
    requests: list[tuple[int | None, str, str]] = field(default_factory=list)
    """(index into ``people`` or ``None`` for nobody, method, raw target)."""


def _route(rng: random.Random, index: int, template: str, names: str) -> Route:
    kind, *rest = names.split(":") if names else [""]
    methods = None if rng.random() < 0.3 else frozenset(rng.sample(METHODS[1:], rng.randint(1, 4)))
    action = rng.choice(ACTIONS) if rng.random() < 0.2 else None
    step_up = rng.choice((60.0, 600.0)) if kind != "public" and rng.random() < 0.2 else None
    mfa = kind != "public" and rng.random() < 0.1
    return Route(
        name=f"r{index}",
        template=template,
        methods=methods,
        action=action,
        public=kind == "public" or (kind == "" and rng.random() < 0.1),
        tenant_param=rest[0] if kind == "tenant" else None,
        resource=(rest[0], rest[1]) if kind == "resource" else None,
        query_ids=((rest[0], rest[1]),) if kind == "query" else (),
        step_up=step_up,
        mfa=mfa,
    )


def _routes(rng: random.Random) -> tuple[Route, ...]:
    chosen = rng.sample(TEMPLATES, rng.randint(3, 9))
    routes: list[Route] = []
    for template, names in chosen:
        route = _route(rng, len(routes), template, names)
        if route.public:
            route = Route(route.name, route.template, route.methods, public=True)
        routes.append(route)
        if route.methods is not None and rng.random() < 0.2:  # the same path, other methods
            taken = route.methods | {"HEAD"} | ({"GET"} if "HEAD" in route.methods else set())
            others = frozenset(m for m in METHODS[1:] if m not in taken)
            if others and "GET" not in route.methods:  # GET includes HEAD
                twin = _route(rng, len(routes), template, names)
                routes.append(replace(twin, methods=others, public=False))
    return tuple(routes)


def random_world(rng: random.Random, requests: int) -> World:
    roles = {
        f"role{i}": Role(
            frozenset(rng.sample(ACTIONS, rng.randint(1, 5))),
            everywhere=rng.random() < 0.15,
            mfa=rng.random() < 0.1,
        )
        for i in range(4)
    }
    rules = Rules(
        roles=roles,
        id_types=ID_TYPES,
        routes=_routes(rng),
        mfa_tenants=frozenset({"t3"}) if rng.random() < 0.2 else frozenset(),
    )
    people = []
    for _ in range(rng.randint(1, 4)):
        memberships: list[tuple[str, str]] = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            role = rng.choice(sorted(roles))
            tenant = (
                GLOBAL if roles[role].everywhere and rng.random() < 0.6 else rng.choice(TENANTS)
            )
            if (tenant, role) not in memberships:
                memberships.append((tenant, role))
        tenant_roles = sorted(name for name, role in roles.items() if not role.everywhere)
        if tenant_roles and rng.random() < 0.2:  # a partner's API key: one tenant, one role
            grant = (rng.choice(TENANTS), rng.choice(tenant_roles))
            people.append(Person((grant,), api_key=True))
            continue
        age = rng.choice((0.0, 0.0, 120.0, 1200.0))
        active = rng.choice((None, None, *TENANTS))
        people.append(Person(tuple(memberships), age, rng.random() < 0.5, active))
    owners = {}
    for kind, ids in (("thing", THING_IDS), ("doc", DOC_IDS), ("file", FILE_IDS)):
        for object_id in ids:
            if rng.random() < 0.85:
                owners[(kind, object_id)] = rng.choice(TENANTS)
    world = World(rules, people, owners)
    for _ in range(requests):
        who = None if rng.random() < 0.1 else rng.randrange(len(people))
        world.requests.append((who, *random_request(rng, rules)))
    return world


# ---------------------------------------------------------------- targets


def _value(rng: random.Random, pattern: str) -> str:
    """A value for one template segment, usually of the right shape."""
    if "{" not in pattern:
        return pattern if rng.random() < 0.95 else pattern.upper()
    prefix, _, rest = pattern.partition("{")
    spec, _, suffix = rest.partition("}")
    name, _, kind = spec.partition(":")
    if kind == "path":
        return rng.choice(("x", "x/y", "reports/7", "x/", "r%C3%A9", "a%2Fb", "%2e%2e/x"))
    if name == "org":
        value = rng.choice(TENANTS * 3 + ("t9", "T1", "t1%20", "%741", "t3.", "t%C3%A93", "t-3"))
    elif name == "f":
        value = rng.choice(FILE_IDS * 2 + (FILE_IDS[0].upper(), FILE_IDS[1][:-1], "x" * 36))
    elif name == "d":
        value = rng.choice(DOC_IDS * 2 + ("a.b", "-x", "%5Aed", "x_y%C3%A9"))
    else:
        value = rng.choice(THING_IDS * 2 + ("007", "0", "abc", "1.5", "-1", "9" * 19, "%31"))
    return prefix + value + suffix


def _path_for(rng: random.Random, template: str) -> str:
    return "/" + "/".join(_value(rng, p) for p in template[1:].split("/"))


def _query(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        name = rng.choice(
            ("thing_id",) * 6
            + ("Thing_Id", "thing_id[]", "thing.id", "thing_id%5B0%5D", "%20thing_id")
            + ("page", "page", "x;thing_id", "%74hing_id", "%2574hing_id")
        )
        if rng.random() < 0.05:
            name = rng.choice(("_method", "_METHOD", "%5Fmethod", "_method[]", ".method"))
        value = rng.choice(THING_IDS + ("abc", "007", "DELETE", "%31", ""))
        pieces.append(f"{name}={value}")
    separator = "&" if rng.random() < 0.9 else ";"
    return separator.join(pieces)


ABSOLUTE = (
    f"http://{PUBLIC_HOST}",
    f"https://{PUBLIC_HOST.upper()}",
    "http://elsewhere.test",
    f"http://user@{PUBLIC_HOST}",
    f"ftp://{PUBLIC_HOST}",
    "/",
)
"""Prefixes that turn a path into an absolute-form target (or a '//' one)."""

MANGLES = (
    lambda p, r: p + "/",
    lambda p, r: p.replace("/", "//", 1) if p.count("/") > 1 else p + "//",
    lambda p, r: _encode_one(p, r),
    lambda p, r: _encode_one(p, r).lower(),
    lambda p, r: _insert(p, r, r.choice(("%2F", "%2f", "%5C", "%5c", "\\"))),
    lambda p, r: _insert(p, r, r.choice((";", ";jsessionid=1", ";x"))),
    lambda p, r: _segment(p, r, r.choice(("..", ".", "%2e%2e", "%2E.", ".%2e", "%2e"))),
    lambda p, r: _insert(
        p, r, r.choice(("%C3%A9", "%EF%BC%8F", "%C0%AF", "%FF", "é", "%E2%80%AE"))
    ),
    lambda p, r: _insert(p, r, r.choice(("%00", "%0A", "%0d", "%7F", "%09", "%20", "%"))),
    lambda p, r: _insert(p, r, r.choice(("%252F", "%252e", "%25", "%2525", "%3F", "%23", "+"))),
    lambda p, r: r.choice(ABSOLUTE) + p,
)


def _encode_one(path: str, rng: random.Random) -> str:
    """One character (not a '/') percent-encoded, in upper or lower-case hex."""
    spots = [
        i for i, c in enumerate(path) if c not in "/%" and path[max(0, i - 2) : i].count("%") == 0
    ]
    if not spots:
        return path
    at = rng.choice(spots)
    escape = f"%{ord(path[at]):02X}"
    return path[:at] + (escape if rng.random() < 0.5 else escape.lower()) + path[at + 1 :]


def _insert(path: str, rng: random.Random, text: str) -> str:
    at = rng.randint(1, len(path))
    while at < len(path) and path[at - 1] == "%":
        at += 1
    return path[:at] + text + path[at:]


def _segment(path: str, rng: random.Random, dots: str) -> str:
    segments = path.split("/")
    at = rng.randint(1, len(segments))
    return "/".join([*segments[:at], dots, *segments[at:]])


def random_request(rng: random.Random, rules: Rules) -> tuple[str, str]:
    """(method, raw target): mostly one a route names, in a method it takes."""
    method = rng.choice(METHODS)
    if rng.random() < 0.85 and rules.routes:
        route = rng.choice(rules.routes)
        path = _path_for(rng, route.template)
        if route.methods is not None and rng.random() < 0.7:
            method = rng.choice(sorted(route.methods))
    else:
        path = _path_for(rng, rng.choice(TEMPLATES)[0]) if rng.random() < 0.7 else "/b/c"
    if rng.random() < 0.3:
        path = rng.choice(MANGLES)(path, rng)
    if rng.random() < 0.1:
        path = rng.choice(MANGLES)(path, rng)
    query = _query(rng) if "search" in path or rng.random() < 0.2 else ""
    return method, path + (f"?{query}" if query else "")
