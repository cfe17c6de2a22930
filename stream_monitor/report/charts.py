"""Inline SVG charts: no JavaScript, no fonts or stylesheets to fetch, so a report opens anywhere, offline.

Each function returns one ``<svg>`` element as a string, with ``<title>`` children
for hover text. Every text that comes from data (feature names, categories) is
escaped. The charts carry a ``class`` and ``data-*`` attributes that the browser
test counts.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from stream_monitor.report.model import Histogram

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
           "#475569", "#b45309")
SEVERITY_COLOURS = {"info": "#64748b", "warning": "#d97706", "critical": "#dc2626"}
REFERENCE_COLOUR = "#94a3b8"
CURRENT_COLOUR = "#2563eb"


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2, 2.5 or 5 times a power of ten."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * 10**exp:
            return step * 10**exp
    return 10.0 ** (exp + 1)


def nice_axis(value: float, intervals: int = 5) -> tuple[float, float]:
    """(axis maximum, tick step): a round step (1, 2, 2.5, 5 x 10^k) with at most `intervals` steps to the top."""
    step = _nice_max(value / intervals)
    return step * max(1, math.ceil(value / step - 1e-9)), step


def _text(x: float, y: float, body: str, *, anchor: str = "start", size: int = 11, fill: str = "#334155",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
            f"{escape(body)}</text>")


def histogram_chart(h: Histogram, *, width: int = 420, height: int = 250) -> str:
    """Grouped bars per bin: the reference's share (grey) beside the window's share (blue)."""
    left, right, top = 44, 10, 34
    rotate = len(h.labels) > 6
    bottom = 64 if rotate else 34
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max, step = nice_axis(max([*h.reference, *h.current, 0.01]))
    n = max(1, len(h.labels))
    slot = plot_w / n
    bar = max(1.0, slot * 0.38)
    psi = f"PSI {h.psi:.3f}" if h.psi is not None else "PSI n/a"
    parts = [f'<svg class="chart hist" data-feature="{escape(h.feature)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f"<title>{escape(h.feature)}: reference vs current window ({psi})</title>",
             _text(left, 16, h.feature, size=13, fill="#0f172a", extra=' font-weight="600"'),
             _text(width - right, 16, f"{psi} · n={h.n_current} vs {h.n_reference} · {h.binning}",
                   anchor="end", size=11)]
    for i in range(round(y_max / step) + 1):
        v = step * i
        y = top + plot_h - plot_h * v / y_max
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(_text(left - 4, y + 4, f"{v:.0%}" if step >= 0.01 else f"{v:.1%}", anchor="end", size=10))
    for i, label in enumerate(h.labels):
        x0 = left + i * slot + slot / 2
        for value, colour, dx, who in ((h.reference[i], REFERENCE_COLOUR, -bar, "reference"),
                                       (h.current[i], CURRENT_COLOUR, 0.0, "current")):
            bh = plot_h * value / y_max
            parts.append(f'<rect x="{x0 + dx:.1f}" y="{top + plot_h - bh:.1f}" width="{bar:.1f}" '
                         f'height="{max(bh, 0.0):.1f}" fill="{colour}"><title>{escape(label)}: {who} '
                         f"{value:.2%}</title></rect>")
        short = label if len(label) <= 16 else label[:15] + "…"
        if rotate:
            ly = top + plot_h + 10
            parts.append(_text(x0, ly, short, anchor="end", size=9,
                               extra=f' transform="rotate(-40 {x0:.1f} {ly:.1f})"'))
        else:
            parts.append(_text(x0, top + plot_h + 14, short, anchor="middle", size=10))
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#64748b"/>')
    lx = width - right - 150
    parts.append(f'<rect x="{lx}" y="22" width="10" height="8" fill="{REFERENCE_COLOUR}"/>')
    parts.append(_text(lx + 14, 30, "reference", size=10))
    parts.append(f'<rect x="{lx + 75}" y="22" width="10" height="8" fill="{CURRENT_COLOUR}"/>')
    parts.append(_text(lx + 89, 30, "current", size=10))
    parts.append("</svg>")
    return "".join(parts)


def _time_label(t: datetime, span_seconds: float) -> str:
    return t.strftime("%m-%d %H:%M" if span_seconds > 86_400 else "%H:%M:%S" if span_seconds < 600 else "%H:%M")


def line_chart(title: str, times: Sequence[datetime], series: Mapping[str, Sequence[float | None]], *,
               thresholds: Mapping[str, float] | None = None,
               bands: Sequence[tuple[datetime, datetime, str]] = (), width: int = 960, height: int = 300,
               statistic: str = "") -> str:
    """One line per feature over window end times, with threshold lines and shaded incident spans."""
    left, right, top, bottom = 52, 170, 30, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    limits = list((thresholds or {}).values())
    y_max, step = nice_axis(max([*values, *limits, 1e-9]) * 1.05)
    ts = [t.timestamp() for t in times]
    t0, t1 = (min(ts), max(ts)) if ts else (0.0, 1.0)
    if t1 <= t0:
        t0, t1 = t0 - 1.0, t1 + 1.0

    def px(t: float) -> float:
        return left + plot_w * (t - t0) / (t1 - t0)

    def py(v: float) -> float:
        return top + plot_h - plot_h * min(v, y_max) / y_max

    parts = [f'<svg class="chart timeline" data-statistic="{escape(statistic)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f"<title>{escape(title)}</title>",
             _text(left, 18, title, size=13, fill="#0f172a", extra=' font-weight="600"')]
    for i in range(round(y_max / step) + 1):
        v = step * i
        parts.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + plot_w}" y2="{py(v):.1f}" stroke="#e2e8f0"/>')
        parts.append(_text(left - 5, py(v) + 4, _fmt(v), anchor="end", size=10))
    ticks = [t0 + (t1 - t0) * i / 5 for i in range(6)] if len(ts) > 1 else ts[:1]
    tz = times[0].tzinfo if times else None
    for t in ticks:
        parts.append(_text(px(t), top + plot_h + 16, _time_label(datetime.fromtimestamp(t, tz), t1 - t0),
                           anchor="middle", size=10))
    for since, until, severity in bands:
        x0, x1 = px(max(since.timestamp(), t0)), px(min(until.timestamp(), t1))
        colour = SEVERITY_COLOURS.get(severity, "#64748b")
        parts.append(f'<rect class="incident" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 3.0):.1f}" '
                     f'height="{plot_h}" fill="{colour}" fill-opacity="0.10"><title>incident ({escape(severity)}) '
                     f"{since.isoformat()} – {until.isoformat()}</title></rect>")
    for severity, limit in sorted((thresholds or {}).items(), key=lambda x: x[1]):
        colour = SEVERITY_COLOURS.get(severity, "#64748b")
        parts.append(f'<line x1="{left}" y1="{py(limit):.1f}" x2="{left + plot_w}" y2="{py(limit):.1f}" '
                     f'stroke="{colour}" stroke-dasharray="6 4"/>')
        parts.append(_text(left + plot_w - 4, py(limit) - 4, f"{severity} {_fmt(limit)}", anchor="end", size=10,
                           fill=colour))
    for k, (name, vs) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = [(px(t), py(v), v, times[i]) for i, (t, v) in enumerate(zip(ts, vs, strict=True))
                  if v is not None and math.isfinite(v)]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(f'<polyline class="series" data-feature="{escape(name)}" points="{path}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.8"/>')
        for x, y, v, when in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{colour}"><title>{escape(name)} '
                         f"{_fmt(v)} (window ending {when.isoformat()})</title></circle>")
        ly = top + 6 + k * 16
        parts.append(f'<rect x="{left + plot_w + 14}" y="{ly}" width="12" height="3" fill="{colour}"/>')
        parts.append(_text(left + plot_w + 30, ly + 5, name if len(name) <= 20 else name[:19] + "…", size=11))
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#64748b"/>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: Sequence[float | None], *, width: int = 140, height: int = 28,
              limit: float | None = None) -> str:
    """A tiny trend line (status page): the last windows' values, with the limit as a dashed line."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    y_max = _nice_max(max([*finite, limit or 0.0, 1e-9]))
    n = len(values)
    pts = [(2 + (width - 4) * (i / (n - 1) if n > 1 else 0.5), height - 2 - (height - 4) * min(v, y_max) / y_max)
           for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    parts = [f'<svg class="chart spark" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    if limit is not None:
        y = height - 2 - (height - 4) * min(limit, y_max) / y_max
        parts.append(f'<line x1="0" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#dc2626" stroke-dasharray="3 2"/>')
    if len(pts) > 1:
        parts.append('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                     + f'" fill="none" stroke="{CURRENT_COLOUR}" stroke-width="1.5"/>')
    for x, y in pts[-1:]:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{CURRENT_COLOUR}"/>')
    parts.append("</svg>")
    return "".join(parts)
