"""``moeplan compare``: two deployments side by side."""

from __future__ import annotations

import click

from planner.cli import app


@click.command("compare")
@click.argument("scenario", type=app.SafePath(dir_okay=False))
@click.option("--baseline", "baseline_spec", required=True,
              help="PLAN on SCENARIO, FILE.yaml (another scenario and its plan) or FILE.yaml:PLAN; PLAN may be a "
              "deployment as plan prints it ('prefill: 1 x ...; decode: 1 x ...', README 'Deployments').")
@click.option("--candidate", "candidate_spec", help="Same forms; default: plan's best deployment on SCENARIO "
              "(aggregated, or its prefill and decode pools).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.compare/2).")
@click.option("--export", type=app.SafePath(dir_okay=False), help=app.EXPORT_HELP)
@app.force_option
@click.option("-v", "--verbose", is_flag=True, help="Also show both sides' evaluate breakdowns.")
def compare_cmd(scenario: str, baseline_spec: str, candidate_spec: str | None, as_json: bool, export: str | None,
                verbose: bool) -> None:
    """Two deployments side by side: memory, throughput, latency, expert density, all-to-all, cross-node traffic."""
    from planner.analysis import compare as cmp
    from planner.render import terminal

    app.check_export_path(export)
    from planner.cli import training
    if training.is_training(scenario):
        training.compare(scenario, baseline_spec, candidate_spec, as_json, export)
        return

    def side(label: str, spec: str) -> cmp.Side:
        path, plan_text = cmp.parse_side(spec)
        return cmp.Side(label=f"{label}: {spec}", deployment=app.deployment_or_abort(path or scenario, plan_text,
                                                                                      "schedule"))

    with app.progress("costing both sides", as_json):
        base = side("baseline", baseline_spec)
        cand = side("candidate", candidate_spec) if candidate_spec else _best_deployment_side(scenario)
    metrics = cmp.compare(base, cand)
    if as_json or export:
        from planner.analysis.evaluate import with_solver_results
        from planner.documents.compare import compare_document
        from planner.documents.evaluate import evaluation_document

        def pool_doc(p):  # noqa: ANN001, ANN202 (a PoolEvaluation -> an EvaluateDocument)
            return evaluation_document(with_solver_results(p.evaluation))
        doc = compare_document(base, cand, metrics, pool_doc)
        app.export_document(export, doc)
        if as_json:
            app.emit_json(doc)
            return
    if verbose:
        for s in (base, cand):
            for pool in s.deployment.pools:
                terminal.render_evaluate(app.out, pool.evaluation.scenario, pool.evaluation.dims, pool.result,
                                         verbose=True)
    app.out.print(terminal.compare_table(base, cand, metrics))


def _best_deployment_side(scenario: str):  # noqa: ANN202
    """``plan``'s best deployment on SCENARIO as a compare side, costed as the baseline is (every pool with the
    CP-SAT overlap schedule, :func:`planner.analysis.deployment.evaluate_deployment`), so that the two sides
    differ only in the plan."""
    from planner.analysis import compare as cmp
    from planner.analysis.deployment import evaluate_deployment, plan_of
    from planner.search.plan import NoFeasiblePlan, run_plan
    sc = app.load(scenario)
    try:
        d = run_plan(sc, top_k=1).deployments[0]
    except NoFeasiblePlan as e:
        app.abort(app.EXIT_INFEASIBLE, f"--candidate: no plan to default to ({e.constraint}: {e.detail}); pass one")
    return cmp.Side(label=f"candidate: plan's best ({d.mode})",
                    deployment=evaluate_deployment(sc, plan_of(d), overlap_model="schedule"))
