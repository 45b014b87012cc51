"""Query constraints: which parameters a route's query string may carry.

A list endpoint that takes client filters (a raw ``where``, a ``tenant=`` filter,
``_facet_*`` and sort parameters) can be turned into another tenant's list. A route's
``query: {allow, deny, require}`` names what it takes, and anything else is refused
before any owner lookup or forwarding.

Names are judged as frameworks read them (``gateway.params``): percent-decoded (twice
encoded too), case-folded, ``a[]``/``a[b]``/``a.b`` nested in ``a``, PHP's ``.`` and
space as ``_``, and keys hidden behind a ``;`` (older Rack, CGI) count as keys. So
``?%74enant=x``, ``?TENANT=x``, ``?tenant[]=x`` and ``?a=1;tenant=x`` all name
``tenant``. Judged strictly both ways:

* ``deny``: refused when the name, or any part of it (``filter[tenant]``), matches;
* ``allow``: refused unless every name a framework may read the key as matches;
* ``require``: refused unless a key is the name spelled exactly (``Page`` is not
  ``page`` to a case-sensitive app), as are ``query_ids`` marked ``required``.

Parameters the route binds to the tenant (``bind.query``) are not judged: whatever the
client sent under any spelling of them is replaced (``tenant_binding``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from gateway.jsonpointer import WILDCARD
from gateway.model import Reason, Rejection, Route
from gateway.params import (
    Name,
    Unreadable,
    fold_segment,
    key_paths,
    name_from_key,
    parse_pairs,
    related,
    semicolon_keys,
)


@functools.lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A name pattern (``_facet*``) as a regular expression over folded names."""
    pieces = (re.escape(piece) for piece in fold_segment(pattern).split(WILDCARD))
    return re.compile(".*".join(pieces), re.DOTALL)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a folded name matches one of ``patterns`` (``*`` is any run of characters)."""
    return any(_pattern(p).fullmatch(name) is not None for p in patterns)


def refused_name(name: str, allow: Sequence[str] | None, deny: Sequence[str]) -> bool:
    """Whether a parameter spelled ``name`` would be refused by these constraints."""
    return _refusal(name, allow, deny) is not None


def _refusal(key: str, allow: Sequence[str] | None, deny: Sequence[str]) -> Rejection | None:
    """Why the key ``key`` (decoded once) is refused, or ``None``."""
    paths = key_paths(key)
    if deny and any(matches(part, deny) for path in paths for part in path if part != WILDCARD):
        return Rejection(
            Reason.PARAM_FORBIDDEN, f"the parameter {key[:60]!r} is not accepted on this route"
        )
    if allow is not None and not all(matches(path[0], allow) for path in paths):
        return Rejection(
            Reason.PARAM_FORBIDDEN, f"the parameter {key[:60]!r} is not accepted on this route"
        )
    return None


@functools.lru_cache(maxsize=1024)
def _bound_names(route: Route) -> tuple[Name, ...]:
    return tuple(name_from_key(n) for n in route.bind.query) if route.bind else ()


def required_names(route: Route) -> tuple[str, ...]:
    """Every parameter the route's query string must carry."""
    return route.required_params


def check_query(query: str, route: Route) -> Rejection | None:
    """Why the canonical ``query`` breaks the route's constraints, or ``None``.

    400 ``request-malformed`` for a query that is not UTF-8 once decoded, 403
    ``param-forbidden`` for a name the route refuses, 400 ``param-missing`` for a
    required one that is absent; each names the parameter.
    """
    required = required_names(route)
    if route.query is None and not required:
        return None
    try:
        pairs = parse_pairs(query)
    except Unreadable:
        return Rejection(
            Reason.REQUEST_MALFORMED, "the query is not valid UTF-8 after percent-decoding"
        )
    keys = [key for key, _ in pairs]
    if route.query is not None:
        bound = _bound_names(route)
        for key in (*keys, *semicolon_keys(query)):
            if any(related(key, name) for name in bound):
                continue  # replaced by the binding, whatever it was
            refusal = _refusal(key, route.query.allow, route.query.deny)
            if refusal is not None:
                return refusal
    present = set(keys)
    for name in required:
        if name not in present:
            return Rejection(
                Reason.PARAM_MISSING, f"the parameter {name!r} is required on this route"
            )
    return None
