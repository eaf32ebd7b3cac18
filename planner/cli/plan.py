"""``moeplan plan``: search every layout and pool split of a scenario."""

from __future__ import annotations

from importlib import resources

import click

from planner.cli import app
from planner.cpsat.deployment_instance import OBJECTIVES

DEFAULT_SCENARIO = resources.files("planner") / "scenarios_bundled" / "deepseek_v3_h200_16.yaml"
"""The bundled default scenario: package data, so an installed wheel plans without a source checkout
(``scenarios/deepseek_v3_h200_16.yaml`` in the repository is a link to this file)."""


@click.command()
@click.argument("scenario", type=app.SafePath(dir_okay=False), required=False)
@click.option("--objective", type=click.Choice(OBJECTIVES), default="throughput", show_default=True,
              help="throughput: most output tok/s, then fewest devices; latency: lowest TPOT, then throughput; "
              "devices: fewest devices that meet workload.request_rate.")
@click.option("--top", "top_k", type=click.IntRange(1, 50), default=5, show_default=True,
              help="How many deployments to list (best first; each a different mode / layout combination).")
@app.time_limit_option(0.1)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="CP-SAT random seed (with no binding wall limit, the same seed gives the same bytes).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.plan/2).")
@click.option("--export", "export", type=app.SafePath(dir_okay=False), help=app.EXPORT_HELP)
@app.force_option
@click.option("-v", "--verbose", is_flag=True, help="Also show the Pareto front and the chosen plan's breakdowns.")
@click.option("--emit", "emit_engine", type=app.EMIT_ENGINES, help=app.EMIT_HELP + " For the chosen deployment.")
@click.option("--overlap-model", type=click.Choice(["closed-form", "schedule"]), default="closed-form",
              show_default=True, help="schedule: re-cost the prefill of every shortlisted two-batch layout with the "
              "CP-SAT layer schedule before the deployment solve (slower: 31-41 s on the 8- and 16-GPU scenarios).")
def plan(scenario: str | None, objective: str, top_k: int, time_limit: float | None, seed: int, as_json: bool,
         export: str | None, verbose: bool, emit_engine: str | None, overlap_model: str) -> None:
    """Search parallel layouts and pool splits for SCENARIO (default: the bundled scenario)."""
    from planner.analysis.evaluate import Evaluation, with_solver_results
    from planner.cpsat import budget
    from planner.documents.limits import solve_limits
    from planner.documents.plan import REPORT_SCHEDULE_TIME_LIMIT_S, plan_document
    from planner.search.plan import NoFeasiblePlan, run_plan
    app.check_export_path(export)
    from planner.cli import training
    if training.is_training(scenario):
        objective = {"throughput": "throughput", "latency": "time"}.get(objective, objective)
        training.plan(scenario, objective, top_k, as_json, verbose, export, emit_engine)  # type: ignore[arg-type]
        return
    if scenario is None:
        with resources.as_file(DEFAULT_SCENARIO) as path:
            sc = app.load(str(path))
    else:
        sc = app.load(scenario)
    if objective == "devices" and sc.workload.request_rate_per_s is None:
        app.abort(app.EXIT_BAD_INPUT, "workload.request_rate: missing; accepted: requests per second (a number > 0), "
                  "required by --objective devices")
    spend = budget.SolveBudget(wall_s=time_limit)
    try:
        kw = dict(objective=objective, top_k=top_k, seed=seed, overlap_model=overlap_model)
        with budget.using(spend), app.progress("costing layouts", as_json) as tick:
            res = run_plan(sc, **kw, progress=tick)
    except NoFeasiblePlan as e:
        app.abort(app.EXIT_INFEASIBLE, f"no feasible plan: {e.constraint} constraint: {e.detail}. Would make it "
                  "feasible: " + "; ".join(e.fixes))
    if spend.wall_bound:
        spend.note("the top list is re-costed and sorted, so the chosen deployment is the best listed, but the "
                   "ranking may not be optimal")
    launch = app.launch_plan(emit_engine, lambda emit: emit.spec_from_deployment(sc, res.deployments[0]))
    from planner.analysis.error_bands import deployment_bands
    bands = [deployment_bands(sc, d) for d in res.deployments]
    if as_json or export:  # the document's chosen-plan breakdown; the terminal view does not show it
        best = res.deployments[0].decode
        # the search costs overlap in closed form, so the chosen plan's schedule is not cached: a short
        # (deterministic) solve
        with budget.using(spend):
            chosen = with_solver_results(Evaluation(scenario=sc, dims=best.dims, result=best.result),
                                         schedule_time_limit_s=REPORT_SCHEDULE_TIME_LIMIT_S)
        doc = plan_document(res, chosen, launch=app.launch_document(launch), bands=bands, limits=solve_limits(spend))
        app.export_document(export, doc)
    if as_json:
        app.emit_json(doc)
    else:
        from planner.render.plan_view import render_plan
        render_plan(app.out, res, verbose=verbose, bands=bands, limits=solve_limits(spend))
        if launch:
            app.echo_launch(launch)
