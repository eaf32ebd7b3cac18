"""Engine-aware search: which layouts an engine can launch, the workload each is costed under (the engine's memory
reserve, its mechanisms), and which engines can run a finished deployment (planner/catalog/engines.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from cost_models.parallel import ParallelDims
from cost_models.specs import ClusterSpec, ModelSpec, ServingWorkload
from planner.catalog.engines import (
    DEEPEP_LL_MAX_DISPATCH_TOKENS,
    ENGINES,
    SGLANG_CUDA_GRAPH_MAX_BS,
    EngineCapability,
    layout_refusal,
    reserve_bytes,
    workload_refusal,
)

if TYPE_CHECKING:
    from planner.analysis.deployment import DeploymentEvaluation
    from planner.inputs.deployment_text import DeploymentPlan
    from planner.inputs.scenario import Scenario

ENGINE_REJECTION = "engine"
"""The constraint name layouts an engine cannot launch are counted under."""


def capability(engine: str, version: str | None = None) -> EngineCapability:
    """The capability table of ``engine`` (``version``: None or the version moeplan targets); ValueError names
    what is accepted."""
    if engine not in ENGINES:
        raise ValueError(f"--engine: got {engine!r}; accepted: {', '.join(ENGINES)}")
    cap = ENGINES[engine]
    if version is not None and version != cap.version:
        raise ValueError(f"--engine-version: got {version!r}; accepted: {cap.version} (the {engine} release whose "
                         "source the capability table was read from)")
    return cap


def refusal_of(cap: EngineCapability, model: ModelSpec, cluster: ClusterSpec,
               wl: ServingWorkload) -> Callable[[ParallelDims], str | None]:
    """``dims -> why cap cannot launch it`` for one scenario."""
    return lambda d: layout_refusal(cap, model, d, cluster.devices_per_node, cluster.device.vendor,
                                    wl.weight_precision.label)


def engine_workload(cap: EngineCapability | None, cluster: ClusterSpec, wl: ServingWorkload,
                    dims: ParallelDims) -> ServingWorkload:
    """``wl`` as ``cap`` runs ``dims``: its memory reserve and, for an engine whose launch lines do not enable
    multi-token prediction, no MTP. No engine: ``wl`` unchanged (the workload's reserve, as ``evaluate`` costs
    it, so that a deployment ``plan`` prints evaluates to the same figures)."""
    if cap is None:
        return wl
    reserve = reserve_bytes(cap, dims, cluster.device.hbm_bytes, SGLANG_CUDA_GRAPH_MAX_BS)
    changes: dict[str, object] = {"runtime_reserve_bytes": reserve}
    if cap is not None and not cap.mtp and wl.mtp_tokens:
        changes |= {"mtp_tokens": 0, "mtp_acceptance": 0.0, "mtp_position_acceptance": ()}
    return dataclasses.replace(wl, **changes)


def engine_scenario(cap: EngineCapability | None, sc: Scenario, dims: ParallelDims) -> Scenario:
    """``sc`` with the workload ``cap`` runs ``dims`` under (:func:`engine_workload`)."""
    return dataclasses.replace(sc, workload=engine_workload(cap, sc.cluster, sc.workload, dims))


def plan_refusal(cap: EngineCapability, sc: Scenario, plan: DeploymentPlan) -> str | None:
    """Why ``cap`` cannot launch a deployment (its first pool ``cap`` refuses, or the mode), or None."""
    if len(plan.pools) > 1 and not cap.disaggregation:
        return f"{cap.engine} {cap.version} has no disaggregated prefill/decode deployment"
    why = workload_refusal(cap, sc.workload.kv_precision.label)
    if why is not None:
        return why
    refuse = refusal_of(cap, sc.model, sc.cluster, sc.workload)
    for pool in plan.pools:
        why = refuse(pool.dims)
        if why is not None:
            return f"{pool.role.value} pool: {why}"
    return None


def evaluate_for_engine(cap: EngineCapability, sc: Scenario, plan: DeploymentPlan, *, overlap_model: str,
                        measure_imbalance: bool = True) -> DeploymentEvaluation:
    """Every pool of ``plan`` costed as ``plan --engine`` costs it: with the engine's reserve for that pool's
    layout, and without MTP where the engine's lines do not enable it (``evaluate --engine``)."""
    from planner.analysis import evaluate as single
    from planner.analysis.deployment import DeploymentEvaluation, PoolEvaluation
    pools = tuple(PoolEvaluation(pool=p, evaluation=single.evaluate_scenario(
        engine_scenario(cap, sc, p.dims), p.pool_dims, overlap_model=overlap_model,
        measure_imbalance=measure_imbalance)) for p in plan.pools)
    return DeploymentEvaluation(scenario=sc, plan=plan, pools=pools)


def decode_tokens_per_rank(dims: ParallelDims, batch_per_device: float, mtp_tokens: int) -> float:
    """Tokens one attention-DP rank dispatches per decode step."""
    return batch_per_device * dims.attn_tp * (1 + mtp_tokens)


def over_dispatch_cap(cap: EngineCapability, dims: ParallelDims, batch_per_device: float, mtp_tokens: int) -> bool:
    """True when the planned decode step exceeds DeepEP low-latency's per-rank dispatch cap (1,024 tokens)."""
    return (cap.deepep_dispatch_cap and dims.moe_ep > 1
            and decode_tokens_per_rank(dims, batch_per_device, mtp_tokens) > DEEPEP_LL_MAX_DISPATCH_TOKENS.value)


def engines_for(model: ModelSpec, cluster: ClusterSpec, wl: ServingWorkload, pools: list[ParallelDims],
                disaggregated: bool) -> list[str]:
    """Engines that can launch every pool of a deployment (as planned without --engine: an engine-aware plan
    may cost it differently)."""
    out = []
    for cap in ENGINES.values():
        if disaggregated and not cap.disaggregation:
            continue
        if workload_refusal(cap, wl.kv_precision.label) is not None:
            continue
        if all(refusal_of(cap, model, cluster, wl)(d) is None for d in pools):
            out.append(cap.engine)
    return out
