"""Terminal view of a whole deployment (``evaluate`` of a deployment, the chosen deployment of ``plan -v``):
every pool's summary (and breakdowns), the pools side by side, the rate match and what binds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cost_models.kinds import DeploymentMode
from planner.inputs.deployment_text import plan_text
from planner.inputs.units import fmt_bytes, fmt_seconds
from planner.render import terminal

if TYPE_CHECKING:
    from planner.analysis.deployment import DeploymentEvaluation


def render_deployment(console: Console, dep: DeploymentEvaluation, *, verbose: bool,
                      breakdowns: bool = True) -> None:
    """Each pool's evaluate view (``breakdowns``; each figure with the error band the pool's evaluation carries),
    then the pools table, the deployment's figures and why."""
    if breakdowns:
        for p in dep.pools:
            if dep.mode is DeploymentMode.DISAGGREGATED:
                console.print(f"\n[b]{p.role.value} pool[/b]: {p.pool.replicas} x {plan_text(p.dims)}")
            ev = p.evaluation
            terminal.render_evaluate(console, ev.scenario, ev.dims, ev.result, verbose=verbose,
                                     bands=ev.bands)
    console.print(pools_table(dep))
    console.print(f"[b]Deployment[/b] {dep.text}", highlight=False)
    console.print(f"{dep.output_tok_per_s:,.0f} output tok/s on {dep.devices} devices "
                  f"({dep.output_tok_per_s / dep.devices:,.0f} per device), TTFT {fmt_seconds(dep.ttft_s)}, "
                  f"TPOT {fmt_seconds(dep.tpot_s)} (effective)", highlight=False)
    for line in dep.reasons:
        console.print(f"- {line}", highlight=False, markup=False)


def pools_table(dep: DeploymentEvaluation) -> Table:
    """One row per pool: replicas x plan, devices, rates, the request rate it handles, latency and memory."""
    wl = dep.scenario.workload
    t = Table(title=f"Pools ({dep.mode.value}; bottleneck: {dep.bottleneck.value})")
    for col in ("pool", "replicas x plan", "devices", "prefill tok/s", "decode tok/s", "requests/s", "TTFT",
                "TPOT", "batch/dev", "mem/dev"):
        t.add_column(col, justify="left" if col in ("pool", "replicas x plan") else "right",
                     no_wrap=col == "replicas x plan")
    intake, service = dep.request_rates_per_s
    for p in dep.pools:
        r = p.result
        role = p.role.value
        pre = r.prefill.throughput_tok_per_s_per_device * p.pool_devices if role != "decode" else None
        dec = r.decode.throughput_tok_per_s_per_device * p.pool_devices if role != "prefill" else None
        if role == "aggregated":
            pre, dec = dep.output_tok_per_s * wl.input_tokens / wl.output_tokens, dep.output_tok_per_s
        req = intake if role == "prefill" else service
        t.add_row(role, f"{p.pool.replicas} x {plan_text(p.dims)}", str(p.pool_devices),
                  "-" if pre is None else f"{pre:,.0f}", "-" if dec is None else f"{dec:,.0f}", f"{req:,.2f}",
                  fmt_seconds(r.prefill.latency_s) if role != "decode" else "-",
                  fmt_seconds(r.decode.latency_s) if role != "prefill" else "-",
                  f"{r.decode.sequences_per_device:,.1f}" if role != "prefill" else "-",
                  f"{fmt_bytes(p.memory_used_bytes)} / {fmt_bytes(r.decode.memory.capacity_bytes)}")
    return t
