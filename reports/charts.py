"""Inline SVG charts for self-contained reports: no JavaScript, no network, prints as drawn.

Hand-written rather than matplotlib/plotly: those either need a rendering backend and embed
base64 images that cannot be searched or read by a screen reader, or pull a JS bundle into the
page. A time-series chart here is a few hundred lines of SVG built from data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 960, 240
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 30, 36


@dataclass
class Band:
    """A shaded x-range (a fault window)."""

    x0: float
    x1: float
    label: str
    color: str = "#f8d7da"


@dataclass
class Marker:
    """A vertical line at x (detected, recovered)."""

    x: float
    label: str
    color: str = "#444"


@dataclass
class Series:
    points: list[tuple[float, float]]
    label: str
    color: str
    kind: str = "line"  # line | dots | bars
    radius: float = 2.2  # dots
    ring: bool = False   # dots: hollow (e.g. a run that missed its target)


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    y_min: float | None = 0.0
    y_max: float | None = None
    x_range: tuple[float, float] | None = None  # share one x-axis across a report's charts


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def render(chart: Chart) -> str:
    """The chart as one <svg> element (role=img, with a title for accessibility)."""
    xs = [p[0] for s in chart.series for p in s.points] + [b.x0 for b in chart.bands] + [b.x1 for b in chart.bands]
    ys = [p[1] for s in chart.series for p in s.points]
    x_lo, x_hi = chart.x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    y_lo = chart.y_min if chart.y_min is not None else (min(ys) if ys else 0.0)
    y_hi = chart.y_max if chart.y_max is not None else (max(ys) * 1.1 if ys else 1.0)
    if y_hi <= y_lo:
        y_hi = y_lo + 1

    def tx(x: float) -> float:
        return PAD_L + (x - x_lo) / (x_hi - x_lo) * (WIDTH - PAD_L - PAD_R)

    def ty(y: float) -> float:
        y = min(max(y, y_lo), y_hi)
        return HEIGHT - PAD_B - (y - y_lo) / (y_hi - y_lo) * (HEIGHT - PAD_T - PAD_B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'class="chart" aria-label="{escape(chart.title)}"><title>{escape(chart.title)}</title>']
    for b in chart.bands:
        out.append(f'<rect x="{tx(b.x0):.1f}" y="{PAD_T}" width="{max(1.0, tx(b.x1) - tx(b.x0)):.1f}" '
                   f'height="{HEIGHT - PAD_T - PAD_B}" fill="{b.color}"><title>{escape(b.label)}</title></rect>')
        out.append(f'<text x="{tx(b.x0) + 4:.1f}" y="{PAD_T + 12}" class="band">{escape(b.label)}</text>')
    for t in _nice_ticks(y_lo, y_hi):
        out.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{ty(t):.1f}" y2="{ty(t):.1f}" class="grid"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{ty(t) + 4:.1f}" text-anchor="end" class="tick">{_fmt(t)}</text>')
    for t in _nice_ticks(x_lo, x_hi, 10):
        out.append(f'<text x="{tx(t):.1f}" y="{HEIGHT - PAD_B + 16}" text-anchor="middle" class="tick">{_fmt(t)}</text>')
    out.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{HEIGHT - PAD_B}" y2="{HEIGHT - PAD_B}" class="axis"/>')
    out.append(f'<text x="{(WIDTH + PAD_L) / 2}" y="{HEIGHT - 4}" text-anchor="middle" class="label">'
               f'{escape(chart.x_label)}</text>')
    out.append(f'<text x="14" y="{HEIGHT / 2}" transform="rotate(-90 14 {HEIGHT / 2})" text-anchor="middle" '
               f'class="label">{escape(chart.y_label)}</text>')
    bar_w = 0.0
    for s in chart.series:
        if s.kind == "bars" and len(s.points) > 1:
            gaps = [b[0] - a[0] for a, b in zip(s.points, s.points[1:], strict=False) if b[0] > a[0]]
            bar_w = max(1.0, (tx(min(gaps)) - tx(0) if gaps else 4) * 0.8) if gaps else 4
        if s.kind == "line" and s.points:
            path = " ".join(f"{'M' if i == 0 else 'L'}{tx(x):.1f},{ty(y):.1f}" for i, (x, y) in enumerate(s.points))
            out.append(f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="1.5"/>')
        elif s.kind == "dots":
            paint = f'fill="#fff" stroke="{s.color}" stroke-width="2"' if s.ring else f'fill="{s.color}"'
            out.extend(f'<circle cx="{tx(x):.1f}" cy="{ty(y):.1f}" r="{s.radius}" {paint}/>' for x, y in s.points)
        elif s.kind == "bars":
            out.extend(f'<rect x="{tx(x) - bar_w / 2:.1f}" y="{ty(y):.1f}" width="{bar_w:.1f}" '
                       f'height="{max(0.0, ty(y_lo) - ty(y)):.1f}" fill="{s.color}"/>' for x, y in s.points)
    for i, m in enumerate(sorted(chart.markers, key=lambda m: m.x)):
        out.append(f'<line x1="{tx(m.x):.1f}" x2="{tx(m.x):.1f}" y1="{PAD_T}" y2="{HEIGHT - PAD_B}" '
                   f'stroke="{m.color}" stroke-dasharray="4 3"><title>{escape(m.label)}</title></line>')
        y = PAD_T + 26 + 13 * (i % 4)  # stagger: markers close together must stay readable
        out.append(f'<text x="{tx(m.x) + 3:.1f}" y="{y}" class="marker" fill="{m.color}">{escape(m.label)}</text>')
    legend_x = PAD_L
    for s in chart.series:  # the legend sits above the plot, where it hides no data
        out.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{s.color}"/>'
                   f'<text x="{legend_x + 14}" y="17" class="legend">{escape(s.label)}</text>')
        legend_x += 24 + 7 * len(s.label)
    # the title is visible too (top right, beside the legend): charts of several probes must say which is which
    out.append(f'<text x="{WIDTH - PAD_R}" y="17" text-anchor="end" class="title">{escape(chart.title)}</text>')
    out.append("</svg>")
    return "".join(out)
