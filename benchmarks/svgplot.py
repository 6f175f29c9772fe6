"""A few line charts in one SVG file, with nothing but the standard library.

The benchmarks' plots are simple (lines and points over a shared x axis, a vertical marker),
so fakeai draws them itself rather than carrying a plotting library. ``Chart`` collects the
series of one panel; ``write_svg`` lays the panels side by side with axes, ticks and a legend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ("Chart", "write_svg")

WIDTH, HEIGHT = 420, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 34, 96
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


@dataclass
class _Series:
    label: str
    xs: list[float]
    ys: list[float]
    color: str
    points_only: bool


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[_Series] = field(default_factory=list)
    markers: list[tuple[float, str]] = field(default_factory=list)

    def line(self, label: str, xs: list[float], ys: list[float], color: str) -> None:
        self.series.append(_Series(label, list(xs), list(ys), color, False))

    def points(self, label: str, xs: list[float], ys: list[float], color: str) -> None:
        self.series.append(_Series(label, list(xs), list(ys), color, True))

    def marker(self, x: float, label: str) -> None:
        self.markers.append((x, label))


def _nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * index for index in range(int(math.ceil(high / step)) + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 10_000 else f"{value / 1000:g}k"


def _panel(chart: Chart, x0: float) -> list[str]:
    finite = [y for s in chart.series for y in s.ys if math.isfinite(y)]
    all_x = [x for s in chart.series for x in s.xs] + [x for x, _ in chart.markers]
    x_ticks = _nice_ticks(max(all_x or [1.0]))
    y_ticks = _nice_ticks(max(finite or [1.0]) * 1.05)
    x_high, y_high = x_ticks[-1], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return x0 + LEFT + plot_w * x / x_high

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y / y_high)

    out = [f'<text x="{x0 + WIDTH / 2:.1f}" y="18" text-anchor="middle" font-size="13" font-weight="bold" {FONT}>'
           f'{escape(chart.title)}</text>']
    for tick in y_ticks:
        out.append(f'<line x1="{px(0):.1f}" y1="{py(tick):.1f}" x2="{px(x_high):.1f}" y2="{py(tick):.1f}" '
                   f'stroke="#e5e7eb"/>')
        out.append(f'<text x="{px(0) - 6:.1f}" y="{py(tick) + 4:.1f}" text-anchor="end" font-size="10" {FONT}>'
                   f'{_label(tick)}</text>')
    for tick in x_ticks:
        out.append(f'<text x="{px(tick):.1f}" y="{py(0) + 14:.1f}" text-anchor="middle" font-size="10" {FONT}>'
                   f'{_label(tick)}</text>')
    out.append(f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(x_high):.1f}" y2="{py(0):.1f}" stroke="#111"/>')
    out.append(f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(0):.1f}" y2="{py(y_high):.1f}" stroke="#111"/>')
    out.append(f'<text x="{px(x_high / 2):.1f}" y="{py(0) + 30:.1f}" text-anchor="middle" font-size="11" {FONT}>'
               f'{escape(chart.x_label)}</text>')
    out.append(f'<text transform="translate({x0 + 14:.1f},{TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'font-size="11" {FONT}>{escape(chart.y_label)}</text>')
    for x, label in chart.markers:
        out.append(f'<line x1="{px(x):.1f}" y1="{py(0):.1f}" x2="{px(x):.1f}" y2="{py(y_high):.1f}" stroke="#6b7280" '
                   f'stroke-dasharray="4 3"/>')
        if label:
            out.append(f'<text x="{px(x) + 4:.1f}" y="{py(y_high) + 12:.1f}" font-size="10" fill="#6b7280" {FONT}>'
                       f'{escape(label)}</text>')
    legend_y = py(0) + 48
    for index, series in enumerate(chart.series):
        pairs = [(px(x), py(y)) for x, y in zip(series.xs, series.ys) if math.isfinite(y)]
        if series.points_only:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="none" stroke="{series.color}" stroke-width="1.5"/>'
                    for x, y in pairs]
        elif pairs:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs)
            out.append(f'<polyline points="{path}" fill="none" stroke="{series.color}" stroke-width="2"/>')
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{series.color}"/>' for x, y in pairs]
        y = legend_y + 14 * index
        swatch = (f'<circle cx="{x0 + LEFT + 6:.1f}" cy="{y - 4:.1f}" r="3.5" fill="none" stroke="{series.color}"/>'
                  if series.points_only else
                  f'<line x1="{x0 + LEFT:.1f}" y1="{y - 4:.1f}" x2="{x0 + LEFT + 12:.1f}" y2="{y - 4:.1f}" '
                  f'stroke="{series.color}" stroke-width="2"/>')
        out.append(swatch)
        out.append(f'<text x="{x0 + LEFT + 18:.1f}" y="{y:.1f}" font-size="10" {FONT}>{escape(series.label)}</text>')
    return out


def write_svg(path: Path, charts: list[Chart], title: str = "") -> None:
    """The charts side by side, under ``title``, as one SVG file."""
    header = 24 if title else 0
    width, height = WIDTH * len(charts), HEIGHT + header
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        body.append(f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" font-size="14" {FONT}>{escape(title)}</text>')
    body.append(f'<g transform="translate(0,{header})">')
    for index, chart in enumerate(charts):
        body += _panel(chart, index * WIDTH)
    body.append("</g></svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body) + "\n")
