"""One :class:`~planner.render.sections.Report` per document kind, dispatched on the document's ``schema``.

Pure functions of the typed documents (:mod:`planner.documents`: ``moeplan.evaluate/2``, ``plan/2``,
``schedule/1``, ``place/2``, ``compare/2``), read by attribute; a printed document (the dict ``--json`` wrote)
is read back into its model first, so a report renders only what validates against the document's schema.
Optional sections follow their optional keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planner.documents.base import Document
from planner.documents.compare import CompareDocument, CompareSide, MetricRow
from planner.documents.evaluate import EvaluateDocument
from planner.documents.place import PlaceDocument
from planner.documents.plan import PlanDeployment, PlanDocument, PlanPool
from planner.documents.registry import parse_document, schema_of
from planner.documents.schedule import ScheduleDocument
from planner.inputs.units import fmt_bytes
from planner.render import svg as svg
from planner.render import training_report as tr
from planner.render.bands import band_text
from planner.render.sections import (
    Block,
    Chart,
    Report,
    Section,
    evaluate_sections,
    key_value_section,
    memory_chart,
    num,
    placement_section,
    plan_label,
    plan_section,
    schedule_section,
    secs,
    table,
)

REJECTION_ORDER = ("divisibility", "topology", "memory", "ttft", "tpot", "pp_no_gain")


def _decode_pool(top: PlanDeployment) -> PlanPool:
    return next((p for p in top.pools if p.role in ("decode", "aggregated")), top.pools[-1])


def _chosen_section(top: PlanDeployment) -> Section:
    rows = [[p.role, p.replicas, p.devices, plan_label(p.plan), num(p.prefill_tok_per_s_per_device),
             num(p.decode_tok_per_s_per_device), secs(p.ttft_s), secs(p.tpot_s), num(p.decode_batch_per_device, 1),
             fmt_bytes(p.memory_used_bytes)] for p in top.pools]
    head = (f"{top.mode} deployment on {top.devices_used} devices: {num(top.output_tok_per_s)} output tok/s"
            f"{band_text(top.output_band)} ({num(top.output_tok_per_s_per_device)} per device), TTFT "
            f"{secs(top.ttft_s)}{band_text(top.ttft_band)}, TPOT {secs(top.tpot_s)}{band_text(top.tpot_band)}.")
    pools = table(("pool", "replicas", "devices", "plan", "prefill tok/s/dev", "decode tok/s/dev", "TTFT", "TPOT",
                   "batch/dev", "memory/dev"), rows)
    plans = [dict(p.plan) for p in top.pools]
    keys = list(dict.fromkeys(k for plan in plans for k in plan))
    degrees = table(["degree"] + [p.role for p in top.pools], [[k] + [plan.get(k, "-") for plan in plans]
                                                               for k in keys])
    return Section("Chosen plan", (head, pools, degrees))


def _top_section(doc: PlanDocument) -> Section:
    rows = []
    for i, t in enumerate(doc.top):
        pools = "; ".join(f"{p.role[0].upper()} {p.replicas} x {plan_label(p.plan)}" for p in t.pools)
        rows.append([f"{i + 1}{' (chosen)' if i == doc.chosen else ''}", t.mode, pools, t.devices_used,
                     num(t.output_tok_per_s) + band_text(t.output_band), num(t.output_tok_per_s_per_device),
                     num(t.user_tok_per_s, 1), secs(t.ttft_s) + band_text(t.ttft_band),
                     secs(t.tpot_s) + band_text(t.tpot_band)])
    return Section(f"Top {len(rows)} deployments", (table(
        ("#", "mode", "pools (replicas x plan)", "devices", "out tok/s", "tok/s/dev", "tok/s/user", "TTFT", "TPOT"),
        rows),))


def _pareto_section(doc: PlanDocument, chosen_top: PlanDeployment) -> Section:
    front = sorted(doc.pareto, key=lambda p: p.user_tok_per_s)
    pool = _decode_pool(chosen_top)
    on_front = next((i for i, p in enumerate(front) if p.plan == pool.plan), None)
    user = 1 / pool.tpot_s if pool.tpot_s else 0.0
    mark_xy = ((front[on_front].user_tok_per_s, front[on_front].decode_tok_per_s_per_device) if on_front is not None
               else (user, pool.decode_tok_per_s_per_device))
    where = "on the front" if on_front is not None else "off the front"
    labels = tuple(f"{plan_label(p.plan)}: {num(p.decode_tok_per_s_per_device)} tok/s/device, "
                   f"{num(p.user_tok_per_s, 1)} tok/s/user" for p in front)
    series = [svg.Series("Pareto front (decode layouts)",
                         tuple((p.user_tok_per_s, p.decode_tok_per_s_per_device) for p in front), labels)]
    marked = svg.Marked(mark_xy[0], mark_xy[1], f"chosen: {plan_label(pool.plan)} ({where})")
    drawn = svg.line_chart(title="Decode: throughput per device vs tokens/s per user", series=series,
                           x_label="tokens / s per user", y_label="tokens / s per device", marked=marked, y_min=0.0)
    rows = [[plan_label(p.plan) + (" (chosen)" if i == on_front else ""), num(p.decode_tok_per_s_per_device),
             num(p.user_tok_per_s, 1), secs(p.tpot_s)] for i, p in enumerate(front)]
    if on_front is None:
        rows.append([plan_label(pool.plan) + " (chosen, off the front)", num(pool.decode_tok_per_s_per_device),
                     num(user, 1), secs(pool.tpot_s)])
    data = table(("plan", "tok/s/device", "tok/s/user", "TPOT"), rows)
    return Section("Pareto front", (f"The chosen decode layout is {where}.",
                                    Chart("pareto", "Pareto front: throughput vs interactivity", drawn, data)))


def _rejected_section(doc: PlanDocument) -> Section:
    rej = doc.rejected
    keys = list(REJECTION_ORDER) + [k for k in sorted(rej) if k not in REJECTION_ORDER]
    rows = [svg.BarRow(k, (("rejected", float(rej.get(k, 0))),)) for k in keys]
    drawn = svg.stacked_bar_chart(title=f"Rejected layouts by constraint (of {doc.layouts_considered} considered)",
                                  rows=rows, value_label="layouts", width=620)
    data = table(("constraint", "rejected"), [[k, rej.get(k, 0)] for k in keys])
    return Section("Rejected candidates", (Chart("rejected", "Rejected candidates by constraint", drawn, data),))


def _solver_section(doc: PlanDocument) -> Section:
    rows = [[i + 1, s.status, num(s.objective), num(s.bound), f"{s.gap:.2%}"] for i, s in enumerate(doc.solver)]
    kept = doc.quantization_ranking_preserved
    return Section("Solver", (f"Quantization kept the ranking: {'yes' if kept else 'no'}.",
                              table(("solve", "status", "objective", "bound", "gap"), rows)))


def plan_report(doc: PlanDocument) -> Report:
    top = doc.top[doc.chosen]
    secs_ = [key_value_section("Scenario", dict(doc.scenario) | {"objective": doc.objective}),
             _chosen_section(top), _top_section(doc)]
    if doc.pareto:
        secs_.append(_pareto_section(doc, top))
    secs_ += [_rejected_section(doc), _solver_section(doc)]
    secs_ += evaluate_sections(doc.chosen_breakdown, of_chosen=True)
    return Report(f"moeplan plan: {doc.scenario.name}", doc.schema_id, tuple(secs_))


def evaluate_report(doc: EvaluateDocument) -> Report:
    return Report(f"moeplan evaluate: {doc.scenario.name}", doc.schema_id, tuple(evaluate_sections(doc)))


def schedule_report(doc: ScheduleDocument) -> Report:
    head = key_value_section("Scenario", {"scenario": doc.scenario, "plan": plan_label(doc.plan), "phase": doc.phase,
                                          "micro_batches": doc.micro_batches})
    sections = [head, plan_section(doc.plan), schedule_section(doc.layers, doc.phase, doc.micro_batches)]
    return Report(f"moeplan schedule: {doc.scenario}", doc.schema_id, tuple(sections))


def place_report(doc: PlaceDocument) -> Report:
    cfg, summ = doc.config, doc.summary
    methods = dict(summ.methods)
    overview = key_value_section("Placement summary", {"source": doc.source} | dict(cfg))
    mt = table(("method", "mean max/mean load", "worst max/mean load"),
               [[m, f"{v.mean_imbalance:.4f}", f"{v.worst_imbalance:.4f}"] for m, v in methods.items()]
               + [["lower bound", f"{summ.mean_bound_imbalance:.4f}", "-"]])
    overview = Section(overview.title, overview.blocks + (mt,))
    layers = doc.layers
    series = [svg.Series(m, tuple((float(la.layer), getattr(la.methods, m).imbalance) for la in layers))
              for m in methods]
    series.append(svg.Series("lower bound", tuple((float(la.layer), la.lower_bound_tokens / la.mean_device_tokens
                                                   if la.mean_device_tokens else 1.0) for la in layers), markers=False))
    drawn = svg.line_chart(title="Max / mean device load per MoE layer, by method", series=series,
                           x_label="MoE layer", y_label="max / mean device load")
    data = table(["layer"] + list(methods) + ["gap", "status"],
                 [[la.layer] + [f"{getattr(la.methods, m).imbalance:.4f}" for m in methods]
                  + [f"{la.gap:.2%}", la.status] for la in layers])
    blocks: list[Block] = [Chart("placement-imbalance", "Load imbalance per layer", drawn, data)]
    sections = [overview, Section("Per-layer imbalance", tuple(blocks))]
    if doc.placement.relative_load:
        sections.append(placement_section(doc.placement))
    return Report(f"moeplan place: {doc.source}", doc.schema_id, tuple(sections))


def _metric_value(v: float, unit: str) -> str:
    if unit == "s":
        return secs(v)
    if unit in ("bytes", "bytes/token"):
        return fmt_bytes(v) + ("/token" if unit == "bytes/token" else "")
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.1f}"


def _verdict(m: MetricRow) -> str:
    """'better' / 'worse' for the candidate, '-' when equal or when the metric has no better direction."""
    return "-" if m.improved is None else "better" if m.improved else "worse"


def _compare_memory(sides: list[tuple[str, CompareSide]]) -> Chart:
    bars = []
    for k, s in sides:
        pre = s.prefill_evaluate or s.evaluate
        bars += [(f"{k} prefill", pre.prefill.memory_bytes), (f"{k} decode", s.evaluate.decode.memory_bytes)]
    return memory_chart(bars)


def compare_report(doc: CompareDocument) -> Report:
    sides = [("baseline", doc.baseline), ("candidate", doc.candidate)]
    rows = [[k, s.label, s.scenario, s.mode, s.devices, "; ".join(f"{p.role}: {plan_label(p.plan)}" for p in s.pools),
             num(s.output_tok_per_s)] for k, s in sides]
    plans = Section("Compared plans", (table(("side", "label", "scenario", "mode", "devices", "plan",
                                              "output tok/s"), rows),))
    metrics = doc.metrics
    verdicts = [_verdict(m) for m in metrics]
    mtab = table(("metric", "unit", "baseline", "candidate", "candidate / baseline", "better when", "candidate is"),
                 [[m.name, m.unit, _metric_value(m.baseline, m.unit), _metric_value(m.candidate, m.unit),
                   "-" if m.ratio is None else f"{m.ratio:.3f}x", m.better, v]
                  for m, v in zip(metrics, verdicts, strict=True)])
    names = {"better": "candidate better", "worse": "candidate worse", "-": "equal or no preference"}
    bars = [svg.BarRow(m.name, ((names[v], m.ratio),)) for m, v in zip(metrics, verdicts, strict=True)
            if m.ratio is not None]
    blocks: list[Block] = [mtab]
    if bars:
        drawn = svg.stacked_bar_chart(title="Candidate / baseline per metric (dashed line: 1.0 = equal)", rows=bars,
                                      value_label="candidate / baseline", reference=1.0, width=980,
                                      colour_of=dict(zip(names.values(), ("#59a14f", "#e15759", "#bab0ac"),
                                                         strict=True)))
        ratios = table(("metric", "candidate / baseline"), [[b.label, f"{b.segments[0][1]:.3f}"] for b in bars])
        blocks.append(Chart("compare-ratios", "Metric ratios", drawn, ratios))
    sections = [plans, Section("Metrics", tuple(blocks)),
                Section("Per-device memory", ("Busiest device of each side, prefill and decode.",
                                              _compare_memory(sides)))]
    return Report(f"moeplan compare: {rows[0][1]} vs {rows[1][1]}", doc.schema_id, tuple(sections))


BUILDERS: dict[str, Callable[[Any], Report]] = {
    "moeplan.evaluate/2": evaluate_report, "moeplan.plan/2": plan_report, "moeplan.schedule/1": schedule_report,
    "moeplan.place/2": place_report, "moeplan.compare/2": compare_report,
    "moeplan.train.evaluate/1": tr.train_evaluate_report, "moeplan.train.plan/1": tr.train_plan_report,
    "moeplan.train.compare/1": tr.train_compare_report}


def build_report(doc: Document | dict[str, Any]) -> Report:
    """The report of an evaluate, plan, schedule, place or compare document (the model, or the dict ``--json``
    printed); ValueError names the schema and the accepted ones, or the keys the document's model rejects."""
    schema = schema_of(doc)
    if schema not in BUILDERS:
        raise ValueError(f"schema: got {schema!r}; accepted: {', '.join(BUILDERS)}")
    return BUILDERS[schema](parse_document(doc))
