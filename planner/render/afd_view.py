"""Terminal view of an attention-FFN disaggregated decode (``moeplan evaluate`` on a scenario with ``afd:``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from cost_models.afd import AfdResult
from planner.inputs.scenario import Scenario
from planner.inputs.units import fmt_bytes, fmt_seconds


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


def render_afd(console: Console, sc: Scenario, r: AfdResult, *, verbose: bool) -> None:
    """Summary, memory per device kind, the pipeline of every layer kind; ``verbose``: every op."""
    wl = sc.workload
    console.print(f"[b]{sc.name}[/b]: {sc.model.name} on {sc.cluster.num_devices} x {sc.cluster.device.name}; "
                  f"weights {wl.weight_precision.label}, KV {wl.kv_precision.label}, A->F {wl.dispatch_precision.label}")
    console.print(f"attention-FFN disaggregation: {r.layout.label()}")
    s = Table(title="Summary")
    s.add_column("metric")
    s.add_column("value", justify="right")
    s.add_row("decode tokens / s / device", f"{r.throughput_tok_per_s_per_device:,.0f}")
    slo = "" if wl.tpot_slo_s is None else (" (SLO met)" if r.tpot_s <= wl.tpot_slo_s else " (SLO missed)")
    s.add_row("TPOT", fmt_seconds(r.tpot_s) + slo)
    s.add_row("batch (sequences)", f"{r.batch:,.0f}")
    s.add_row("sequences / attention rank / micro-batch", f"{r.sequences_per_rank_per_micro_batch:,.1f}")
    m = r.memory
    s.add_row("attention device memory", f"{fmt_bytes(m.attention_device_bytes)} (KV {fmt_bytes(m.kv_cache_bytes)})")
    s.add_row("FFN device memory", fmt_bytes(m.ffn_device_bytes))
    s.add_row("capacity", fmt_bytes(m.capacity_bytes) + ("" if m.fits else " (does not fit)"))
    console.print(s)
    t = Table(title="Pipeline per layer and micro-batch")
    for col in ("layers", "count", "attention", "A->F", "FFN scale-up", "FFN compute", "F->A", "period",
                "bottleneck", "round trip", "layer (all micro-batches)"):
        t.add_column(col, justify="right")
    for c in r.layers:
        t.add_row(c.kind, str(c.count), _us(c.attention_s), _us(c.a_to_f.seconds), _us(c.ffn_scale_up_s),
                  _us(c.ffn_compute_s), _us(c.f_to_a.seconds), _us(c.period_s), c.bottleneck, _us(c.round_trip_s),
                  _us(c.layer_s))
    console.print(t)
    if not verbose:
        console.print("[dim]-v: every op of the attention and FFN stages[/dim]")
        return
    for c in r.layers:
        ops = Table(title=f"{c.kind} layer ops (one micro-batch)")
        for col in ("side", "op", "time", "bound"):
            ops.add_column(col)
        for side, group in (("attention", c.attention_ops), ("ffn", c.ffn_ops)):
            for o in group:
                ops.add_row(side, o.name, _us(o.seconds), o.bound + (f" ({o.algorithm})" if o.algorithm else ""))
        console.print(ops)
