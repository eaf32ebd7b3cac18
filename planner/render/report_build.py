"""One :class:`~planner.render.sections.Report` per document kind, dispatched on the document's ``schema``.

Pure functions of the typed documents (:mod:`planner.documents`: ``moeplan.evaluate/2``, ``plan/2``,
``schedule/1``, ``place/2``, ``compare/2``), read by attribute; a printed document (the dict ``--json`` wrote)
is read back into its model first, so a report renders only what validates against the document's schema.
Optional sections follow their optional keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planner.documents.afd import AfdDocument
from planner.documents.base import Document
from planner.documents.compare import CompareDocument, CompareSide, MetricRow
from planner.documents.evaluate import EvaluateDocument
from planner.documents.launch import LaunchBlock
from planner.documents.place import PlaceDocument
from planner.documents.plan import ParetoPoint, PlanDeployment, PlanDocument, PlanPool
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
    deployment_sections,
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


def _label(p: PlanPool | ParetoPoint) -> str:
    """A pool's or Pareto point's layout: its plan, or its AFD unit's label."""
    return plan_label(p.plan) if p.plan is not None else f"AFD {p.afd.label}"


def _degrees(p: PlanPool) -> dict:
    return dict(p.plan) if p.plan is not None else {k: v for k, v in dict(p.afd).items() if k != "label"}


def _decode_pool(top: PlanDeployment) -> PlanPool:
    return next((p for p in top.pools if p.role in ("decode", "aggregated")), top.pools[-1])


def _chosen_section(top: PlanDeployment) -> Section:
    rows = [[p.role, p.replicas, p.devices, _label(p), num(p.prefill_tok_per_s_per_device),
             num(p.decode_tok_per_s_per_device), secs(p.ttft_s), secs(p.tpot_s), num(p.decode_batch_per_device, 1),
             fmt_bytes(p.memory_used_bytes)] for p in top.pools]
    head = (f"{top.deployment + ': ' if top.deployment else ''}"
            f"{top.mode} deployment on {top.devices_used} devices: {num(top.output_tok_per_s)} output tok/s"
            f"{band_text(top.output_band)} ({num(top.output_tok_per_s_per_device)} per device), TTFT "
            f"{secs(top.ttft_s)}{band_text(top.ttft_band)}, TPOT {secs(top.tpot_s)}{band_text(top.tpot_band)}.")
    pools = table(("pool", "replicas", "devices", "plan", "prefill tok/s/dev", "decode tok/s/dev", "TTFT", "TPOT",
                   "batch/dev", "memory/dev"), rows)
    plans = [_degrees(p) for p in top.pools]
    keys = list(dict.fromkeys(k for plan in plans for k in plan))
    degrees = table(["degree"] + [p.role for p in top.pools], [[k] + [plan.get(k, "-") for plan in plans]
                                                               for k in keys])
    return Section("Chosen plan", (head, pools, degrees))


def _top_section(doc: PlanDocument) -> Section:
    rows = []
    for i, t in enumerate(doc.top):
        pools = "; ".join(f"{p.role[0].upper()} {p.replicas} x {_label(p)}" for p in t.pools)
        rows.append([f"{i + 1}{' (chosen)' if i == doc.chosen else ''}", t.mode, pools, t.devices_used,
                     num(t.output_tok_per_s) + band_text(t.output_band), num(t.output_tok_per_s_per_device),
                     num(t.user_tok_per_s, 1), secs(t.ttft_s) + band_text(t.ttft_band),
                     secs(t.tpot_s) + band_text(t.tpot_band)])
    strings = table(("#", "deployment (pass it to evaluate --plan)"),
                    [[i + 1, t.deployment or "-"] for i, t in enumerate(doc.top)])
    return Section(f"Top {len(rows)} deployments", (table(
        ("#", "mode", "pools (replicas x plan)", "devices", "out tok/s", "tok/s/dev", "tok/s/user", "TTFT", "TPOT"),
        rows), strings, *(doc.why or ())))


def _pareto_section(doc: PlanDocument, chosen_top: PlanDeployment) -> Section:
    front = sorted(doc.pareto, key=lambda p: p.user_tok_per_s)
    pool = _decode_pool(chosen_top)
    on_front = next((i for i, p in enumerate(front) if (p.plan, p.afd) == (pool.plan, pool.afd)), None)
    user = 1 / pool.tpot_s if pool.tpot_s else 0.0
    mark_xy = ((front[on_front].user_tok_per_s, front[on_front].decode_tok_per_s_per_device) if on_front is not None
               else (user, pool.decode_tok_per_s_per_device))
    where = "on the front" if on_front is not None else "off the front"
    labels = tuple(f"{_label(p)}: {num(p.decode_tok_per_s_per_device)} tok/s/device, "
                   f"{num(p.user_tok_per_s, 1)} tok/s/user" for p in front)
    series = [svg.Series("Pareto front (decode layouts)",
                         tuple((p.user_tok_per_s, p.decode_tok_per_s_per_device) for p in front), labels)]
    marked = svg.Marked(mark_xy[0], mark_xy[1], f"chosen: {_label(pool)} ({where})")
    drawn = svg.line_chart(title="Decode: throughput per device vs tokens/s per user", series=series,
                           x_label="tokens / s per user", y_label="tokens / s per device", marked=marked)
    rows = [[_label(p) + (" (chosen)" if i == on_front else ""), num(p.decode_tok_per_s_per_device),
             num(p.user_tok_per_s, 1), secs(p.tpot_s)] for i, p in enumerate(front)]
    if on_front is None:
        rows.append([_label(pool) + " (chosen, off the front)", num(pool.decode_tok_per_s_per_device),
                     num(user, 1), secs(pool.tpot_s)])
    data = table(("plan", "tok/s/device", "tok/s/user", "TPOT"), rows)
    why = (f"The chosen deployment's decode layout {_label(pool)} ({num(pool.decode_tok_per_s_per_device)} "
           f"tok/s per device, {num(user, 1)} tok/s per user, the red ring) is {where}. Each point is a decode "
           "layout no other beats on both axes: up is more throughput per device, right is faster tokens for each "
           f"user. The {doc.objective} objective ranks whole deployments (both pools, replicas and the rate match "
           "between them), so the chosen layout need not be the front's highest point"
           + (": with a prefill pool that binds, a faster decode layout adds nothing." if _top_binds_prefill(chosen_top)
              else "."))
    return Section("Pareto front", (why, Chart("pareto", "Pareto front: throughput vs interactivity", drawn, data)))


def _top_binds_prefill(top: PlanDeployment) -> bool:
    """Whether a disaggregated deployment's prefill pool sets its rate (what it feeds is below what decode serves)."""
    if top.mode != "disaggregated":
        return False
    return top.output_tok_per_s < top.decode_output_tok_per_s * (1 - 1e-9)


def _rejected_section(doc: PlanDocument) -> Section:
    rej = doc.rejected
    keys = list(REJECTION_ORDER) + [k for k in sorted(rej) if k not in REJECTION_ORDER]
    rows = [svg.BarRow(k, (("rejected", float(rej.get(k, 0))),)) for k in keys]
    drawn = svg.stacked_bar_chart(title=f"Rejected layouts by constraint (of {doc.layouts_considered} considered)",
                                  rows=rows, value_label="layouts", width=620)
    data = table(("constraint", "rejected"), [[k, rej.get(k, 0)] for k in keys])
    return Section("Rejected candidates", (Chart("rejected", "Rejected candidates by constraint", drawn, data),))


def _afd_section(doc: AfdDocument) -> Section:
    """The chosen AFD unit's pipeline per layer kind and micro-batch (cost_models.afd.compose_layer)."""
    a = doc.afd
    head = (f"{a.layout.label}: batch {num(a.batch)} sequences, TPOT {secs(a.tpot_s)}, "
            f"{num(a.throughput_tok_per_s_per_device)} tok/s/device; attention device "
            f"{fmt_bytes(a.memory_bytes.attention_device_bytes)}, FFN device {fmt_bytes(a.memory_bytes.ffn_device_bytes)}.")
    rows = [[c.kind, c.count, secs(c.attention_s), secs(c.a_to_f.seconds), secs(c.ffn_scale_up_s),
             secs(c.ffn_compute_s), secs(c.f_to_a.seconds), secs(c.period_s), c.bottleneck, secs(c.round_trip_s),
             secs(c.layer_s)] for c in a.layers]
    return Section("Chosen AFD unit: pipeline per layer and micro-batch", (head, table(
        ("layers", "count", "attention", "A->F", "FFN scale-up", "FFN compute", "F->A", "period", "bottleneck",
         "round trip", "layer"), rows)))


def _solver_section(doc: PlanDocument) -> Section:
    rows = [[i + 1, s.status, num(s.objective), num(s.bound), f"{s.gap:.2%}"] for i, s in enumerate(doc.solver)]
    kept = doc.quantization_ranking_preserved
    return Section("Solver", (f"Quantization kept the ranking: {'yes' if kept else 'no'}.",
                              table(("solve", "status", "objective", "bound", "gap"), rows)))


def launch_section(launch: LaunchBlock) -> Section:
    """The ``--emit`` lines: engine, what to set, notes, then one row per command (role, replica, node rank, the
    shell line and the config files it writes)."""
    intro = [f"Launch lines for {launch.engine} {launch.version} (one per role, replica and node rank)."]
    intro += [f"Set {k}: {v}." for k, v in launch.variables.items()]
    intro += [f"Note: {n}" for n in launch.notes]
    rows = [[c.role, c.replica, c.node_rank, c.node, c.shell, ", ".join(c.files) or "-"] for c in launch.commands]
    return Section("Launch commands", (*intro, table(("role", "replica", "node rank", "node", "command", "files"),
                                                     rows)))


def plan_report(doc: PlanDocument) -> Report:
    top = doc.top[doc.chosen]
    secs_ = [key_value_section("Scenario", dict(doc.scenario) | {"objective": doc.objective}),
             _chosen_section(top), _top_section(doc)]
    if doc.pareto:
        secs_.append(_pareto_section(doc, top))
    secs_ += [_rejected_section(doc), _solver_section(doc)]
    if doc.chosen_breakdown is not None:
        secs_ += deployment_sections(doc.chosen_breakdown, of_chosen=True)
    if doc.chosen_afd is not None:
        secs_.append(_afd_section(doc.chosen_afd))
    if doc.launch is not None:
        secs_.append(launch_section(doc.launch))
    return Report(f"moeplan plan: {doc.scenario.name}", doc.schema_id, tuple(secs_))


def evaluate_report(doc: EvaluateDocument) -> Report:
    secs_ = deployment_sections(doc) + ([launch_section(doc.launch)] if doc.launch is not None else [])
    return Report(f"moeplan evaluate: {doc.scenario.name}", doc.schema_id, tuple(secs_))


def schedule_report(doc: ScheduleDocument) -> Report:
    head = key_value_section("Scenario", {"scenario": doc.scenario, "plan": plan_label(doc.plan), "phase": doc.phase,
                                          "micro_batches": doc.micro_batches})
    sections = [head, plan_section(doc.plan), schedule_section(doc.layers, doc.phase, doc.micro_batches)]
    return Report(f"moeplan schedule: {doc.scenario}", doc.schema_id, tuple(sections))


def place_report(doc: PlaceDocument) -> Report:
    cfg, summ = doc.config, doc.summary
    methods = dict(summ.methods)
    named = {"scenario": doc.scenario, "plan": doc.plan} if doc.scenario else {}
    overview = key_value_section("Placement summary", named | {"source": doc.source} | dict(cfg))
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
    sections.append(_expert_arrays_section(doc))
    where = f"{doc.scenario}, plan {doc.plan}" if doc.scenario and doc.plan else doc.source
    return Report(f"moeplan place: {where}", doc.schema_id, tuple(sections))


def _expert_arrays_section(doc: PlaceDocument) -> Section:
    """Which logical experts each EP device holds, per layer (the CP-SAT placement's physical_to_logical, cut
    into the devices' consecutive slot ranges), and the replica count of every expert."""
    per = doc.config.slots_per_device
    devices = range(doc.config.num_devices)
    rows = [[la.layer] + [" ".join(str(e) for e in la.physical_to_logical[d * per:(d + 1) * per]) for d in devices]
            for la in doc.layers]
    hot = [[la.layer, " ".join(f"{e}x{n}" for e, n in enumerate(la.replica_counts) if n > 1) or "-"]
           for la in doc.layers]
    return Section("Expert-to-device arrays", (
        f"CP-SAT placement: device d holds slots {per} x d .. {per} x d + {per - 1}; each cell lists the logical "
        "experts in those slots (physical_to_logical in the JSON document).",
        table(["layer"] + [f"d{d}" for d in devices], rows),
        "Experts with more than one slot (expert x slots):", table(("layer", "replicated experts"), hot)))


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
    rows = [[k, s.label, s.scenario, s.mode, s.devices, "; ".join(f"{p.role}: {_label(p)}" for p in s.pools),
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
