"""A pipeline schedule (:mod:`planner.cpsat.pipeline_result`) as a text Gantt chart for the terminal: one row
per device (pipeline rank), one character per time cell, the glyph of the slot that covers most of the cell."""

from __future__ import annotations

from planner.cpsat.pipeline_result import PipelineSchedule
from planner.render.gantt import cell_row

GLYPHS = {"F": "F", "B": "B", "W": "W", "BW": "#", "FB": "X", "FBW": "X"}
"""Slot kind -> chart glyph."""
LEGEND = {"F": "forward", "B": "input-gradient backward", "W": "weight-gradient backward",
          "#": "full backward (B and W fused)", "X": "overlapped forward-and-backward pair", ".": "idle"}
IDLE = "."


def _row(pieces: list[tuple[float, float, str]], span: float, width: int) -> str:
    return cell_row(pieces, 0.0, span, width, IDLE)


def gantt_text(schedule: PipelineSchedule, width: int = 100) -> str:
    """Summary, one row per device, a time axis in ms, a legend."""
    sch = schedule
    width = max(10, width)
    t0 = min(s.start_s for s in sch.slots)
    span = sch.makespan_s or 1.0
    devices = 1 + max(s.device for s in sch.slots)
    st = sch.stats
    lines = [f"pipeline step: {devices} device(s), makespan {sch.makespan_s * 1e3:,.3f} ms, lower bound "
             f"{sch.lower_bound_s * 1e3:,.3f} ms, largest bubble {max(sch.bubble_s) * 1e3:,.3f} ms",
             f"solver: {st.status}, objective {st.objective * 1e3:,.3f} ms, bound {st.bound * 1e3:,.3f} ms, "
             f"gap {st.gap:.2%}, {st.wall_s:.2f} s"]
    label_w = len(f"dev {devices - 1} ")
    for d in range(devices):
        pieces = [(s.start_s - t0, s.end_s - t0, GLYPHS[s.kind]) for s in sch.slots if s.device == d]
        lines.append(f"dev {d}".ljust(label_w) + _row(pieces, span, width))
    start, stop = "|0 ms", f"{span * 1e3:.6g} ms|"
    lines.append(" " * label_w + start + " " * max(1, width - len(start) - len(stop)) + stop)
    lines.append("  ".join(f"{g} {name}" for g, name in LEGEND.items()))
    return "\n".join(lines)
