"""Object ids a matched request names: path, query, JSON body pointers, form fields.

Every id found must pass its declared type before any resolver sees it. A name the
route checks is looked for wherever frameworks merge parameters from (the query, a
urlencoded or multipart form, a JSON body), and any other spelling of it that some
framework reads as the same name is refused (``gateway.params``). A body is read only
for routes that look inside it, only if it can be read as the app will read it
(``gateway.bodies``), and then forwarded exactly as read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import bodies, idtypes, multipart
from gateway.bodies import Body, BodyKind, MediaType
from gateway.jsonpointer import WILDCARD, array_index, pointer_values, unparse
from gateway.model import (
    IdSource,
    IdSpec,
    IncomingRequest,
    ObjectRef,
    Reason,
    Rejection,
    Route,
    RouteMatch,
)
from gateway.params import (
    Name,
    Unreadable,
    ambiguous_key,
    exact,
    fold_segment,
    name_from_key,
    name_from_pointer,
    parse_pairs,
    related,
    semicolon_keys,
)


@dataclass(frozen=True, slots=True)
class Extracted:
    """The ids of one request, and its body when it had to be read to find them."""

    refs: tuple[ObjectRef, ...]
    body: Body | None
    """Forward this (``Body.forwardable``): exactly the bytes that were inspected."""


def check_id(value: str, id_type: str) -> bool:
    """Whether ``value`` is a well-formed id of ``id_type`` (int, uuid, slug, regex:…)."""
    return idtypes.check(value, id_type)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A route's id spec with the name it is looked for under."""

    spec: IdSpec
    name: Name

    @property
    def pointer(self) -> str:
        if self.spec.source is IdSource.BODY:
            return self.spec.key
        return unparse(self.name.exact)


@functools.lru_cache(maxsize=1024)
def _checked_names(specs: tuple[IdSpec, ...]) -> tuple[_Checked, ...]:
    named = []
    for spec in specs:
        if spec.source is IdSource.BODY:
            named.append(_Checked(spec, name_from_pointer(spec.key)))
        elif spec.source in (IdSource.QUERY, IdSource.FORM):
            named.append(_Checked(spec, name_from_key(spec.key)))
    return tuple(named)


def ambiguous(key: str) -> Rejection:
    return Rejection(
        Reason.PARAM_AMBIGUOUS,
        f"the parameter {key[:60]!r} is another spelling of an id this route checks",
    )


class ObjectExtractor:
    """Finds and type-checks every object id of a request."""

    def __init__(
        self,
        *,
        max_inspect_bytes: int = 1024 * 1024,
        body_idle_timeout: float = 10.0,
        body_total_timeout: float = 120.0,
    ) -> None:
        self._max = max_inspect_bytes
        self._idle = body_idle_timeout
        self._total = body_total_timeout

    async def extract(
        self,
        request: IncomingRequest,
        match: RouteMatch,
        *,
        query: str = "",
        body: Body | None = None,
    ) -> Extracted | Rejection:
        """All ids in rule order (duplicates removed), or why the request is malformed.

        ``query`` is the canonical query string; ``body`` a body already read (for a
        method override), else it is read here when the route looks inside bodies.
        """
        refs: list[ObjectRef] = []
        for spec in match.route.ids:
            if spec.source is IdSource.PATH:
                found = _typed(spec, [match.params[spec.key]], f"path.{spec.key}")
                if isinstance(found, Rejection):
                    return found
                refs += found
        names = _checked_names(match.route.ids)
        if not names:
            return Extracted(tuple(dict.fromkeys(refs)), None)
        found = _pair_ids(query, names, "query") if query else []
        if isinstance(found, Rejection):
            return found
        refs += found
        read = await self._body_ids(request, match, names, body)
        if isinstance(read, Rejection):
            return read
        refs += read[0]
        return Extracted(tuple(dict.fromkeys(refs)), read[1])

    def inspect_limit(self, route: Route) -> int:
        """The most bytes of a JSON or urlencoded body the route's checks parse in memory."""
        return min(route.max_body_bytes, self._max)

    async def read_inspectable(self, request: IncomingRequest, route: Route) -> Body | Rejection:
        """The whole body, read to be parsed in memory: at most the route's ``max_body``
        and the inspection limit (413 beyond), under the body timeouts."""
        limit = self.inspect_limit(route)
        read = await bodies.read_body(request, limit, idle=self._idle, total=self._total)
        if isinstance(read, Rejection):
            return read
        if read.size > limit:
            return Rejection(Reason.BODY_TOO_LARGE, "the body is too large to inspect")
        return read

    async def _body_ids(
        self,
        request: IncomingRequest,
        match: RouteMatch,
        names: tuple[_Checked, ...],
        body: Body | None,
    ) -> tuple[list[ObjectRef], Body | None] | Rejection:
        if body is None and not request.body_exists:
            return [], None
        media = _body_media(request, match)
        if isinstance(media, Rejection):
            return media
        if media is None:
            return [], body  # a media type the app does not read parameters from
        # Multipart is scanned in place (uploads may be large); forms and JSON are
        # parsed in memory, so they are inspected up to a smaller size.
        spooled = media.kind is BodyKind.MULTIPART
        limit = (
            match.route.max_body_bytes if spooled else min(match.route.max_body_bytes, self._max)
        )
        if body is None:
            read = await bodies.read_body(request, limit, idle=self._idle, total=self._total)
            if isinstance(read, Rejection):
                return read
            body = read
        if body.size > limit:
            return Rejection(Reason.BODY_TOO_LARGE, "the body is too large to inspect")
        if body.size == 0:
            return [], body
        found = _ids_in(body, media, names)
        return found if isinstance(found, Rejection) else (found, body)


def _body_media(request: IncomingRequest, match: RouteMatch) -> MediaType | Rejection | None:
    """The media type to parse the body as; ``None`` when the body is not inspected."""
    sources = {spec.source for spec in match.route.ids}
    media = bodies.request_media_type(request)
    if isinstance(media, Rejection):
        return media
    if media is None:
        return bodies.unsupported("a body on this route needs a Content-Type")
    kind = media.kind
    if kind is BodyKind.OTHER and not sources & {IdSource.FORM, IdSource.BODY}:
        return None
    if IdSource.BODY in sources and IdSource.FORM not in sources and kind is not BodyKind.JSON:
        return bodies.unsupported("this route expects a JSON body")
    if IdSource.FORM in sources and IdSource.BODY not in sources and kind is BodyKind.JSON:
        return bodies.unsupported("this route expects a form")
    if kind is BodyKind.OTHER:
        return bodies.unsupported(f"this route does not read {media.type} bodies")
    return bodies.charset_problem(media) or media


def _ids_in(
    body: Body, media: MediaType, names: tuple[_Checked, ...]
) -> list[ObjectRef] | Rejection:
    match media.kind:
        case BodyKind.JSON:
            document = bodies.parse_json(body.content(), media)
            if isinstance(document, Rejection):
                return document
            return _json_ids(document, names)
        case BodyKind.MULTIPART:
            fields = multipart.parse_fields(body.view(), media, _relevant(names))
            if isinstance(fields, Rejection):
                return fields
            return _field_ids(fields, names, "form")
        case _:
            text = bodies.decode_text(body.content(), media)
            if isinstance(text, Rejection):
                return text
            return _pair_ids(text, names, "form")


def _relevant(names: tuple[_Checked, ...]) -> Callable[[str], bool]:
    """Multipart field names whose values must be read: checked names and their spellings."""
    return lambda key: key == "_charset_" or any(related(key, c.name) for c in names)


def _pair_ids(text: str, names: tuple[_Checked, ...], where: str) -> list[ObjectRef] | Rejection:
    """Ids named in a query string or urlencoded form."""
    try:
        pairs = parse_pairs(text)
    except Unreadable:
        return bodies.invalid(f"the {where} is not valid UTF-8 after percent-decoding")
    for key in semicolon_keys(text):
        if any(related(key, checked.name) for checked in names):
            return ambiguous(f";{key}")
    return _field_ids(pairs, names, where)


def _field_ids(
    pairs: Sequence[tuple[str, str]], names: tuple[_Checked, ...], where: str
) -> list[ObjectRef] | Rejection:
    if where == "form":
        for key, value in pairs:
            if key == "_charset_" and value.strip().lower() not in ("utf-8", "utf8", "us-ascii"):
                return bodies.unsupported("the form names a charset other than UTF-8")
    hidden = ambiguous_key((key for key, _ in pairs), [n.name for n in names])
    if hidden is not None:
        return ambiguous(hidden)
    refs: list[ObjectRef] = []
    for key, value in pairs:
        for checked in names:
            if exact(key, checked.name):
                found = _typed(checked.spec, [value], f"{where}.{key}")
                if isinstance(found, Rejection):
                    return found
                refs += found
    return refs


def _json_ids(document: Any, names: tuple[_Checked, ...]) -> list[ObjectRef] | Rejection:
    refs: list[ObjectRef] = []
    for checked in names:
        variant = _json_variant(document, checked.name.exact)
        if variant is not None:
            return ambiguous(variant)
        values = []
        for value in pointer_values(document, checked.pointer):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | str):
                return Rejection(
                    Reason.ID_INVALID, f"{checked.spec.label} must be a string or an integer"
                )
            values.append(str(value))
        found = _typed(checked.spec, values, f"body:{checked.pointer}")
        if isinstance(found, Rejection):
            return found
        refs += found
    return refs


def _json_variant(document: Any, path: Sequence[str]) -> str | None:
    """A key on the way to ``path`` that differs from it only in spelling (case, spaces)."""
    nodes = [document]
    for segment in path:
        folded = fold_segment(segment)
        following: list[Any] = []
        for node in nodes:
            if isinstance(node, list):
                if segment == WILDCARD:
                    following.extend(node)
                elif (index := array_index(segment)) is not None and index < len(node):
                    following.append(node[index])
            elif isinstance(node, dict):
                for key, value in node.items():
                    if key == segment or segment == WILDCARD:
                        following.append(value)
                    elif fold_segment(key) == folded:
                        return str(key)
        nodes = following
    return None


def _typed(spec: IdSpec, values: Sequence[str], source: str) -> list[ObjectRef] | Rejection:
    refs = []
    for value in values:
        if not check_id(value, spec.id_type):
            return Rejection(Reason.ID_INVALID, f"{source} is not a valid {spec.id_type} id")
        refs.append(ObjectRef(spec.type, value, source))
    return refs
