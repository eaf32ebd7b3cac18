"""The ``evaluate`` document (schema ``moeplan.evaluate/2``): one costed plan as versioned JSON-ready data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cost_models.parallel import ParallelDims
from cost_models.serving import PhaseResult, ServingResult
from cost_models.step import StepCost
from planner.documents.place import heatmap_document
from planner.documents.schedule import schedules_document
from planner.inputs.scenario import Scenario

if TYPE_CHECKING:
    from planner.analysis.evaluate import Evaluation

EVALUATE_SCHEMA = "moeplan.evaluate/2"
"""Version of the ``evaluate --json`` document; bump on any incompatible change (README "JSON output")."""

def _step_doc(step: StepCost) -> dict[str, Any]:
    layers = []
    for layer in step.layers:
        layers.append({
            "kind": layer.kind, "count": layer.count, "layer_s": layer.layer_s, "compute_s": layer.compute_s,
            "comm_s": layer.comm_s, "exposed_comm_s": layer.exposed_comm_s,
            "overlapped_comm_s": layer.overlapped_comm_s, "overlap_overhead_s": layer.overlap_overhead_s,
            "ops": [{"name": o.name, "kind": o.kind, "seconds": o.seconds, "flops": o.flops,
                     "hbm_bytes": o.hbm_bytes, "scale_up_bytes": o.scale_up_bytes,
                     "scale_out_bytes": o.scale_out_bytes, "bound": o.bound} for o in layer.ops],
        })
    return {"step_s": step.step_s, "latency_s": step.latency_s, "rank_tokens": step.rank_tokens,
            "overlap": step.overlap, "by_resource_s": dict(sorted(step.by_resource.items())), "layers": layers}


def _phase_doc(p: PhaseResult, phase: str) -> dict[str, Any]:
    return {
        **({"tokens_per_device_per_step": p.tokens_per_device_per_step} if phase == "prefill"
           else {"sequences_per_device": p.sequences_per_device}),
        "throughput_tok_per_s_per_device": p.throughput_tok_per_s_per_device,
        "ttft_s" if phase == "prefill" else "tpot_s": p.latency_s,
        "expert_tokens_per_local_expert": p.expert_tokens_per_local_expert,
        "memory_bytes": p.memory.as_dict(),
        "step": _step_doc(p.step),
    }


def device_document(sc: Scenario) -> dict[str, Any]:
    """The device numbers the prediction used, each with its source and confidence (scenario overrides marked)."""
    return {"id": sc.cluster.device.id, "name": sc.cluster.device.name,
            "sources": {k: {"value": v.value, "source": v.source, "confidence": v.confidence.value, "note": v.note}
                        for k, v in sorted(sc.device_sources.items())}}


def evaluate_document(sc: Scenario, dims: ParallelDims, r: ServingResult, *, schedule: dict[str, Any] | None = None,
                      placement: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``evaluate --json`` document (schema ``moeplan.evaluate/2``). ``schedule``: the decode overlap
    schedule (:func:`planner.render.gantt.schedules_document`); ``placement``: the expert-placement heatmap
    (:func:`planner.documents.place.heatmap_document`) when a load file was given."""
    wl = sc.workload
    extra: dict[str, Any] = {"device": device_document(sc)}
    if schedule is not None:
        extra["schedule"] = schedule
    if placement is not None:
        extra["placement"] = placement
    return {
        "schema": EVALUATE_SCHEMA,
        "scenario": {"name": sc.name, "path": sc.path, "model": sc.model.id, "device": sc.cluster.device.id,
                     "nodes": sc.cluster.num_nodes, "devices_per_node": sc.cluster.devices_per_node,
                     "devices": sc.cluster.num_devices, "input_tokens": wl.input_tokens,
                     "output_tokens": wl.output_tokens, "weight_precision": wl.weight_precision.label,
                     "expert_imbalance": wl.expert_imbalance,
                     "kv_precision": wl.kv_precision.label},
        "plan": dims.as_dict(),
        "prefill": _phase_doc(r.prefill, "prefill"),
        "decode": _phase_doc(r.decode, "decode") | {"batch_limit": r.decode_batch_limit},
        "aggregated": {"output_tok_per_s_per_device": r.aggregated_output_tok_per_s_per_device,
                       "user_tok_per_s": r.aggregated_user_tok_per_s},
        "slo": {"ttft_s": wl.ttft_slo_s, "tpot_s": wl.tpot_slo_s,
                "ttft_met": None if wl.ttft_slo_s is None else r.prefill.latency_s <= wl.ttft_slo_s,
                "tpot_met": None if wl.tpot_slo_s is None else r.decode.latency_s <= wl.tpot_slo_s},
    } | extra


def evaluation_document(ev: Evaluation) -> dict[str, Any]:
    """:func:`evaluate_document` of an :class:`~planner.analysis.evaluate.Evaluation`, with the decode overlap
    schedules and the placement heatmap it carries (added by ``with_solver_results``)."""
    schedule = None if ev.schedules is None else schedules_document(ev.schedules, ev.schedule_micro_batches)
    placement = None
    if ev.placement is not None and ev.scenario.expert_loads is not None:
        placement = heatmap_document(ev.placement, ev.scenario.expert_loads)
    return evaluate_document(ev.scenario, ev.dims, ev.result, schedule=schedule, placement=placement)
