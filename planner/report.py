"""Rendering: rich tables for humans (stdout) and versioned JSON documents for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from cost_models.parallel import ParallelDims
from cost_models.serving import PhaseResult, ServingResult
from cost_models.step import StepCost
from planner.scenario import Scenario
from planner.units import fmt_bytes, fmt_seconds

EVALUATE_SCHEMA = "moeplan.evaluate/2"
"""Version of the ``evaluate --json`` document; bump on any incompatible change (README "JSON output")."""

_MEMORY_KEYS = ("attention_weight_bytes", "dense_ffn_weight_bytes", "shared_expert_weight_bytes",
                "routed_expert_weight_bytes", "router_weight_bytes", "embedding_weight_bytes", "kv_cache_bytes",
                "activation_bytes", "comm_buffer_bytes", "runtime_reserve_bytes")


def _step_doc(step: StepCost) -> dict[str, Any]:
    layers = []
    for layer in step.layers:
        layers.append({
            "kind": layer.kind, "count": layer.count, "layer_s": layer.layer_s, "compute_s": layer.compute_s,
            "comm_s": layer.comm_s, "exposed_comm_s": layer.exposed_comm_s,
            "overlapped_comm_s": layer.overlapped_comm_s, "overlap_overhead_s": layer.overlap_overhead_s,
            "ops": [{"name": o.name, "kind": o.kind, "seconds": o.seconds, "flops": o.flops,
                     "hbm_bytes": o.hbm_bytes, "scale_up_bytes": o.scale_up_bytes,
                     "scale_out_bytes": o.scale_out_bytes, "bound": o.bound} for o in layer.ops],
        })
    return {"step_s": step.step_s, "latency_s": step.latency_s, "rank_tokens": step.rank_tokens,
            "overlap": step.overlap, "by_resource_s": dict(sorted(step.by_resource.items())), "layers": layers}


def _phase_doc(p: PhaseResult, phase: str) -> dict[str, Any]:
    return {
        **({"tokens_per_device_per_step": p.tokens_per_device_per_step} if phase == "prefill"
           else {"sequences_per_device": p.sequences_per_device}),
        "throughput_tok_per_s_per_device": p.throughput_tok_per_s_per_device,
        "ttft_s" if phase == "prefill" else "tpot_s": p.latency_s,
        "expert_tokens_per_local_expert": p.expert_tokens_per_local_expert,
        "memory_bytes": p.memory.as_dict(),
        "step": _step_doc(p.step),
    }


def device_document(sc: Scenario) -> dict[str, Any]:
    """The device numbers the prediction used, each with its source and confidence (scenario overrides marked)."""
    return {"id": sc.cluster.device.id, "name": sc.cluster.device.name,
            "sources": {k: {"value": v.value, "source": v.source, "confidence": v.confidence.value, "note": v.note}
                        for k, v in sorted(sc.device_sources.items())}}


def evaluate_document(sc: Scenario, dims: ParallelDims, r: ServingResult, *, schedule: dict[str, Any] | None = None,
                      placement: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``evaluate --json`` document (schema ``moeplan.evaluate/2``). ``schedule``: the decode overlap
    schedule (:func:`planner.schedule_report.schedules_document`); ``placement``: the expert-placement heatmap
    (:func:`planner.placement_report.heatmap_document`) when a load file was given."""
    wl = sc.workload
    extra: dict[str, Any] = {"device": device_document(sc)}
    if schedule is not None:
        extra["schedule"] = schedule
    if placement is not None:
        extra["placement"] = placement
    return {
        "schema": EVALUATE_SCHEMA,
        "scenario": {"name": sc.name, "path": sc.path, "model": sc.model.id, "device": sc.cluster.device.id,
                     "nodes": sc.cluster.num_nodes, "devices_per_node": sc.cluster.devices_per_node,
                     "devices": sc.cluster.num_devices, "input_tokens": wl.input_tokens,
                     "output_tokens": wl.output_tokens, "weight_precision": wl.weight_precision.label,
                     "expert_imbalance": wl.expert_imbalance,
                     "kv_precision": wl.kv_precision.label},
        "plan": dims.as_dict(),
        "prefill": _phase_doc(r.prefill, "prefill"),
        "decode": _phase_doc(r.decode, "decode") | {"batch_limit": r.decode_batch_limit},
        "aggregated": {"output_tok_per_s_per_device": r.aggregated_output_tok_per_s_per_device,
                       "user_tok_per_s": r.aggregated_user_tok_per_s},
        "slo": {"ttft_s": wl.ttft_slo_s, "tpot_s": wl.tpot_slo_s,
                "ttft_met": None if wl.ttft_slo_s is None else r.prefill.latency_s <= wl.ttft_slo_s,
                "tpot_met": None if wl.tpot_slo_s is None else r.decode.latency_s <= wl.tpot_slo_s},
    } | extra


def full_evaluate_document(sc: Scenario, dims: ParallelDims, r: ServingResult, *,
                           schedule_time_limit_s: float | None = None) -> dict[str, Any]:
    """:func:`evaluate_document` with the plan's decode overlap schedule and, given router counts, the placement
    heatmap (the same cached CP-SAT placement whose imbalance the prediction used). ``schedule_time_limit_s``:
    the schedule solve's limit (default: the one ``evaluate``'s overlap model used, so it is a cache hit)."""
    from planner.schedule_report import schedules_document
    placement = None
    if sc.expert_loads is not None and sc.model.moe is not None:
        from planner.imbalance import layout_placement_cpsat
        from planner.placement_report import heatmap_document
        res = layout_placement_cpsat(sc.model, dims, sc.expert_loads, sc.cluster.devices_per_node)
        placement = None if res is None else heatmap_document(res, sc.expert_loads)
    schedule = schedules_document(sc, dims, decode_batch=max(r.decode_batch_per_device, 1.0 / dims.attn_tp),
                                  time_limit_s=schedule_time_limit_s)
    return evaluate_document(sc, dims, r, schedule=schedule, placement=placement)


def _memory_table(r: ServingResult) -> Table:
    t = Table(title="Per-device memory (busiest device)")
    t.add_column("item")
    t.add_column("prefill", justify="right")
    t.add_column("decode", justify="right")
    pm, dm = r.prefill.memory.as_dict(), r.decode.memory.as_dict()
    for k in _MEMORY_KEYS + ("used_bytes", "capacity_bytes", "free_bytes"):
        t.add_row(k.removesuffix("_bytes").replace("_", " "), fmt_bytes(pm[k]), fmt_bytes(dm[k]))
    return t


def _ops_table(title: str, step: StepCost) -> Table:
    t = Table(title=title)
    for col in ("layer", "op", "kind", "bound", "time / layer", "x layers", "time / step"):
        t.add_column(col, justify="right" if "time" in col or col == "x layers" else "left")
    for layer in step.layers:
        for o in layer.ops:
            t.add_row(layer.kind, o.name, o.kind, o.bound, fmt_seconds(o.seconds), str(layer.count),
                      fmt_seconds(o.seconds * layer.count))
        t.add_row(layer.kind, "[b]layer total[/b]", "", f"comm exposed {fmt_seconds(layer.exposed_comm_s)}",
                  fmt_seconds(layer.layer_s), str(layer.count), fmt_seconds(layer.total_s), end_section=True)
    return t


def _resource_table(r: ServingResult) -> Table:
    t = Table(title="Step time by resource")
    t.add_column("resource")
    t.add_column("prefill", justify="right")
    t.add_column("decode", justify="right")
    keys = sorted(set(r.prefill.step.by_resource) | set(r.decode.step.by_resource))
    for k in keys:
        t.add_row(k, fmt_seconds(r.prefill.step.by_resource.get(k, 0.0)), fmt_seconds(r.decode.step.by_resource.get(k, 0.0)))
    return t


def render_evaluate(console: Console, sc: Scenario, dims: ParallelDims, r: ServingResult, *, verbose: bool) -> None:
    wl = sc.workload
    console.print(f"[b]{sc.name}[/b]: {sc.model.name} on {sc.cluster.num_nodes} x {sc.cluster.devices_per_node} "
                  f"{sc.cluster.device.name}; weights {wl.weight_precision.label}, KV {wl.kv_precision.label}")
    console.print(f"plan: {dims.label()}")
    s = Table(title="Summary")
    s.add_column("metric")
    s.add_column("value", justify="right")
    s.add_row("prefill tokens / s / device", f"{r.prefill.throughput_tok_per_s_per_device:,.0f}")
    s.add_row("TTFT", fmt_seconds(r.prefill.latency_s) + _slo(r.prefill.latency_s, wl.ttft_slo_s))
    s.add_row("decode tokens / s / device", f"{r.decode.throughput_tok_per_s_per_device:,.0f}")
    s.add_row("TPOT", fmt_seconds(r.decode.latency_s) + _slo(r.decode.latency_s, wl.tpot_slo_s))
    s.add_row("decode sequences / device", f"{r.decode.sequences_per_device:.1f} (set by {r.decode_batch_limit})")
    s.add_row("aggregated output tokens / s / device", f"{r.aggregated_output_tok_per_s_per_device:,.0f}")
    s.add_row("aggregated tokens / s / user", f"{r.aggregated_user_tok_per_s:,.1f}")
    s.add_row("expert density prefill (tokens / local expert)", f"{r.prefill.expert_tokens_per_local_expert:,.1f}")
    s.add_row("expert density decode (tokens / local expert)", f"{r.decode.expert_tokens_per_local_expert:,.1f}")
    s.add_row("static memory / device", fmt_bytes(r.decode.memory.static_bytes))
    console.print(s)
    if not verbose:
        console.print("[dim]-v: per-device memory, step time by resource, per-layer and per-op breakdowns[/dim]")
        return
    console.print(_memory_table(r))
    console.print(_resource_table(r))
    console.print(_layer_summary(r))
    console.print(_ops_table("Prefill step by op", r.prefill.step))
    console.print(_ops_table("Decode step by op", r.decode.step))


def _layer_summary(r: ServingResult) -> Table:
    t = Table(title="Per-layer time")
    for col in ("phase", "layer", "x", "compute", "comm", "comm exposed", "comm overlapped", "layer time"):
        t.add_column(col, justify="left" if col in ("phase", "layer") else "right")
    for phase, p in (("prefill", r.prefill), ("decode", r.decode)):
        for layer in p.step.layers:
            t.add_row(phase, layer.kind, str(layer.count), fmt_seconds(layer.compute_s), fmt_seconds(layer.comm_s),
                      fmt_seconds(layer.exposed_comm_s), fmt_seconds(layer.overlapped_comm_s), fmt_seconds(layer.layer_s))
    return t


def _slo(value: float, slo: float | None) -> str:
    if slo is None:
        return ""
    return f" [green](<= {fmt_seconds(slo)})[/green]" if value <= slo else f" [red](SLO {fmt_seconds(slo)} missed)[/red]"


def side_by_side(results: list[tuple[Scenario, ParallelDims, ServingResult]]) -> Table:
    """Key metrics of several evaluated scenarios in columns, with each one's ratio to the first."""
    t = Table(title="Side by side (ratio to the first scenario in brackets)")
    t.add_column("metric")
    for sc, _, _ in results:
        t.add_column(f"{sc.name}\n({sc.cluster.num_devices} x {sc.cluster.device.id})", justify="right")
    rows: list[tuple[str, Any, Any]] = [
        ("static memory / device", lambda r: r.decode.memory.static_bytes, fmt_bytes),
        ("decode tok/s / device", lambda r: r.decode.throughput_tok_per_s_per_device, lambda v: f"{v:,.0f}"),
        ("decode tok/s total", None, lambda v: f"{v:,.0f}"),
        ("TPOT", lambda r: r.decode.latency_s, fmt_seconds),
        ("TTFT", lambda r: r.prefill.latency_s, fmt_seconds),
        ("end-to-end latency (TTFT + output x TPOT)", None, fmt_seconds),
        ("decode expert density (tokens / local expert)", lambda r: r.decode.expert_tokens_per_local_expert,
         lambda v: f"{v:,.1f}"),
        ("prefill tok/s / device", lambda r: r.prefill.throughput_tok_per_s_per_device, lambda v: f"{v:,.0f}"),
    ]
    base: dict[str, float] = {}
    for name, get, fmt in rows:
        cells = []
        for sc, _, r in results:
            if name == "decode tok/s total":
                v = r.decode.throughput_tok_per_s_per_device * sc.cluster.num_devices
            elif name.startswith("end-to-end"):
                v = r.prefill.latency_s + sc.workload.output_tokens * r.decode.latency_s
            else:
                v = get(r)
            base.setdefault(name, v)
            ratio = v / base[name] if base[name] else float("nan")
            cells.append(f"{fmt(v)} (x{ratio:.2f})")
        t.add_row(name, *cells)
    return t


def fmt_metric(value: float, unit: str) -> str:
    """A compare metric in human units."""
    if unit == "bytes":
        return fmt_bytes(value)
    if unit == "s":
        return fmt_seconds(value)
    if unit == "bytes/token":
        return f"{fmt_bytes(value)}/token"
    if unit == "devices":
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def compare_table(base: Any, cand: Any, metrics: list[Any]) -> Table:
    """``moeplan compare``: metric, both values, candidate / baseline and whether it improved."""
    t = Table(title="Compare (ratio = candidate / baseline)")
    t.add_column("metric")
    for s in (base, cand):
        t.add_column(f"{s.label}\n{s.mode}, {s.devices} x {s.scenario.cluster.device.id}", justify="right")
    t.add_column("ratio", justify="right")
    for m in metrics:
        ratio = "-" if m.ratio is None else f"x{m.ratio:.2f}"
        colour = {True: "green", False: "red", None: ""}[m.improved]
        t.add_row(m.name, fmt_metric(m.baseline, m.unit), fmt_metric(m.candidate, m.unit),
                  f"[{colour}]{ratio}[/{colour}]" if colour else ratio)
    return t
