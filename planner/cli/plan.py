"""``moeplan plan``: search every layout and pool split of a scenario."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import click

from planner.cli import app
from planner.cpsat.deployment_instance import OBJECTIVES

if TYPE_CHECKING:
    from collections.abc import Callable

    from cost_models.parallel import ParallelDims
    from planner.analysis.afd import AfdEvaluation
    from planner.catalog.engines import EngineCapability
    from planner.cpsat.deployment_instance import Deployment
    from planner.cpsat.placement_result import PlacementResult
    from planner.inputs.scenario import Scenario

AFD_ENGINES = (
    "none of the engine versions moeplan emits for (vLLM 0.11.x, SGLang 0.5.x, TensorRT-LLM 1.0, MindIE LLM 3.1.0) "
    "launches an attention-FFN disaggregated decode. AFD runs in StepFun's own Step-3 serving system (arXiv "
    "2507.19427 Sec. 7, StepMesh transfers); in SGLang only as an experimental Ascend NPU path for Qwen3-MoE "
    "(sgl-project/sglang pull request 36258, merged 2026-08-25, after 0.5.x); for vLLM in the separate "
    "vllm-project/afd-plugin repository; TensorRT-LLM has none (NVIDIA/TensorRT-LLM issue 6577)")
"""Why ``plan --emit`` refuses a plan whose chosen deployment is AFD (sources in the string)."""


def parse_modes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """``--modes``: a comma-separated subset of :data:`planner.search.afd.MODES` (None: the scenario's ``modes:``,
    else all of them)."""
    from planner.search.afd import MODES
    if value is None:
        return None
    modes = tuple(dict.fromkeys(m.strip() for m in value.split(",")))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        app.abort(app.EXIT_BAD_INPUT, f"--modes: got {value!r}; accepted: a comma-separated subset of "
                  f"{', '.join(MODES)}")
    return tuple(m for m in MODES if m in modes)


def resolve_engine(engine: str | None, engine_version: str | None, emit_engine: str | None) -> EngineCapability | None:
    """The engine a serving command plans / costs for: ``--engine``, else the serving engine ``--emit`` names
    (emitted lines then keep that engine's headroom), else None (the workload's own reserve). Exit 2 when
    ``--emit`` names another serving engine than ``--engine``, or ``--engine-version`` comes without an engine."""
    from planner.search.engines import capability
    emitted = emit_engine if emit_engine in app.SERVING_ENGINES else None
    if engine and emitted and emitted != engine:
        app.abort(app.EXIT_BAD_INPUT, f"--emit: got {emitted!r} with --engine {engine}; accepted: {engine} (the "
                  f"engine the plan is costed for), or --emit {emitted} alone (it implies --engine {emitted})")
    engine = engine or emitted
    if engine_version is not None and engine is None:
        app.abort(app.EXIT_BAD_INPUT, f"--engine-version: got {engine_version!r} without --engine; accepted: "
                  "--engine ENGINE --engine-version VERSION")
    try:
        return capability(engine, engine_version) if engine else None
    except ValueError as e:
        app.abort(app.EXIT_BAD_INPUT, str(e))


def placement_of(sc: Scenario) -> Callable[[ParallelDims], PlacementResult | None] | None:
    """With router counts (``workload.expert_load``): a layout's CP-SAT expert placement, as ``place`` and
    ``evaluate`` compute it, for the emitters to convert into what each engine loads; else None."""
    if sc.expert_loads is None or sc.model.moe is None:
        return None
    from planner.analysis.imbalance import layout_placement_cpsat
    return lambda dims: layout_placement_cpsat(sc.model, dims, sc.expert_loads, sc.cluster.devices_per_node)


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
@click.option("--emit", "emit_engine", type=app.EMIT_ENGINES, help=app.EMIT_HELP + " For the chosen deployment; a "
              "serving engine implies --engine (the search keeps that engine's layouts and headroom).")
@click.option("--pick", type=click.IntRange(min=1), default=1, show_default=True,
              help="Choose deployment K of the top list (the table's #): it is exported, emitted and broken down.")
@click.option("--engine", "engine", type=app.EMIT_ENGINES,
              help="Search only the layouts this serving engine launches, costed with its memory reserve "
              "(README 'Engine-aware planning'); without it the table lists which engines can run each deployment.")
@click.option("--engine-version", help="The engine release the capability table is for (each engine has one: "
              "sglang 0.5.5, vllm 0.11.0, trtllm 1.0, mindie 3.1.0).")
@click.option("--overlap-model", type=click.Choice(["closed-form", "schedule"]), default="closed-form",
              show_default=True, help="schedule: re-cost the prefill of every shortlisted two-batch layout with the "
              "CP-SAT layer schedule before the deployment solve (slower: 31-41 s on the 8- and 16-GPU scenarios).")
@click.option("--modes", callback=parse_modes, metavar="LIST",
              help="Deployment modes to search, comma-separated: aggregated, disaggregated (prefill and decode pools), "
              "afd (a prefill pool and an attention-FFN disaggregated decode pool). Default: the scenario's modes: list, "
              "else aggregated,disaggregated (AFD is opt-in: no engine moeplan emits for launches it; AFD finds units only where the model has routed experts and the cluster has a node "
              "besides two instances).")
def plan(scenario: str | None, objective: str, top_k: int, time_limit: float | None, seed: int, as_json: bool,
         export: str | None, verbose: bool, emit_engine: str | None, overlap_model: str, pick: int,
         engine: str | None, engine_version: str | None, modes: tuple[str, ...] | None) -> None:
    """Search parallel layouts and pool splits for SCENARIO (default: the bundled scenario)."""
    from planner.analysis.deployment import from_solution, plan_of, with_bands, with_pool_solver_results
    from planner.analysis.why import tie_reasons
    from planner.cpsat import budget
    from planner.documents.limits import solve_limits
    from planner.documents.plan import REPORT_SCHEDULE_TIME_LIMIT_S, plan_document
    from planner.inputs.deployment_text import deployment_text
    from planner.search.plan import NoFeasiblePlan, run_plan
    app.check_export_path(export)
    if pick > top_k:
        app.abort(app.EXIT_BAD_INPUT, f"--pick: got {pick}; accepted: 1 .. {top_k} (the --top deployments)")
    from planner.cli import training
    if training.is_training(scenario):
        if pick != 1:
            app.abort(app.EXIT_BAD_INPUT, f"--pick: got {pick}; accepted: 1 for a training scenario (its plan "
                      "exports and emits the best layout)")
        objective = {"throughput": "throughput", "latency": "time"}.get(objective, objective)
        training.plan(scenario, objective, top_k, as_json, verbose, export, emit_engine)  # type: ignore[arg-type]
        return
    cap = resolve_engine(engine, engine_version, emit_engine)
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
        from planner.search.afd import DEFAULT_MODES
        searched = modes or sc.modes or DEFAULT_MODES
        if cap is not None and searched == ("afd",):
            app.abort(app.EXIT_BAD_INPUT, f"--modes: got afd with --engine / --emit {cap.engine}; accepted: "
                      f"aggregated and/or disaggregated with --engine or --emit ({AFD_ENGINES})")
        kw = dict(objective=objective, top_k=top_k, seed=seed, overlap_model=overlap_model, engine=cap,
                  modes=searched)
        with budget.using(spend), app.progress("costing layouts", as_json) as tick:
            res = run_plan(sc, **kw, progress=tick)
    except NoFeasiblePlan as e:
        app.abort(app.EXIT_INFEASIBLE, f"no feasible plan: {e.constraint} constraint: {e.detail}. Would make it "
                  "feasible: " + "; ".join(e.fixes))
    if spend.wall_bound:
        spend.note("the top list is re-costed and sorted, so the chosen deployment is the best listed, but the "
                   "ranking may not be optimal")
    if pick > len(res.deployments):
        app.abort(app.EXIT_BAD_INPUT, f"--pick: got {pick}; accepted: 1 .. {len(res.deployments)} (the deployments "
                  "the search found)")
    picked = res.deployments[pick - 1]
    if emit_engine and picked.mode == "afd":
        app.abort(app.EXIT_BAD_INPUT, f"--emit: got {emit_engine!r} for a plan whose chosen deployment is "
                  "attention-FFN disaggregated (mode afd); accepted: a plan whose chosen deployment is aggregated "
                  f"or disaggregated (rerun with --modes aggregated,disaggregated): {AFD_ENGINES}")
    chosen = None if picked.mode == "afd" else from_solution(sc, picked)
    texts = [None if d.mode == "afd" else deployment_text(plan_of(d)) for d in res.deployments]
    wl = sc.workload
    why = tie_reasons(res.recosts, objective, input_tokens=wl.input_tokens, output_tokens=wl.output_tokens)
    launch = app.launch_plan(emit_engine, lambda emit: emit.spec_from_deployment(sc, picked, placement_of(sc)))
    from planner.analysis.error_bands import deployment_bands
    bands = [deployment_bands(sc, d) for d in res.deployments]
    if as_json or export:  # the document's chosen-deployment breakdown; the terminal view does not show it
        # the search costs overlap in closed form, so the picked deployment's schedules are not cached: a short
        # (deterministic) solve per pool
        with budget.using(spend):
            full = (_afd_unit(sc, picked) if chosen is None else
                    with_pool_solver_results(chosen, schedule_time_limit_s=REPORT_SCHEDULE_TIME_LIMIT_S))
        doc = plan_document(res, full, launch=app.launch_document(launch), bands=bands, limits=solve_limits(spend),
                            picked=pick - 1, texts=texts, why=why)
        app.export_document(export, doc)
    if as_json:
        app.emit_json(doc)
    else:
        from planner.render.plan_view import render_plan
        render_plan(app.out, res, chosen and with_bands(chosen), picked=pick - 1, verbose=verbose, texts=texts, why=why,
                    bands=bands, limits=solve_limits(spend))
        afd = [i + 1 for i, d in enumerate(res.deployments) if d.mode == "afd"]
        if afd:
            app.out.print(f"No launch form for the AFD deployments ({', '.join(f'#{i}' for i in afd)}): no "
                          f"deployment string and no --emit lines, because {AFD_ENGINES}.", highlight=False)
        if launch:
            app.echo_launch(launch)


def _afd_unit(sc: Scenario, d: Deployment) -> AfdEvaluation:
    """The chosen AFD deployment's decode unit, evaluated (an ``AfdEvaluation``)."""
    from planner.analysis.afd import AfdEvaluation
    return AfdEvaluation(scenario=sc, layout=d.decode.dims, result=d.decode.result)
