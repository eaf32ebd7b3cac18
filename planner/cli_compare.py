"""`moeplan compare`: two deployments side by side (registered on the root group by :mod:`planner.cli`)."""

from __future__ import annotations

import dataclasses

import click

from planner import report
from planner.cli import (
    _EXPORT_HELP,
    EXIT_INFEASIBLE,
    _abort,
    _check_export,
    _emit_json,
    _evaluate_one,
    _export,
    _load,
    _out,
)


@click.command("compare")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--baseline", "baseline_spec", required=True,
              help="PLAN on SCENARIO, FILE.yaml (another scenario and its plan) or FILE.yaml:PLAN.")
@click.option("--candidate", "candidate_spec", help="Same forms; default: plan's best deployment on SCENARIO "
              "(aggregated, or its prefill and decode pools).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.compare/2).")
@click.option("--export", type=click.Path(dir_okay=False), help=_EXPORT_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Also show both sides' evaluate breakdowns.")
def compare_cmd(scenario: str, baseline_spec: str, candidate_spec: str | None, as_json: bool, export: str | None,
                verbose: bool) -> None:
    """Two deployments side by side: memory, throughput, latency, expert density, all-to-all, cross-node traffic."""
    from planner import compare as cmp
    from planner.cpsat.schedule import overlapped_layer_time

    _check_export(export)

    def side(label: str, spec: str) -> cmp.Side:
        path, plan_text = cmp.parse_side(spec)
        sc, dims, r = _evaluate_one(path or scenario, plan_text, overlapped_layer_time)
        return cmp.Side.aggregated(f"{label}: {spec}", sc, dims, r)

    base = side("baseline", baseline_spec)
    cand = side("candidate", candidate_spec) if candidate_spec else _best_deployment_side(scenario)
    metrics = cmp.compare(base, cand)
    if as_json or export:
        doc = cmp.compare_document(base, cand, metrics,
                                   lambda s, p: report.full_evaluate_document(s.scenario, p.dims, p.result))
        _export(export, doc)
        if as_json:
            _emit_json(doc)
            return
    if verbose:
        for s in (base, cand):
            for pool in (s.decode,) if s.mode == "aggregated" else (s.prefill, s.decode):
                report.render_evaluate(_out, s.scenario, pool.dims, pool.result, verbose=True)
    _out.print(report.compare_table(base, cand, metrics))


def _best_deployment_side(scenario: str):  # noqa: ANN202
    """``plan``'s best deployment on SCENARIO as a compare side: one pool (DP replicas folded into the plan)
    when aggregated, else its prefill and decode pools; each pool re-costed with the CP-SAT overlap schedule,
    as the baseline is, so the two sides differ only in the plan."""
    from cost_models.serving import evaluate as evaluate_plan
    from planner import compare as cmp
    from planner.cpsat.schedule import overlapped_layer_time
    from planner.plan import NoFeasiblePlan, run_plan
    sc = _load(scenario)
    try:
        d = run_plan(sc, top_k=1).deployments[0]
    except NoFeasiblePlan as e:
        _abort(EXIT_INFEASIBLE, f"--candidate: no plan to default to ({e.constraint}: {e.detail}); pass one")

    def pool(c, replicas: int) -> cmp.Pool:  # noqa: ANN001
        r = evaluate_plan(sc.model, sc.cluster, c.dims, sc.workload, overlap_model=overlapped_layer_time)
        return cmp.Pool(dims=dataclasses.replace(c.dims, dp=c.dims.dp * replicas), result=r,
                        devices=c.devices * replicas)

    label = f"candidate: plan's best ({d.mode})"
    dec = pool(d.decode, d.decode_replicas)
    if d.mode == "aggregated":
        return cmp.Side.aggregated(label, sc, dec.dims, dec.result)
    return cmp.Side.disaggregated(label, sc, pool(d.prefill, d.prefill_replicas), dec)
