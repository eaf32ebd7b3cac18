"""Report sections shared by the HTML and Markdown exports, built from the versioned JSON documents.

A :class:`Report` is a list of titled :class:`Section` s; each holds paragraphs, :class:`Table` s and
:class:`Chart` s. A chart carries its inline SVG (for HTML) and the same numbers as a table (for Markdown),
so both formats say the same thing. Everything here is a pure function of the document dict; a section whose
key is absent from the document is left out. This module builds the sections of an evaluate document (also
used for the chosen plan of ``plan`` and both sides of ``compare``); :mod:`planner.render.report_build` assembles
the report of each document kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.inputs.units import fmt_bytes, fmt_seconds
from planner.render import svg as svg
from planner.render.gantt import LEGEND, symbol

GIB = 2.0**30
US = 1e-6

MEMORY_SEGMENTS = (("attention weights", "attention_weight_bytes"), ("dense FFN weights", "dense_ffn_weight_bytes"),
                   ("shared expert weights", "shared_expert_weight_bytes"),
                   ("routed expert weights", "routed_expert_weight_bytes"), ("router weights", "router_weight_bytes"),
                   ("embedding weights", "embedding_weight_bytes"), ("MTP weights", "mtp_weight_bytes"),
                   ("KV cache", "kv_cache_bytes"),
                   ("activations", "activation_bytes"), ("comm buffers", "comm_buffer_bytes"),
                   ("runtime reserve", "runtime_reserve_bytes"), ("free", "free_bytes"))
"""(legend name, key of an evaluate document's ``memory_bytes``) in stacking order."""

EXPOSED, HIDDEN, OVERHEAD = "comm exposed", "comm overlapped (hidden)", "overlap overhead / idle"
CATEGORY_COLOURS = dict(zip(
    ("attention", "norm", "router + top-k", "routed experts", "shared expert", "dense FFN", "embedding + LM head",
     "dispatch", "combine", "TP all-reduce", EXPOSED, HIDDEN, OVERHEAD, "other"),
    ("#4e79a7", "#bab0ac", "#edc948", "#59a14f", "#76b7b2", "#9c755f", "#b07aa1", "#f28e2b", "#e15759", "#ff9da7",
     "#d62728", "#a0cbe8", "#dddddd", "#86bcb6"), strict=True))
"""One colour per op category, the same in the layer-time bars and the Gantt charts."""
MEMORY_COLOURS = {name: c for (name, _), c in zip(MEMORY_SEGMENTS, svg.PALETTE, strict=False)} | {"free": "#e8e8e8"}


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Chart:
    chart_id: str
    """Stable ``data-chart`` attribute (``pareto``, ``memory``, ``gantt-moe`` ...)."""
    title: str
    svg: str
    table: Table
    """The chart's numbers, shown as a table in Markdown."""


Block = Table | Chart | str


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    schema: str
    sections: tuple[Section, ...]


def table(headers: list[str] | tuple[str, ...], rows: list[list[Any]] | list[tuple[Any, ...]]) -> Table:
    return Table(tuple(headers), tuple(tuple(str(c) for c in r) for r in rows))


def num(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return f"{v:,.{digits}f}"


def secs(v: Any) -> str:
    return "-" if v is None else fmt_seconds(float(v))


def plan_label(plan: dict[str, Any]) -> str:
    """Short label of a plan dict: 'TP1xDP16 EP16 +16R TBO'."""
    g = plan.get
    parts = [f"TP{g('attn_tp', 1)}xDP{g('attn_dp', 1)}", f"EP{g('moe_ep', 1)}"
             + (f"xTP{g('moe_tp')}" if g("moe_tp", 1) > 1 else "")]
    parts += [f"denseTP{g('dense_tp')}"] if g("dense_tp", 1) > 1 else []
    parts += [f"PP{g('pp')}"] if g("pp", 1) > 1 else []
    parts += [f"+{g('redundant_experts')}R"] if g("redundant_experts", 0) else []
    parts += ["TBO"] if g("overlap", "none") not in ("none", None) else []
    return " ".join(parts)


def op_group(name: str) -> str:
    """Category of an op name, the same words as the terminal Gantt legend."""
    if name.startswith(("attn.", "moe.", "ffn.")):
        return LEGEND.get(symbol(name), "other")
    return "embedding + LM head" if name.startswith(("embed.", "head.")) else "other"


def key_value_section(title: str, data: dict[str, Any]) -> Section:
    rows = [[k, f"{v:.6g}" if isinstance(v, float) else v] for k, v in data.items() if not isinstance(v, dict | list)]
    return Section(title, (table(("key", "value"), rows),))


def plan_section(plan: dict[str, Any], title: str = "Plan degrees") -> Section:
    return Section(title, (plan_label(plan), table(("degree", "value"), [[k, v] for k, v in plan.items()])))


def summary_section(doc: dict[str, Any]) -> Section:
    pf, dc, ag, slo = doc["prefill"], doc["decode"], doc.get("aggregated", {}), doc.get("slo", {})

    def met(flag: Any, limit: Any) -> str:
        return "" if flag is None else f" ({'meets' if flag else 'misses'} SLO {secs(limit)})"

    rows = [["prefill tokens / s / device", num(pf["throughput_tok_per_s_per_device"])],
            ["TTFT", secs(pf["ttft_s"]) + met(slo.get("ttft_met"), slo.get("ttft_s"))],
            ["decode tokens / s / device", num(dc["throughput_tok_per_s_per_device"])],
            ["TPOT", secs(dc["tpot_s"]) + met(slo.get("tpot_met"), slo.get("tpot_s"))],
            ["decode sequences / device", f"{num(dc['sequences_per_device'], 1)} (set by {dc.get('batch_limit', '-')})"],
            ["aggregated output tokens / s / device", num(ag.get("output_tok_per_s_per_device"))],
            ["aggregated tokens / s / user", num(ag.get("user_tok_per_s"), 1)],
            ["static memory / device", fmt_bytes(dc["memory_bytes"]["static_bytes"])]]
    return Section("Predicted performance", (table(("metric", "value"), rows),))


def memory_chart(bars: list[tuple[str, dict[str, float]]], chart_id: str = "memory") -> Chart:
    """Stacked per-device memory bars (GiB) with the device capacity as a dashed line."""
    rows = [svg.BarRow(label, tuple((name, m.get(key, 0.0)) for name, key in MEMORY_SEGMENTS)) for label, m in bars]
    cap = max(m.get("capacity_bytes", 0.0) for _, m in bars) / GIB
    title = "Per-device memory by use (GiB; dashed line: device capacity)"
    drawn = svg.stacked_bar_chart(title=title, rows=rows, value_label="GiB per device", scale=GIB,
                                  reference=cap or None, colour_of=MEMORY_COLOURS)
    keys = MEMORY_SEGMENTS + (("used", "used_bytes"), ("capacity", "capacity_bytes"))
    data = table(["item"] + [label for label, _ in bars], [[name] + [fmt_bytes(m.get(key, 0.0)) for _, m in bars]
                                                          for name, key in keys])
    return Chart(chart_id, "Per-device memory", drawn, data)


def memory_section(doc: dict[str, Any]) -> Section:
    chart = memory_chart([(ph, doc[ph]["memory_bytes"]) for ph in ("prefill", "decode")])
    return Section("Per-device memory", ("Busiest device: weights by kind, KV cache, activations, buffers and "
                                         "free memory, for the prefill and the decode phase.", chart))


def _layer_rows(layer: dict[str, Any]) -> list[svg.BarRow]:
    groups: dict[str, float] = {}
    for o in layer.get("ops", []):
        if o.get("kind") != "comm":
            g = op_group(o["name"])
            groups[g] = groups.get(g, 0.0) + o["seconds"]
    exposed = layer.get("exposed_comm_s", 0.0)
    rest = max(0.0, layer["layer_s"] - layer.get("compute_s", 0.0) - exposed)
    name = f"{layer['kind']} x{layer.get('count', 1)}"
    rows = [svg.BarRow(f"{name} time", tuple(groups.items()) + ((EXPOSED, exposed), (OVERHEAD, rest)))]
    if layer.get("comm_s", 0.0) > 0:
        rows.append(svg.BarRow(f"{name} comm", ((EXPOSED, exposed), (HIDDEN, layer.get("overlapped_comm_s", 0.0)))))
    return rows


def layer_time_section(doc: dict[str, Any]) -> Section:
    blocks: list[Block] = ["Time of one layer of each kind, by op category (µs). The 'time' bar adds up to the "
                           "layer's time; the 'comm' bar splits its communication into exposed and overlapped."]
    for phase in ("prefill", "decode"):
        layers = doc[phase]["step"]["layers"]
        rows = [r for layer in layers for r in _layer_rows(layer)]
        title = f"{phase.capitalize()}: time per layer by op, exposed vs overlapped communication (µs)"
        drawn = svg.stacked_bar_chart(title=title, rows=rows, value_label="µs per layer", scale=US,
                                      colour_of=CATEGORY_COLOURS)
        data = table(("layer", "x layers", "compute", "comm", "comm exposed", "comm overlapped", "layer time"),
                     [[la["kind"], la.get("count", 1), secs(la.get("compute_s")), secs(la.get("comm_s")),
                       secs(la.get("exposed_comm_s")), secs(la.get("overlapped_comm_s")), secs(la["layer_s"])]
                      for la in layers])
        blocks.append(Chart(f"layer-time-{phase}", f"Per-layer time ({phase})", drawn, data))
    return Section("Per-layer time", tuple(blocks))


def schedule_section(layers: dict[str, Any], phase: str, micro_batches: int) -> Section:
    """Overlap schedule: figures per layer kind and a Gantt chart of one steady-state period each."""
    summary = table(("layer", "period", "no overlap", "speedup", "one layer", "busiest resource", "exposed comm",
                     "solver"),
                    [[k, secs(s["makespan_s"]), secs(s["no_overlap_s"]), f"{s['speedup']:.2f}x",
                      secs(s["layer_latency_s"]), s["busiest_resource"], secs(s["exposed_comm_s"]),
                      s.get("solver", {}).get("status", "-")] for k, s in layers.items()])
    blocks: list[Block] = [f"{phase} phase, {micro_batches} micro-batch(es); one period of the steady state "
                           "(ops that cross the period end wrap round).", summary]
    for kind, s in layers.items():
        mbs = s.get("micro_batches", micro_batches)
        rows = [f"{r} mb{b}" for r in s["resources"] for b in range(mbs)]
        ivs = s.get("period_intervals") or s["intervals"]
        bars = [svg.GanttBar(f"{o['resource']} mb{o['micro_batch']}", o["start_s"], o["end_s"], op_group(o["op"]),
                             f"{o['op']} (micro-batch {o['micro_batch']})") for o in ivs]
        span = s["makespan_s"] if s.get("period_intervals") else max((o["end_s"] for o in ivs), default=0.0)
        title = f"{kind} layer: {phase} overlap schedule, {mbs} micro-batch(es), period {secs(span)}"
        drawn = svg.gantt_chart(title=title, rows=rows, bars=bars, span_s=span or 1e-9, colour_of=CATEGORY_COLOURS)
        data = table(("resource", "micro-batch", "op", "start µs", "end µs"),
                     [[o["resource"], o["micro_batch"], o["op"], f"{o['start_s'] * 1e6:.2f}",
                       f"{o['end_s'] * 1e6:.2f}"] for o in ivs])
        blocks.append(Chart(f"gantt-{kind}", f"Overlap schedule ({kind} layer)", drawn, data))
    return Section("Overlap schedule", tuple(blocks))


def placement_section(p: dict[str, Any]) -> Section:
    """Heatmap of device load / mean per MoE layer (rows) and EP device (columns)."""
    loads = p["relative_load"]
    devices = [str(d) for d in range(p.get("num_devices", len(loads[0]) if loads else 0))]
    layers = [str(x) for x in p.get("layers", range(len(loads)))]
    title = f"Device load / mean per MoE layer ({p.get('method', 'placement')}; 1.0 = perfectly balanced)"
    drawn = svg.heatmap(title=title, row_labels=layers, col_labels=devices, values=loads, x_label="device",
                        y_label="layer", value_name="load / mean")
    data = table(["layer", "max / mean"] + [f"d{d}" for d in devices],
                 [[la, f"{max(row):.3f}"] + [f"{v:.3f}" for v in row] for la, row in zip(layers, loads, strict=True)])
    return Section("Expert placement", (Chart("placement-heatmap", "Expert placement heatmap", drawn, data),))


def _fmt_sourced(path: str, v: Any) -> str:
    if not isinstance(v, int | float):
        return str(v)
    if path.endswith("bytes_per_s"):
        return f"{v / 1e9:,.1f} GB/s"
    if path.endswith("bytes"):
        return fmt_bytes(v)
    if path.startswith("peak_flop_per_s") or path.endswith("flop_per_s"):
        return f"{v / 1e12:,.1f} TFLOP/s"
    if path.endswith("_s"):
        return secs(v)
    return f"{v:,.6g}"


def sources_section(device: dict[str, Any]) -> Section:
    """Every device number used, its value, source, confidence and note."""
    src = device.get("sources", {})
    rows = [[path, _fmt_sourced(path, s.get("value")), s.get("source", "-"), s.get("confidence", "-"),
             s.get("note", "") or ""] for path, s in sorted(src.items())]
    head = f"Device {device.get('name', '')} ({device.get('id', '')}): the numbers the cost model used."
    return Section("Assumptions and sources", (head, table(("field", "value", "source", "confidence", "note"), rows)))


def evaluate_sections(doc: dict[str, Any], *, of_chosen: bool = False) -> list[Section]:
    """The sections of an evaluate document, optional ones only when their key is present.

    ``of_chosen``: the document is a plan's chosen decode layout; the plan report already shows the scenario
    and the degrees, so those sections are left out and the summary says which layout it breaks down."""
    out = [] if of_chosen else [key_value_section("Scenario", doc["scenario"]), plan_section(doc["plan"])]
    summary = summary_section(doc)
    if of_chosen:
        summary = Section(summary.title, (f"The sections from here on break down the chosen decode layout "
                                          f"{plan_label(doc['plan'])}.",) + summary.blocks)
    out += [summary, memory_section(doc), layer_time_section(doc)]
    if doc.get("schedule"):
        s = doc["schedule"]
        out.append(schedule_section(s["layers"], s.get("phase", "decode"), s.get("micro_batches", 1)))
    if doc.get("placement") and doc["placement"].get("relative_load"):
        out.append(placement_section(doc["placement"]))
    if doc.get("device"):
        out.append(sources_section(doc["device"]))
    return out
