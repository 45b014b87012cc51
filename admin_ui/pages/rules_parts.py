"""What the rules pages share: a text as numbered lines with their problems, a diff as
marked lines, times, and the simulate form with its answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from admin_ui.view import View
from gateway.admin import rules as lifecycle
from gateway.admin import service
from gateway.admin.explain import Explanation
from gateway.admin.service import AdminError
from gateway.store.rule_versions import VersionRow

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_TARGET = 2048
MAX_VERSION_ID = 2**53
ANONYMOUS = "anonymous"
ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class ListingLine:
    """One line of a rules text, with the problems found on it."""

    number: int
    text: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A problem as listed above the text: ``anchored`` when its line is shown."""

    line: int | None
    message: str
    anchored: bool


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a unified diff and its kind: add, del, hunk, file or same."""

    kind: str
    text: str


def form_text(value: str) -> str:
    """A textarea's text as typed: browsers send its line ends as CR LF."""
    return value.replace("\r\n", "\n")


def numbered(
    text: str, problems: Iterable[tuple[int | None, str]] = ()
) -> tuple[list[ListingLine], list[LineProblem]]:
    """``text`` as numbered lines, each with its problems; and every problem in order."""
    lines = text.split("\n")
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    on_line: dict[int, list[str]] = {}
    listed: list[LineProblem] = []
    for line, message in problems:
        shown = line is not None and 1 <= line <= len(lines)
        listed.append(LineProblem(line, message, shown))
        if line is not None and shown:
            on_line.setdefault(line, []).append(message)
    listing = [
        ListingLine(number, line, tuple(on_line.get(number, ())))
        for number, line in enumerate(lines, start=1)
    ]
    return listing, listed


def diff_lines(diff: str) -> list[DiffLine]:
    """A unified diff's lines, each marked by what it is (its +/- prefix stays)."""
    marked = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        marked.append(DiffLine(kind, line))
    return marked


def stamp(seconds: float | None) -> str:
    """A time as admins read it in the UI: UTC, to the minute."""
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def version_id(text: str) -> int | None:
    """A version id from an address or a form, or ``None`` if it cannot be one."""
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_VERSION_ID else None


def no_such_version(text: str) -> AdminError:
    return AdminError(f"there is no rules version {text[:40]!r}", "not-found")


@dataclass(frozen=True, slots=True)
class SimulationAsk:
    """The simulate form as sent (kept as typed, to show it again)."""

    caller: str = ANONYMOUS
    method: str = "GET"
    target: str = "/"
    version: str = ACTIVE

    @classmethod
    def of(cls, form: Mapping[str, str], *, version: str = ACTIVE) -> SimulationAsk:
        return cls(
            caller=form.get("caller", ANONYMOUS).strip(),
            method=form.get("method", "GET").strip().upper(),
            target=form.get("target", "").strip(),
            version=form.get("version", version).strip() or ACTIVE,
        )

    def caller_of(self) -> str | int | None | AdminError:
        """The caller as the service takes it: an email, a key id or ``None``."""
        kind, _, value = self.caller.partition(":")
        if self.caller == ANONYMOUS:
            return None
        if kind == "user" and value:
            return value
        key = version_id(value) if kind == "key" else None
        if key is None:
            return AdminError("pick a person, an API key or anonymous as the caller")
        return key

    @property
    def caller_label(self) -> str:
        """The caller as a person reads it: an email, ``API key 3`` or ``anonymous``."""
        kind, _, value = self.caller.partition(":")
        return {"user": value, "key": f"API key {value}"}.get(kind, self.caller)

    def version_of(self) -> int | None | AdminError:
        if self.version == ACTIVE:
            return None
        found = version_id(self.version)
        return no_such_version(self.version) if found is None else found

    def problem(self) -> AdminError | None:
        if self.method not in METHODS:
            return AdminError(f"pick a method: one of {', '.join(METHODS)}")
        if not self.target.startswith("/") or len(self.target) > MAX_TARGET:
            return AdminError(
                f"the path must start with / and have at most {MAX_TARGET} characters, "
                "e.g. /api/invoices/7"
            )
        return None


@dataclass(frozen=True, slots=True)
class Simulation:
    """A simulate form and what came of it: the decision with its steps, or a refusal."""

    ask: SimulationAsk
    explanation: Explanation | None = None
    error: AdminError | None = None

    @property
    def status(self) -> int:
        return 200 if self.error is None else self.error.status


async def simulate(view: View, ask: SimulationAsk) -> Simulation:
    """Decide ``ask`` through the admin service (which refuses callers the admin does
    not administer)."""
    caller = ask.caller_of()
    if isinstance(caller, AdminError):
        return Simulation(ask, error=caller)
    version = ask.version_of()
    if isinstance(version, AdminError):
        return Simulation(ask, error=version)
    unfit = ask.problem()
    if unfit is not None:
        return Simulation(ask, error=unfit)
    found = await lifecycle.simulate(view.ctx, version, caller, ask.method, ask.target)
    if isinstance(found, AdminError):
        return Simulation(ask, error=found)
    return Simulation(ask, explanation=found)


@dataclass(frozen=True, slots=True)
class Callers:
    """Whom the admin may simulate as: (form value, label) pairs."""

    people: list[tuple[str, str]] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)


async def callers(view: View) -> Callers:
    """The people and live API keys the signed-in admin administers."""
    now = view.ctx.clock()
    people = sorted(u.email for u in await service.list_users(view.ctx) if u.active)
    keys = [
        (f"key:{k.id}", f"API key {k.id}: {k.label} ({k.role}@{k.tenant})")
        for k in await service.list_api_keys(view.ctx)
        if k.live(now) and not k.admin
    ]
    return Callers([(f"user:{email}", email) for email in people], keys)


def version_choices(rows: Iterable[VersionRow], active: int | None) -> list[tuple[str, str]]:
    """The versions to simulate under, the active one first."""
    choices = [(ACTIVE, "The active version" + (f" ({active})" if active else ""))]
    choices += [
        (str(row.id), f"Version {row.id}" + (" (active)" if row.id == active else ""))
        for row in rows
    ]
    return choices


async def simulate_form_context(view: View) -> dict[str, object]:
    """What the simulate form needs besides the ask."""
    rows = await lifecycle.list_versions(view.ctx, limit=50)
    active = await lifecycle.active_version_id(view.ctx)
    listed = [] if isinstance(rows, AdminError) else rows
    return {
        "callers": await callers(view),
        "versions": version_choices(listed, active),
        "methods": METHODS,
    }


def answer_simulation(view: View, simulation: Simulation) -> web.Response:
    """The simulate result panel, for htmx to put in place."""
    return view.fragment("rules_simulation.html", status=simulation.status, simulation=simulation)
