"""Terminal views (rich): ``evaluate`` summaries and breakdowns, side-by-side and compare tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cost_models import metrics
from cost_models.kinds import DeploymentMode, PoolRole
from cost_models.parallel import ParallelDims
from cost_models.serving import ServingResult
from cost_models.step import StepCost
from planner.inputs.scenario import Scenario
from planner.inputs.units import fmt_bytes, fmt_seconds
from planner.render.bands import band_text

if TYPE_CHECKING:
    from planner.analysis.compare import Metric, MetricSeries, Side
    from planner.analysis.deployment import DeploymentEvaluation
    from planner.analysis.error_bands import FigureBands

_MEMORY_KEYS = ("attention_weight_bytes", "dense_ffn_weight_bytes", "shared_expert_weight_bytes",
                "routed_expert_weight_bytes", "router_weight_bytes", "embedding_weight_bytes", "mtp_weight_bytes",
                "kv_cache_bytes",
                "activation_bytes", "comm_buffer_bytes", "runtime_reserve_bytes")


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


def render_evaluate(console: Console, sc: Scenario, dims: ParallelDims, r: ServingResult, *, verbose: bool,
                    bands: FigureBands | None = None) -> None:
    """The summary (each throughput, TTFT and TPOT with its error band when ``bands`` is given) and, verbose,
    the breakdowns."""
    wl = sc.workload
    b = bands
    console.print(f"[b]{sc.name}[/b]: {sc.model.name} on {sc.cluster.num_nodes} x {sc.cluster.devices_per_node} "
                  f"{sc.cluster.device.name}; weights {wl.weight_precision.label}, KV {wl.kv_precision.label}")
    console.print(f"plan: {dims.label()}")
    s = Table(title="Summary")
    s.add_column("metric")
    s.add_column("value", justify="right")
    s.add_row("prefill tokens / s / device", f"{r.prefill.throughput_tok_per_s_per_device:,.0f}"
              + band_text(b and b.prefill_throughput))
    s.add_row("TTFT", fmt_seconds(r.prefill.latency_s) + band_text(b and b.ttft)
              + _slo(r.prefill.latency_s, wl.ttft_slo_s))
    s.add_row("decode tokens / s / device", f"{r.decode.throughput_tok_per_s_per_device:,.0f}"
              + band_text(b and b.decode_throughput))
    s.add_row("TPOT", fmt_seconds(r.decode.latency_s) + band_text(b and b.tpot) + _slo(r.decode.latency_s, wl.tpot_slo_s))
    s.add_row("decode sequences / device", f"{r.decode.sequences_per_device:.1f} (set by {r.decode_batch_limit})")
    s.add_row("aggregated output tokens / s / device", f"{r.aggregated_output_tok_per_s_per_device:,.0f}"
              + band_text(b and b.aggregated_throughput))
    s.add_row("aggregated tokens / s / user", f"{r.aggregated_user_tok_per_s:,.1f}" + band_text(b and b.aggregated_throughput))
    s.add_row("expert density prefill (tokens / local expert)", f"{r.prefill.expert_tokens_per_local_expert:,.1f}")
    s.add_row("expert density decode (tokens / local expert)", f"{r.decode.expert_tokens_per_local_expert:,.1f}")
    s.add_row("aggregated TPOT, effective (the cycle over a user's tokens)",
              fmt_seconds(metrics.effective_tpot_s(DeploymentMode.AGGREGATED, r)))
    s.add_row("static memory / device (max of prefill, decode)",
              fmt_bytes(metrics.pool_static_bytes(PoolRole.AGGREGATED, r)))
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


def side_by_side(deployments: list[DeploymentEvaluation], rows: list[MetricSeries]) -> Table:
    """Key metrics of several evaluated scenarios in columns (:func:`planner.analysis.compare.side_by_side`),
    with each one's ratio to the first."""
    t = Table(title="Side by side (ratio to the first scenario in brackets)")
    t.add_column("metric")
    for d in deployments:
        sc = d.scenario
        t.add_column(f"{sc.name}\n({d.devices} x {sc.cluster.device.id}, {d.mode})", justify="right")
    for row in rows:
        base = row.values[0]
        t.add_row(row.name, *(f"{fmt_metric(v, row.unit)} (x{v / base if base else float('nan'):.2f})"
                              for v in row.values))
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


def compare_table(base: Side, cand: Side, rows: list[Metric]) -> Table:
    """``moeplan compare``: metric, both values, candidate / baseline and whether it improved."""
    t = Table(title="Compare (ratio = candidate / baseline)")
    t.add_column("metric")
    for s in (base, cand):
        d = s.deployment
        t.add_column(f"{s.label}\n{d.mode}, {d.devices} x {d.scenario.cluster.device.id}", justify="right")
    t.add_column("ratio", justify="right")
    for m in rows:
        ratio = "-" if m.ratio is None else f"x{m.ratio:.2f}"
        colour = {True: "green", False: "red", None: ""}[m.improved]
        t.add_row(m.name, fmt_metric(m.baseline, m.unit), fmt_metric(m.candidate, m.unit),
                  f"[{colour}]{ratio}[/{colour}]" if colour else ratio)
    return t
