"""Lints: rule sets that load, but probably do not protect what their author meant.

A lint is a warning about a *valid* rule set (``gatehold rules check`` prints them;
``--strict`` makes them errors). Each lint is one function of the compiled rules; add
new ones to ``_LINTS``. A route can silence a lint it was written to trip with
``ignore_lints: [code]`` (say why in a comment beside it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config import yamlsource
from gateway.config.loader import RuleProblem, check_rules_text
from gateway.config.observe_window import left, stamp
from gateway.config.yamlsource import Loc
from gateway.errors import ConfigError
from gateway.jsonpointer import WILDCARD
from gateway.jsonpointer import parse as parse_pointer
from gateway.model import GuardMode, IdSource, Route, RouteMatch, RuleSet, Target
from gateway.routing import Router, Template, parse_template, with_head

SHADOWED = "route-shadowed"
WRITES_UNCHECKED = "writes-unchecked"
FILTER_WITHOUT_WILDCARD = "guard-filters-nothing"
RESOURCE_UNUSED = "resource-unused"
GUARD_WITHOUT_QUERY_ALLOW = "guard-without-query-allow"
DOWNLOAD_WITHOUT_FILE = "download-without-file"
OBSERVING = "observe-mode"
OBSERVE_ENDED = "observe-ended"
UNKNOWN_CODE = "lint-unknown"
CODES = frozenset(
    {
        SHADOWED,
        WRITES_UNCHECKED,
        FILTER_WITHOUT_WILDCARD,
        RESOURCE_UNUSED,
        GUARD_WITHOUT_QUERY_ALLOW,
        DOWNLOAD_WITHOUT_FILE,
        OBSERVING,
        OBSERVE_ENDED,
    }
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_SAMPLE_VALUES = {
    "int": ("7",),
    "uuid": ("0b0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e",),
    "slug": ("7", "x7", "0b0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"),
    "": ("7", "x7", "0b0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"),
    "path": ("7", "x7", "x7/7"),
}
_MAX_WITNESSES = 64
_HOLDS_A_PARAMETER = ("param", "mixed")
"""Template segment kinds that hold a parameter: whole, or inside literal text."""


@dataclass(frozen=True, slots=True)
class Lint:
    """One warning about a valid rule set: where (``line`` from 1, if known) and what."""

    line: int | None
    code: str
    message: str
    route: str | None = None
    """The route the lint is about (its ``ignore_lints`` can silence it)."""

    def located(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.message} [{self.code}]"


class _Lines:
    """Lines of the rules' parts; routes by their place in the (fully compiled) list."""

    def __init__(self, lines: Mapping[Loc, int] | None) -> None:
        self._lines = dict(lines or {})

    def route(self, ruleset: RuleSet, route: Route) -> int | None:
        return self._at(("routes", ruleset.routes.index(route)))

    def resource(self, name: str) -> int | None:
        return self._at(("resources", name))

    def _at(self, loc: Loc) -> int | None:
        return yamlsource.line_of(loc, self._lines) if self._lines else None


def _checks_objects(route: Route) -> bool:
    """Whether the gateway checks any object or tenant the route's requests name.

    Ids, a tenant in the path, a query parameter or header bound to the request's
    tenant, or a body whose tenant field must name it.
    """
    return (
        bool(route.ids)
        or route.tenant_param is not None
        or route.bind is not None
        or route.body_tenant is not None
    )


def _writes(route: Route) -> bool:
    return route.methods is None or bool(route.methods & WRITE_METHODS)


def _label(ruleset: RuleSet, lines: _Lines, route: Route) -> str:
    line = lines.route(ruleset, route)
    return f"route {route.name!r}" + (f" (line {line})" if line is not None else "")


def writes_unchecked(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """Routes that accept writes without checking any object or tenant."""
    for route in ruleset.routes:
        if route.public or not _writes(route) or _checks_objects(route):
            continue
        methods = "any method" if route.methods is None else ", ".join(sorted(route.methods))
        yield Lint(
            lines.route(ruleset, route),
            WRITES_UNCHECKED,
            f"route {route.name!r} writes without an object or tenant check ({methods}): "
            "whatever tenant or object its request names reaches the app unchecked — name "
            "the ids it carries (resource, body_ids, query_ids, form_ids) or the tenant",
            route.name,
        )


def filter_guard_without_wildcard(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """A filter-mode guard drops items of the array a ``*`` walks: without one, nothing."""
    for route in ruleset.routes:
        guard = route.guard
        if guard is None or guard.mode is not GuardMode.FILTER:
            continue
        if guard.tenant_field is not None and WILDCARD not in parse_pointer(guard.tenant_field):
            yield Lint(
                lines.route(ruleset, route),
                FILTER_WITHOUT_WILDCARD,
                f"route {route.name!r}: the filter guard's pointer {guard.tenant_field!r} has "
                "no '*', so it can filter nothing — point it at each item, e.g. /items/*/tenant",
                route.name,
            )


def guard_without_query_allow(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """A guard checks the tenant field of what the app answers; a client that can shape
    that answer (a filter, a relabelled column, a raw condition) defeats it. Only a
    query allow-list (and a bound tenant) takes that shaping away."""
    for route in ruleset.routes:
        if route.guard is None or route.guard.tenant_field is None or route.public:
            continue
        if route.query is None or route.query.allow is None:
            yield Lint(
                lines.route(ruleset, route),
                GUARD_WITHOUT_QUERY_ALLOW,
                f"route {route.name!r} is guarded but takes any query parameter: a client "
                "that can shape the answer can shape the field the guard checks — list the "
                "parameters it takes (query: {allow: [...]}) and bind the tenant "
                "(bind: {query: {tenant: caller.tenant}})",
                route.name,
            )


def download_without_file(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """A ``download`` route without ``file:`` relays the app's own file headers: its
    file name (a path, a script-bearing name), its type (HTML a browser renders on the
    gateway's origin) and its caching (a shared cache keeps a tenant's file)."""
    for route in ruleset.routes:
        if route.public or route.action != "download" or route.file_disposition is not None:
            continue
        yield Lint(
            lines.route(ruleset, route),
            DOWNLOAD_WITHOUT_FILE,
            f"route {route.name!r} downloads files without a file: block, so the app's own "
            "Content-Disposition, type and caching reach the browser — add "
            "file: {disposition: attachment} (the gateway then sets a sanitized name, "
            "nosniff, no-store and a sandbox policy)",
            route.name,
        )


def observe_windows(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """Routes in observe mode: while the window is open (refusals are forwarded), and
    once it has passed (the route enforces; the setting is left over)."""
    now = time.time()
    for route in ruleset.routes:
        until = route.observe_until
        if until is None or route.public:
            continue
        if now < until:
            message = (
                f"route {route.name!r} is in observe mode until {stamp(until)} (in "
                f"{left(until - now)}): requests the rules refuse are forwarded and audited "
                "as 'observed', not refused — it enforces by itself after that"
            )
            yield Lint(lines.route(ruleset, route), OBSERVING, message, route.name)
        else:
            message = (
                f"route {route.name!r}: observe_until {stamp(until)} has passed, so the route "
                "enforces — remove 'mode: observe' and observe_until (here or on its upstream)"
            )
            yield Lint(lines.route(ruleset, route), OBSERVE_ENDED, message, route.name)


def unused_resources(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """Resources no route names: usually a route that forgot its ``resource``."""
    used = {spec.type for route in ruleset.routes for spec in route.ids}
    used |= {route.creates for route in ruleset.routes if route.creates}
    for name in ruleset.resources:
        if name not in used:
            yield Lint(
                lines.resource(name),
                RESOURCE_UNUSED,
                f"resource {name!r} is used by no route — a route meant to check its "
                "objects may be missing its 'resource' or ids",
            )


def shadowed_routes(ruleset: RuleSet, lines: _Lines) -> Iterator[Lint]:
    """Routes that get requests for addresses another route checks, checking nothing.

    Routing picks the most specific matching route that accepts the method, whatever
    the order in the file. So a route that checks nothing is reported when, for some
    address another route checks by id or tenant and for some method, the router
    really hands the request to it: a more specific route, or a broader one (a
    catch-all) accepting methods the checking routes of that address do not. Only
    routes with a parameter wherever the checked route has its id or tenant count:
    a literal path such as ``/reports/recent`` is an endpoint of its own, not a taker
    of every report.
    """
    router = Router(ruleset.routes)
    templates = {route.name: _template(route) for route in ruleset.routes}
    methods = sorted(
        set(_PROBED_METHODS).union(*(r.methods or () for r in ruleset.routes)),
    )
    reported: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for checked in ruleset.routes:
        mine = templates[checked.name]
        if not _checks_objects(checked) or mine is None:
            continue
        for other in ruleset.routes:
            theirs = templates[other.name]
            if other is checked or _checks_objects(other) or theirs is None:
                continue
            if theirs.shape == mine.shape or not _covers(theirs, mine, _checked_segments(checked)):
                continue
            if (other.name, mine.shape) in reported:
                continue
            found = _taken(router, other, mine, theirs, methods)
            if found is None:
                continue
            path, taken = found
            reported.add((other.name, mine.shape))
            mine_methods = with_head(checked.methods)
            before = [m for m in taken if mine_methods is None or m in mine_methods]
            how = (
                f"ahead of its check ({', '.join(before)})"
                if before
                else "in methods the checking routes do not accept"
            )
            yield Lint(
                lines.route(ruleset, other),
                SHADOWED,
                f"{_label(ruleset, lines, other)} ({other.pattern}) takes "
                f"{', '.join(taken)} requests for addresses {_label(ruleset, lines, checked)} "
                f"({checked.pattern}) checks, such as {path}, {how}, and checks no object "
                "or tenant — narrow its path or methods, or give it the same ids",
                other.name,
            )


def _template(route: Route) -> Template | None:
    template = parse_template(route.pattern)
    return None if isinstance(template, str) else template


def _checked_segments(route: Route) -> list[int]:
    """Segment positions of the route's path parameters that carry an id or the tenant."""
    names = {spec.key for spec in route.ids if spec.source is IdSource.PATH}
    if route.tenant_param is not None:
        names.add(route.tenant_param)
    template = _template(route)
    if template is None:
        return []
    positions = []
    params = iter(template.params)
    for index, (kind, _) in enumerate(template.shape):
        if kind in _HOLDS_A_PARAMETER and next(params)[0] in names:
            positions.append(index)
    return positions


def _covers(theirs: Template, mine: Template, positions: list[int]) -> bool:
    """Whether ``theirs`` has a parameter wherever ``mine`` has a checked one."""
    for index in positions:
        rest = next(
            (i for i, (kind, t) in enumerate(theirs.shape) if kind == "param" and t == "path"),
            None,
        )
        if rest is not None and rest <= index:
            continue
        if index >= len(theirs.shape) or theirs.shape[index][0] not in _HOLDS_A_PARAMETER:
            return False
    return True


def _witnesses(template: Template, other: Template) -> Iterator[str]:
    """Paths ``template`` matches, trying several sample values per parameter and, where
    ``other`` has a literal segment, that literal."""
    choices: list[tuple[str, ...]] = []
    for index, (kind, text) in enumerate(template.shape):
        if kind == "lit":
            choices.append((text,))
            continue
        theirs = other.shape[index] if index < len(other.shape) else ("param", "")
        literal = (theirs[1],) if theirs[0] == "lit" else ()
        if kind == "mixed":  # "prefix{type}suffix": the type's samples between the two
            before, _, rest = text.partition("{")
            param_type, _, after = rest.partition("}")
            samples = _SAMPLE_VALUES.get(param_type, ("7",))
            choices.append(literal + tuple(f"{before}{value}{after}" for value in samples))
            continue
        choices.append(literal + _SAMPLE_VALUES.get(text, ("7",)))
    for parts in itertools.islice(itertools.product(*choices), _MAX_WITNESSES):
        path = "/" + "/".join(parts)
        if template.regex.fullmatch(path):
            yield path


def _taken(
    router: Router, other: Route, mine: Template, theirs: Template, methods: list[str]
) -> tuple[str, list[str]] | None:
    """A path of ``mine`` and the methods for which the router picks ``other`` there."""
    for path in _witnesses(mine, theirs):
        if not theirs.regex.fullmatch(path):
            continue
        target = Target(path, "")
        taken = [
            method
            for method in methods
            if isinstance(found := router.match(target, method), RouteMatch)
            and found.route is other
        ]
        if taken:
            return path, taken
    return None


_LINTS: tuple[Callable[[RuleSet, _Lines], Iterator[Lint]], ...] = (
    shadowed_routes,
    writes_unchecked,
    filter_guard_without_wildcard,
    unused_resources,
    guard_without_query_allow,
    download_without_file,
    observe_windows,
    # A `query_ids` parameter that `query` refuses is a rules error, not a lint
    # (``loader._query_and_tenant_problems``): the id could never be sent.
)


def lint(ruleset: RuleSet, lines: Mapping[Loc, int] | None = None) -> list[Lint]:
    """Every lint of a valid rule set, by line; ``lines`` (from ``yamlsource.read``)
    places them in the file. A route's ``ignore_lints`` silences its own."""
    where = _Lines(lines)
    found = [item for check in _LINTS for item in check(ruleset, where)]
    ignored = {(route.name, code) for route in ruleset.routes for code in route.ignored_lints}
    kept = [item for item in found if (item.route, item.code) not in ignored]
    kept += [
        Lint(
            where.route(ruleset, route),
            UNKNOWN_CODE,
            f"route {route.name!r}: ignore_lints names {code!r}, which is no lint — "
            f"use one of: {', '.join(sorted(CODES))}",
            route.name,
        )
        for route in ruleset.routes
        for code in sorted(route.ignored_lints - CODES)
    ]
    return sorted(kept, key=lambda item: (item.line or 0, item.code))


@dataclass(frozen=True, slots=True)
class RulesReport:
    """What ``rules check`` finds: errors (the rules do not load) or the rules and lints."""

    ruleset: RuleSet | None
    problems: list[RuleProblem]
    lints: list[Lint]


def check_and_lint_file(path: Path, env: Mapping[str, str]) -> RulesReport:
    """Load a rules file; when it is valid, lint it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        problem = RuleProblem(str(path), None, f"cannot read the rules file: {error.strerror}")
        return RulesReport(None, [problem], [])
    ruleset, problems = check_rules_text(text, source=str(path), env=env)
    if ruleset is None:
        return RulesReport(None, problems, [])
    try:
        _, lines = yamlsource.read(text, str(path))
    except ConfigError:  # it just loaded, so this cannot happen; lint without lines
        lines = {}
    return RulesReport(ruleset, [], lint(ruleset, lines))
