"""``gatehold rules learn``: the click command (files in, a draft and a summary out).

All the learning is in ``gateway.learn.run``; this reads the files (or one URL),
writes the draft (never over a file without ``--force``) and prints the summary and
the draft's lint warnings on stderr. Problems exit 2 with one line each, never a
traceback.
"""

from __future__ import annotations

import gzip
import http.client
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, NoReturn

import click

from gateway.learn.logread import FORMATS, LogFormat
from gateway.learn.run import DEFAULT_UPSTREAM, LearnFailed, LearnOptions, TextSource, learn
from gateway.learn.writer import Upstream

MAX_DOCUMENT: Final = 20 * 1024 * 1024
_TENANT_ID: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_UPSTREAM: Final = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,62})=(?P<url>https?://\S+)")


def _fail(problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(2)


@dataclass(slots=True)
class FileLines:
    """An access log streamed line by line (``.gz`` is read through gzip); a read
    error ends the stream and is kept for the command to report."""

    path: Path
    error: str | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def _open(self) -> IO[str]:
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "rt", encoding="utf-8", errors="replace", newline="")
        return self.path.open(encoding="utf-8", errors="replace", newline="")

    def check(self) -> str | None:
        """Why the file cannot be read, or ``None``."""
        try:
            with self._open() as handle:
                handle.read(1)
        except (OSError, EOFError) as error:
            return f"{self.path}: cannot read: {getattr(error, 'strerror', None) or error}"
        return None

    def lines(self) -> Iterator[str]:
        try:
            with self._open() as handle:
                yield from handle
        except (OSError, EOFError) as error:
            self.error = (
                f"{self.path}: reading stopped: {getattr(error, 'strerror', None) or error}"
            )


def _read_file(path: Path, limit: int) -> TextSource | str:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        return f"{path}: cannot read: {error.strerror}"
    if len(data) > limit:
        return f"{path}: larger than {limit // (1024 * 1024)} MiB"
    return TextSource(str(path), data.decode("utf-8", errors="replace"))


def _fetch(url: str) -> TextSource | str:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 (http/https only)
            data = response.read(MAX_DOCUMENT + 1)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        return f"{url}: cannot fetch: {getattr(error, 'reason', error)}"
    if len(data) > MAX_DOCUMENT:
        return f"{url}: larger than {MAX_DOCUMENT // (1024 * 1024)} MiB"
    return TextSource(url, data.decode("utf-8", errors="replace"))


def _upstream(value: str | None) -> Upstream:
    if value is None:
        return DEFAULT_UPSTREAM
    found = _UPSTREAM.fullmatch(value)
    if found is None:
        _fail([f"--upstream {value!r}: give NAME=URL, e.g. ledger=http://10.0.0.5:9001"])
    return Upstream(found["name"], found["url"].rstrip("/"), given=True)


@click.command(name="learn")
@click.option(
    "--access-log",
    "access_logs",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="An access log to learn from (repeatable).",
)
@click.option(
    "--format",
    "log_format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="The access logs' format: nginx/Apache combined or common, or Gatehold's JSON log.",
)
@click.option(
    "--openapi",
    "openapi",
    multiple=True,
    help="An OpenAPI 2 (Swagger) or 3 document, JSON or YAML: a file or an http(s) URL.",
)
@click.option("--upstream", default=None, help="NAME=URL of the app the routes go to.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the draft here (default: standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option(
    "--min-requests",
    type=click.IntRange(1, None),
    default=1,
    show_default=True,
    help="Leave out a method of a path seen fewer times than this in the logs.",
)
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="A tenant id (repeatable): a path segment spelled as one names the tenant "
    "(tenant: path.tenant) instead of being a literal.",
)
@click.option(
    "--max-literals",
    type=click.IntRange(2, 10_000),
    default=20,
    show_default=True,
    help="More distinct words than this at one place of a path are values, not endpoints.",
)
def learn_command(
    access_logs: tuple[Path, ...],
    log_format: LogFormat,
    openapi: tuple[str, ...],
    upstream: str | None,
    output: Path | None,
    force: bool,
    min_requests: int,
    max_literals: int,
    tenants: tuple[str, ...],
) -> None:
    """Write a DRAFT rules file from what an app serves: its access logs and/or its
    OpenAPI document. Every route has its evidence beside it; every owner lookup is a
    QUESTION that refuses until a person writes it. Review before use."""
    if not access_logs and not openapi:
        _fail(["nothing to learn from: give --access-log FILE and/or --openapi FILE_OR_URL"])
    if output is not None and output.exists() and not force:
        _fail([f"{output} exists: give --force to overwrite it"])
    bad = [t for t in tenants if not _TENANT_ID.fullmatch(t)]
    if bad:
        _fail([f"--tenant {t!r}: a tenant id is lower-case letters, digits and '-'" for t in bad])
    options = LearnOptions(
        log_format, _upstream(upstream), min_requests, max_literals, frozenset(tenants)
    )
    problems: list[str] = []
    logs = [FileLines(path) for path in access_logs]
    problems += [problem for log in logs if (problem := log.check()) is not None]
    specs: list[TextSource] = []
    for where in openapi:
        is_url = where.startswith(("http://", "https://"))
        read = _fetch(where) if is_url else _read_file(Path(where), MAX_DOCUMENT)
        specs.append(read) if isinstance(read, TextSource) else problems.append(read)
    if problems:
        _fail(problems)
    result = learn(logs, specs, options)
    stopped = [log.error for log in logs if log.error is not None]
    if stopped:
        _fail(stopped)
    for line in result.summary:
        click.echo(line, err=True)
    if isinstance(result, LearnFailed):
        _fail(result.problems)
    for item in result.lints:
        click.echo(f"warning: {item.located(str(output or 'draft'))}", err=True)
    if output is None:
        click.echo(result.text, nl=False)
        return
    try:
        with output.open("w" if force else "x", encoding="utf-8") as handle:
            handle.write(result.text)
    except FileExistsError:
        _fail([f"{output} exists: give --force to overwrite it"])
    except OSError as error:
        _fail([f"{output}: cannot write: {error.strerror}"])
    click.echo(
        f"wrote {output}: a draft to review ({result.routes} routes, "
        f"{result.resources} owner lookups to fill in); then: gatehold rules check {output}",
        err=True,
    )
