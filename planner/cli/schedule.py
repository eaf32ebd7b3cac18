"""``moeplan schedule``: the CP-SAT overlap schedule of one MoE layer and one dense layer."""

from __future__ import annotations

import click

from planner.cli import app


@click.command()
@click.argument("scenario", type=app.SafePath(dir_okay=False))
@click.option("--plan", "plan_text", help="A plan or a deployment as plan prints it (default: the scenario's); "
              "of a deployment, --phase picks the pool: the prefill pool's prefill or the decode pool's decode.")
@click.option("--micro-batches", type=click.IntRange(1, 4),
              help="Micro-batches each layer is split into (default: the plan's; two-batch overlap: 2).")
@click.option("--phase", type=click.Choice(["decode", "prefill"]), default="decode", show_default=True,
              help="decode: at the batch evaluate chooses; prefill: at the scenario's prefill chunk.")
@app.time_limit_option(0.05)
@click.option("--width", type=click.IntRange(40, 300), default=100, show_default=True, help="Gantt chart width.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as JSON (schema moeplan.schedule/1).")
@click.option("--export", type=app.SafePath(dir_okay=False), help=app.EXPORT_HELP)
@app.force_option
def schedule(scenario: str, plan_text: str | None, micro_batches: int | None, phase: str, time_limit: float | None,
             width: int, as_json: bool, export: str | None) -> None:
    """CP-SAT overlap schedule of one MoE layer and one dense layer: timeline, makespan, bottleneck."""
    from planner.analysis.schedules import layer_schedules
    from planner.cpsat import budget
    from planner.documents.limits import solve_limits
    from planner.documents.schedule import schedule_command_document
    from planner.render.gantt import gantt_text
    app.check_export_path(export)
    ev = app.evaluate_or_abort(scenario, plan_text, "closed-form", role=phase)
    sc, dims = ev.scenario, ev.dims
    if micro_batches is None:
        micro_batches = dims.micro_batches
    # the batch evaluate chooses for this plan (at least one sequence per attention-TP group)
    batch = max(ev.result.decode_batch_per_device, 1.0 / dims.attn_tp) if phase == "decode" else None
    spend = budget.SolveBudget(wall_s=time_limit)
    with budget.using(spend), app.progress("solving layer schedules", as_json):
        schedules = layer_schedules(sc, dims, phase=phase, micro_batches=micro_batches, decode_batch=batch)
    doc = schedule_command_document(sc.name, dims, phase, micro_batches, schedules, limits=solve_limits(spend),
                                    decode_batch_per_device=batch)
    app.export_document(export, doc)
    if as_json:
        app.emit_json(doc)
        return
    app.out.print(f"[b]{sc.name}[/b]: {phase}, {micro_batches} micro-batches, plan {dims.label()}")
    if batch is not None:
        app.out.print(f"decode batch: {batch:,.1f} sequences per device ({batch * dims.attn_tp:,.1f} per attention "
                      f"rank), the one evaluate chooses for this plan (set by {ev.result.decode_batch_limit})",
                      highlight=False)
    for kind, sch in schedules.items():
        app.out.print(f"\n[b]{kind} layer[/b]")
        app.out.print(gantt_text(sch, width=width), highlight=False, markup=False)
    from planner.render.plan_view import limit_lines
    for line in limit_lines(doc.solve_limits):
        app.out.print(line, highlight=False, markup=False)
