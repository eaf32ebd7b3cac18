"""Expert placement results as a JSON document.

The document (schema ``moeplan.place/2``) carries, per layer, the three arrays that serving engines'
expert-load balancers load (DeepSeek EPLB's ``phy2log`` / ``log2phy`` / ``logcnt``; vLLM and SGLang read
the same):

* ``physical_to_logical``: length ``slots``; slot ``s`` sits on device ``s // slots_per_device`` and holds
  that logical expert;
* ``logical_to_physical``: per logical expert, its slot ids, padded with -1 to ``max_replicas`` (the most
  replicas of any expert in any layer, so the layers stack into one tensor);
* ``replica_counts``: per logical expert, its number of slots;

plus the layer's max / mean device load (in the load file's token counts), the lower bound, the gap and
the scale-out metrics, for the CP-SAT placement and the two greedy baselines.
"""

from __future__ import annotations

from typing import Any

from planner.cpsat.placement_greedy import PlacementScore, device_tokens
from planner.cpsat.placement_result import METHODS, PlacementResult
from planner.inputs.loads import ExpertLoads

PLACE_SCHEMA = "moeplan.place/2"


def _score_doc(s: PlacementScore) -> dict[str, Any]:
    return {"max_device_tokens": s.max_device_tokens, "imbalance": s.imbalance,
            "group_node_pairs": s.group_node_pairs, "token_node_reach": s.token_node_reach}


def placement_document(result: PlacementResult) -> dict[str, Any]:
    """JSON-ready dict of a :class:`PlacementResult` (lists, numbers, strings and None only)."""
    width = result.max_replicas
    layers = []
    for r in result.layers:
        p = r.cpsat.placement
        layers.append({
            "layer": r.layer,
            "physical_to_logical": list(p.physical_to_logical),
            "logical_to_physical": [list(s) for s in p.logical_to_physical(pad_to=width)],
            "replica_counts": list(p.replica_counts),
            "mean_device_tokens": r.cpsat.mean_device_tokens,
            "max_device_tokens": r.cpsat.max_device_tokens,
            "lower_bound_tokens": r.lower_bound_tokens,
            "gap": r.stats.gap,
            "status": r.stats.status,
            "solves": r.solves,
            "work_units": r.work_units,
            "stopped_by": r.stopped_by,
            "wall_s": r.stats.wall_s,
            "methods": {m: _score_doc(getattr(r, m)) for m in METHODS},
        })
    return {
        "schema": PLACE_SCHEMA,
        "source": result.source,
        "config": {"num_devices": result.num_devices, "devices_per_node": result.devices_per_node,
                   "slots": result.slots, "slots_per_device": result.slots // result.num_devices,
                   "num_groups": result.num_groups, "topk_groups": result.topk_groups,
                   "time_limit_s_per_layer": result.time_limit_s, "work_limit_units_per_layer": result.work_limit_units,
                   "seed": result.seed},
        "max_replicas": width,
        "summary": {
            "methods": {m: {"mean_imbalance": result.mean_imbalance(m), "worst_imbalance": result.worst_imbalance(m)}
                        for m in METHODS},
            "mean_bound_imbalance": result.mean_bound_imbalance,
            "mean_gap": result.mean_gap,
            "wall_s": result.wall_s,
        },
        "layers": layers,
    }


def heatmap_document(result: PlacementResult, loads: ExpertLoads, method: str = "cpsat") -> dict[str, Any]:
    """Per layer, each EP device's routed tokens over the layer's mean device load (1.0 = perfectly even);
    ``loads`` are the router counts ``result`` was placed from."""
    rows = []
    for r, tokens in zip(result.layers, loads.tokens, strict=True):
        sc = getattr(r, method)
        loads_per_device = device_tokens(sc.placement, tokens)
        rows.append([x / sc.mean_device_tokens if sc.mean_device_tokens else 1.0 for x in loads_per_device])
    return {"method": method, "num_devices": result.num_devices, "devices_per_node": result.devices_per_node,
            "slots": result.slots, "layers": [r.layer for r in result.layers], "relative_load": rows,
            "mean_imbalance": result.mean_imbalance(method), "worst_imbalance": result.worst_imbalance(method),
            "source": result.source}
