"""The overview's chart: created, updated and failed per run, as inline SVG.

Drawn on the server from the run history, so the page needs no script and
no chart library. Every run is one group of three bars with a label that a
screen reader reads ("run of 2024-05-01T10:00:00: 3 created, ..."); the
chart as a whole has a title and a description, and a legend names the
colours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 240
# Room for the axis labels on the left and the legend and run labels below.
LEFT = 40
TOP = 12
PLOT_HEIGHT = 160
BAR_GAP = 2
SERIES = (
    ("created", "Created", "#2e7d32"),
    ("updated", "Updated", "#1f5fbf"),
    ("failed", "Failed", "#c62828"),
)


def _count(run: Mapping[str, Any], name: str) -> int:
    value = run.get(name)
    return value if isinstance(value, int) and value > 0 else 0


def run_label(run: Mapping[str, Any]) -> str:
    """What one run's bars say, in words."""
    counts = ", ".join(f"{_count(run, name)} {name}" for name, _, _ in SERIES)
    return f"run of {run.get('started_at') or 'an unknown time'}: {counts}"


def _bars(run: Mapping[str, Any], x: float, slot: float, top: int) -> list[str]:
    width = max(1.0, (slot - 4 * BAR_GAP) / len(SERIES))
    bars = []
    for offset, (name, label, colour) in enumerate(SERIES):
        height = PLOT_HEIGHT * _count(run, name) / top
        left = x + BAR_GAP + offset * (width + BAR_GAP)
        bars.append(
            f'<rect class="bar bar-{name}" x="{left:.1f}" '
            f'y="{TOP + PLOT_HEIGHT - height:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}" fill="{colour}">'
            f"<title>{label}: {_count(run, name)}</title></rect>"
        )
    return bars


def _run_group(run: Mapping[str, Any], index: int, slot: float, top: int) -> str:
    x = LEFT + index * slot
    label = escape(run_label(run))
    inner = "".join(_bars(run, x, slot, top))
    return (
        f'<g class="run" data-test="chart-run" role="listitem" '
        f'aria-label="{label}"><title>{label}</title>{inner}</g>'
    )


def _axis(top: int) -> str:
    bottom = TOP + PLOT_HEIGHT
    return (
        f'<g class="axis" aria-hidden="true">'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#5a6475"/>'
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH}" y2="{bottom}" '
        f'stroke="#5a6475"/>'
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{top}</text>'
        f'<text x="{LEFT - 6}" y="{bottom}" text-anchor="end">0</text></g>'
    )


def _legend() -> str:
    y = TOP + PLOT_HEIGHT + 40
    items = []
    for offset, (name, label, colour) in enumerate(SERIES):
        x = LEFT + offset * 120
        items.append(
            f'<g class="legend-item" data-test="legend-{name}">'
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 18}" y="{y}">{label}</text></g>'
        )
    return f'<g class="legend" id="chart-legend">{"".join(items)}</g>'


def _ends(runs: Sequence[Mapping[str, Any]]) -> str:
    y = TOP + PLOT_HEIGHT + 16
    first = escape(runs[0].get("started_at") or "")
    last = escape(runs[-1].get("started_at") or "")
    return (
        f'<g class="ends" aria-hidden="true">'
        f'<text x="{LEFT}" y="{y}">{first}</text>'
        f'<text x="{WIDTH}" y="{y}" text-anchor="end">{last}</text></g>'
    )


def run_chart(runs: Sequence[Mapping[str, Any]]) -> Markup:
    """An SVG of ``runs`` (oldest first), one group of bars per run."""
    description = "No run has been recorded yet."
    if runs:
        description = (
            f"Created, updated and failed tenants for the last {len(runs)} runs, "
            "oldest on the left."
        )
    top = max([1, *(_count(run, name) for run in runs for name, _, _ in SERIES)])
    slot = (WIDTH - LEFT) / max(1, len(runs))
    groups = "".join(_run_group(run, i, slot, top) for i, run in enumerate(runs))
    parts = [
        f'<svg id="runs-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'role="img" aria-labelledby="runs-chart-title runs-chart-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        '<title id="runs-chart-title">Results per run</title>',
        f'<desc id="runs-chart-desc">{escape(description)}</desc>',
        _axis(top),
        f'<g class="runs" role="list">{groups}</g>',
        _ends(runs) if runs else "",
        _legend(),
        "</svg>",
    ]
    return Markup("".join(parts))
