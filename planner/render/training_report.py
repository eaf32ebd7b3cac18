"""HTML / Markdown reports of the training documents: memory per pipeline rank as stacked bars, step time by
resource and by op, the pipeline Gantt chart, the plan's top layouts and Pareto front, compare metrics."""

from __future__ import annotations

from planner.documents.training import TrainingCompareDocument, TrainingEvaluateDocument, TrainingPlanDocument
from planner.inputs.units import fmt_bytes
from planner.render import svg
from planner.render.sections import Block, Chart, Report, Section, num, secs, table
from planner.render.training_view import MEMORY_PARTS, plan_text

GIB = 2.0**30
SLOT_NAMES = {"F": "forward", "B": "input-gradient backward", "W": "weight-gradient backward",
              "BW": "full backward", "FB": "overlapped F&B", "FBW": "overlapped F&B"}


def _summary(doc: TrainingEvaluateDocument) -> Section:
    p, sc = doc.performance, doc.scenario
    rows = [["model", sc.model], ["devices", f"{sc.devices} x {sc.device}"], ["plan", plan_text(doc.plan)],
            ["step time", secs(p.step_s)], ["tokens / s / device", num(p.tokens_per_s_per_device)],
            ["TFLOP/s / device (Megatron counting)", num(p.tflop_per_s_per_device, 1)], ["MFU", f"{p.mfu:.1%}"],
            ["micro-batches", p.micro_batches]]
    if p.time_to_token_budget_s is not None:
        rows.append(["time to token budget", secs(p.time_to_token_budget_s)])
    return Section("Predicted step", (table(("metric", "value"), rows),))


def _memory(doc: TrainingEvaluateDocument) -> Section:
    rows = [svg.BarRow(f"rank {m.rank}", tuple((label, getattr(m, key)) for label, key in MEMORY_PARTS))
            for m in doc.memory]
    cap = max(m.capacity_bytes for m in doc.memory) / GIB
    drawn = svg.stacked_bar_chart(title="Memory per device by pipeline rank (GiB; dashed: capacity)", rows=rows,
                                  value_label="GiB per device", scale=GIB, reference=cap)
    data = table(["rank"] + [label for label, _ in MEMORY_PARTS] + ["used"],
                 [[m.rank] + [fmt_bytes(getattr(m, k)) for _, k in MEMORY_PARTS] + [fmt_bytes(m.used_bytes)]
                  for m in doc.memory])
    return Section("Memory per pipeline stage", (Chart("train-memory", "Memory per stage", drawn, data),))


def _time(doc: TrainingEvaluateDocument) -> Section:
    res = doc.time_by_resource_s
    order = [k for k in ("compute", "exposed_comm", "overlapped_comm", "bubble", "dp_exposed", "optimizer") if k in res]
    drawn = svg.stacked_bar_chart(title="Step time on the busiest rank by resource (s)",
                                  rows=[svg.BarRow("step", tuple((k, res[k]) for k in order))], value_label="s")
    data = table(("resource", "seconds"), [[k, secs(v)] for k, v in res.items()])
    ops = sorted(doc.time_by_op_s.items(), key=lambda kv: -kv[1])
    blocks: list[Block] = [Chart("train-resources", "Time by resource", drawn, data),
                           "Overlapped communication runs beside compute (hidden); exposed communication adds to the "
                           "step. dp_total is the data-parallel traffic before overlap.",
                           table(("op", "seconds / step"), [[k, secs(v)] for k, v in ops])]
    return Section("Step time", tuple(blocks))


def _pipeline(doc: TrainingEvaluateDocument) -> Section:
    pl = doc.pipeline
    text = (f"{pl.method}: {pl.note}. Pipeline part {secs(pl.pipeline_s)} (closed form {secs(pl.closed_form_s)}), "
            f"bubble {secs(pl.bubble_s)}, busiest rank {pl.busiest_rank}.")
    blocks: list[Block] = [text, table(("chunk", "seconds"), [[k, secs(v)] for k, v in pl.chunk])]
    if pl.slots:
        rows = [f"rank {d}" for d in range(1 + max(s.device for s in pl.slots))]
        bars = [svg.GanttBar(row=f"rank {s.device}", start_s=s.start_s, end_s=s.end_s, category=SLOT_NAMES[s.kind],
                             label=f"{s.kind} mb {s.micro_batch} chunk {s.chunk}") for s in pl.slots]
        span = max(s.end_s for s in pl.slots)
        drawn = svg.gantt_chart(title="Pipeline schedule (one row per rank)", rows=rows, bars=bars, span_s=span)
        data = table(("rank", "slots", "busy"), [[r, sum(1 for b in bars if b.row == r),
                                                  secs(sum(b.end_s - b.start_s for b in bars if b.row == r))]
                                                 for r in rows])
        blocks.append(Chart("train-gantt", "Pipeline Gantt", drawn, data))
    return Section("Pipeline schedule", tuple(blocks))


def _checks(doc: TrainingEvaluateDocument) -> list[Section]:
    if not doc.checks:
        return []
    rows = [[c.metric, num(c.measured, 2), num(c.predicted, 2), f"{c.error:+.1%}", f"{c.tolerance:.0%}",
             c.known_gap or "-", c.source] for c in doc.checks]
    return [Section("Against the published run", (table(("metric", "measured", "predicted", "error", "tolerance",
                                                         "known gap", "source"), rows),))]


def evaluate_sections(doc: TrainingEvaluateDocument) -> list[Section]:
    return [_summary(doc), _memory(doc), _time(doc), _pipeline(doc), *_checks(doc)]


def train_evaluate_report(doc: TrainingEvaluateDocument) -> Report:
    return Report(f"moeplan evaluate (training): {doc.scenario.name}", doc.schema_id, tuple(evaluate_sections(doc)))


def _candidates(rows: list) -> object:
    return table(("#", "devices", "plan", "step", "tok/s/device", "MFU", "peak memory"),
                 [[i + 1, c.devices, plan_text(c.plan), secs(c.step_s), num(c.tokens_per_s_per_device),
                   f"{c.mfu:.1%}", fmt_bytes(c.peak_memory_bytes)] for i, c in enumerate(rows)])


def train_plan_report(doc: TrainingPlanDocument) -> Report:
    head = (f"Objective {doc.objective}; {doc.method}; {doc.layouts_considered:,} layouts considered, "
            f"{doc.layouts_costed:,} costed in {doc.wall_s:.1f} s.")
    front = list(doc.pareto)
    drawn = svg.line_chart(title="Tokens/s against devices (Pareto front)",
                           series=[svg.Series("front", tuple((float(c.devices), c.tokens_per_s) for c in front),
                                              tuple(plan_text(c.plan) for c in front))],
                           x_label="devices", y_label="tokens / s", y_min=0.0)
    rej = [svg.BarRow(k, (("rejected", float(v)),)) for k, v in sorted(doc.rejected.items())]
    blocks: list[Block] = [Chart("train-pareto", "Pareto front", drawn, _candidates(front))]  # type: ignore[arg-type]
    sections = [Section("Search", (head, _candidates(list(doc.top)))), Section("Pareto front", tuple(blocks))]  # type: ignore[arg-type]
    if rej:
        chart = svg.stacked_bar_chart(title="Rejected layouts by constraint", rows=rej, value_label="layouts",
                                      width=620)
        data = table(("constraint", "rejected"), [[k, v] for k, v in sorted(doc.rejected.items())])
        sections.append(Section("Rejected layouts", (Chart("train-rejected", "Rejections", chart, data),)))
    sections += evaluate_sections(doc.chosen)
    return Report(f"moeplan plan (training): {doc.chosen.scenario.name}", doc.schema_id, tuple(sections))


def train_compare_report(doc: TrainingCompareDocument) -> Report:
    rows = [[m.name, m.unit, num(m.baseline, 3), num(m.candidate, 3), "-" if m.ratio is None else f"{m.ratio:.3f}x",
             m.better] for m in doc.metrics]
    plans = table(("side", "label", "plan"), [["baseline", doc.baseline_label, plan_text(doc.baseline.plan)],
                                             ["candidate", doc.candidate_label, plan_text(doc.candidate.plan)]])
    sections = [Section("Compared layouts", (plans, table(("metric", "unit", "baseline", "candidate", "ratio",
                                                           "better when"), rows)))]
    mem = [svg.BarRow(f"{k} rank {m.rank}", tuple((label, getattr(m, key)) for label, key in MEMORY_PARTS))
           for k, d in (("baseline", doc.baseline), ("candidate", doc.candidate)) for m in d.memory]
    drawn = svg.stacked_bar_chart(title="Memory per device by pipeline rank (GiB)", rows=mem,
                                  value_label="GiB per device", scale=GIB)
    data = table(("bar", "used"), [[b.label, fmt_bytes(sum(v for _, v in b.segments))] for b in mem])
    sections.append(Section("Memory per stage", (Chart("train-compare-memory", "Memory per stage", drawn, data),)))
    return Report(f"moeplan compare (training): {doc.baseline_label} vs {doc.candidate_label}", doc.schema_id,
                  tuple(sections))
