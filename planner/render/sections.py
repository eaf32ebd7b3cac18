"""Report sections shared by the HTML and Markdown exports, built from the typed documents.

A :class:`Report` is a list of titled :class:`Section` s; each holds paragraphs, :class:`Table` s and
:class:`Chart` s. A chart carries its inline SVG (for HTML) and the same numbers as a table (for Markdown),
so both formats say the same thing. Everything here is a pure function of a document model
(:mod:`planner.documents`), read by attribute; a section whose optional key is absent is left out. This module builds the sections of an evaluate document (also
used for the chosen plan of ``plan`` and both sides of ``compare``); :mod:`planner.render.report_build` assembles
the report of each document kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.documents.base import Document
from planner.documents.evaluate import DeviceDoc, EvaluateDocument, LayerDoc, MemoryBytes
from planner.documents.parts import ParallelPlan
from planner.documents.place import Heatmap
from planner.documents.schedule import LEGEND, LayerScheduleDoc, symbol
from planner.inputs.units import fmt_bytes, fmt_seconds
from planner.render import svg as svg
from planner.render.bands import band_text

GIB = 2.0**30
US = 1e-6

MEMORY_SEGMENTS = (("attention weights", "attention_weight_bytes"), ("dense FFN weights", "dense_ffn_weight_bytes"),
                   ("shared expert weights", "shared_expert_weight_bytes"),
                   ("routed expert weights", "routed_expert_weight_bytes"), ("router weights", "router_weight_bytes"),
                   ("embedding weights", "embedding_weight_bytes"), ("MTP weights", "mtp_weight_bytes"),
                   ("KV cache", "kv_cache_bytes"),
                   ("activations", "activation_bytes"), ("comm buffers", "comm_buffer_bytes"),
                   ("runtime reserve", "runtime_reserve_bytes"), ("free", "free_bytes"))
"""(legend name, field of an evaluate document's ``memory_bytes``) in stacking order."""

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
    """Seconds in the report's units (``s``, ``ms``, ``µs``: the microsecond sign, as the charts' axes write it)."""
    return "-" if v is None else fmt_seconds(float(v)).replace(" us", " µs")


def plan_label(p: ParallelPlan) -> str:
    """Short label of a plan: 'TP1xDP16 EP16 +16R TBO'."""
    parts = [f"TP{p.attn_tp}xDP{p.attn_dp}", f"EP{p.moe_ep}" + (f"xTP{p.moe_tp}" if p.moe_tp > 1 else "")]
    parts += [f"denseTP{p.dense_tp}"] if p.dense_tp > 1 else []
    parts += [f"PP{p.pp}"] if p.pp > 1 else []
    parts += [f"+{p.redundant_experts}R"] if p.redundant_experts else []
    parts += [{"two_batch": "TBO", "single_batch": "SBO"}.get(p.overlap, p.overlap)] if p.overlap != "none" else []
    return " ".join(parts)


def op_group(name: str) -> str:
    """Category of an op name, the same words as the terminal Gantt legend."""
    if name.startswith(("attn.", "moe.", "ffn.")):
        return LEGEND.get(symbol(name), "other")
    return "embedding + LM head" if name.startswith(("embed.", "head.")) else "other"


def key_value_section(title: str, data: Document | dict[str, Any]) -> Section:
    """One row per scalar field (nested parts and lists left out), in the document's key order."""
    items = dict(data).items()
    rows = [[k, scalar(k, v)] for k, v in items if not isinstance(v, Document | dict | list | tuple)]
    return Section(title, (table(("key", "value"), rows),))


def scalar(key: str, v: Any) -> str:
    """A scalar document value for a report cell: ``none`` for null, units from the key's suffix (seconds,
    bytes), thousands separators, no raw float digits."""
    if v is None:
        return "none"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if key.endswith("_s"):
        return secs(v)
    if key.endswith("_bytes"):
        return fmt_bytes(v)
    if isinstance(v, int) or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"


def plan_section(plan: ParallelPlan, title: str = "Plan degrees") -> Section:
    return Section(title, (plan_label(plan), table(("degree", "value"), [[k, v] for k, v in plan])))


def summary_section(doc: EvaluateDocument) -> Section:
    pf, dc, ag, slo = doc.prefill, doc.decode, doc.aggregated, doc.slo

    def met(flag: bool | None, limit: float | None) -> str:
        return "" if flag is None else f" ({'meets' if flag else 'misses'} SLO {secs(limit)})"

    rows = [["prefill tokens / s / device", num(pf.throughput_tok_per_s_per_device) + band_text(pf.throughput_band)],
            ["TTFT", secs(pf.ttft_s) + band_text(pf.ttft_band) + met(slo.ttft_met, slo.ttft_s)],
            ["decode tokens / s / device", num(dc.throughput_tok_per_s_per_device) + band_text(dc.throughput_band)],
            ["TPOT", secs(dc.tpot_s) + band_text(dc.tpot_band) + met(slo.tpot_met, slo.tpot_s)],
            ["decode sequences / device", f"{num(dc.sequences_per_device, 1)} (set by {dc.batch_limit})"],
            ["aggregated output tokens / s / device", num(ag.output_tok_per_s_per_device) + band_text(ag.output_band)],
            ["aggregated tokens / s / user", num(ag.user_tok_per_s, 1) + band_text(ag.output_band)],
            ["static memory / device", fmt_bytes(dc.memory_bytes.static_bytes)]]
    return Section("Predicted performance", (table(("metric", "value"), rows),))


def memory_chart(bars: list[tuple[str, MemoryBytes]], chart_id: str = "memory") -> Chart:
    """Stacked per-device memory bars (GiB) with the device capacity as a dashed line."""
    rows = [svg.BarRow(label, tuple((name, getattr(m, key)) for name, key in MEMORY_SEGMENTS)) for label, m in bars]
    cap = max(m.capacity_bytes for _, m in bars) / GIB
    title = "Per-device memory by use (GiB; dashed line: device capacity)"
    drawn = svg.stacked_bar_chart(title=title, rows=rows, value_label="GiB per device", scale=GIB,
                                  reference=cap or None, colour_of=MEMORY_COLOURS)
    keys = MEMORY_SEGMENTS + (("used", "used_bytes"), ("capacity", "capacity_bytes"))
    data = table(["item"] + [label for label, _ in bars], [[name] + [fmt_bytes(getattr(m, key)) for _, m in bars]
                                                          for name, key in keys])
    return Chart(chart_id, "Per-device memory", drawn, data)


def memory_section(doc: EvaluateDocument) -> Section:
    chart = memory_chart([("prefill", doc.prefill.memory_bytes), ("decode", doc.decode.memory_bytes)])
    return Section("Per-device memory", ("Busiest device: weights by kind, KV cache, activations, buffers and "
                                         "free memory, for the prefill and the decode phase.", chart))


def _layer_rows(layer: LayerDoc) -> list[svg.BarRow]:
    groups: dict[str, float] = {}
    for o in layer.ops:
        if o.kind != "comm":
            g = op_group(o.name)
            groups[g] = groups.get(g, 0.0) + o.seconds
    exposed = layer.exposed_comm_s
    rest = max(0.0, layer.layer_s - layer.compute_s - exposed)
    name = f"{layer.kind} x{layer.count}"
    rows = [svg.BarRow(f"{name} time", tuple(groups.items()) + ((EXPOSED, exposed), (OVERHEAD, rest)))]
    if layer.comm_s > 0:
        rows.append(svg.BarRow(f"{name} comm", ((EXPOSED, exposed), (HIDDEN, layer.overlapped_comm_s))))
    return rows


def layer_time_section(doc: EvaluateDocument) -> Section:
    blocks: list[Block] = ["Time of one layer of each kind, by op category (µs). The 'time' bar adds up to the "
                           "layer's time; the 'comm' bar splits its communication into exposed and overlapped."]
    for phase, p in (("prefill", doc.prefill), ("decode", doc.decode)):
        layers = p.step.layers
        rows = [r for layer in layers for r in _layer_rows(layer)]
        title = f"{phase.capitalize()}: time per layer by op, exposed vs overlapped communication (µs)"
        drawn = svg.stacked_bar_chart(title=title, rows=rows, value_label="µs per layer", scale=US,
                                      colour_of=CATEGORY_COLOURS)
        data = table(("layer", "x layers", "compute", "comm", "comm exposed", "comm overlapped", "layer time"),
                     [[la.kind, la.count, secs(la.compute_s), secs(la.comm_s), secs(la.exposed_comm_s),
                       secs(la.overlapped_comm_s), secs(la.layer_s)] for la in layers])
        blocks.append(Chart(f"layer-time-{phase}", f"Per-layer time ({phase})", drawn, data))
    return Section("Per-layer time", tuple(blocks))


def schedule_section(layers: dict[str, LayerScheduleDoc], phase: str, micro_batches: int) -> Section:
    """Overlap schedule: figures per layer kind and a Gantt chart of one steady-state period each."""
    summary = table(("layer", "period", "no overlap", "speedup", "one layer", "busiest resource", "exposed comm",
                     "solver"),
                    [[k, secs(s.makespan_s), secs(s.no_overlap_s), f"{s.speedup:.2f}x", secs(s.layer_latency_s),
                      s.busiest_resource, secs(s.exposed_comm_s), s.solver.status] for k, s in layers.items()])
    blocks: list[Block] = [f"{phase} phase, {micro_batches} micro-batch(es); one period of the steady state "
                           "(ops that cross the period end wrap round).", summary]
    for kind, s in layers.items():
        mbs = s.micro_batches
        rows = [f"{r} mb{b}" for r in s.resources for b in range(mbs)]
        ivs = s.period_intervals or s.intervals
        bars = [svg.GanttBar(f"{o.resource} mb{o.micro_batch}", o.start_s, o.end_s, op_group(o.op),
                             f"{o.op} (micro-batch {o.micro_batch})") for o in ivs]
        span = s.makespan_s if s.period_intervals else max((o.end_s for o in ivs), default=0.0)
        title = f"{kind} layer: {phase} overlap schedule, {mbs} micro-batch(es), period {secs(span)}"
        drawn = svg.gantt_chart(title=title, rows=rows, bars=bars, span_s=span or 1e-9, colour_of=CATEGORY_COLOURS)
        data = table(("resource", "micro-batch", "op", "start µs", "end µs"),
                     [[o.resource, o.micro_batch, o.op, f"{o.start_s * 1e6:.2f}", f"{o.end_s * 1e6:.2f}"]
                      for o in ivs])
        blocks.append(Chart(f"gantt-{kind}", f"Overlap schedule ({kind} layer)", drawn, data))
    return Section("Overlap schedule", tuple(blocks))


def placement_section(p: Heatmap) -> Section:
    """Heatmap of device load / mean per MoE layer (rows) and EP device (columns)."""
    loads = p.relative_load
    devices = [str(d) for d in range(p.num_devices)]
    layers = [str(x) for x in p.layers]
    title = f"Device load / mean per MoE layer ({p.method}; 1.0 = perfectly balanced)"
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


def sources_section(device: DeviceDoc) -> Section:
    """Every device number used, its value, source, confidence and note."""
    rows = [[path, _fmt_sourced(path, s.value), s.source, s.confidence, s.note]
            for path, s in sorted(device.sources.items())]
    head = f"Device {device.name} ({device.id}): the numbers the cost model used."
    return Section("Assumptions and sources", (head, table(("field", "value", "source", "confidence", "note"), rows)))


def evaluate_sections(doc: EvaluateDocument, *, of_chosen: bool = False, pool: str | None = None) -> list[Section]:
    """The sections of an evaluate document, optional ones only when their key is present.

    ``of_chosen``: the document is a plan's chosen deployment; the plan report already shows the scenario and
    the degrees, so those sections are left out. ``pool``: the document is one pool of a disaggregated
    deployment (``prefill`` or ``decode``): its section titles say so, and the device sources (the same for
    both pools) follow only the decode pool's."""
    out = [] if of_chosen else [key_value_section("Scenario", doc.scenario), plan_section(doc.plan)]
    summary = summary_section(doc)
    if of_chosen or pool:
        what = f"the {pool} pool's layout" if pool else "the chosen decode layout"
        summary = Section(summary.title, (f"The sections from here on break down {what} "
                                          f"{plan_label(doc.plan)}.",) + summary.blocks)
    out += [summary, memory_section(doc), layer_time_section(doc)]
    if doc.schedule is not None:
        out.append(schedule_section(doc.schedule.layers, doc.schedule.phase, doc.schedule.micro_batches))
    if doc.placement is not None and doc.placement.relative_load:
        out.append(placement_section(doc.placement))
    if pool != "prefill":
        out.append(sources_section(doc.device))
    if pool:
        out = [Section(f"{s.title} ({pool} pool)", tuple(_of_pool(b, pool) for b in s.blocks)) for s in out]
    return out


def _of_pool(b: Block, pool: str) -> Block:
    """A block of one pool's sections: a chart's id and title name the pool (both pools' charts on one page)."""
    if isinstance(b, Chart):
        return Chart(f"{pool}-{b.chart_id}", f"{pool.capitalize()} pool: {b.title}", b.svg, b.table)
    return b


def deployment_sections(doc: EvaluateDocument, *, of_chosen: bool = False) -> list[Section]:
    """An evaluate document with a ``deployment`` part: the deployment (pools, rates, what binds) first, then
    each pool's sections (a disaggregated deployment's prefill pool, then its decode pool)."""
    dep = doc.deployment
    if dep is None:
        return evaluate_sections(doc, of_chosen=of_chosen)
    rows = [[p.role, p.replicas, plan_label(p.plan), p.devices, "-" if p.role == "decode" else num(p.input_tok_per_s),
             "-" if p.role == "prefill" else num(p.output_tok_per_s),
             num(p.requests_per_s, 2), f"{fmt_bytes(p.memory_used_bytes)} of {fmt_bytes(p.capacity_bytes)}"]
            for p in dep.pools]
    head = (f"{dep.text}: {num(dep.output_tok_per_s)} output tok/s on {dep.devices} devices "
            f"({num(dep.output_tok_per_s_per_device)} per device), TTFT {secs(dep.ttft_s)}, TPOT {secs(dep.tpot_s)} "
            f"(effective); bottleneck: {dep.bottleneck}.")
    pools = table(("pool", "replicas", "plan", "devices", "prefill tok/s", "decode tok/s", "requests/s",
                   "memory / device"), rows)
    deployment = Section("Deployment", (head, pools, *dep.why))
    if doc.prefill_pool is None:
        out = evaluate_sections(doc, of_chosen=of_chosen)
        return out[:0 if of_chosen else 1] + [deployment] + out[0 if of_chosen else 1:]
    return (([] if of_chosen else [key_value_section("Scenario", doc.scenario)]) + [deployment]
            + evaluate_sections(doc.prefill_pool, of_chosen=True, pool="prefill")
            + evaluate_sections(doc, of_chosen=True, pool="decode"))
