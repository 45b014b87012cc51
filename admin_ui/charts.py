"""Bar charts as geometry for server-rendered SVG (no script, no inline style).

A chart is a labelled group (``role="group"``, ``aria-label`` and ``<title>``) rather
than ``role="img"``: an image's content is presentational, and each bar is a link to
the audit rows it counts (named by its tooltip, out of the tab order). The same figures
and links are on the page as a table, which is the way for keyboards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

T = TypeVar("T")

WIDTH = 720
PLOT_TOP = 24
PLOT_HEIGHT = 120
AXIS_HEIGHT = 26
GAP = 4
TICK_EVERY = 3
"""Label every third hour on the axis."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle of the chart, the rows it counts and a tooltip."""

    x: float
    y: float
    width: float
    height: float
    css: str
    href: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What ``chart.html`` draws: bars, axis labels and the largest value."""

    label: str
    bars: list[Bar]
    ticks: list[Tick]
    top: int
    """The value the full height of the plot stands for."""
    width: int = WIDTH
    height: int = PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT
    baseline: int = PLOT_TOP + PLOT_HEIGHT


@dataclass(frozen=True, slots=True)
class Series(Generic[T]):
    """One stacked part of each bar: its class, name, value and link per point."""

    css: str
    name: str
    value: Callable[[T], int]
    href: Callable[[T], str]


def hourly_chart(
    label: str,
    points: Sequence[T],
    series: Sequence[Series[T]],
    *,
    start_of: Callable[[T], float],
) -> Chart:
    """Vertical bars, one per point (an hour), each stacking ``series`` bottom up."""
    top = max([sum(s.value(p) for s in series) for p in points] + [1])
    slot = WIDTH / max(len(points), 1)
    bars: list[Bar] = []
    ticks: list[Tick] = []
    for n, point in enumerate(points):
        x = n * slot + GAP / 2
        hour = _hour(start_of(point))
        if n % TICK_EVERY == 0:
            ticks.append(Tick(x, hour))
        base = float(PLOT_TOP + PLOT_HEIGHT)
        for part in series:
            value = part.value(point)
            if value <= 0:
                continue
            height = value / top * PLOT_HEIGHT
            base -= height
            title = f"{hour} UTC: {value} {part.name}"
            bars.append(Bar(x, base, slot - GAP, height, part.css, part.href(point), title))
    return Chart(label, bars, ticks, top)


def share(value: int, largest: int) -> float:
    """``value`` as a percentage of ``largest`` (the length of a horizontal bar)."""
    return 0.0 if largest <= 0 else round(100 * value / largest, 1)


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:00")
