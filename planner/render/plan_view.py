"""Terminal view of ``moeplan plan``: top-K table, rejections, solver status, Pareto front, chosen plan."""

from __future__ import annotations

import shlex
from collections import Counter
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cost_models import metrics
from cost_models.afd import AfdLayout
from cost_models.kinds import PoolRole, Rejection
from planner.inputs.units import fmt_bytes
from planner.render.bands import band_cell
from planner.render.deployment_view import render_deployment

if TYPE_CHECKING:
    from planner.analysis.deployment import DeploymentEvaluation
    from planner.analysis.error_bands import DeploymentBands
    from planner.cpsat.deployment_instance import Deployment
    from planner.documents.limits import SolveLimits
    from planner.search.plan import PlanResult


def render_plan(console: Console, res: PlanResult, chosen: DeploymentEvaluation | None, *, picked: int = 0, verbose: bool,
                texts: list[str], why: list[str], bands: list[DeploymentBands] | None = None,
                limits: SolveLimits | None = None) -> None:
    """``chosen``: deployment ``picked`` (0-based) of the top list, evaluated as a whole (with its error bands), or
    None when it is an AFD deployment (its unit is then broken down under ``verbose``);
    ``texts``: each top deployment's string; ``why``: the ranking in words; ``bands``: each top deployment's
    error bands, printed under its throughput, TTFT and TPOT; ``limits``: the ``--time-limit`` block, whose
    binding solves are named."""
    sc = res.scenario
    console.print(f"[b]{sc.name}[/b]: {sc.model.name} on {sc.cluster.num_devices} x {sc.cluster.device.name}; "
                  f"objective {res.objective}")
    t = Table(title=f"Top {len(res.deployments)} deployments")
    for col in ("#", "mode", "pools (replicas x plan)", "devices", "out tok/s", "tok/s/dev", "tok/s/user", "TTFT",
                "TPOT", "mem/dev"):
        t.add_column(col, justify="left" if col in ("mode", "pools (replicas x plan)") else "right")
    rows = zip(res.deployments, res.recosts, bands or [None] * len(res.deployments), res.engines, strict=True)
    for i, (d, r, b, engines) in enumerate(rows, 1):
        decode = "AFD" if d.mode == "afd" else "D"
        pools = (f"{d.decode_replicas} x {_short(d.decode)}" if d.mode == "aggregated" else
                 f"P {d.prefill_replicas} x {_short(d.prefill)}\n{decode} {d.decode_replicas} x {_short(d.decode)}")
        mem = (max(d.decode.memory_used_bytes, d.prefill.memory_used_bytes) if d.mode == "afd" else
               max(metrics.pool_used_bytes(role, c.result) for role, c in _pools(d)))
        out, ttft, tpot = (f"{r.output_tok_per_s:,.0f}", f"{r.ttft_s * 1e3:,.0f} ms", f"{r.tpot_s * 1e3:,.1f} ms")
        if b is not None:
            out, ttft, tpot = (f"{out}\n{band_cell(b.throughput)}", f"{ttft}\n{band_cell(b.ttft)}",
                               f"{tpot}\n{band_cell(b.tpot)}")
        t.add_row(f"{i}{' *' if i == picked + 1 else ''}", f"{d.mode}\n[dim]{', '.join(engines) or 'no engine'}[/dim]",
                  pools, str(r.devices_used), out, f"{r.output_tok_per_s_per_device:,.0f}",
                  f"{1 / r.tpot_s:,.1f}", ttft, tpot, fmt_bytes(mem))
    console.print(t)
    console.print("[dim]under mode: " + (f"searched for {res.engine.engine} {res.engine.version} only (--engine)"
                  if res.engine else "the engines that can launch every pool (plan --engine E to search for one)")
                  + "[/dim]")
    if bands:
        console.print("[dim]under out tok/s, TTFT and TPOT: the error band the validation set supports for the "
                      "figure's regime (truth / prediction - 1, low / high, and its number of validation rows)[/dim]")
    s = res.stats[0]
    rejected = ", ".join(f"{k} {res.rejected.get(k, 0)}" for k in REJECTION_KEYS + tuple(
        k for k in sorted(res.rejected) if k not in REJECTION_KEYS))
    units = f" (AFD units {res.afd_layouts_considered})" if res.afd_layouts_considered else ""
    console.print(f"Layouts considered: {res.layouts_considered}{units}; rejected by constraint: {rejected}")
    method = "exact enumeration" if s.status == "EXACT_ENUMERATION" else "CP-SAT"
    console.print(f"Deployment split ({method}): {_statuses(res)}, objective {s.objective:,.0f}, bound {s.bound:,.0f}, "
                  f"gap {max(x.gap for x in res.stats):.2%}; "
                  f"quantization kept the ranking: {'yes' if res.ranking_preserved else 'NO'}")
    for line in limit_lines(limits):
        console.print(line, highlight=False, markup=False)
    console.print("Deployments (pass one to evaluate, compare, schedule or place with --plan):")
    for i, text in enumerate(texts, 1):
        console.print(f"  #{i}: {text or 'an AFD deployment (no deployment string: evaluate takes an afd: section)'}",
                      highlight=False, markup=False)
    for line in why:
        console.print(f"- {line}", highlight=False, markup=False)
    if chosen is None:  # an AFD deployment: its unit, broken down under -v
        best = res.deployments[picked]
        console.print(f"[b]Chosen[/b] (#{picked + 1}, afd): AFD decode unit {best.decode.dims.label()}, batch "
                      f"{best.decode.batch:,}")
    else:
        console.print(f"[b]Chosen[/b] (#{picked + 1}, {chosen.mode.value}): {chosen.text}", highlight=False)
        console.print(f"[dim]same figures: moeplan evaluate {shlex.quote(sc.path)} --plan {shlex.quote(chosen.text)} "
                      f"--overlap-model {res.overlap_model}"
                      f"{f' --engine {res.engine.engine}' if res.engine else ''}[/dim]", highlight=False)
        render_deployment(console, chosen, verbose=True, breakdowns=verbose)
    if not verbose:
        console.print(f"[dim]-v: the Pareto front ({len(res.pareto)} layouts) and each pool's breakdowns[/dim]")
        return
    p = Table(title="Pareto front (decode): throughput per device vs tokens/s per user")
    for col in ("plan", "tok/s/dev", "tok/s/user", "TPOT"):
        p.add_column(col, justify="left" if col == "plan" else "right")
    for c in res.pareto[:12]:
        p.add_row(_short(c), f"{c.decode_tok_per_s_per_device:,.0f}", f"{c.user_tok_per_s:,.1f}", f"{c.tpot_s * 1e3:.1f} ms")
    console.print(p)
    if chosen is None:
        from planner.render.afd_view import render_afd
        render_afd(console, sc, res.deployments[picked].decode.result, verbose=True)


def _pools(d: Deployment) -> list[tuple[PoolRole, object]]:
    """(role, costed layout) of each pool of a search solution."""
    if d.mode == "aggregated":
        return [(PoolRole.AGGREGATED, d.decode)]
    return [(PoolRole.PREFILL, d.prefill), (PoolRole.DECODE, d.decode)]


REJECTION_KEYS = tuple(Rejection)


_OVERLAP = {"two_batch": "TBO", "single_batch": "SBO"}


def afd_short(lay: AfdLayout) -> str:
    """An AFD unit in a table cell: ratio, attention DP (or TP x DP) per instance, FFN EP x TP, micro-batches."""
    att = (f"DP{lay.attention_instance_devices}" if lay.attention_tp == 1 else
           f"TP{lay.attention_tp}xDP{lay.attention_instance_devices // lay.attention_tp}")
    ffn = f"EP{lay.ffn_groups}" + (f"xTP{lay.ffn_tp}" if lay.ffn_tp > 1 else "")
    return f"{lay.attention_instances}A{lay.ffn_instances}F A {att} F {ffn} m{lay.micro_batches}"


def _statuses(res: PlanResult) -> str:
    """One status when every solve ended the same (``OPTIMAL``), else the count of each (``3 OPTIMAL, 2
    FEASIBLE``): never the first solve's status standing for all of them."""
    counts = Counter(x.status for x in res.stats)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def limit_lines(limits: SolveLimits | None) -> list[str]:
    """The ``--time-limit`` outcome in words: nothing without the option; one line when it did not bind."""
    if limits is None:
        return []
    if not limits.stopped_early:
        return [f"Time limit {limits.time_limit_s:g} s: not reached; every solve finished (reproducible)."]
    lines = [f"Time limit {limits.time_limit_s:g} s: {len(limits.stopped_early)} solve(s) stopped before proving "
             "their answer:"]
    lines += [f"  {r.solve}: {r.status} ({r.stopped_by.replace('_', ' ')})" for r in limits.stopped_early[:8]]
    if len(limits.stopped_early) > 8:
        lines.append(f"  ... and {len(limits.stopped_early) - 8} more")
    if limits.note:
        lines.append(f"NOTE: {limits.note}.")
    return lines


def _short(c) -> str:  # noqa: ANN001
    d = c.dims
    if isinstance(d, AfdLayout):
        return afd_short(d)
    parts = [f"TP{d.attn_tp}xDP{d.attn_dp}", f"EP{d.moe_ep}" + (f"xTP{d.moe_tp}" if d.moe_tp > 1 else "")]
    if d.dense_tp > 1:
        parts.append(f"denseTP{d.dense_tp}")
    if d.pp > 1:
        parts.append(f"PP{d.pp}")
    if d.redundant_experts:
        parts.append(f"+{d.redundant_experts}R")
    if d.overlap.value != "none":
        parts.append(_OVERLAP[d.overlap.value])
    return " ".join(parts)
