"""The dashboard: the last 24 hours at a glance, every figure a link to its audit rows.

The figures are the admin service's (``gateway.admin.activity``); this module only
turns them into charts and links. A tenant admin sees their tenants' figures only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from admin_ui.charts import Chart, Series, hourly_chart, share
from admin_ui.pages.audit import audit_href, iso_utc
from admin_ui.view import Page, View
from gateway.admin.activity import (
    FAILED_LOGIN_KIND,
    LOGIN_KIND,
    REQUEST_KIND,
    ActivitySummary,
    HourFigures,
    activity_summary,
)
from gateway.observe import OBSERVED


def hour_href(hour: HourFigures, **filters: str) -> str:
    """The audit rows of one hour (``filters`` narrow them further)."""
    return audit_href(since=iso_utc(hour.start), until=iso_utc(hour.end), **filters)


def _allowed(hour: HourFigures) -> str:
    return hour_href(hour, kind=REQUEST_KIND, decision="allow")


def _observed(hour: HourFigures) -> str:
    return hour_href(hour, kind=REQUEST_KIND, decision=OBSERVED)


def _denied(hour: HourFigures) -> str:
    return hour_href(hour, kind=REQUEST_KIND, decision="deny")


def _logins(hour: HourFigures) -> str:
    return hour_href(hour, kind=LOGIN_KIND)


def _failed_logins(hour: HourFigures) -> str:
    return hour_href(hour, kind=FAILED_LOGIN_KIND)


def charts(summary: ActivitySummary) -> dict[str, Chart]:
    """The three hourly charts: requests (allowed, observed and denied), denials, sign-ins."""
    allowed: Series[HourFigures] = Series("bar", "allowed", lambda h: h.allowed, _allowed)
    observed: Series[HourFigures] = Series(
        "bar observed",
        "forwarded in observe mode (the rules would refuse)",
        lambda h: h.observed,
        _observed,
    )
    denied: Series[HourFigures] = Series("bar deny", "denied", lambda h: h.denied, _denied)
    logins: Series[HourFigures] = Series("bar login", "sign-ins", lambda h: h.logins, _logins)
    failed: Series[HourFigures] = Series(
        "bar deny", "failed sign-ins", lambda h: h.failed_logins, _failed_logins
    )

    def start(hour: HourFigures) -> float:
        return hour.start

    return {
        "requests": hourly_chart(
            f"Requests per hour: {summary.requests} in 24 hours, {summary.denied} denied"
            + _observed_text(summary),
            summary.hours,
            [allowed, observed, denied],
            start_of=start,
        ),
        "denials": hourly_chart(
            f"Denied requests per hour: {summary.denied} in 24 hours",
            summary.hours,
            [denied],
            start_of=start,
        ),
        "logins": hourly_chart(
            f"Sign-ins per hour: {summary.logins} in 24 hours, {summary.failed_logins} failed",
            summary.hours,
            [logins, failed],
            start_of=start,
        ),
    }


def _observed_text(summary: ActivitySummary) -> str:
    """``, 3 forwarded in observe mode that the rules would refuse`` (nothing if none)."""
    if not summary.observed:
        return ""
    return f", {summary.observed} forwarded in observe mode that the rules would refuse"


def _window(summary: ActivitySummary) -> dict[str, str]:
    return {"since": iso_utc(summary.start), "until": iso_utc(summary.end)}


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %H:00")


async def dashboard(view: View) -> web.StreamResponse:
    summary = await activity_summary(view.ctx, view.ctx.clock())
    window = _window(summary)
    return view.page(
        "dashboard.html",
        title="Dashboard",
        summary=summary,
        charts=charts(summary),
        window_text=f"{_clock(summary.start)} to {_clock(summary.end)} UTC",
        totals={
            "requests": audit_href(kind=REQUEST_KIND, **window),
            "denied": audit_href(kind=REQUEST_KIND, decision="deny", **window),
            "observed": audit_href(kind=REQUEST_KIND, decision=OBSERVED, **window),
            "logins": audit_href(kind=LOGIN_KIND, **window),
            "failed": audit_href(kind=FAILED_LOGIN_KIND, **window),
        },
        route_href=lambda route: audit_href(
            route=route, kind=REQUEST_KIND, decision="deny", **window
        ),
        observed_route_href=lambda route: audit_href(
            route=route, kind=REQUEST_KIND, decision=OBSERVED, **window
        ),
        caller_href=lambda actor: audit_href(user=actor, kind=REQUEST_KIND, **window),
        hour_links={
            "allowed": _allowed,
            "observed": _observed,
            "denied": _denied,
            "logins": _logins,
        },
        failed_href=_failed_logins,
        share=share,
        hour_text=lambda ts: datetime.fromtimestamp(ts, UTC).strftime("%H:00"),
    )


PAGES = (Page("GET", "/", dashboard),)
