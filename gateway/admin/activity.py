"""What happened at the gateway lately, counted from the audit trail (the dashboard).

Requests are the pipeline's ``request`` rows (one per request that reached a decision:
allowed, denied, or observed: forwarded in observe mode although the rules refuse it,
counted on their own and never as allowed); sign-ins are ``login`` rows (``login-failed``
rows are counted apart). A tenant admin counts only the rows of their tenants, as they
read them in the audit trail; sign-ins carry no tenant, so only a superadmin sees those.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.admin.audit_reading import readable_tenants
from gateway.admin.service import AdminContext
from gateway.observe import OBSERVED
from gateway.store import audit_log
from gateway.store.audit_log import AuditFilter, HourlyCount, ValueCount

HOURS = 24
TOP = 10
REQUEST_KIND = "request"
LOGIN_KIND = "login"
FAILED_LOGIN_KIND = "login-failed"


@dataclass(frozen=True, slots=True)
class HourFigures:
    """One hour of the window."""

    start: float
    """Unix seconds at the start of the hour (UTC, on the hour)."""
    allowed: int
    """Requests the rules allowed."""
    denied: int
    logins: int
    failed_logins: int
    observed: int = 0
    """Requests forwarded in observe mode that the rules would refuse."""

    @property
    def end(self) -> float:
        return self.start + 3600

    @property
    def requests(self) -> int:
        return self.allowed + self.observed + self.denied


@dataclass(frozen=True, slots=True)
class ActivitySummary:
    """The last ``HOURS`` hours: per hour, the most denied routes, the busiest callers."""

    start: float
    end: float
    hours: list[HourFigures]
    denied_routes: list[ValueCount]
    """Routes by denied requests, most first (requests that matched no route are left out)."""
    observed_routes: list[ValueCount]
    """Routes by requests forwarded in observe mode, most first."""
    callers: list[ValueCount]
    """Callers by requests, most first (with how many of them were denied)."""
    tenants: frozenset[str] | None
    """Whose rows were counted; ``None``: every row."""

    @property
    def requests(self) -> int:
        return sum(hour.requests for hour in self.hours)

    @property
    def denied(self) -> int:
        return sum(hour.denied for hour in self.hours)

    @property
    def observed(self) -> int:
        return sum(hour.observed for hour in self.hours)

    @property
    def logins(self) -> int:
        return sum(hour.logins for hour in self.hours)

    @property
    def failed_logins(self) -> int:
        return sum(hour.failed_logins for hour in self.hours)


def window_start(now: float, hours: int = HOURS) -> float:
    """The start of the first of ``hours`` whole UTC hours, the last being ``now``'s."""
    return (now // 3600 - (hours - 1)) * 3600


async def activity_summary(ctx: AdminContext, now: float) -> ActivitySummary:
    """The figures of the ``HOURS`` hours up to and including ``now``'s hour."""
    start = window_start(now)
    end = start + HOURS * 3600
    tenants = readable_tenants(ctx.actor)
    counts = await audit_log.hourly_counts(
        ctx.engine,
        kinds=(REQUEST_KIND, LOGIN_KIND, FAILED_LOGIN_KIND),
        start=start,
        hours=HOURS,
        tenants=tenants,
    )
    requests = AuditFilter(since=start, until=end, kind=REQUEST_KIND, tenants=tenants)
    denied = AuditFilter(
        since=start, until=end, kind=REQUEST_KIND, decision="deny", tenants=tenants
    )
    observed = replace(denied, decision=OBSERVED)
    return ActivitySummary(
        start=start,
        end=end,
        hours=_per_hour(counts, start),
        denied_routes=await audit_log.top_values(ctx.engine, "route", denied, limit=TOP),
        observed_routes=await audit_log.top_values(ctx.engine, "route", observed, limit=TOP),
        callers=await audit_log.top_values(ctx.engine, "actor", requests, limit=TOP),
        tenants=tenants,
    )


_COLUMNS = {"deny": 1, OBSERVED: 4}
"""Where a request row's decision is tallied; any other decision is an allowed request."""


def _per_hour(counts: list[HourlyCount], start: float) -> list[HourFigures]:
    tally = [[0, 0, 0, 0, 0] for _ in range(HOURS)]
    for count in counts:
        if count.kind == REQUEST_KIND:
            column = _COLUMNS.get(count.decision, 0)
        else:
            column = 2 if count.kind == LOGIN_KIND else 3
        tally[count.hour][column] += count.count
    return [
        HourFigures(start + n * 3600, allowed, denied, logins, failed, observed)
        for n, (allowed, denied, logins, failed, observed) in enumerate(tally)
    ]
