"""Inline SVG charts for the HTML report: pure functions from plain numbers to an ``<svg>`` string.

No JavaScript, no external resources, no libraries. Every text is escaped with :func:`html.escape`; every
coordinate is printed with two decimals, so the same input gives the same bytes. Each chart carries a
``<title>`` element (for screen readers and tooltips) and a visible heading drawn as SVG text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#86bcb6", "#d37295", "#a0cbe8", "#ffbe7d")
"""Category colours (Tableau 10 plus four lighter tones), assigned in order of first appearance."""
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


@dataclass(frozen=True)
class Series:
    """One line/point series of :func:`line_chart`."""

    name: str
    points: tuple[tuple[float, float], ...]
    labels: tuple[str, ...] = ()
    """Tooltip per point (same length as ``points``), or empty."""
    line: bool = True
    """Join the points (in the given order) with a line."""
    markers: bool = True
    """Draw a dot at each point."""


@dataclass(frozen=True)
class Marked:
    """A highlighted point of :func:`line_chart` (e.g. the chosen plan)."""

    x: float
    y: float
    label: str


@dataclass(frozen=True)
class BarRow:
    """One bar of :func:`stacked_bar_chart`: a label and named, non-negative segments stacked in order."""

    label: str
    segments: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class GanttBar:
    """One op of :func:`gantt_chart`: its row, start and end (seconds), colour category and tooltip."""

    row: str
    start_s: float
    end_s: float
    category: str
    label: str


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(v: float) -> str:
    """A coordinate: fixed two decimals, no negative zero."""
    s = f"{v:.2f}"
    return "0.00" if s == "-0.00" else s


def fmt_tick(v: float) -> str:
    """Tick label: thousands separators for large values, three significant digits for small ones."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]; the first <= lo, the last >= hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"axis range must be finite, got [{lo}, {hi}]")
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    k = 0
    while True:
        t = round(start + k * step, 12)
        ticks.append(t)
        if t >= hi - 1e-9 * step:
            return ticks
        k += 1


def colours(categories: Sequence[str]) -> dict[str, str]:
    """Colour of each distinct category, by first appearance (wrapping round the palette)."""
    out: dict[str, str] = {}
    for c in categories:
        if c not in out:
            out[c] = PALETTE[len(out) % len(PALETTE)]
    return out


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg class="chart" role="img" width="{_n(width)}" '
            f'height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" style="{FONT}">'
            f"<title>{esc(title)}</title>"
            f'<text class="chart-title" x="{_n(width / 2)}" y="18.00" text-anchor="middle" font-size="14" '
            f'font-weight="600">{esc(title)}</text>' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, extra: str = "") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{size}"{extra}>'
            f"{esc(text)}</text>")


def _swatch(shape: str, cx: float, cy: float, colour: str) -> str:
    """A legend key drawn like the mark it names: ``box`` (bars, cells), ``dot`` (points), ``dotline`` (points
    joined by a line), ``line`` (a line alone) or ``ring`` (the highlighted point)."""
    mx, my = cx + 6, cy - 3
    line = f'<line x1="{_n(cx - 2)}" x2="{_n(cx + 14)}" y1="{_n(my)}" y2="{_n(my)}" stroke="{colour}" stroke-width="1.5"/>'
    dot = f'<circle cx="{_n(mx)}" cy="{_n(my)}" r="4.00" fill="{colour}"/>'
    if shape == "dot":
        return dot
    if shape == "dotline":
        return line + dot
    if shape == "line":
        return line
    if shape == "ring":
        return f'<circle cx="{_n(mx)}" cy="{_n(my)}" r="5.50" fill="none" stroke="{colour}" stroke-width="2.50"/>'
    return f'<rect x="{_n(cx)}" y="{_n(cy - 9)}" width="12.00" height="12.00" fill="{colour}"/>'


def _legend(items: Sequence[tuple[str, str] | tuple[str, str, str]], x: float, y: float,
            width: float) -> tuple[list[str], float]:
    """Keys and names flowing left to right, wrapping at ``width``; an item's optional third entry is its key's
    shape (:func:`_swatch`, default ``box``). Returns the parts and the height used."""
    parts: list[str] = []
    cx, cy = x, y
    for item in items:
        name, colour = item[0], item[1]
        w = 18 + 6.5 * len(name) + 14
        if cx + w > x + width and cx > x:
            cx, cy = x, cy + 18
        parts.append(_swatch(item[2] if len(item) > 2 else "box", cx, cy, colour))
        parts.append(_text(cx + 16, cy + 1, name))
        cx += w
    return parts, (cy - y) + 18 if items else 0.0


def _value_axis(lo: float, hi: float) -> tuple[list[float], Callable[[float], float]]:
    ticks = nice_ticks(lo, hi)
    a, b = ticks[0], ticks[-1]
    return ticks, (lambda v: (v - a) / (b - a) if b > a else 0.0)


def _series_shape(s: Series) -> str:
    """The legend key of a series: what :func:`line_chart` draws for it."""
    joined = s.line and len(s.points) > 1
    return ("dotline" if joined else "dot") if s.markers else "line"


def line_chart(*, title: str, series: Sequence[Series], x_label: str, y_label: str, marked: Marked | None = None,
               width: float = 900, height: float = 400, y_min: float | None = None) -> str:
    """Scatter / line chart with axes, ticks, grid, axis labels, a legend and an optional marked point."""
    xs = [x for s in series for x, _ in s.points] + ([marked.x] if marked else [])
    ys = [y for s in series for _, y in s.points] + ([marked.y] if marked else [])
    if not xs:
        raise ValueError(f"line_chart {title!r}: no points to draw")
    xt, fx = _value_axis(min(xs), max(xs))
    yt, fy = _value_axis(min(ys) if y_min is None else min(y_min, min(ys)), max(ys))
    left, right, top = 70.0, 20.0, 34.0
    legend_items = [(s.name, c, _series_shape(s)) for s, c in zip(series, PALETTE, strict=False)]
    if marked:
        legend_items.append((marked.label, "#d62728", "ring"))
    pw, ph = width - left - right, height - top - 48.0
    legend, legend_h = _legend(legend_items, left, top + ph + 54, pw)
    height = top + ph + 54 + legend_h
    px = lambda v: left + fx(v) * pw  # noqa: E731
    py = lambda v: top + (1 - fy(v)) * ph  # noqa: E731
    body: list[str] = []
    for t in yt:
        body.append(f'<line x1="{_n(left)}" x2="{_n(left + pw)}" y1="{_n(py(t))}" y2="{_n(py(t))}" stroke="#e5e5e5"/>')
        body.append(_text(left - 6, py(t) + 4, fmt_tick(t), anchor="end"))
    for t in xt:
        body.append(f'<line x1="{_n(px(t))}" x2="{_n(px(t))}" y1="{_n(top)}" y2="{_n(top + ph)}" stroke="#f0f0f0"/>')
        body.append(_text(px(t), top + ph + 15, fmt_tick(t), anchor="middle"))
    body.append(f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(pw)}" height="{_n(ph)}" fill="none" stroke="#888"/>')
    body.append(_text(left + pw / 2, top + ph + 32, x_label, anchor="middle", size=12))
    body.append(_text(16, top + ph / 2, y_label, anchor="middle", size=12,
                      extra=f' transform="rotate(-90 16.00 {_n(top + ph / 2)})"'))
    for s, colour in zip(series, PALETTE, strict=False):
        if s.line and len(s.points) > 1:
            pts = " ".join(f"{_n(px(x))},{_n(py(y))}" for x, y in s.points)
            body.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        radius = 4.0 if len(s.points) <= 30 else 2.5
        for i, (x, y) in enumerate(s.points if s.markers else ()):
            tip = s.labels[i] if i < len(s.labels) else f"{s.name}: ({fmt_tick(x)}, {fmt_tick(y)})"
            body.append(f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="{_n(radius)}" fill="{colour}">'
                        f"<title>{esc(tip)}</title></circle>")
    if marked:
        mx, my = px(marked.x), py(marked.y)
        body.append(f'<circle class="marked" cx="{_n(mx)}" cy="{_n(my)}" r="8.00" fill="none" stroke="#d62728" '
                    f'stroke-width="2.5"><title>{esc(marked.label)}</title></circle>')
        right_half = mx > left + pw * 0.6
        body.append(_text(mx - 11 if right_half else mx + 11, my - 9, marked.label, anchor="end" if right_half
                          else "start", size=11, extra=' fill="#d62728" font-weight="600"'))
    return _svg(width, height, title, body + legend)


def stacked_bar_chart(*, title: str, rows: Sequence[BarRow], value_label: str, horizontal: bool = True,
                      scale: float = 1.0, reference: float | None = None, colour_of: dict[str, str] | None = None,
                      width: float = 960, bar_px: float = 26) -> str:
    """Stacked bars (horizontal or vertical) with a value axis, totals, a legend and an optional reference line.

    Segment values are divided by ``scale`` for display (e.g. 2**30 to draw bytes as GiB); negative segments
    draw as zero. ``colour_of`` fixes colours by segment name; others come from the palette."""
    if not rows:
        raise ValueError(f"stacked_bar_chart {title!r}: no rows to draw")
    names = [name for r in rows for name, _ in r.segments]
    col = colours(names) | (colour_of or {})
    totals = [sum(max(0.0, v) for _, v in r.segments) / scale for r in rows]
    vt, fv = _value_axis(0.0, max(totals + [reference or 0.0]) or 1.0)
    legend_items = [(n, col[n]) for n in dict.fromkeys(names)]
    label_w = 12 + 6.6 * max(len(r.label) for r in rows) if horizontal else 0.0
    top, right = 34.0, 56.0 if horizontal else 16.0
    left = max(60.0, label_w) if horizontal else 70.0
    pw = width - left - right
    if horizontal:
        ph = len(rows) * bar_px * 1.5
    else:
        ph = 260.0
        bar_px = min(60.0, pw / len(rows) / 1.6)
    bottom_axis = 46.0
    legend, legend_h = _legend(legend_items, left, top + ph + bottom_axis + 6, pw)
    height = top + ph + bottom_axis + legend_h + 8
    body: list[str] = []
    vpos = (lambda v: left + fv(v) * pw) if horizontal else (lambda v: top + (1 - fv(v)) * ph)
    for t in vt:
        p = vpos(t)
        if horizontal:
            body.append(f'<line x1="{_n(p)}" x2="{_n(p)}" y1="{_n(top)}" y2="{_n(top + ph)}" stroke="#e5e5e5"/>')
            body.append(_text(p, top + ph + 15, fmt_tick(t), anchor="middle"))
        else:
            body.append(f'<line x1="{_n(left)}" x2="{_n(left + pw)}" y1="{_n(p)}" y2="{_n(p)}" stroke="#e5e5e5"/>')
            body.append(_text(left - 6, p + 4, fmt_tick(t), anchor="end"))
    if horizontal:
        body.append(_text(left + pw / 2, top + ph + 32, value_label, anchor="middle", size=12))
    else:
        body.append(_text(16, top + ph / 2, value_label, anchor="middle", size=12,
                          extra=f' transform="rotate(-90 16.00 {_n(top + ph / 2)})"'))
    slot = (ph if horizontal else pw) / len(rows)
    for i, (r, total) in enumerate(zip(rows, totals, strict=True)):
        c0 = (top if horizontal else left) + i * slot + (slot - bar_px) / 2
        acc = 0.0
        for name, v in r.segments:
            v = max(0.0, v) / scale
            if v <= 0:
                continue
            a, b = vpos(acc), vpos(acc + v)
            acc += v
            tip = f"{r.label} / {name}: {fmt_tick(v)} {value_label}"
            geo = (f'x="{_n(a)}" y="{_n(c0)}" width="{_n(b - a)}" height="{_n(bar_px)}"' if horizontal else
                   f'x="{_n(c0)}" y="{_n(b)}" width="{_n(bar_px)}" height="{_n(a - b)}"')
            body.append(f'<rect {geo} fill="{col[name]}"><title>{esc(tip)}</title></rect>')
        if horizontal:
            body.append(_text(left - 6, c0 + bar_px / 2 + 4, r.label, anchor="end"))
            body.append(_text(vpos(total) + 4, c0 + bar_px / 2 + 4, fmt_tick(total), size=10))
        else:
            body.append(_text(c0 + bar_px / 2, top + ph + 15, r.label, anchor="middle", size=10))
            body.append(_text(c0 + bar_px / 2, vpos(total) - 4, fmt_tick(total), anchor="middle", size=10))
    if reference is not None:
        p = vpos(reference)
        geo = (f'x1="{_n(p)}" x2="{_n(p)}" y1="{_n(top)}" y2="{_n(top + ph)}"' if horizontal else
               f'x1="{_n(left)}" x2="{_n(left + pw)}" y1="{_n(p)}" y2="{_n(p)}"')
        body.append(f'<line class="reference" {geo} stroke="#333" stroke-dasharray="4 3"/>')
    axis = (f'<line x1="{_n(left)}" x2="{_n(left)}" y1="{_n(top)}" y2="{_n(top + ph)}" stroke="#888"/>' if horizontal
            else f'<line x1="{_n(left)}" x2="{_n(left + pw)}" y1="{_n(top + ph)}" y2="{_n(top + ph)}" stroke="#888"/>')
    return _svg(width, height, title, body + [axis] + legend)


def gantt_chart(*, title: str, rows: Sequence[str], bars: Sequence[GanttBar], span_s: float,
                colour_of: dict[str, str] | None = None, width: float = 1080, row_px: float = 24) -> str:
    """Gantt chart: one row per resource (or resource x micro-batch), ops as bars, a time axis in µs."""
    if span_s <= 0:
        raise ValueError(f"gantt_chart {title!r}: span_s must be > 0, got {span_s}")
    col = colours([b.category for b in bars]) | (colour_of or {})
    left = 12 + 6.6 * max((len(r) for r in rows), default=4)
    top, right = 34.0, 20.0
    pw, ph = width - left - right, len(rows) * row_px
    legend, legend_h = _legend([(c, col[c]) for c in dict.fromkeys(b.category for b in bars)], left,
                               top + ph + 48, pw)
    height = top + ph + 48 + legend_h
    tt = [t for t in nice_ticks(0.0, span_s * 1e6, 6) if t <= span_s * 1e6 * (1 + 1e-9)]
    ft = lambda us: us / (span_s * 1e6)  # noqa: E731
    px = lambda s: left + ft(s * 1e6) * pw  # noqa: E731
    body: list[str] = []
    for i, r in enumerate(rows):
        y = top + i * row_px
        if i % 2:
            body.append(f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(pw)}" height="{_n(row_px)}" fill="#f6f6f6"/>')
        body.append(_text(left - 6, y + row_px / 2 + 4, r, anchor="end"))
    for t in tt:
        x = left + ft(t) * pw
        body.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_n(top)}" y2="{_n(top + ph)}" stroke="#e0e0e0"/>')
        body.append(_text(x, top + ph + 15, fmt_tick(t), anchor="middle"))
    body.append(_text(left + pw / 2, top + ph + 32, "time (µs)", anchor="middle", size=12))
    index = {r: i for i, r in enumerate(rows)}
    for b in bars:
        if b.row not in index or b.end_s <= b.start_s:
            continue
        y = top + index[b.row] * row_px + 3
        x0, x1 = px(b.start_s), px(b.end_s)
        tip = f"{b.label}: {b.start_s * 1e6:.1f}-{b.end_s * 1e6:.1f} µs"
        body.append(f'<rect x="{_n(x0)}" y="{_n(y)}" width="{_n(max(0.5, x1 - x0))}" height="{_n(row_px - 6)}" '
                    f'fill="{col[b.category]}" stroke="#fff" stroke-width="0.5"><title>{esc(tip)}</title></rect>')
    body.append(f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(pw)}" height="{_n(ph)}" fill="none" stroke="#888"/>')
    return _svg(width, height, title, body + legend)


def diverging_colour(v: float, center: float, spread: float) -> str:
    """Blue below ``center``, white at it, red above, saturating at ``center +- spread``."""
    t = max(-1.0, min(1.0, (v - center) / spread)) if spread > 0 else 0.0
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    rgb = [round(255 + (e - 255) * abs(t)) for e in end]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(*, title: str, row_labels: Sequence[str], col_labels: Sequence[str], values: Sequence[Sequence[float]],
            x_label: str, y_label: str, center: float = 1.0, value_name: str = "value", min_spread: float = 0.02,
            width: float = 960) -> str:
    """Heatmap (rows x columns) on a diverging scale around ``center``, with a colour legend.

    The scale saturates at the largest deviation from ``center``, but at least ``min_spread``, so a nearly
    even map stays pale instead of stretching noise over the whole colour range."""
    if not values or any(len(r) != len(col_labels) for r in values) or len(values) != len(row_labels):
        raise ValueError(f"heatmap {title!r}: values must be {len(row_labels)} rows of {len(col_labels)} numbers")
    spread = max(max(abs(v - center) for r in values for v in r), min_spread)
    left, top, right = 34 + 6.6 * max(len(r) for r in row_labels), 34.0, 90.0
    cw = (width - left - right) / len(col_labels)
    ch = max(6.0, min(22.0, 560 / len(row_labels)))
    pw, ph = cw * len(col_labels), ch * len(row_labels)
    height = top + ph + 46
    label_every = max(1, math.ceil(11 / ch))
    body: list[str] = []
    for i, (lab, row) in enumerate(zip(row_labels, values, strict=True)):
        y = top + i * ch
        if i % label_every == 0:
            body.append(_text(left - 6, y + ch / 2 + 4, lab, anchor="end", size=10))
        for j, v in enumerate(row):
            tip = f"{y_label} {lab}, {x_label} {col_labels[j]}: {v:.3f}"
            body.append(f'<rect x="{_n(left + j * cw)}" y="{_n(y)}" width="{_n(cw)}" height="{_n(ch)}" '
                        f'fill="{diverging_colour(v, center, spread)}"><title>{esc(tip)}</title></rect>')
    col_every = max(1, math.ceil(22 / cw))
    for j, lab in enumerate(col_labels):
        if j % col_every == 0:
            body.append(_text(left + (j + 0.5) * cw, top + ph + 14, lab, anchor="middle", size=10))
    body.append(f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(pw)}" height="{_n(ph)}" fill="none" stroke="#888"/>')
    body.append(_text(left + pw / 2, top + ph + 32, x_label, anchor="middle", size=12))
    body.append(_text(14, top + ph / 2, y_label, anchor="middle", size=12,
                      extra=f' transform="rotate(-90 14.00 {_n(top + ph / 2)})"'))
    lx, steps = left + pw + 24, 11
    lh = min(ph, 220.0) / steps
    for k in range(steps):
        v = center + spread * (1 - 2 * k / (steps - 1))
        body.append(f'<rect x="{_n(lx)}" y="{_n(top + k * lh)}" width="14.00" height="{_n(lh)}" '
                    f'fill="{diverging_colour(v, center, spread)}"/>')
        if k in (0, 2, steps // 2, steps - 3, steps - 1):
            body.append(_text(lx + 18, top + k * lh + lh / 2 + 4, f"{v:.3f}", size=10))
    lo, hi = min(min(r) for r in values), max(max(r) for r in values)
    for value in (hi, lo):
        # where the data's extremes sit on the colour bar (their values are written under it)
        ty = top + (1 - (value - center + spread) / (2 * spread)) * steps * lh
        body.append(f'<line x1="{_n(lx - 4)}" x2="{_n(lx + 18)}" y1="{_n(ty)}" y2="{_n(ty)}" stroke="#222" '
                    'stroke-width="1.5"/>')
    body.append(_text(lx, top + steps * lh + 16, value_name, size=10))
    body.append(_text(lx, top + steps * lh + 30, f"max {hi:.3f}", size=10))
    body.append(_text(lx, top + steps * lh + 44, f"min {lo:.3f}", size=10))
    height = max(height, top + steps * lh + 52)
    return _svg(width, height, title, body)
