"""Rendering of `moeplan plan`: top-K table, Pareto front, chosen plan, rejections (rich tables, JSON document)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from planner import report
from planner.cpsat.deployment import Deployment
from planner.plan import PLAN_SCHEMA, PlanResult
from planner.units import fmt_bytes
from planner.validate import Recost


def _deployment_doc(d: Deployment, r: Recost) -> dict[str, Any]:
    def pool(c, replicas: int, role: str) -> dict[str, Any]:
        return {"role": role, "plan": c.dims.as_dict(), "devices_per_replica": c.devices, "replicas": replicas,
                "devices": c.devices * replicas, "prefill_tok_per_s_per_device": c.prefill_tok_per_s_per_device,
                "decode_tok_per_s_per_device": c.decode_tok_per_s_per_device, "ttft_s": c.ttft_s, "tpot_s": c.tpot_s,
                "decode_batch_per_device": c.decode_batch_per_device, "memory_used_bytes": c.memory_used_bytes,
                "static_bytes": c.static_bytes}
    pools = ([pool(d.decode, d.decode_replicas, "aggregated")] if d.mode == "aggregated" else
             [pool(d.prefill, d.prefill_replicas, "prefill"), pool(d.decode, d.decode_replicas, "decode")])
    return {"mode": d.mode, "pools": pools, "devices_used": r.devices_used, "output_tok_per_s": r.output_tok_per_s,
            "output_tok_per_s_per_device": r.output_tok_per_s_per_device, "user_tok_per_s": 1 / r.tpot_s if r.tpot_s else 0.0,
            "ttft_s": r.ttft_s, "tpot_s": r.tpot_s, "prefill_input_tok_per_s": r.prefill_input_tok_per_s,
            "decode_output_tok_per_s": r.decode_output_tok_per_s, "solver_objective_units": d.output_tok_per_s_units}


REPORT_SCHEDULE_TIME_LIMIT_S = 0.1
"""Limit of the chosen plan's schedule solve in plan reports (an illustration: plan's figures use the closed
form; on the default scenario 0.1, 0.25, 0.5 and 1 s give the same schedule)."""


def plan_document(res: PlanResult) -> dict[str, Any]:
    sc = res.scenario
    best = res.deployments[0]
    chosen = best.decode
    return {
        "schema": PLAN_SCHEMA,
        "scenario": {"name": sc.name, "path": sc.path, "model": sc.model.id, "device": sc.cluster.device.id,
                     "devices": sc.cluster.num_devices, "input_tokens": sc.workload.input_tokens,
                     "output_tokens": sc.workload.output_tokens, "ttft_slo_s": sc.workload.ttft_slo_s,
                     "tpot_slo_s": sc.workload.tpot_slo_s},
        "objective": res.objective,
        "overlap_model": res.overlap_model,
        "top": [_deployment_doc(d, r) for d, r in zip(res.deployments, res.recosts, strict=True)],
        "solver": [{"status": s.status, "objective": s.objective, "bound": s.bound, "gap": s.gap}
                   for s in res.stats],
        "quantization_ranking_preserved": res.ranking_preserved,
        "rejected": dict(sorted(res.rejected.items())),
        "layouts_considered": res.layouts_considered,
        "pareto": [{"plan": c.dims.as_dict(), "decode_tok_per_s_per_device": c.decode_tok_per_s_per_device,
                    "user_tok_per_s": c.user_tok_per_s, "tpot_s": c.tpot_s} for c in res.pareto],
        "chosen": 0,
        # the search costs overlap in closed form, so this schedule is not cached: a short (deterministic) solve
        "chosen_breakdown": report.full_evaluate_document(sc, chosen.dims, chosen.result,
                                                          schedule_time_limit_s=REPORT_SCHEDULE_TIME_LIMIT_S),
    }


def render_plan(console: Console, res: PlanResult, *, verbose: bool) -> None:
    sc = res.scenario
    console.print(f"[b]{sc.name}[/b]: {sc.model.name} on {sc.cluster.num_devices} x {sc.cluster.device.name}; "
                  f"objective {res.objective}")
    t = Table(title=f"Top {len(res.deployments)} deployments")
    for col in ("#", "mode", "pools (replicas x plan)", "devices", "out tok/s", "tok/s/dev", "tok/s/user", "TTFT",
                "TPOT", "mem/dev"):
        t.add_column(col, justify="left" if col in ("mode", "pools (replicas x plan)") else "right")
    for i, (d, r) in enumerate(zip(res.deployments, res.recosts, strict=True), 1):
        pools = (f"{d.decode_replicas} x {_short(d.decode)}" if d.mode == "aggregated" else
                 f"P {d.prefill_replicas} x {_short(d.prefill)}\nD {d.decode_replicas} x {_short(d.decode)}")
        mem = max(d.decode.memory_used_bytes, d.prefill.memory_used_bytes if d.prefill else 0.0)
        t.add_row(str(i), d.mode, pools, str(r.devices_used), f"{r.output_tok_per_s:,.0f}",
                  f"{r.output_tok_per_s_per_device:,.0f}", f"{1 / r.tpot_s:,.1f}", f"{r.ttft_s * 1e3:,.0f} ms",
                  f"{r.tpot_s * 1e3:,.1f} ms", fmt_bytes(mem))
    console.print(t)
    s = res.stats[0]
    rejected = ", ".join(f"{k} {res.rejected.get(k, 0)}" for k in REJECTION_KEYS)
    console.print(f"Layouts considered: {res.layouts_considered}; rejected by constraint: {rejected}")
    console.print(f"CP-SAT: {s.status}, objective {s.objective:,.0f}, bound {s.bound:,.0f}, gap {s.gap:.2%}; "
                  f"quantization kept the ranking: {'yes' if res.ranking_preserved else 'NO'}")
    best = res.deployments[0]
    console.print(f"[b]Chosen[/b] ({best.mode}): decode layout {best.decode.dims.label()}")
    if not verbose:
        console.print(f"[dim]-v: the Pareto front ({len(res.pareto)} layouts) and the chosen plan's breakdowns[/dim]")
        return
    p = Table(title="Pareto front (decode): throughput per device vs tokens/s per user")
    for col in ("plan", "tok/s/dev", "tok/s/user", "TPOT"):
        p.add_column(col, justify="left" if col == "plan" else "right")
    for c in res.pareto[:12]:
        p.add_row(_short(c), f"{c.decode_tok_per_s_per_device:,.0f}", f"{c.user_tok_per_s:,.1f}", f"{c.tpot_s * 1e3:.1f} ms")
    console.print(p)
    report.render_evaluate(console, sc, best.decode.dims, best.decode.result, verbose=True)


REJECTION_KEYS = ("divisibility", "topology", "memory", "ttft", "tpot", "pp_no_gain")


def _short(c) -> str:  # noqa: ANN001
    d = c.dims
    parts = [f"TP{d.attn_tp}xDP{d.attn_dp}", f"EP{d.moe_ep}" + (f"xTP{d.moe_tp}" if d.moe_tp > 1 else "")]
    if d.dense_tp > 1:
        parts.append(f"denseTP{d.dense_tp}")
    if d.pp > 1:
        parts.append(f"PP{d.pp}")
    if d.redundant_experts:
        parts.append(f"+{d.redundant_experts}R")
    if d.overlap.value != "none":
        parts.append("TBO")
    return " ".join(parts)


def to_markdown(doc: dict[str, Any]) -> str:
    """Markdown of a plan document (kept for callers; :func:`planner.markdown_report.to_markdown` does every kind)."""
    from planner.markdown_report import to_markdown as render
    return render(doc)
