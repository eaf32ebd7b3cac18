"""A layer schedule (:mod:`planner.cpsat.schedule`) as a text Gantt chart for the terminal and a JSON document.

The chart has one row per (resource, micro-batch): a glance shows one micro-batch's all-to-all running while
the other computes.  Two views: ``period`` (default) folds the steady state into one period, so every op of a
layer appears once, wrapped at the period boundary; ``layer`` draws layer 0 unfolded from its first start to
its last end (next-layer ops that overlap it are not drawn).
"""

from __future__ import annotations

from typing import Any

from planner.cpsat.schedule import RESOURCES, LayerSchedule, ScheduledOp, fold

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


def _glyph(o: ScheduledOp) -> str:
    """Compute launched beside a comm kernel (on fewer SMs, so stretched) draws lower-case."""
    return symbol(o.name).lower() if o.sm_shared else symbol(o.name)


def _row(pieces: list[tuple[float, float, str]], t0: float, span: float, width: int) -> str:
    """One character per cell: the glyph that covers most of the cell, or idle."""
    dt = span / width
    cells = []
    for i in range(width):
        a, b = t0 + i * dt, t0 + (i + 1) * dt
        cover: dict[str, float] = {}
        for x, y, g in pieces:
            c = min(b, y) - max(a, x)
            if c > 0:
                cover[g] = cover.get(g, 0.0) + c
        cells.append(max(cover, key=lambda g: cover[g]) if cover else IDLE)
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
            row = _row(pieces, t0, span, width) if span > 0 else IDLE * width
            lines.append(f"{f'{r} mb{b}':<{label_w}}|{row}|")
    lines.append(_axis(t0, span, width, label_w))
    legend = "  ".join(f"{s} {LEGEND.get(s, 'other')}" for s in sorted(used))
    lines.append(f"legend: {legend}  {IDLE} idle  (lower case: compute on the SMs a comm kernel leaves)")
    return "\n".join(lines)


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


def layer_schedules(sc: Any, dims: Any, *, phase: str, micro_batches: int, decode_batch: float | None = None,
                    time_limit_s: float = 5.0) -> dict[str, LayerSchedule]:
    """Schedules of one MoE layer and one dense layer (where the model has them) for a scenario's plan.

    The tokens per attention rank are the ones ``evaluate`` uses for the phase (the scenario's prefill chunk,
    or the decode batch it chooses, unless ``decode_batch`` gives it); each micro-batch carries 1/K of them."""
    from cost_models import ops as opmod
    from cost_models.parallel import ParallelDims
    from cost_models.serving import choose_decode_batch, decode_context
    from cost_models.step import COMM_SM_FRACTION_LOW_LATENCY, COMM_SM_FRACTION_NORMAL
    from planner.cpsat.schedule import overlapped_layer_time, schedule_layer

    model, cluster, wl = sc.model, sc.cluster, sc.workload
    if phase == "prefill":
        rank_tokens = (wl.prefill_tokens_per_device or wl.input_tokens / dims.attn_tp) * dims.attn_tp
        seq_len = min(wl.input_tokens, rank_tokens)
        shape = opmod.PhaseShape(phase="prefill", rank_tokens=rank_tokens / micro_batches,
                                 sequences_per_rank=rank_tokens / seq_len / micro_batches, context_tokens=int(seq_len))
        f = COMM_SM_FRACTION_NORMAL
    else:
        batch = decode_batch if decode_batch is not None else \
            choose_decode_batch(model, cluster, dims, wl, overlapped_layer_time)[0]
        q = 1 + wl.mtp_tokens
        seqs = max(batch, 1.0 / dims.attn_tp) * dims.attn_tp
        shape = opmod.PhaseShape(phase="decode", rank_tokens=seqs * q / micro_batches,
                                 sequences_per_rank=seqs / micro_batches, context_tokens=decode_context(wl),
                                 query_tokens_per_sequence=q)
        f = COMM_SM_FRACTION_LOW_LATENCY
    att = opmod.attention_ops(model, cluster, ParallelDims(attn_tp=dims.attn_tp), shape, wl.weight_precision,
                              wl.kv_precision)
    out: dict[str, LayerSchedule] = {}
    if model.moe is not None:
        moe_dims = ParallelDims(attn_tp=dims.attn_tp, attn_dp=dims.attn_dp, moe_ep=dims.moe_ep, moe_tp=dims.moe_tp,
                                redundant_experts=dims.redundant_experts)
        moe = opmod.moe_ops(model, cluster, moe_dims, shape, weight_precision=wl.weight_precision,
                            dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance)
        out["moe"] = schedule_layer(att + moe, micro_batches=micro_batches, comm_sm_fraction=f,
                                    time_limit_s=time_limit_s)
    if model.num_dense_layers:
        ffn = opmod.dense_ffn_ops(model, cluster, ParallelDims(attn_tp=dims.attn_tp, dense_tp=dims.dense_tp), shape,
                                  wl.weight_precision)
        out["dense"] = schedule_layer(att + ffn, micro_batches=micro_batches, comm_sm_fraction=f,
                                      time_limit_s=time_limit_s)
    return out


def schedules_document(sc: Any, dims: Any, *, decode_batch: float | None = None,
                       time_limit_s: float | None = None) -> dict[str, Any]:
    """The decode overlap schedules of a plan as reports embed them: the plan's micro-batch count (1 without
    overlap) at ``decode_batch`` sequences per device (default: the batch ``evaluate`` chooses), solved with
    the limit ``evaluate``'s overlap hook uses, so a plan ``evaluate`` just costed is a cache hit."""
    from cost_models.parallel import OverlapPolicy
    from planner.cpsat.schedule import HOOK_TIME_LIMIT_S

    k = dims.micro_batches if dims.overlap is OverlapPolicy.TWO_BATCH else 1
    schedules = layer_schedules(sc, dims, phase="decode", micro_batches=k, decode_batch=decode_batch,
                                time_limit_s=HOOK_TIME_LIMIT_S if time_limit_s is None else time_limit_s)
    return {"phase": "decode", "micro_batches": k,
            "layers": {kind: schedule_document(s) for kind, s in schedules.items()}}
