"""The AFD ``evaluate`` document (schema ``moeplan.afd/1``): an attention-FFN disaggregated decode, as JSON data.

Metric paths a validation ``expect:`` row may name: ``afd.throughput_tok_per_s_per_device``, ``afd.tpot_s``,
``afd.user_tok_per_s``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from cost_models.afd import AfdLayerCost, AfdResult, Transfer
from cost_models.ops import OpCost
from cost_models.serving import decode_context
from planner.documents.evaluate import device_document

if TYPE_CHECKING:
    from planner.analysis.afd import AfdEvaluation

AFD_SCHEMA = "moeplan.afd/1"
"""Version of the AFD ``evaluate --json`` document; bump on any incompatible change."""


def _ops(ops: tuple[OpCost, ...]) -> list[dict[str, Any]]:
    return [{"name": o.name, "kind": o.kind, "seconds": o.seconds, "flops": o.flops, "hbm_bytes": o.hbm_bytes,
             "scale_up_bytes": o.scale_up_bytes, "scale_out_bytes": o.scale_out_bytes, "bound": o.bound,
             "algorithm": o.algorithm} for o in ops]


def _transfer(t: Transfer) -> dict[str, float]:
    return {"seconds": t.seconds, "busy_s": t.busy_s, "attention_device_bytes": t.attention_device_bytes,
            "ffn_device_bytes": t.ffn_device_bytes}


def _layer(c: AfdLayerCost) -> dict[str, Any]:
    return {"kind": c.kind, "count": c.count, "layer_s": c.layer_s, "period_s": c.period_s,
            "bottleneck": c.bottleneck, "round_trip_s": c.round_trip_s, "attention_s": c.attention_s,
            "a_to_f": _transfer(c.a_to_f), "ffn_scale_up_s": c.ffn_scale_up_s, "ffn_compute_s": c.ffn_compute_s,
            "f_to_a": _transfer(c.f_to_a), "attention_ops": _ops(c.attention_ops), "ffn_ops": _ops(c.ffn_ops)}


def afd_section(r: AfdResult) -> dict[str, Any]:
    """The ``afd`` section: layout, the figures, memory per device kind and every layer's pipeline."""
    m = r.memory
    return {
        "layout": asdict(r.layout) | {"label": r.layout.label(), "devices": r.layout.devices,
                                      "attention_devices": r.layout.attention_devices,
                                      "ffn_devices": r.layout.ffn_devices, "ffn_groups": r.layout.ffn_groups},
        "batch": r.batch,
        "sequences_per_rank_per_micro_batch": r.sequences_per_rank_per_micro_batch,
        "micro_batch_tokens": r.micro_batch_tokens,
        "tpot_s": r.tpot_s,
        "user_tok_per_s": r.user_tok_per_s,
        "throughput_tok_per_s_per_device": r.throughput_tok_per_s_per_device,
        "memory_bytes": {"attention_weight_bytes": m.attention_weight_bytes, "kv_cache_bytes": m.kv_cache_bytes,
                         "ffn_weight_bytes": m.ffn_weight_bytes, "runtime_reserve_bytes": m.runtime_reserve_bytes,
                         "attention_device_bytes": m.attention_device_bytes,
                         "ffn_device_bytes": m.ffn_device_bytes, "capacity_bytes": m.capacity_bytes,
                         "fits": m.fits},
        "layers": [_layer(c) for c in r.layers],
    }


def afd_document(ev: AfdEvaluation) -> dict[str, Any]:
    """The ``evaluate --json`` document of an AFD scenario (schema ``moeplan.afd/1``)."""
    sc, r = ev.scenario, ev.result
    wl = sc.workload
    return {
        "schema": AFD_SCHEMA,
        "scenario": {"name": sc.name, "path": sc.path, "model": sc.model.id, "device": sc.cluster.device.id,
                     "nodes": sc.cluster.num_nodes, "devices_per_node": sc.cluster.devices_per_node,
                     "devices": sc.cluster.num_devices, "context_tokens": decode_context(wl),
                     "weight_precision": wl.weight_precision.label,
                     "kv_precision": wl.kv_precision.label, "dispatch_precision": wl.dispatch_precision.label,
                     "expert_imbalance": wl.expert_imbalance},
        "afd": afd_section(r),
        "slo": {"tpot_s": wl.tpot_slo_s,
                "tpot_met": None if wl.tpot_slo_s is None else r.tpot_s <= wl.tpot_slo_s},
        "device": device_document(sc),
    }
