"""Routing: the compiled rule set maps a canonical target and method to one route.

Templates are matched against ``Target.path`` exactly as it will be forwarded (no
case folding, no decoding before matching). When several routes match a path the
most specific wins: more literal segments first, then segment by segment a literal
over a parameter with literal text around it (longer text first) over typed
parameters (int, uuid) over slugs over plain segments over ``{rest:path}``. Two
routes of the same shape with overlapping methods are ambiguous and refused when the
rules load.

A segment may hold one parameter between a literal prefix and suffix
(``{id:int}.json``, ``export-{id:slug}.pdf``). The prefix is matched at the start of
the segment and the suffix at its end, both case-sensitively on the canonical path;
what lies between must be, in full, a value of the parameter's type. So the split is
never a choice: ``export-a.b.pdf`` gives the plain ``{name}`` the value ``a.b``, and
matches no ``{id:slug}`` (a slug has no dots).

A route that allows ``GET`` also allows ``HEAD`` (RFC 9110 §9.3.2): the same route,
the same checks and action, and the answer's headers without its body.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from gateway.idtypes import PATH_PARAMETERS
from gateway.ingress import SEGMENT_SAFE
from gateway.model import MatchResult, MethodNotAllowed, NoRoute, Route, RouteMatch, Target

_PARAM = re.compile(
    rf"\{{([A-Za-z_][A-Za-z0-9_]*)(?::({'|'.join(t for t in PATH_PARAMETERS if t)}))?\}}"
)
_RANK = {"int": 0, "uuid": 0, "slug": 1, "": 2, "path": 3}
_LITERAL_RANK = -100_000
"""A literal segment's rank: below every parameter, with or without text around it."""
_BRACED = re.compile(r"\{[^{}]*\}")
_ESCAPE_ALIGNED = r"(?:[^/%]|%[0-9A-Fa-f]{2})+"
"""A plain parameter beside literal text: whole percent-escapes only, so a suffix can
never start inside an escape (``{name}A9`` must not match ``caf%C3%A9``)."""
ANY_FIRST = ""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed path template."""

    shape: tuple[tuple[str, str], ...]
    """('lit', text), ('param', type) or ('mixed', 'prefix{type}suffix') per segment, the
    text in canonical (encoded) form: equal shapes overlap."""
    params: tuple[tuple[str, str], ...]
    """(name, type) of each parameter in order."""
    regex: re.Pattern[str]

    @property
    def specificity(self) -> tuple[int, ...]:
        literals = sum(1 for kind, _ in self.shape if kind == "lit")
        return (-literals, *(_segment_rank(kind, text) for kind, text in self.shape))

    @property
    def first_literal(self) -> str:
        kind, text = self.shape[0] if self.shape else ("lit", "")
        return text if kind == "lit" else ANY_FIRST


def parse_template(pattern: str) -> Template | str:
    """A compiled template, or a sentence saying what is wrong with it."""
    if not pattern.startswith("/"):
        return f"path template {pattern!r} must start with '/'"
    segments = pattern[1:].split("/")
    shape: list[tuple[str, str]] = []
    params: list[tuple[str, str]] = []
    parts: list[str] = []
    for index, segment in enumerate(segments):
        parsed = _parse_segment(segment, pattern, last=index == len(segments) - 1)
        if isinstance(parsed, str):
            return parsed
        segment_shape, param, regex = parsed
        if param is not None:
            if param[0] in dict(params):
                return f"parameter {param[0]!r} appears twice in {pattern!r}"
            params.append(param)
        shape.append(segment_shape)
        parts.append(regex)
    return Template(tuple(shape), tuple(params), re.compile("/" + "/".join(parts)))


_Segment = tuple[tuple[str, str], tuple[str, str] | None, str]
"""A parsed segment: its shape entry, its parameter (name, type) if any, its regex."""


def _parse_segment(segment: str, pattern: str, *, last: bool) -> _Segment | str:
    """One template segment: a literal, a parameter, or one parameter inside literal text."""
    braced = list(_BRACED.finditer(segment))
    if not braced:
        if "{" in segment or "}" in segment:
            return f"segment {segment!r} of {pattern!r} has an unmatched '{{' or '}}'"
        encoded = quote(segment, safe=SEGMENT_SAFE)
        return ("lit", encoded), None, re.escape(encoded)
    if len(braced) > 1:
        return (
            f"segment {segment!r} of {pattern!r} holds {len(braced)} parameters; "
            "a segment may hold at most one, like {id:int}.json"
        )
    found = braced[0]
    prefix, suffix = segment[: found.start()], segment[found.end() :]
    if any(brace in prefix + suffix for brace in "{}"):
        return f"segment {segment!r} of {pattern!r} has an unmatched '{{' or '}}'"
    param = _PARAM.fullmatch(found.group())
    if param is None:
        return (
            f"{found.group()!r} in {pattern!r} is not a parameter: use {{name}} or "
            f"{{name:type}} with a type of {', '.join(t for t in PATH_PARAMETERS if t)}"
        )
    name, kind = param.group(1), param.group(2) or ""
    if kind == "path" and not last:
        return f"{{{name}:path}} must be the last segment of {pattern!r}"
    if kind == "path" and (prefix or suffix):
        return f"{{{name}:path}} must be a whole segment of {pattern!r}, with no text around it"
    if not prefix and not suffix:
        return ("param", kind), (name, kind), f"(?P<{name}>{PATH_PARAMETERS[kind]})"
    before, after = quote(prefix, safe=SEGMENT_SAFE), quote(suffix, safe=SEGMENT_SAFE)
    middle = _ESCAPE_ALIGNED if kind == "" else PATH_PARAMETERS[kind]
    regex = f"{re.escape(before)}(?P<{name}>{middle}){re.escape(after)}"
    return ("mixed", f"{before}{{{kind}}}{after}"), (name, kind), regex


def _segment_rank(kind: str, text: str) -> int:
    """Lower is more specific: a literal, then a parameter with literal text around it
    (more text first, then by type), then a whole-segment parameter by type."""
    if kind == "lit":
        return _LITERAL_RANK
    if kind == "param":
        return _RANK[text]
    param_type = text[text.index("{") + 1 : text.index("}")]
    literal_length = len(text) - len(param_type) - 2
    return -10 * min(literal_length, 9_000) + _RANK[param_type]


def with_head(methods: frozenset[str] | None) -> frozenset[str] | None:
    """A route's methods as matched: ``HEAD`` wherever ``GET`` is (``None`` is any)."""
    if methods is None or "GET" not in methods or "HEAD" in methods:
        return methods
    return methods | {"HEAD"}


@dataclass(frozen=True, slots=True)
class _Compiled:
    route: Route
    template: Template
    methods: frozenset[str] | None
    """The route's methods plus HEAD where GET is allowed."""


class Router:
    """Matches canonical targets against a compiled, ordered route list."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        """Every route, in the rules' order."""
        compiled = []
        for route in routes:
            template = parse_template(route.pattern)
            if isinstance(template, str):
                raise ValueError(template)
            compiled.append(_Compiled(route, template, with_head(route.methods)))
        compiled.sort(key=lambda c: c.template.specificity)
        self._by_first: dict[str, list[_Compiled]] = {}
        wildcard = [c for c in compiled if c.template.first_literal == ANY_FIRST]
        for item in compiled:
            first = item.template.first_literal
            if first != ANY_FIRST:
                self._by_first.setdefault(first, [])
        for first, bucket in self._by_first.items():
            bucket.extend(c for c in compiled if c.template.first_literal in (first, ANY_FIRST))
            bucket.sort(key=lambda c: c.template.specificity)
        self._wildcard = wildcard

    def match(self, target: Target, method: str) -> MatchResult:
        """The route for this path and method, ``MethodNotAllowed``, or ``NoRoute``."""
        path = target.path
        first = path[1:].split("/", 1)[0]
        candidates = self._by_first.get(first, self._wildcard)
        allowed: set[str] = set()
        for item in candidates:
            found = item.template.regex.fullmatch(path)
            if found is None:
                continue
            methods = item.methods
            if methods is None or method in methods:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                return RouteMatch(item.route, params)
            allowed |= methods
        return MethodNotAllowed(frozenset(allowed)) if allowed else NoRoute()

    def routes_for(self, target: Target) -> list[Route]:
        """Every route whose path template matches ``target``, whatever its methods."""
        first = target.path[1:].split("/", 1)[0]
        candidates = self._by_first.get(first, self._wildcard)
        return [c.route for c in candidates if c.template.regex.fullmatch(target.path)]


def overlap_problems(routes: Sequence[Route]) -> list[str]:
    """Pairs of routes with the same shape and overlapping methods (ambiguous)."""
    problems = []
    seen: dict[tuple[tuple[str, str], ...], list[Route]] = {}
    for route in routes:
        template = parse_template(route.pattern)
        if isinstance(template, str):
            continue
        mine = with_head(route.methods)
        for other in seen.get(template.shape, []):
            theirs = with_head(other.methods)
            if mine is None or theirs is None or mine & theirs:
                problems.append(
                    f"routes {other.name!r} and {route.name!r} match the same paths "
                    f"({other.pattern} / {route.pattern}) with overlapping methods; "
                    "give them different methods or paths"
                )
        seen.setdefault(template.shape, []).append(route)
    return problems
