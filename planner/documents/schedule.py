"""A layer schedule as a JSON-ready document (schema ``moeplan.schedule/1`` and the reports' embedded copy)."""

from __future__ import annotations

from typing import Any

from planner.cpsat.schedule_result import RESOURCES, LayerSchedule, ScheduledOp, fold

SCHEDULE_SCHEMA = "moeplan.schedule/1"

SYMBOLS: tuple[tuple[str, str], ...] = (
    ("attn.tp_all_reduce", "R"), ("moe.tp_all_reduce", "R"), ("ffn.tp_all_reduce", "R"),
    ("moe.dispatch", "D"), ("moe.combine", "C"), ("moe.shared.", "S"), ("moe.experts", "E"),
    ("moe.router", "G"), ("moe.topk", "G"), ("moe.norm", "N"), ("ffn.norm", "N"), ("attn.", "A"), ("ffn.", "F"),
)
"""Op-name prefix -> chart letter (first match); other ops draw as their name's first letter, upper-cased."""
LEGEND = {"A": "attention", "N": "norm", "G": "router + top-k", "D": "dispatch", "E": "routed experts",
          "C": "combine", "S": "shared expert", "F": "dense FFN", "R": "TP all-reduce"}
IDLE = "."


def symbol(name: str) -> str:
    return next((s for p, s in SYMBOLS if name.startswith(p)), (name[:1] or "?").upper())




def _op_doc(o: ScheduledOp, start: float, end: float) -> dict[str, Any]:
    return {"micro_batch": o.micro_batch, "op": o.name, "kind": o.kind, "resource": o.resource,
            "start_s": start, "end_s": end, "sm_shared": o.sm_shared, "symbol": symbol(o.name)}


def schedule_document(schedule: LayerSchedule) -> dict[str, Any]:
    """JSON-ready document: the figures, the dependency edges, the intervals of layer 0 (absolute seconds) and
    the same intervals folded into one period (``period_intervals``, for a steady-state plot)."""
    sch = schedule
    p = sch.makespan_s
    st = sch.stats
    folded = [_op_doc(o, x, y) for o in sch.intervals for x, y in (fold(o.start_s, o.end_s, p) if p > 0 else [])]
    return {
        "makespan_s": p,
        "layer_latency_s": sch.layer_latency_s,
        "no_overlap_s": sch.no_overlap_s,
        "speedup": sch.no_overlap_s / p if p > 0 else 1.0,
        "busiest_resource": sch.busiest_resource,
        "busiest_resource_s": sch.busiest_resource_s,
        "work_s": dict(sch.work_s),
        "busy_s": dict(sch.busy_s),
        "utilization": {r: (sch.busy_s[r] / p if p > 0 else 0.0) for r in RESOURCES},
        "exposed_comm_s": sch.exposed_comm_s,
        "micro_batches": sch.micro_batches,
        "comm_sm_fraction": sch.comm_sm_fraction,
        "window_layers": sch.window_layers,
        "resources": [r for r in RESOURCES if any(o.resource == r for o in sch.intervals)],
        "dependencies": [list(e) for e in sch.dependencies],
        "intervals": [_op_doc(o, o.start_s, o.end_s) for o in sch.intervals],
        "period_intervals": folded,
        # no wall time here: the solve is bounded by deterministic work, so the document is byte-stable
        "solver": {"status": st.status, "objective_s": st.objective, "bound_s": st.bound, "gap": st.gap},
    }


def schedules_document(schedules: dict[str, LayerSchedule], micro_batches: int) -> dict[str, Any]:
    """The decode overlap schedules of a plan as reports embed them (:attr:`Evaluation.schedules`)."""
    return {"phase": "decode", "micro_batches": micro_batches,
            "layers": {kind: schedule_document(s) for kind, s in schedules.items()}}
