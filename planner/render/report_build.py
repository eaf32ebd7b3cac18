"""One :class:`~planner.render.sections.Report` per document kind, dispatched on ``doc["schema"]``.

Pure functions of the JSON documents (``moeplan.evaluate/2``, ``plan/1``, ``schedule/1``, ``place/1``,
``compare/1``); sections whose keys a document lacks are left out, so older documents still render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planner.inputs.units import fmt_bytes
from planner.render import svg as svg
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


def _decode_pool(top: dict[str, Any]) -> dict[str, Any]:
    return next((p for p in top["pools"] if p["role"] in ("decode", "aggregated")), top["pools"][-1])


def _chosen_section(top: dict[str, Any]) -> Section:
    rows = [[p["role"], p["replicas"], p["devices"], plan_label(p["plan"]), num(p["prefill_tok_per_s_per_device"]),
             num(p["decode_tok_per_s_per_device"]), secs(p["ttft_s"]), secs(p["tpot_s"]),
             num(p["decode_batch_per_device"], 1), fmt_bytes(p["memory_used_bytes"])] for p in top["pools"]]
    head = (f"{top['mode']} deployment on {top['devices_used']} devices: {num(top['output_tok_per_s'])} output tok/s "
            f"({num(top['output_tok_per_s_per_device'])} per device), TTFT {secs(top['ttft_s'])}, "
            f"TPOT {secs(top['tpot_s'])}.")
    pools = table(("pool", "replicas", "devices", "plan", "prefill tok/s/dev", "decode tok/s/dev", "TTFT", "TPOT",
                   "batch/dev", "memory/dev"), rows)
    keys = list(dict.fromkeys(k for p in top["pools"] for k in p["plan"]))
    degrees = table(["degree"] + [p["role"] for p in top["pools"]],
                    [[k] + [p["plan"].get(k, "-") for p in top["pools"]] for k in keys])
    return Section("Chosen plan", (head, pools, degrees))


def _top_section(doc: dict[str, Any], chosen: int) -> Section:
    rows = []
    for i, t in enumerate(doc["top"]):
        pools = "; ".join(f"{p['role'][0].upper()} {p['replicas']} x {plan_label(p['plan'])}" for p in t["pools"])
        rows.append([f"{i + 1}{' (chosen)' if i == chosen else ''}", t["mode"], pools, t["devices_used"],
                     num(t["output_tok_per_s"]), num(t["output_tok_per_s_per_device"]), num(t["user_tok_per_s"], 1),
                     secs(t["ttft_s"]), secs(t["tpot_s"])])
    return Section(f"Top {len(rows)} deployments", (table(
        ("#", "mode", "pools (replicas x plan)", "devices", "out tok/s", "tok/s/dev", "tok/s/user", "TTFT", "TPOT"),
        rows),))


def _pareto_section(doc: dict[str, Any], chosen_top: dict[str, Any]) -> Section:
    front = sorted(doc["pareto"], key=lambda p: p["user_tok_per_s"])
    pool = _decode_pool(chosen_top)
    on_front = next((i for i, p in enumerate(front) if p.get("plan") == pool["plan"]), None)
    user = 1 / pool["tpot_s"] if pool.get("tpot_s") else 0.0
    mark_xy = ((front[on_front]["user_tok_per_s"], front[on_front]["decode_tok_per_s_per_device"]) if on_front is not None
               else (user, pool["decode_tok_per_s_per_device"]))
    where = "on the front" if on_front is not None else "off the front"
    labels = tuple(f"{plan_label(p['plan'])}: {num(p['decode_tok_per_s_per_device'])} tok/s/device, "
                   f"{num(p['user_tok_per_s'], 1)} tok/s/user" for p in front)
    series = [svg.Series("Pareto front (decode layouts)",
                         tuple((p["user_tok_per_s"], p["decode_tok_per_s_per_device"]) for p in front), labels)]
    marked = svg.Marked(mark_xy[0], mark_xy[1], f"chosen: {plan_label(pool['plan'])} ({where})")
    drawn = svg.line_chart(title="Decode: throughput per device vs tokens/s per user", series=series,
                           x_label="tokens / s per user", y_label="tokens / s per device", marked=marked, y_min=0.0)
    rows = [[plan_label(p["plan"]) + (" (chosen)" if i == on_front else ""), num(p["decode_tok_per_s_per_device"]),
             num(p["user_tok_per_s"], 1), secs(p["tpot_s"])] for i, p in enumerate(front)]
    if on_front is None:
        rows.append([plan_label(pool["plan"]) + " (chosen, off the front)", num(pool["decode_tok_per_s_per_device"]),
                     num(user, 1), secs(pool.get("tpot_s"))])
    data = table(("plan", "tok/s/device", "tok/s/user", "TPOT"), rows)
    return Section("Pareto front", (f"The chosen decode layout is {where}.",
                                    Chart("pareto", "Pareto front: throughput vs interactivity", drawn, data)))


def _rejected_section(doc: dict[str, Any]) -> Section:
    rej = doc.get("rejected", {})
    keys = list(REJECTION_ORDER) + [k for k in sorted(rej) if k not in REJECTION_ORDER]
    rows = [svg.BarRow(k, (("rejected", float(rej.get(k, 0))),)) for k in keys]
    drawn = svg.stacked_bar_chart(title=f"Rejected layouts by constraint (of {doc.get('layouts_considered', '-')} "
                                  "considered)", rows=rows, value_label="layouts", width=620)
    data = table(("constraint", "rejected"), [[k, rej.get(k, 0)] for k in keys])
    return Section("Rejected candidates", (Chart("rejected", "Rejected candidates by constraint", drawn, data),))


def _solver_section(doc: dict[str, Any]) -> Section:
    rows = [[i + 1, s["status"], num(s["objective"]), num(s["bound"]), f"{s['gap']:.2%}"]
            for i, s in enumerate(doc.get("solver", []))]
    kept = doc.get("quantization_ranking_preserved")
    return Section("Solver", (f"Quantization kept the ranking: {'yes' if kept else 'no' if kept is not None else '-'}.",
                              table(("solve", "status", "objective", "bound", "gap"), rows)))


def plan_report(doc: dict[str, Any]) -> Report:
    chosen = doc.get("chosen", 0)
    top = doc["top"][chosen]
    secs_ = [key_value_section("Scenario", doc["scenario"] | {"objective": doc.get("objective", "-")}),
             _chosen_section(top), _top_section(doc, chosen)]
    if doc.get("pareto"):
        secs_.append(_pareto_section(doc, top))
    secs_ += [_rejected_section(doc), _solver_section(doc)]
    if doc.get("chosen_breakdown"):
        secs_ += evaluate_sections(doc["chosen_breakdown"], of_chosen=True)
    return Report(f"moeplan plan: {doc['scenario']['name']}", doc["schema"], tuple(secs_))


def evaluate_report(doc: dict[str, Any]) -> Report:
    return Report(f"moeplan evaluate: {doc['scenario']['name']}", doc["schema"], tuple(evaluate_sections(doc)))


def schedule_report(doc: dict[str, Any]) -> Report:
    name = doc["scenario"] if isinstance(doc["scenario"], str) else doc["scenario"].get("name", "")
    head = key_value_section("Scenario", {"scenario": name, "plan": plan_label(doc["plan"]), "phase": doc["phase"],
                                          "micro_batches": doc["micro_batches"]})
    sections = [head, plan_section(doc["plan"]), schedule_section(doc["layers"], doc["phase"], doc["micro_batches"])]
    return Report(f"moeplan schedule: {name}", doc["schema"], tuple(sections))


def place_report(doc: dict[str, Any]) -> Report:
    cfg, summ = doc["config"], doc["summary"]
    methods = list(summ["methods"])
    overview = key_value_section("Placement summary", {"source": doc.get("source", "-")} | cfg)
    mt = table(("method", "mean max/mean load", "worst max/mean load"),
               [[m, f"{v['mean_imbalance']:.4f}", f"{v['worst_imbalance']:.4f}"] for m, v in summ["methods"].items()]
               + [["lower bound", f"{summ.get('mean_bound_imbalance', 0.0):.4f}", "-"]])
    overview = Section(overview.title, overview.blocks + (mt,))
    layers = doc["layers"]
    series = [svg.Series(m, tuple((float(la["layer"]), la["methods"][m]["imbalance"]) for la in layers))
              for m in methods]
    series.append(svg.Series("lower bound", tuple((float(la["layer"]), la["lower_bound_tokens"] / la["mean_device_tokens"]
                                                   if la["mean_device_tokens"] else 1.0) for la in layers), markers=False))
    drawn = svg.line_chart(title="Max / mean device load per MoE layer, by method", series=series,
                           x_label="MoE layer", y_label="max / mean device load")
    data = table(["layer"] + methods + ["gap", "status"],
                 [[la["layer"]] + [f"{la['methods'][m]['imbalance']:.4f}" for m in methods]
                  + [f"{la['gap']:.2%}", la["status"]] for la in layers])
    blocks: list[Block] = [Chart("placement-imbalance", "Load imbalance per layer", drawn, data)]
    sections = [overview, Section("Per-layer imbalance", tuple(blocks))]
    if doc.get("placement") and doc["placement"].get("relative_load"):
        sections.append(placement_section(doc["placement"]))
    return Report(f"moeplan place: {doc.get('source', '')}", doc["schema"], tuple(sections))


def _metric_value(v: Any, unit: str) -> str:
    if not isinstance(v, int | float):
        return str(v)
    if unit == "s":
        return secs(v)
    if unit in ("bytes", "bytes/token"):
        return fmt_bytes(v) + ("/token" if unit == "bytes/token" else "")
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.1f}"


def _verdict(m: dict[str, Any]) -> str:
    """'better' / 'worse' for the candidate, '-' when equal or when the metric has no better direction."""
    improved = m.get("improved")
    r = m.get("ratio")
    if improved is None and r is not None and r != 1 and m.get("better") in ("higher", "lower"):
        improved = (r > 1) == (m["better"] == "higher")
    return "-" if improved is None else "better" if improved else "worse"


def _compare_memory(sides: list[tuple[str, dict[str, Any]]]) -> Chart:
    bars = []
    for k, s in sides:
        pre = s.get("prefill_evaluate") or s["evaluate"]
        bars += [(f"{k} prefill", pre["prefill"]["memory_bytes"]), (f"{k} decode", s["evaluate"]["decode"]["memory_bytes"])]
    return memory_chart(bars)


def compare_report(doc: dict[str, Any]) -> Report:
    sides = [(k, doc[k]) for k in ("baseline", "candidate")]
    rows = [[k, s.get("label", k), s.get("scenario", "-"), s.get("mode", "-"), s.get("devices", "-"),
             "; ".join(f"{p['role']}: {plan_label(p['plan'])}" for p in s.get("pools", []))
             or plan_label(s.get("plan") or s["evaluate"]["plan"]), num(s.get("output_tok_per_s"))] for k, s in sides]
    plans = Section("Compared plans", (table(("side", "label", "scenario", "mode", "devices", "plan",
                                              "output tok/s"), rows),))
    metrics = doc.get("metrics", [])
    verdicts = [_verdict(m) for m in metrics]
    mtab = table(("metric", "unit", "baseline", "candidate", "candidate / baseline", "better when", "candidate is"),
                 [[m["name"], m.get("unit", ""), _metric_value(m["baseline"], m.get("unit", "")),
                   _metric_value(m["candidate"], m.get("unit", "")),
                   "-" if m.get("ratio") is None else f"{m['ratio']:.3f}x", m.get("better", "-"), v]
                  for m, v in zip(metrics, verdicts, strict=True)])
    names = {"better": "candidate better", "worse": "candidate worse", "-": "equal or no preference"}
    bars = [svg.BarRow(m["name"], ((names[v], m["ratio"]),)) for m, v in zip(metrics, verdicts, strict=True)
            if m.get("ratio") is not None]
    blocks: list[Block] = [mtab]
    if bars:
        drawn = svg.stacked_bar_chart(title="Candidate / baseline per metric (dashed line: 1.0 = equal)", rows=bars,
                                      value_label="candidate / baseline", reference=1.0, width=980,
                                      colour_of={names["better"]: "#59a14f", names["worse"]: "#e15759",
                                                 names["-"]: "#bab0ac"})
        ratios = table(("metric", "candidate / baseline"), [[b.label, f"{b.segments[0][1]:.3f}"] for b in bars])
        blocks.append(Chart("compare-ratios", "Metric ratios", drawn, ratios))
    sections = [plans, Section("Metrics", tuple(blocks)),
                Section("Per-device memory", ("Busiest device of each side, prefill and decode.",
                                              _compare_memory(sides)))]
    return Report(f"moeplan compare: {rows[0][1]} vs {rows[1][1]}", doc["schema"], tuple(sections))


BUILDERS: dict[str, Callable[[dict[str, Any]], Report]] = {
    "moeplan.evaluate/2": evaluate_report, "moeplan.plan/2": plan_report, "moeplan.schedule/1": schedule_report,
    "moeplan.place/2": place_report, "moeplan.compare/2": compare_report}


def build_report(doc: dict[str, Any]) -> Report:
    """The report of any moeplan document; ValueError names the schema and the accepted ones."""
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema not in BUILDERS:
        raise ValueError(f"schema: got {schema!r}; accepted: {', '.join(BUILDERS)}")
    return BUILDERS[schema](doc)
