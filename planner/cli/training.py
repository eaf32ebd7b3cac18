"""``evaluate``, ``plan`` and ``compare`` on training scenarios (``workload.kind: training``): the commands'
kind dispatch calls these (planner/cli/{evaluate,plan,compare}.py)."""

from __future__ import annotations

from typing import Any

from planner.cli import app


def is_training(path: str | None) -> bool:
    if path is None:
        return False
    from planner.inputs.scenario import is_training_scenario
    return is_training_scenario(path)


def load(path: str) -> Any:
    from planner.inputs.errors import ScenarioError
    from planner.inputs.training import load_training
    try:
        return load_training(path)
    except ScenarioError as e:
        app.abort(app.EXIT_BAD_INPUT, str(e))


def _dims(sc: Any, plan_text: str | None, key: str = "--plan") -> tuple[Any, Any]:
    """(dims, workload) of ``plan_text`` or the scenario's plan, checked (exit 2 on problems)."""
    from dataclasses import replace

    from planner.analysis.training import dims_problems
    from planner.inputs.errors import ScenarioError
    from planner.inputs.training import parse_training_plan
    if plan_text is not None:
        try:
            dims, rec = parse_training_plan(plan_text, sc.cluster.num_devices, key=key)
        except ScenarioError as e:
            app.abort(app.EXIT_BAD_INPUT, str(e))
        wl = replace(sc.workload, recompute=rec)
    elif sc.plan is None:
        app.abort(app.EXIT_BAD_INPUT, f"{key}: missing for {sc.path}; accepted: a plan string such as "
                  "'tp=2,pp=8,vpp=4,ep=32', or a 'plan:' mapping in the scenario")
    else:
        dims, wl = sc.plan, sc.workload
    problems = dims_problems(sc, dims, wl)
    if problems:
        app.abort(app.EXIT_BAD_INPUT, "; ".join(p.message() for p in problems))
    return dims, wl


def evaluate_or_abort(sc: Any, plan_text: str | None, key: str = "--plan") -> Any:
    from planner.analysis.training import evaluate_training
    from planner.inputs.units import fmt_bytes
    dims, wl = _dims(sc, plan_text, key)
    ev = evaluate_training(sc, dims, wl)
    worst = ev.peak_memory
    if not worst.fits:
        app.abort(app.EXIT_INFEASIBLE, f"memory: pipeline rank {worst.rank} needs {fmt_bytes(worst.used_bytes)} per "
                  f"device but {sc.cluster.device.id} has {fmt_bytes(worst.capacity_bytes)} (short by "
                  f"{fmt_bytes(worst.used_bytes - worst.capacity_bytes)}). Raise pp / ep / tp, shard the optimizer, "
                  "recompute more, or lower the micro-batch.")
    return ev


def _check_engine(engine: str) -> None:
    if engine not in app.TRAINING_ENGINES:
        app.abort(app.EXIT_BAD_INPUT, f"--emit: got {engine!r} for a training scenario; accepted: "
                  f"{', '.join(app.TRAINING_ENGINES)} (the serving engines do not train)")


def try_launch(engine: str, sc: Any, dims: Any, workload: Any) -> tuple[Any, Any]:
    """(launch plan, None) of a layout in Megatron-LM / MindSpeed-LLM, or (None, the EmitError)."""
    from planner.emit import megatron, mindspeed
    from planner.emit.types import EmitError
    build = megatron.emit if engine == "megatron" else mindspeed.emit
    try:
        return build(sc.model, workload, dims, sc.cluster), None
    except EmitError as e:
        return None, e


def launch(engine: str | None, ev: Any) -> Any:
    """Launch lines of an evaluated layout (None without --emit); exit 2 when the engine is a serving one or
    cannot express the layout."""
    if not engine:
        return None
    _check_engine(engine)
    lines, err = try_launch(engine, ev.scenario, ev.dims, ev.workload)
    if err is not None:
        app.abort(app.EXIT_BAD_INPUT, err.message())
    return lines


def _accept(engine: str | None, sc: Any) -> Any:
    """The search filter of ``plan --emit``: layouts the framework can express (None without --emit)."""
    if not engine:
        return None
    _check_engine(engine)
    return lambda dims, workload: try_launch(engine, sc, dims, workload)[1] is None


def evaluate(paths: tuple[str, ...], plan_text: str | None, as_json: bool, verbose: bool, export: str | None,
             emit_engine: str | None = None) -> None:
    from planner.documents.training import evaluate_document
    if not all(is_training(p) for p in paths):
        app.abort(app.EXIT_BAD_INPUT, "scenarios: got training and serving scenarios together; accepted: one kind "
                  "per call")
    if export and len(paths) > 1:
        app.abort(app.EXIT_BAD_INPUT, f"--export: got {export!r} with {len(paths)} scenarios; accepted: one scenario")
    if emit_engine and len(paths) > 1:
        app.abort(app.EXIT_BAD_INPUT, f"--emit: got {emit_engine!r} with {len(paths)} scenarios; accepted: one "
                  "scenario")
    evals = [evaluate_or_abort(load(p), plan_text) for p in paths]
    lines = launch(emit_engine, evals[0])
    docs = [evaluate_document(ev, launch=app.launch_document(lines) if i == 0 else None)
            for i, ev in enumerate(evals)]
    app.export_document(export, docs[0])
    if as_json:
        app.emit_json(docs[0] if len(docs) == 1 else docs)
        return
    from planner.render.training_view import render_evaluate
    for d in docs:
        render_evaluate(app.out, d, verbose=verbose)
    if lines:
        app.echo_launch(lines)


def plan(path: str, objective: str, top_k: int, as_json: bool, verbose: bool, export: str | None,
         emit_engine: str | None = None) -> None:
    from planner.analysis.training import evaluate_training
    from planner.documents.training import plan_document
    from planner.search.training import NoFeasibleTrainingPlan, search
    sc = load(path)
    if objective in ("time", "devices") and sc.token_budget is None:
        app.abort(app.EXIT_BAD_INPUT, f"workload.token_budget: missing; accepted: tokens to train on (an integer "
                  f">= 1), required by --objective {objective}")
    if objective == "devices" and sc.deadline_s is None:
        app.abort(app.EXIT_BAD_INPUT, "workload.deadline: missing; accepted: a duration such as '30 days', required "
                  "by --objective devices")
    try:
        res = search(sc, objective=objective, top_k=top_k, accept=_accept(emit_engine, sc))
    except NoFeasibleTrainingPlan as e:
        app.abort(app.EXIT_INFEASIBLE, f"no feasible training layout: {e.constraint} constraint: {e.detail}. Would "
                  "make it feasible: " + "; ".join(e.fixes))
    best = res.top[0]
    chosen = evaluate_training(best.scenario, best.dims, best.workload)
    lines = launch(emit_engine, chosen)
    doc = plan_document(res, chosen, launch=app.launch_document(lines))
    app.export_document(export, doc)
    if as_json:
        app.emit_json(doc)
        return
    from planner.render.training_view import render_plan
    render_plan(app.out, doc, verbose=verbose)
    if lines:
        app.echo_launch(lines)


def compare(path: str, baseline: str, candidate: str | None, as_json: bool, export: str | None) -> None:
    """Each side is PLAN (on SCENARIO), FILE.yaml (its plan) or FILE.yaml:PLAN; the default candidate is plan's
    best layout on SCENARIO."""
    from planner.analysis.compare import parse_side
    from planner.documents.training import compare_document

    def side(spec: str, key: str) -> Any:
        other, text = parse_side(spec)
        sc = load(other) if other else load(path)
        return evaluate_or_abort(sc, text, key)

    base = side(baseline, "--baseline")
    if candidate:
        cand = side(candidate, "--candidate")
    else:
        from planner.analysis.training import evaluate_training
        from planner.search.training import NoFeasibleTrainingPlan, search
        try:
            best = search(load(path), top_k=1).top[0]
        except NoFeasibleTrainingPlan as e:
            app.abort(app.EXIT_INFEASIBLE, f"--candidate: no plan to default to ({e.constraint}: {e.detail}); pass one")
        cand = evaluate_training(best.scenario, best.dims, best.workload)
    doc = compare_document(base, cand, (f"baseline: {baseline}", f"candidate: {candidate or 'plan best'}"))
    app.export_document(export, doc)
    if as_json:
        app.emit_json(doc)
        return
    from planner.render.training_view import render_compare
    render_compare(app.out, doc)
