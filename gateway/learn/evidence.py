"""What was seen of one endpoint: a path template, its methods, parameters and ids.

Both readers (access logs through ``cluster``, OpenAPI documents through
``openapi``) describe the app as ``Endpoint`` values; ``draft`` turns them into
routes. Counts and samples are kept small: they become the evidence comments.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Literal

Source = Literal["log", "openapi"]
MAX_SAMPLES: Final = 3


def add_sample(samples: list[str], value: str) -> None:
    """Keep the first few distinct values."""
    if value not in samples and len(samples) < MAX_SAMPLES:
        samples.append(value)


@dataclass(frozen=True, slots=True)
class IdField:
    """An id in a request: a query parameter, a JSON pointer or a form field."""

    where: str
    """The parameter name, the JSON pointer or the form field."""
    resource: str
    id_type: str


@dataclass(slots=True)
class MethodSeen:
    """One method of an endpoint: how often, with which answers, naming which ids."""

    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    sources: set[Source] = field(default_factory=set)
    body_ids: list[IdField] = field(default_factory=list)
    form_ids: list[IdField] = field(default_factory=list)
    summary: str = ""
    """What an OpenAPI document says of the operation."""
    samples: list[str] = field(default_factory=list)
    """Targets seen with this method (the query shown as ``?…``)."""


@dataclass(slots=True)
class QuerySeen:
    """One query parameter of an endpoint."""

    count: int = 0
    samples: list[str] = field(default_factory=list)
    types: set[str | None] = field(default_factory=set)
    """The id type of each value (``None``: a word); from a document, the declared type."""
    declared_id: bool = False
    """A document declares it as an id (its name or format says so)."""


@dataclass(slots=True)
class PathParam:
    name: str
    type: str
    """A path parameter type: ``int``, ``uuid``, ``slug``, ``""`` or ``path``."""
    samples: list[str] = field(default_factory=list)
    is_id: bool = True
    """Whether it names an object (``path`` catch-alls of static assets do not)."""
    is_tenant: bool = False
    """It names the tenant (a value the operator gave as a tenant id)."""


@dataclass(slots=True)
class Endpoint:
    """One path template and everything seen of it."""

    template: str
    params: list[PathParam]
    methods: dict[str, MethodSeen] = field(default_factory=dict)
    query: dict[str, QuerySeen] = field(default_factory=dict)
    query_known: bool = False
    """Some evidence could have shown a query string (a combined log, a document)."""
    samples: list[str] = field(default_factory=list)
    static: bool = False
    """Static assets gathered under one prefix."""
    skipped_names: list[str] = field(default_factory=list)
    """Query parameter names the rules format cannot list (``a[b]``, ``a.b``)."""
    beside_ids: list[str] = field(default_factory=list)
    """Literal segments of the template that a sibling id parameter would match too."""

    def method(self, name: str) -> MethodSeen:
        return self.methods.setdefault(name, MethodSeen())

    @property
    def requests(self) -> int:
        return sum(seen.count for seen in self.methods.values())
