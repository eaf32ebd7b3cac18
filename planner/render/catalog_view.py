"""`moeplan catalog devices|models`: what is bundled, with every number's source and confidence."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from cost_models.specs import Precision
from planner.catalog import devices
from planner.documents.base import as_dict
from planner.documents.catalog import devices_document, models_document
from planner.inputs.units import fmt_bytes


def show_devices(console: Console, as_json: bool) -> None:
    doc = devices_document()
    if as_json:
        print(json.dumps(as_dict(doc), indent=2))
        return
    t = Table(title="Devices (dense peaks; every number's source: --json)")
    for col in ("id", "name", "BF16 TFLOP/s", "FP8", "INT8", "HBM", "HBM TB/s", "scale-up GB/s", "scale-out GB/s",
                "per node", "estimated fields"):
        t.add_column(col, justify="left" if col in ("id", "name") else "right")
    for item in doc.items:
        spec = devices.get_device(item.id)
        peak = spec.peak_flop_per_s
        est = sum(1 for s in item.sources.values() if s.confidence == "estimated")
        t.add_row(item.id, item.name, f"{peak[Precision.BF16] / 1e12:.0f}",
                  f"{peak[Precision.FP8] / 1e12:.0f}" if Precision.FP8 in peak else "-",
                  f"{peak[Precision.INT8] / 1e12:.0f}" if Precision.INT8 in peak else "-",
                  fmt_bytes(spec.hbm_bytes), f"{spec.hbm_bytes_per_s / 1e12:.2f}",
                  f"{spec.scale_up.bytes_per_s / 1e9:.0f}", f"{spec.scale_out.bytes_per_s / 1e9:.1f}",
                  str(spec.devices_per_node), f"{est}/{len(item.sources)}")
    console.print(t)


def show_models(console: Console, as_json: bool) -> None:
    doc = models_document()
    if as_json:
        print(json.dumps(as_dict(doc), indent=2))
        return
    t = Table(title="Models (from bundled Hugging Face config.json files)")
    for col in ("id", "name", "total", "active", "layers", "MoE layers", "attention", "experts", "top-k", "native"):
        t.add_column(col, justify="left" if col in ("id", "name", "attention", "native") else "right")
    for m in doc.items:
        t.add_row(m.id, m.name, f"{m.total_parameters / 1e9:.1f}B", f"{m.active_parameters / 1e9:.1f}B",
                  str(m.layers), str(m.moe_layers), m.attention, str(m.routed_experts), str(m.top_k),
                  m.native_precision)
    console.print(t)
