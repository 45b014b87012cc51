"""One learning run: sources in, a checked draft (or why there is none) out.

The text is verified with the rules loader itself (``check_rules_text``) before
anyone sees it, and linted: a draft that would not load is a bug reported as an
error, never a file written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from gateway.config import yamlsource
from gateway.config.lints import Lint, lint
from gateway.config.loader import check_rules_text
from gateway.learn.cluster import DEFAULT_MAX_LITERALS, Skipped, cluster
from gateway.learn.draft import QUESTION, build_draft, merge_endpoints
from gateway.learn.evidence import Endpoint
from gateway.learn.logread import LogCounts, LogFormat, iter_log
from gateway.learn.openapi import SpecRead, parse_document, read_spec
from gateway.learn.writer import Upstream, write_draft

SHOWN_PROBLEMS: Final = 5
DEFAULT_UPSTREAM: Final = Upstream("app", f"http://{QUESTION}-app-address.invalid", given=False)


class LineSource(Protocol):
    """A log to read line by line (a file is streamed, never held whole)."""

    @property
    def name(self) -> str: ...

    def lines(self) -> Iterable[str]: ...


@dataclass(frozen=True, slots=True)
class TextSource:
    """A file already read: its name (for messages) and its text."""

    name: str
    text: str

    def lines(self) -> Iterable[str]:
        return self.text.splitlines()


@dataclass(frozen=True, slots=True)
class LearnOptions:
    format: LogFormat = "auto"
    upstream: Upstream = DEFAULT_UPSTREAM
    min_requests: int = 1
    max_literals: int = DEFAULT_MAX_LITERALS
    tenants: frozenset[str] = frozenset()
    """Tenant ids the operator knows: a path segment that is one names the tenant."""


@dataclass(slots=True)
class Learned:
    """A draft, and what the run says about its input."""

    text: str = ""
    routes: int = 0
    resources: int = 0
    summary: list[str] = field(default_factory=list)
    lints: list[Lint] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LearnFailed:
    problems: list[str]
    summary: list[str]


def learn(
    logs: Sequence[LineSource], specs: Sequence[TextSource], options: LearnOptions
) -> Learned | LearnFailed:
    """A draft from ``logs`` (streamed) and OpenAPI ``specs``, verified by the rules
    loader; or why there is none. ``summary`` says what was read and left out."""
    summary: list[str] = []
    counts = LogCounts()
    requests = (
        request
        for log in logs
        for request in iter_log(log.lines(), source=log.name, counts=counts, format=options.format)
    )
    from_logs, skipped = cluster(
        requests, max_literals=options.max_literals, tenants=options.tenants
    )
    if logs:
        summary.append(
            f"read {counts.requests} requests from {len(logs)} log"
            f"{'s' if len(logs) != 1 else ''}; {counts.unreadable} unreadable line"
            f"{'s' if counts.unreadable != 1 else ''}"
            + (f", {counts.other_lines} other lines" if counts.other_lines else "")
        )
        summary += _first("unreadable", counts.problems, counts.unreadable)
    summary += _skipped_lines(skipped)
    groups: list[list[Endpoint]] = []
    failures: list[str] = []
    for spec in specs:
        parsed = parse_document(spec.text, source=spec.name)
        if isinstance(parsed, str):
            failures.append(parsed)
            continue
        spec_read: SpecRead = read_spec(parsed, source=spec.name)
        groups.append(spec_read.endpoints)
        summary.append(
            f"{spec.name}: {len(spec_read.endpoints)} paths"
            + (f" ({spec_read.title} {spec_read.version})".rstrip() if spec_read.title else "")
        )
        summary += _first("left out", spec_read.problems, len(spec_read.problems))
    if failures:
        return LearnFailed(failures, summary)
    groups.append(from_logs)
    draft = build_draft(merge_endpoints(groups), min_requests=options.min_requests)
    summary += _first("fewer than --min-requests", draft.left_out, len(draft.left_out))
    if not draft.routes:
        why = "no request in the input counts as evidence of an address the app serves"
        if logs and not counts.requests:
            why = "no request could be read from the logs (is --format right?)"
        return LearnFailed([f"nothing to learn: {why}"], summary)
    text = write_draft(draft, upstream=options.upstream, header=_header(logs, specs, options))
    ruleset, problems = check_rules_text(text, source="draft", env={})
    if ruleset is None:
        return LearnFailed(
            ["the draft does not load (a bug in rules learn):"] + [str(p) for p in problems],
            summary,
        )
    lints = lint(ruleset, yamlsource.read(text, "draft")[1])
    summary.append(
        f"draft: {len(draft.routes)} routes, {len(draft.resources)} resources to fill in, "
        f"{text.count(QUESTION)} {QUESTION} marks, {len(lints)} lint warnings"
    )
    return Learned(text, len(draft.routes), len(draft.resources), summary, lints)


def _first(label: str, items: Sequence[object], total: int) -> list[str]:
    """The first few ``items`` as summary lines, and how many more there are."""
    lines = [f"  {label}: {item}" for item in items[:SHOWN_PROBLEMS]]
    if total > SHOWN_PROBLEMS:
        lines.append(f"  … and {total - SHOWN_PROBLEMS} more")
    return lines


def _skipped_lines(skipped: Skipped) -> list[str]:
    return [
        f"  not evidence: {count} × {reason}"
        + (f" (e.g. {skipped.samples[reason][0]})" if skipped.samples.get(reason) else "")
        for reason, count in skipped.reasons.most_common()
    ]


def _header(
    logs: Sequence[LineSource], specs: Sequence[TextSource], options: LearnOptions
) -> list[str]:
    sources = [f"access log {log.name}" for log in logs] + [f"OpenAPI {s.name}" for s in specs]
    return [
        "DRAFT written by `gatehold rules learn` from " + ", ".join(sources) + ".",
        f"Review it before use: every {QUESTION} is for a person to answer.",
        "",
        "Only the templates and methods seen are routes: anything else is refused.",
        "Evidence: answers 1xx-3xx and 400/401/403/409/412/422/429; not 404/405/410 or",
        "other misses, not 5xx, not OPTIONS/TRACE/CONNECT, not requests the gateway refused"
        + (
            f";\nmethods seen fewer than {options.min_requests} times (--min-requests) "
            "are left out."
            if options.min_requests > 1
            else "."
        ),
        "Counts are log lines: two logs of the same traffic count each request twice.",
        "Every typed path parameter is taken to name an object (its route checks it); remove",
        "the resource where it names none. Each owner lookup is a placeholder that cannot",
        "answer, so every object is refused until its lookup is written;",
        "`gatehold rules check --probe` fails while one is left.",
        "",
        "What the input cannot show:",
        "- bodies: access logs carry none, so ids inside JSON or form bodies (body_ids,",
        "  form_ids) come only from an OpenAPI document's request schemas;",
        "- Gatehold's JSON access log writes no query strings: no query_ids or",
        "  allow-lists from it;",
        "- who owns an object, which tenant a path names (tenant: path.…; only the tenant",
        "  ids given with --tenant are recognised), which roles exist,",
        "  which routes export, download or need a recent sign-in (action, file, step_up);",
        "- addresses nobody asked for while the log was written.",
    ]
