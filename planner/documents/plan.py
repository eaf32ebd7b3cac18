"""The ``plan`` document (schema ``moeplan.plan/2``): top-K deployments, Pareto front, rejections, chosen plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cost_models.kinds import PoolRole
from planner.cpsat.deployment_instance import Deployment
from planner.documents.evaluate import evaluation_document

if TYPE_CHECKING:
    from planner.analysis.evaluate import Evaluation
    from planner.search.plan import PlanResult
    from planner.search.validate import Recost

PLAN_SCHEMA = "moeplan.plan/2"


def _deployment_doc(d: Deployment, r: Recost) -> dict[str, Any]:
    def pool(c, replicas: int, role: str) -> dict[str, Any]:
        return {"role": role, "plan": c.dims.as_dict(), "devices_per_replica": c.devices_per_replica,
                "replicas": replicas, "devices": c.devices_per_replica * replicas, "prefill_tok_per_s_per_device": c.prefill_tok_per_s_per_device,
                "decode_tok_per_s_per_device": c.decode_tok_per_s_per_device, "ttft_s": c.ttft_s, "tpot_s": c.tpot_s,
                "decode_batch_per_device": c.decode_batch_per_device, "memory_used_bytes": c.memory_used_bytes,
                "static_bytes": c.static_bytes(PoolRole(role))}
    pools = ([pool(d.decode, d.decode_replicas, "aggregated")] if d.mode == "aggregated" else
             [pool(d.prefill, d.prefill_replicas, "prefill"), pool(d.decode, d.decode_replicas, "decode")])
    return {"mode": str(d.mode), "pools": pools, "devices_used": r.devices_used, "output_tok_per_s": r.output_tok_per_s,
            "output_tok_per_s_per_device": r.output_tok_per_s_per_device, "user_tok_per_s": 1 / r.tpot_s if r.tpot_s else 0.0,
            "ttft_s": r.ttft_s, "tpot_s": r.tpot_s, "prefill_input_tok_per_s": r.prefill_input_tok_per_s,
            "decode_output_tok_per_s": r.decode_output_tok_per_s, "solver_objective_units": d.output_tok_per_s_units}


REPORT_SCHEDULE_TIME_LIMIT_S = 0.1
"""Limit of the chosen plan's schedule solve in plan reports (an illustration: plan's figures use the closed
form; on the default scenario 0.1, 0.25, 0.5 and 1 s give the same schedule)."""


def plan_document(res: PlanResult, chosen: Evaluation) -> dict[str, Any]:
    """``chosen``: the best deployment's decode (or aggregated) layout with its solver results
    (:func:`planner.analysis.evaluate.with_solver_results` at :data:`REPORT_SCHEDULE_TIME_LIMIT_S`)."""
    sc = res.scenario
    return {
        "schema": PLAN_SCHEMA,
        "scenario": {"name": sc.name, "path": sc.path, "model": sc.model.id, "device": sc.cluster.device.id,
                     "devices": sc.cluster.num_devices, "input_tokens": sc.workload.input_tokens,
                     "output_tokens": sc.workload.output_tokens, "ttft_slo_s": sc.workload.ttft_slo_s,
                     "tpot_slo_s": sc.workload.tpot_slo_s},
        "objective": res.objective,
        "overlap_model": res.overlap_model,
        "top": [_deployment_doc(d, r) for d, r in zip(res.deployments, res.recosts, strict=True)],
        "solver": [{"status": s.status, "objective": s.objective, "bound": s.bound, "gap": s.gap}
                   for s in res.stats],
        "quantization_ranking_preserved": res.ranking_preserved,
        "rejected": dict(sorted(res.rejected.items())),
        "layouts_considered": res.layouts_considered,
        "pareto": [{"plan": c.dims.as_dict(), "decode_tok_per_s_per_device": c.decode_tok_per_s_per_device,
                    "user_tok_per_s": c.user_tok_per_s, "tpot_s": c.tpot_s} for c in res.pareto],
        "chosen": 0,
        "chosen_breakdown": evaluation_document(chosen),
    }


