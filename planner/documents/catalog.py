"""The ``catalog`` documents (``moeplan.catalog.devices/1``, ``moeplan.catalog.models/1``): every bundled number
with its source and confidence."""

from __future__ import annotations

from typing import Any

from cost_models import params
from planner.catalog import devices, models
from planner.catalog.sourced import Sourced


def _src(s: Sourced) -> dict[str, Any]:
    return {"value": s.value, "source": s.source, "confidence": s.confidence.value, "note": s.note}


def devices_document() -> dict[str, Any]:
    items = []
    for i in devices.device_ids():
        entry = devices.device_entry(i)
        items.append({"id": i, "name": entry.name, "vendor": entry.vendor,
                      "default_nodes_devices": list(entry.default_nodes_devices), "notes": entry.notes,
                      "sources": {k: _src(v) for k, v in sorted(entry.sources.items())}})
    return {"schema": "moeplan.catalog.devices/1", "items": items}


def models_document() -> dict[str, Any]:
    items = []
    for i in models.model_ids():
        m = models.get_model(i)
        items.append({"id": i, "name": m.name, "total_parameters": params.total_parameters(m),
                      "active_parameters": params.active_parameters(m), "layers": m.num_layers,
                      "moe_layers": m.num_moe_layers, "hidden_size": m.hidden_size,
                      "attention": m.attention.kind.value,
                      "routed_experts": m.moe.num_routed_experts if m.moe else 0,
                      "top_k": m.moe.top_k if m.moe else 0, "native_precision": m.native_precision.label,
                      "sources": {k: _src(v) for k, v in sorted(models.model_sources(i).items())}})
    return {"schema": "moeplan.catalog.models/1", "items": items}
