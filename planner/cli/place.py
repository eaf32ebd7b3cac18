"""``moeplan place``: which EP device holds which experts and replicas, per layer."""

from __future__ import annotations

import dataclasses

import click

from planner.cli import app


@click.command()
@click.argument("scenario", type=app.SafePath(dir_okay=False))
@click.option("--plan", "plan_text", help="A plan or a deployment as plan prints it (default: the scenario's); EP "
              "size and slots come from it (a deployment's decode pool).")
@click.option("--expert-load", "load_path", type=app.SafePath(dir_okay=False),
              help="Router counts (CSV or JSON, rows = MoE layers); default: the scenario's workload.expert_load.")
@click.option("--redundant", type=click.IntRange(min=0, max=65_536), help="Redundant slots (default: the plan's).")
@app.time_limit_option(0.05)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="CP-SAT random seed (with no binding wall limit, the same seed gives the same placement).")
@click.option("--json", "as_json", is_flag=True, help="Print the placement document (schema moeplan.place/2).")
@click.option("--export", type=app.SafePath(dir_okay=False), help=app.EXPORT_HELP)
@app.force_option
def place(scenario: str, plan_text: str | None, load_path: str | None, redundant: int | None, time_limit: float | None,
          seed: int, as_json: bool, export: str | None) -> None:
    """Place experts and redundant replicas on the plan's EP devices: CP-SAT vs the greedy balancers."""
    from planner.cpsat import budget
    from planner.cpsat.placement import LAYER_WALL_CAP_S, place_all
    from planner.documents.limits import solve_limits
    from planner.documents.place import heatmap_document, placement_document
    from planner.inputs.scenario import ScenarioError, read_expert_loads

    app.check_export_path(export)
    ev = app.evaluate_or_abort(scenario, plan_text, "closed-form", measure_imbalance=False)
    sc, dims = ev.scenario, ev.dims
    if sc.model.moe is None:
        app.abort(app.EXIT_BAD_INPUT, f"model: got {sc.model.id!r}; accepted: an MoE model (placement needs experts)")
    try:
        loads = read_expert_loads(load_path, sc.model) if load_path else sc.expert_loads
    except ScenarioError as e:
        app.abort(app.EXIT_BAD_INPUT, str(e))
    if loads is None:
        app.abort(app.EXIT_BAD_INPUT, "--expert-load: missing; accepted: a CSV or JSON router-count file, or "
                  "workload.expert_load in the scenario (moeplan loads synth makes one)")
    if redundant is not None:
        dims = dataclasses.replace(dims, redundant_experts=redundant)
    slots = dims.physical_expert_slots(sc.model)
    if slots % dims.moe_ep:
        app.abort(app.EXIT_BAD_INPUT, f"--redundant: got {dims.redundant_experts}; accepted: a count that makes "
                  f"{sc.model.moe.num_routed_experts} + redundant divisible by moe_ep={dims.moe_ep}")
    dpn = max(1, min(sc.cluster.devices_per_node, dims.moe_ep))
    spend = budget.SolveBudget(wall_s=time_limit)
    with budget.using(spend), app.progress("placing experts", as_json) as tick:
        res = place_all(loads, num_devices=dims.moe_ep, devices_per_node=dpn, slots=slots,
                        time_limit_s=LAYER_WALL_CAP_S, seed=seed, num_groups=sc.model.moe.num_groups,
                        topk_groups=sc.model.moe.topk_groups, progress=tick)
    from planner.inputs.deployment_text import plan_text as text_of
    doc = placement_document(res, heatmap_document(res, loads), limits=solve_limits(spend), scenario=sc.name,
                             plan=text_of(dataclasses.replace(dims, dp=1)))
    app.export_document(export, doc)
    if as_json:
        app.emit_json(doc)
        return
    from planner.render.place_view import layer_table, summary_lines
    app.out.print(f"[b]{sc.name}[/b]: plan {doc.plan} (moe_ep={dims.moe_ep}, {slots} slots); loads {res.source}",
                  highlight=False)
    app.out.print(layer_table(res))
    from planner.render.plan_view import limit_lines
    for line in summary_lines(res) + limit_lines(doc.solve_limits):
        app.out.print(line, highlight=False, markup=False)
