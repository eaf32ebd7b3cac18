"""``moeplan evaluate``: what one plan costs, for one or several scenarios."""

from __future__ import annotations

import click

from planner.cli import app


@click.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--plan", "plan_text", help="Degrees, e.g. 'attn_tp=1,attn_dp=32,moe_ep=32,redundant_experts=32'; "
              "unnamed degrees are 1. Default: the scenario's plan.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema moeplan.evaluate/2; "
              "a list of them for several scenarios).")
@click.option("-v", "--verbose", is_flag=True, help="Show every op of the prefill and decode steps.")
@click.option("--overlap-model", type=click.Choice(["schedule", "closed-form"]), default="schedule",
              show_default=True, help="Two-batch overlap from the CP-SAT layer schedule, or the closed form "
              "max(compute, communication) + SM share that plan's search uses.")
@click.option("--export", type=click.Path(dir_okay=False), help=app.EXPORT_HELP + " One scenario only.")
@click.option("--emit", "emit_engine", type=app.EMIT_ENGINES, help=app.EMIT_HELP + " One scenario only.")
def evaluate(scenarios: tuple[str, ...], plan_text: str | None, as_json: bool, verbose: bool,
             overlap_model: str, export: str | None, emit_engine: str | None) -> None:
    """Predict memory, step time, throughput and latency of one plan for each SCENARIO.

    With several scenarios (e.g. the same model on 16 and on 64 cards) a side-by-side table with ratios follows."""
    app.check_export_path(export)
    if export and len(scenarios) > 1:
        app.abort(app.EXIT_BAD_INPUT, f"--export: got {export!r} with {len(scenarios)} scenarios; accepted: one scenario")
    if emit_engine and len(scenarios) > 1:
        app.abort(app.EXIT_BAD_INPUT, f"--emit: got {emit_engine!r} with {len(scenarios)} scenarios; accepted: one scenario")
    evals = [app.evaluate_or_abort(path, plan_text, overlap_model) for path in scenarios]
    first = evals[0]
    launch = app.launch_plan(emit_engine, lambda emit: emit.spec_from_evaluation(first.scenario, first.dims,
                                                                                 first.result))
    if as_json or export:
        from planner.analysis.evaluate import with_solver_results
        from planner.documents.evaluate import evaluation_document
        block = app.launch_document(launch)
        docs = [evaluation_document(with_solver_results(ev), launch=block if i == 0 else None)
                for i, ev in enumerate(evals)]
        app.export_document(export, docs[0])
        if as_json:
            app.emit_json(docs[0] if len(docs) == 1 else docs)
            return
    from planner.render import terminal
    for ev in evals:
        terminal.render_evaluate(app.out, ev.scenario, ev.dims, ev.result, verbose=verbose)
    if len(evals) > 1:
        app.out.print(terminal.side_by_side([(ev.scenario, ev.dims, ev.result) for ev in evals]))
    if launch:
        app.echo_launch(launch)
