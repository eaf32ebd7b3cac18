"""Evaluate one plan of a scenario: the cost models' figures plus the solver results reports show.

This is where ``evaluate`` (and ``compare``, and the chosen plan of ``plan``) compute; documents and renderers
only read the :class:`Evaluation` it returns, so drawing a result never starts a solve.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cost_models.parallel import OverlapPolicy, ParallelDims
from cost_models.serving import ServingResult
from cost_models.serving import evaluate as evaluate_plan
from cost_models.step import OverlapModel
from planner.analysis.error_bands import FigureBands, serving_bands
from planner.inputs.scenario import Scenario

if TYPE_CHECKING:
    from planner.cpsat.placement_result import PlacementResult
    from planner.cpsat.schedule_result import LayerSchedule

OVERLAP_MODELS = ("schedule", "closed-form")
"""How two-batch overlap is costed: the CP-SAT layer schedule, or the closed form the search uses."""


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One plan of one scenario, costed; with the decode overlap schedules and the expert placement when
    :func:`with_solver_results` added them."""

    scenario: Scenario
    """The scenario, its workload's expert imbalance replaced by the measured one when router counts are given."""
    dims: ParallelDims
    result: ServingResult
    schedules: dict[str, LayerSchedule] | None = None
    """Decode overlap schedules by layer kind (``moe``, ``dense``) at the plan's micro-batch count."""
    schedule_micro_batches: int = 1
    placement: PlacementResult | None = None
    """The CP-SAT placement of the scenario's router counts on the plan's EP group."""
    bands: FigureBands | None = None
    """The error band of every figure, from the validation table (:func:`planner.analysis.error_bands.serving_bands`)."""


def overlap_hook(name: str) -> OverlapModel | None:
    """The overlap model of ``name`` (:data:`OVERLAP_MODELS`): None is the cost models' closed form."""
    if name == "closed-form":
        return None
    if name != "schedule":
        raise ValueError(f"overlap model: got {name!r}; accepted: {OVERLAP_MODELS}")
    from planner.cpsat.schedule import overlapped_layer_time
    return overlapped_layer_time


def measured_imbalance(sc: Scenario, dims: ParallelDims) -> Scenario:
    """``sc`` with its expert imbalance measured by the CP-SAT placement of its router counts (if any)."""
    if sc.expert_loads is None:
        return sc
    from planner.analysis.imbalance import layout_imbalance_cpsat
    imb = layout_imbalance_cpsat(sc.model, dims, sc.expert_loads, sc.cluster.devices_per_node)
    return dataclasses.replace(sc, workload=dataclasses.replace(sc.workload, expert_imbalance=imb))


def evaluate_scenario(sc: Scenario, dims: ParallelDims, *, overlap_model: str = "schedule",
                      measure_imbalance: bool = True) -> Evaluation:
    """Cost ``dims`` on ``sc`` (``measure_imbalance``: place the router counts first, as ``evaluate`` does)."""
    if measure_imbalance:
        sc = measured_imbalance(sc, dims)
    result = evaluate_plan(sc.model, sc.cluster, dims, sc.workload, overlap_model=overlap_hook(overlap_model))
    return Evaluation(scenario=sc, dims=dims, result=result)


def with_solver_results(ev: Evaluation, *, schedule_time_limit_s: float | None = None) -> Evaluation:
    """Add the decode overlap schedules (at the chosen decode batch), given router counts the placement whose
    imbalance the prediction used (a cache hit after :func:`evaluate_scenario`), and the figures' error bands."""
    from planner.analysis.schedules import layer_schedules
    from planner.cpsat.schedule import HOOK_TIME_LIMIT_S

    sc, dims, r = ev.scenario, ev.dims, ev.result
    placement = None
    if sc.expert_loads is not None and sc.model.moe is not None:
        from planner.analysis.imbalance import layout_placement_cpsat
        placement = layout_placement_cpsat(sc.model, dims, sc.expert_loads, sc.cluster.devices_per_node)
    k = dims.micro_batches if dims.overlap is OverlapPolicy.TWO_BATCH else 1
    schedules = layer_schedules(sc, dims, phase="decode", micro_batches=k,
                                decode_batch=max(r.decode_batch_per_device, 1.0 / dims.attn_tp),
                                time_limit_s=HOOK_TIME_LIMIT_S if schedule_time_limit_s is None
                                else schedule_time_limit_s)
    return dataclasses.replace(ev, schedules=schedules, schedule_micro_batches=k, placement=placement,
                               bands=serving_bands(sc, dims))
