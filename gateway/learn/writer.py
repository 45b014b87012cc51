"""A draft rule set as YAML text, each route with the evidence beside it.

Written by hand rather than by a YAML dumper so that comments sit next to what they
explain; every scalar that is not a plain word is written as a JSON string (which is
YAML), and comment text is already cleaned to one printable line.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.learn.draft import QUESTION, TENANT_PLACEHOLDER, Draft, owner_placeholder

_PLAIN: re.Pattern[str] = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"})


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: str
    given: bool
    """Named on the command line; otherwise a placeholder to fill in."""


def scalar(value: str) -> str:
    """``value`` as a YAML scalar: bare if it is a plain word, else a JSON string."""
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _flow(values: Sequence[str]) -> str:
    return "[" + ", ".join(scalar(v) for v in values) + "]"


def write_draft(draft: Draft, *, upstream: Upstream, header: Sequence[str]) -> str:
    lines = ["# yaml-language-server: $schema=schema.json"]
    lines += [f"# {line}" if line else "#" for item in header for line in item.split("\n")]
    lines += ["version: 1", "", "upstreams:"]
    if not upstream.given:
        lines.append(
            f"  # {QUESTION}: the app's address (gatehold rules learn --upstream NAME=URL)"
        )
    lines += [f"  {scalar(upstream.name)}: {{url: {scalar(upstream.url)}}}", ""]
    lines += [
        f"roles:  # {QUESTION}: which actions each role allows; grant them with "
        "gatehold users add … --role",
        "  readonly: {can: [read]}",
        "  standard: {can: [read, write]}",
        "  admin:    {can: [read, write, delete]}",
        "",
    ]
    if draft.resources:
        lines += [
            "resources:",
            f"  # {QUESTION} on every resource: how does the app say which tenant owns one?",
            "  # Replace the placeholder owner with an http lookup on the app, a read-only sql",
            '  # query or the registry (docs/rules.md, "resources"). Until then its lookup cannot',
            "  # answer (a .invalid host never resolves) and every request naming one is refused.",
        ]
        for resource in draft.resources.values():
            used = ", ".join(resource.used_by[:4]) + (" …" if len(resource.used_by) > 4 else "")
            lines += [
                f"  {scalar(resource.name)}:  # named by {used}",
                f"    id_type: {scalar(resource.id_type)}",
                f"    owner: {{http: {scalar(owner_placeholder(resource.name))}, "
                f"tenant_field: {scalar(TENANT_PLACEHOLDER)}}}",
            ]
        lines.append("")
    lines.append("routes:")
    for route in draft.routes:
        lines += [f"  # {line}" for line in route.evidence]
        for question in route.questions:
            wrapped = textwrap.wrap(f"{QUESTION}: {question}", 88, break_on_hyphens=False)
            lines += [f"  # {wrapped[0]}"] + [f"  #   {more}" for more in wrapped[1:]]
        lines += [
            f"  - name: {scalar(route.name)}",
            f"    match: {{path: {scalar(route.path)}, methods: [{route.method}]}}",
            f"    upstream: {scalar(upstream.name)}",
        ]
        if route.tenant is not None:
            lines.append(f"    tenant: {scalar('path.' + route.tenant)}")
        if route.resource is not None:
            kind, param = route.resource
            lines.append(f"    resource: {{type: {scalar(kind)}, id: {scalar('path.' + param)}}}")
        if route.query_ids:
            items = ", ".join(
                f"{{type: {scalar(q.resource)}, param: {scalar(q.where)}}}" for q in route.query_ids
            )
            lines.append(f"    query_ids: [{items}]")
        if route.body_ids:
            items = ", ".join(
                f"{{type: {scalar(b.resource)}, pointer: {scalar(b.where)}}}"
                for b in route.body_ids
            )
            lines.append(f"    body_ids: [{items}]")
        if route.form_ids:
            items = ", ".join(
                f"{{type: {scalar(f.resource)}, field: {scalar(f.where)}}}" for f in route.form_ids
            )
            lines.append(f"    form_ids: [{items}]")
        if route.query_allow is not None:
            lines.append(f"    query: {{allow: {_flow(route.query_allow)}}}")
    return "\n".join(lines) + "\n"
