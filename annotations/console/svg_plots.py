"""Inline SVG drawings for the console's follow-up pages: a patient's timeline, spider, waterfall and trajectories.

Pure: plain values in, an SVG string out (every text escaped), so a page embeds them without another request
and tests read them as XML. Sizes in px; no JavaScript, no external styles beyond currentColor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 640, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 24, 20, 44
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
RESPONSE_COLOURS = {"CR": "#1a9850", "PR": "#66bd63", "SD": "#999999", "PD": "#d73027", "NE": "#cccccc"}


@dataclass(frozen=True)
class TimelinePoint:
    date: dt.date | None
    label: str
    detail: str = ""


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "middle",
    size: int = 11,
    extra: str = "",
    fill: str = "currentColor",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{extra}>'
        f"{escape(text)}</text>"
    )


def _svg(body: list[str], *, title: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title, {chr(34): "&quot;"})}"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def timeline_svg(points: Sequence[TimelinePoint], *, title: str = "Studies over time") -> str:
    """Return a horizontal time axis with one dot per study, placed by date (undated studies at the end)."""
    dated = [p.date for p in points if p.date is not None]
    left, right, axis_y = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, 70
    first, last = (min(dated), max(dated)) if dated else (None, None)
    span = max(((last - first).days if dated else 0), 1)
    body = [f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="currentColor" stroke-width="1"/>']
    undated = 0
    for index, point in enumerate(points):
        if point.date is not None and first is not None:
            x = left + (right - left) * ((point.date - first).days / span if len(dated) > 1 else 0.5)
        else:
            undated += 1
            x = right - 12 * undated
        colour = PALETTE[index % len(PALETTE)]
        body.append(
            f'<circle cx="{x:.1f}" cy="{axis_y}" r="6" fill="{colour}"><title>{escape(point.detail)}</title></circle>'
        )
        body.append(_text(x, axis_y - 14 - 14 * (index % 2), point.label))
        body.append(
            _text(x, axis_y + 24 + 14 * (index % 2), point.date.isoformat() if point.date else "no date", size=10)
        )
    return _svg(body, title=title, height=130)


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def _y_axis(low: float, high: float, *, label: str, ticks: Sequence[float]) -> list[str]:
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    body = [f'<line x1="{MARGIN_LEFT}" y1="{top}" x2="{MARGIN_LEFT}" y2="{bottom}" stroke="currentColor"/>']
    for tick in ticks:
        y = _scale(tick, low, high, bottom, top)
        body.append(
            f'<line x1="{MARGIN_LEFT - 4}" y1="{y:.1f}" x2="{MARGIN_LEFT}" y2="{y:.1f}" stroke="currentColor"/>'
        )
        body.append(_text(MARGIN_LEFT - 6, y + 4, f"{tick:g}", anchor="end", size=10))
    body.append(_text(14, (top + bottom) / 2, label, extra=f' transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
    return body


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = max((high - low) / count, 1e-9)
    for nice in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500):
        if nice >= step:
            step = nice
            break
    start = step * (low // step)
    ticks, value = [], start
    while value <= high + 1e-9:
        if value >= low - 1e-9:
            ticks.append(round(value, 6))
        value += step
    return ticks


def spider_svg(series: dict[str, Sequence[tuple[int, float | None]]], *, title: str = "Change from baseline") -> str:
    """Return a spider plot: % change of the sum from baseline per time point, one line per patient.

    `series` maps a patient label to (time point index, change %) pairs; the baseline (0, 0 %) is added.
    """
    values = [v for points in series.values() for _, v in points if v is not None] + [0.0, 20.0, -30.0]
    low, high = min(values) - 5, max(values) + 5
    n_points = max([i for points in series.values() for i, _ in points] + [1])
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT - 90, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    body = _y_axis(low, high, label="% change from baseline", ticks=_nice_ticks(low, high))
    for reference, dash in ((20.0, "4 3"), (-30.0, "4 3"), (0.0, "")):
        y = _scale(reference, low, high, bottom, top)
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#888" stroke-dasharray="{dash}"/>'
        )
    for index in range(n_points + 1):
        x = _scale(index, 0, n_points, left + 10, right)
        body.append(_text(x, bottom + 16, "Baseline" if index == 0 else f"FU {index}", size=10))
    for number, (name, points) in enumerate(sorted(series.items())):
        colour = PALETTE[number % len(PALETTE)]
        coords = [(0, 0.0), *[(i, v) for i, v in sorted(points) if v is not None]]
        xy = [(_scale(i, 0, n_points, left + 10, right), _scale(v, low, high, bottom, top)) for i, v in coords]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
        for x, y in xy:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        body.append(_text(right + 6, xy[-1][1] + 4, name, anchor="start", size=10, fill=colour))
    return _svg(body, title=title)


def waterfall_svg(bars: Sequence[tuple[str, float, str]], *, title: str = "Best response") -> str:
    """Return a waterfall plot: one bar per patient, the best (lowest) % change from baseline, coloured by response.

    `bars` holds (patient label, best % change, response category); drawn from the largest increase down.
    """
    ordered = sorted(bars, key=lambda bar: -bar[1])
    values = [value for _, value, _ in ordered] + [0.0, 20.0, -30.0]
    low, high = min(values) - 5, max(values) + 5
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    body = _y_axis(low, high, label="best % change", ticks=_nice_ticks(low, high))
    zero = _scale(0.0, low, high, bottom, top)
    body.append(f'<line x1="{left}" y1="{zero:.1f}" x2="{right}" y2="{zero:.1f}" stroke="currentColor"/>')
    width = (right - left - 10) / max(len(ordered), 1)
    for number, (name, value, response) in enumerate(ordered):
        x = left + 10 + number * width
        y = _scale(value, low, high, bottom, top)
        colour = RESPONSE_COLOURS.get(response, "#999999")
        body.append(
            f'<rect x="{x:.1f}" y="{min(y, zero):.1f}" width="{width * 0.7:.1f}" height="{abs(zero - y):.1f}" '
            f'fill="{colour}"><title>{escape(f"{name}: {value:+.1f} % ({response})")}</title></rect>'
        )
        body.append(_text(x + width * 0.35, bottom + 14, name, size=9))
        body.append(_text(x + width * 0.35, (y - 4) if value >= 0 else (y + 12), response, size=9))
    return _svg(body, title=title)


def trajectories_svg(
    lines: dict[str, Sequence[tuple[int, float | None]]],
    *,
    highlight: str = "consensus",
    title: str = "Lesion size over time",
) -> str:
    """Return lesion size (mm) per time point, one line per reader and lesion; `highlight` lines drawn thick."""
    values = [v for points in lines.values() for _, v in points if v is not None] or [0.0, 10.0]
    low, high = 0.0, max(values) * 1.1
    n_points = max([i for points in lines.values() for i, _ in points] + [1])
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT - 120, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    body = _y_axis(low, high, label="diameter (mm)", ticks=_nice_ticks(low, high))
    for index in range(n_points + 1):
        body.append(
            _text(
                _scale(index, 0, n_points, left + 10, right),
                bottom + 16,
                "Baseline" if index == 0 else f"FU {index}",
                size=10,
            )
        )
    for number, (name, points) in enumerate(sorted(lines.items())):
        thick = highlight in name
        colour = "#000000" if thick else PALETTE[number % len(PALETTE)]
        xy = [
            (_scale(i, 0, n_points, left + 10, right), _scale(v, low, high, bottom, top))
            for i, v in sorted(points)
            if v is not None
        ]
        if not xy:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{3 if thick else 1.2}" '
            f'opacity="{1 if thick else 0.7}"><title>{escape(name)}</title></polyline>'
        )
        body.append(_text(right + 6, xy[-1][1] + 4, name, anchor="start", size=9, fill=colour))
    return _svg(body, title=title)
