"""A layer schedule (:mod:`planner.cpsat.schedule`) as a text Gantt chart for the terminal.

The chart has one row per (resource, micro-batch): a glance shows one micro-batch's all-to-all running while
the other computes.  Two views: ``period`` (default) folds the steady state into one period, so every op of a
layer appears once, wrapped at the period boundary; ``layer`` draws layer 0 unfolded from its first start to
its last end (next-layer ops that overlap it are not drawn).
"""

from __future__ import annotations

from planner.cpsat.schedule_result import RESOURCES, LayerSchedule, ScheduledOp, fold
from planner.documents.schedule import IDLE, LEGEND, symbol


def _glyph(o: ScheduledOp) -> str:
    """Compute launched beside a comm kernel (on fewer SMs, so stretched) draws lower-case."""
    return symbol(o.name).lower() if o.sm_shared else symbol(o.name)


def cell_row(pieces: list[tuple[float, float, str]], t0: float, span: float, width: int, idle: str = IDLE) -> str:
    """One character per cell of ``width`` cells over ``[t0, t0 + span)``: the glyph whose pieces cover most of
    the cell, or ``idle`` (shared by the layer-schedule and pipeline-schedule charts)."""
    dt = span / width
    cells = []
    for i in range(width):
        a, b = t0 + i * dt, t0 + (i + 1) * dt
        cover: dict[str, float] = {}
        for x, y, g in pieces:
            c = min(b, y) - max(a, x)
            if c > 0:
                cover[g] = cover.get(g, 0.0) + c
        cells.append(max(cover, key=lambda g: cover[g]) if cover else idle)
    return "".join(cells)


def _axis(t0: float, span: float, width: int, label_w: int) -> str:
    ticks = [" "] * (width + 12)
    for k in range(5):
        pos = round(k * width / 4)
        text = f"|{(t0 + span * k / 4) * 1e6:.0f}us"
        pos = min(pos, width + 12 - len(text))
        ticks[pos:pos + len(text)] = text
    return " " * label_w + "".join(ticks).rstrip()


def _us(s: float) -> str:
    return f"{s * 1e6:,.1f} us"


def summary_lines(sch: LayerSchedule) -> list[str]:
    p = sch.makespan_s
    st = sch.stats
    util = ", ".join(f"{r} {_us(sch.work_s[r])} ({sch.busy_s[r] / p:.0%} busy)" for r in RESOURCES
                     if sch.work_s[r] > 0) if p > 0 else "-"
    speedup = sch.no_overlap_s / p if p > 0 else 1.0
    return [
        f"layer schedule: {sch.micro_batches} micro-batch(es), comm kernels on {sch.comm_sm_fraction:.1%} of the "
        f"compute units, {sch.window_layers} layer(s) in flight",
        f"per layer (steady state) {_us(p)}  vs no overlap {_us(sch.no_overlap_s)}  ({speedup:.2f}x); "
        f"one layer start to end {_us(sch.layer_latency_s)}",
        f"bottleneck: {sch.busiest_resource} ({_us(sch.busiest_resource_s)} of work per layer, a lower bound)",
        f"work per layer: {util}",
        f"exposed communication: {_us(sch.exposed_comm_s)} per layer",
        f"solver: {st.status}, period {_us(st.objective)}, bound {_us(st.bound)}, gap {st.gap:.2%}, "
        f"{st.wall_s:.2f} s",
    ]


def gantt_text(schedule: LayerSchedule, width: int = 100, *, view: str = "period") -> str:
    """The schedule as text: a summary, one chart row per (resource, micro-batch), a time axis, a legend."""
    if view not in ("period", "layer"):
        raise ValueError(f"view must be 'period' or 'layer', got {view!r}")
    sch = schedule
    width = max(10, width)
    if view == "period":
        t0, span = 0.0, sch.makespan_s
    else:
        t0 = min(o.start_s for o in sch.intervals)
        span = max(o.end_s for o in sch.intervals) - t0
    label_w = len("scale_out mb0 ") + len(str(sch.micro_batches))
    lines = summary_lines(sch)
    lines.append(f"{view} view: " + ("one period of the steady state (ops wrap at its end)" if view == "period"
                                     else "layer 0 from its first start to its last end"))
    used: set[str] = set()
    for r in RESOURCES:
        ops = [o for o in sch.intervals if o.resource == r]
        if not ops:
            continue
        for b in range(sch.micro_batches):
            mine = [o for o in ops if o.micro_batch == b]
            if view == "period" and span > 0:
                pieces = [(x, y, _glyph(o)) for o in mine for x, y in fold(o.start_s, o.end_s, span)]
            else:
                pieces = [(o.start_s, o.end_s, _glyph(o)) for o in mine]
            used |= {symbol(o.name) for o in mine}
            row = cell_row(pieces, t0, span, width) if span > 0 else IDLE * width
            lines.append(f"{f'{r} mb{b}':<{label_w}}|{row}|")
    lines.append(_axis(t0, span, width, label_w))
    legend = "  ".join(f"{s} {LEGEND.get(s, 'other')}" for s in sorted(used))
    lines.append(f"legend: {legend}  {IDLE} idle  (lower case: compute on the SMs a comm kernel leaves)")
    return "\n".join(lines)
