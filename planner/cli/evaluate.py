"""``moeplan evaluate``: what one plan costs, for one or several scenarios."""

from __future__ import annotations

import click

from planner.cli import app


@click.command()
@click.argument("scenarios", nargs=-1, required=True, type=app.SafePath(dir_okay=False))
@click.option("--plan", "plan_text", help="A plan, e.g. 'attn_tp=1,attn_dp=32,moe_ep=32,redundant_experts=32' "
              "(unnamed degrees are 1), or a deployment as plan prints it, e.g. 'prefill: 1 x attn_dp=8,moe_ep=8; "
              "decode: 1 x attn_dp=8,moe_ep=8' (README 'Deployments'). Default: the scenario's plan: / deployment:.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.evaluate/2; "
              "a list of them for several scenarios).")
@click.option("-v", "--verbose", is_flag=True, help="Show every op of the prefill and decode steps.")
@click.option("--overlap-model", type=click.Choice(["schedule", "closed-form"]), default="schedule",
              show_default=True, help="Two-batch overlap from the CP-SAT layer schedule, or the closed form "
              "max(compute, communication) + SM share that plan's search uses.")
@click.option("--export", type=app.SafePath(dir_okay=False), help=app.EXPORT_HELP + " One scenario only.")
@app.force_option
@click.option("--emit", "emit_engine", type=app.EMIT_ENGINES, help=app.EMIT_HELP + " One scenario only.")
def evaluate(scenarios: tuple[str, ...], plan_text: str | None, as_json: bool, verbose: bool,
             overlap_model: str, export: str | None, emit_engine: str | None) -> None:
    """Predict memory, step time, throughput and latency of one plan for each SCENARIO.

    With several scenarios (e.g. the same model on 16 and on 64 cards) a side-by-side table with ratios follows."""
    from planner.analysis.deployment import as_solution
    from planner.render import terminal
    app.check_export_path(export)
    from planner.cli import training
    if any(training.is_training(path) for path in scenarios):
        training.evaluate(scenarios, plan_text, as_json, verbose, export, emit_engine)
        return
    loaded = [app.load(path) for path in scenarios]
    if any(sc.afd is not None for sc in loaded):
        _evaluate_afd(loaded, plan_text=plan_text, as_json=as_json, verbose=verbose, export=export,
                      emit_engine=emit_engine)
        return
    if export and len(scenarios) > 1:
        app.abort(app.EXIT_BAD_INPUT, f"--export: got {export!r} with {len(scenarios)} scenarios; accepted: one scenario")
    if emit_engine and len(scenarios) > 1:
        app.abort(app.EXIT_BAD_INPUT, f"--emit: got {emit_engine!r} with {len(scenarios)} scenarios; accepted: one scenario")
    with app.progress("costing the plan" + (" (overlap schedules)" if overlap_model == "schedule" else ""),
                      as_json) as tick:
        deps = []
        for i, path in enumerate(scenarios):
            deps.append(app.deployment_or_abort(path, plan_text, overlap_model))
            tick(i + 1, len(scenarios))
    first = deps[0]
    launch = app.launch_plan(emit_engine, lambda emit: emit.spec_from_deployment(first.scenario, as_solution(first)))
    if as_json or export:
        from planner.analysis.deployment import with_pool_solver_results
        from planner.documents.evaluate import deployment_evaluation_document
        block = app.launch_document(launch)
        docs = [deployment_evaluation_document(with_pool_solver_results(dep), launch=block if i == 0 else None)
                for i, dep in enumerate(deps)]
        app.export_document(export, docs[0])
        if as_json:
            app.emit_json(docs[0] if len(docs) == 1 else docs)
            return
    from planner.analysis.deployment import with_bands
    from planner.render.deployment_view import render_deployment
    for dep in deps:
        render_deployment(app.out, with_bands(dep), verbose=verbose)
    if len(deps) > 1:
        from planner.analysis import compare as cmp
        app.out.print(terminal.side_by_side(deps, cmp.side_by_side(deps)))
    if launch:
        app.echo_launch(launch)


def _evaluate_afd(loaded: list, *, plan_text: str | None, as_json: bool, verbose: bool, export: str | None,
                  emit_engine: str | None) -> None:
    """Scenarios with an ``afd:`` section (attention-FFN disaggregation): the AFD document / terminal view."""
    from planner.analysis.afd import evaluate_afd, layout_problems
    if not all(sc.afd is not None for sc in loaded):
        app.abort(app.EXIT_BAD_INPUT, "scenarios: got AFD and non-AFD scenarios together; accepted: one kind per call")
    for name, value in (("--plan", plan_text), ("--export", export), ("--emit", emit_engine)):
        if value:
            app.abort(app.EXIT_BAD_INPUT, f"{name}: got {value!r} for an afd: scenario; accepted: none (the afd: "
                      "section is the layout; AFD export and launch lines are not built yet)")
    evals = []
    for sc in loaded:
        problems = layout_problems(sc)
        if problems:
            app.abort(app.EXIT_BAD_INPUT, f"{sc.path}: " + "; ".join(p.message() for p in problems))
        ev = evaluate_afd(sc)
        m = ev.result.memory
        if not m.fits:
            from planner.inputs.units import fmt_bytes
            app.abort(app.EXIT_INFEASIBLE, f"memory: an attention device needs {fmt_bytes(m.attention_device_bytes)}"
                      f" and an FFN device {fmt_bytes(m.ffn_device_bytes)}, but {sc.cluster.device.id} has "
                      f"{fmt_bytes(m.capacity_bytes)}. Add attention instances (KV) or FFN instances (experts), or "
                      "lower the batch or the precision.")
        evals.append(ev)
    if as_json:
        from planner.documents.afd import afd_document
        docs = [afd_document(ev) for ev in evals]
        app.emit_json(docs[0] if len(docs) == 1 else docs)
        return
    from planner.render.afd_view import render_afd
    for ev in evals:
        render_afd(app.out, ev.scenario, ev.result, verbose=verbose)
