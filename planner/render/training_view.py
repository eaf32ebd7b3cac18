"""Terminal views of the training documents (planner.documents.training): evaluate, plan and compare."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from planner.documents.training import (
    CandidateDoc,
    TrainingCompareDocument,
    TrainingEvaluateDocument,
    TrainingPlanDoc,
    TrainingPlanDocument,
    TrainingScenarioDoc,
)
from planner.inputs.units import fmt_bytes, fmt_seconds

MEMORY_PARTS = (("parameters", "parameter_bytes"), ("gradients", "gradient_bytes"),
                ("optimizer", "optimizer_bytes"), ("activations", "activation_bytes"),
                ("comm buffers", "comm_buffer_bytes"), ("reserve", "reserve_bytes"))
"""(label, StageMemory field) in stacking order."""


def plan_text(p: TrainingPlanDoc) -> str:
    """Short label: 'TP2 PP8 (interleaved_1f1b x4) EP32 DP16 mb1 zero1 rc=layernorm+moe_act a2a-overlap'."""
    sched = p.schedule + (f" x{p.vpp}" if p.vpp > 1 else "")
    parts = [f"TP{p.tp}" + ("" if p.sequence_parallel or p.tp == 1 else " (no SP)")]
    parts += [f"CP{p.cp} {p.cp_kind}"] if p.cp > 1 else []
    parts += [f"PP{p.pp} ({sched})" if p.pp > 1 else "PP1"]
    parts += [f"EP{p.ep}" + (f"xETP{p.etp}" if p.etp > 1 else "")] if p.ep > 1 or p.etp > 1 else []
    rec = p.recompute if isinstance(p.recompute, str) else "+".join(p.recompute)
    parts += [f"DP{p.dp}", f"mb{p.micro_batch}", p.sharding, f"rc={rec}"]
    parts += ["a2a-overlap"] if p.a2a_overlap else []
    parts += ["tp-comm-exposed"] if p.tp > 1 and not p.tp_comm_overlap else []
    parts += ["p2p-exposed"] if p.schedule == "interleaved_1f1b" and not p.pp_comm_overlap else []
    parts += ["alltoall-dispatcher"] if p.ep > 1 and p.dispatcher == "alltoall" else []
    return " ".join(parts)


def precision_text(sc: TrainingScenarioDoc) -> str:
    """The recipe, with the classes kept in BF16 and FP8 attention named: ``fp8_blockwise (bf16 dense_ffn)``."""
    extra = [f"bf16 {c}" for c in sc.bf16_classes] + (["fp8 attention"] if sc.fp8_attention else [])
    return f"{sc.precision} ({', '.join(extra)})" if extra else sc.precision


def _hms(s: float) -> str:
    return f"{s / 86400:.1f} days" if s >= 86400 else f"{s / 3600:.1f} h" if s >= 3600 else fmt_seconds(s)


def render_evaluate(out: Console, doc: TrainingEvaluateDocument, *, verbose: bool = False) -> None:
    sc, p = doc.scenario, doc.performance
    out.print(f"[bold]{sc.name}[/bold]: {sc.model} on {sc.devices} x {sc.device}, seq {sc.seq_tokens:,}, batch "
              f"{sc.global_batch_sequences:,} sequences, {precision_text(sc)}, {sc.optimizer}", highlight=False)
    out.print(f"plan: {plan_text(doc.plan)}", highlight=False)
    t = Table(title="Predicted step")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [("step time", fmt_seconds(p.step_s)), ("tokens / s / device", f"{p.tokens_per_s_per_device:,.0f}"),
            ("tokens / s", f"{p.tokens_per_s:,.0f}"), ("TFLOP/s / device (Megatron)", f"{p.tflop_per_s_per_device:,.1f}"),
            ("MFU (BF16 peak)", f"{p.mfu:.1%}"), ("micro-batches / pipeline", f"{p.micro_batches:,}")]
    if p.time_to_token_budget_s is not None:
        rows.append(("time to token budget", _hms(p.time_to_token_budget_s)))
    for r in rows:
        t.add_row(*r)
    out.print(t)
    _memory(out, doc)
    _time(out, doc, verbose=verbose)
    pl = doc.pipeline
    out.print(f"pipeline: {pl.method} -- {pl.note}; pipeline part {fmt_seconds(pl.pipeline_s)} (closed form "
              f"{fmt_seconds(pl.closed_form_s)}), bubble {fmt_seconds(pl.bubble_s)}, busiest rank {pl.busiest_rank}",
              highlight=False)
    if pl.slots:
        out.print(gantt_lines(doc), highlight=False)
    for c in doc.checks or []:
        err = c.step_error if c.step_error is not None else c.error
        verdict = "ok" if abs(err) <= c.tolerance else "KNOWN GAP" if c.known_gap else "OUTSIDE"
        out.print(f"check {c.metric}: predicted {c.predicted:,.4g}, measured {c.measured:,.4g}, error {err:+.1%}"
                  f"{' on the step time' if c.step_error is not None else ''} "
                  f"(tolerance {c.tolerance:.0%}, {verdict}) -- {c.source}", highlight=False)


def _memory(out: Console, doc: TrainingEvaluateDocument) -> None:
    t = Table(title="Memory per device, by pipeline rank")
    for h in ["rank"] + [label for label, _ in MEMORY_PARTS] + ["used", "capacity"]:
        t.add_column(h, justify="right")
    for m in doc.memory:
        t.add_row(str(m.rank), *[fmt_bytes(getattr(m, k)) for _, k in MEMORY_PARTS], fmt_bytes(m.used_bytes)
                  + ("" if m.fits else " (over)"), fmt_bytes(m.capacity_bytes))
    out.print(t)


def _time(out: Console, doc: TrainingEvaluateDocument, *, verbose: bool) -> None:
    t = Table(title="Step time on the busiest rank, by resource (exposed vs overlapped communication)")
    t.add_column("resource")
    t.add_column("seconds / step", justify="right")
    for k, v in doc.time_by_resource_s.items():
        t.add_row(k, fmt_seconds(v))
    out.print(t)
    ops = sorted(doc.time_by_op_s.items(), key=lambda kv: -kv[1])
    t = Table(title="Step time by op" + ("" if verbose else " (top 12; -v for all)"))
    t.add_column("op")
    t.add_column("seconds / step", justify="right")
    for k, v in ops if verbose else ops[:12]:
        t.add_row(k, fmt_seconds(v))
    out.print(t)


def gantt_lines(doc: TrainingEvaluateDocument, width: int = 100) -> str:
    """The drawn schedule as text, one row per pipeline rank (F forward, B input grad, W weight grad, # fused
    backward, X overlapped pair, . idle)."""
    from planner.render.gantt import cell_row
    from planner.render.pipeline_gantt import GLYPHS
    slots = doc.pipeline.slots or []
    span = max(s.end_s for s in slots) or 1.0
    ranks = 1 + max(s.device for s in slots)
    lines = [f"schedule ({doc.pipeline.method}, {doc.pipeline.schedule_micro_batches} micro-batches): makespan "
             f"{fmt_seconds(doc.pipeline.schedule_makespan_s or 0.0)}"]
    for d in range(ranks):
        pieces = [(s.start_s, s.end_s, GLYPHS[s.kind]) for s in slots if s.device == d]
        lines.append(f"rank {d:<3}" + cell_row(pieces, 0.0, span, width, "."))
    return "\n".join(lines)


def _candidates(title: str, rows: list[CandidateDoc], budget: bool) -> Table:
    t = Table(title=title)
    for h in ["#", "devices", "plan", "step", "tok/s/device", "MFU", "peak memory"] + (["to budget"] if budget else []):
        t.add_column(h, justify="left" if h == "plan" else "right")
    for i, c in enumerate(rows):
        t.add_row(str(i + 1), str(c.devices), plan_text(c.plan), fmt_seconds(c.step_s),
                  f"{c.tokens_per_s_per_device:,.0f}", f"{c.mfu:.1%}", fmt_bytes(c.peak_memory_bytes),
                  *([_hms(c.time_to_token_budget_s or 0.0)] if budget else []))
    return t


def render_plan(out: Console, doc: TrainingPlanDocument, *, verbose: bool = False) -> None:
    budget = doc.chosen.scenario.token_budget is not None
    out.print(f"[bold]{doc.chosen.scenario.name}[/bold]: objective {doc.objective}; {doc.method}: "
              f"{doc.layouts_considered:,} layouts considered, {doc.layouts_costed:,} costed, {doc.wall_s:.1f} s",
              highlight=False)
    out.print(_candidates(f"Top {len(doc.top)} layouts", list(doc.top), budget))
    out.print(_candidates("Pareto front: tokens/s against devices", list(doc.pareto), budget))
    out.print("rejected: " + (", ".join(f"{k} {v:,}" for k, v in sorted(doc.rejected.items())) or "none"),
              highlight=False)
    out.print("\n[bold]Chosen layout[/bold]")
    render_evaluate(out, doc.chosen, verbose=verbose)


def render_compare(out: Console, doc: TrainingCompareDocument) -> None:
    out.print(f"baseline: {doc.baseline_label}: {plan_text(doc.baseline.plan)}", highlight=False)
    out.print(f"candidate: {doc.candidate_label}: {plan_text(doc.candidate.plan)}", highlight=False)
    t = Table(title="Candidate vs baseline")
    for h in ("metric", "baseline", "candidate", "candidate / baseline", "better when"):
        t.add_column(h, justify="left" if h == "metric" else "right")
    for m in doc.metrics:
        fmt = (fmt_seconds if m.unit == "s" else fmt_bytes if m.unit == "bytes" else
               (lambda v: f"{v:.1%}") if m.unit == "fraction" else (lambda v: f"{v:,.0f}"))
        t.add_row(m.name, fmt(m.baseline), fmt(m.candidate), "-" if m.ratio is None else f"{m.ratio:.3f}x", m.better)
    out.print(t)
