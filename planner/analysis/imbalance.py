"""Expert-load imbalance of a layout measured from a router-count file, for the cost models.

``evaluate`` places every layer with the CP-SAT placement (:mod:`planner.cpsat.placement`); the plan search,
which costs hundreds of layouts, uses the greedy global balancer (no solver, milliseconds per layout), which
is never better than the CP-SAT placement, so the search's imbalance is conservative. Either way the figure
handed to the cost models is the mean over layers of max / mean device load, which scales the busiest
device's routed tokens (grouped GEMMs and the all-to-all receive side).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cost_models.parallel import ParallelDims
from cost_models.specs import ModelSpec
from planner.cpsat.placement_greedy import greedy_global, score_placement
from planner.inputs.loads import ExpertLoads

if TYPE_CHECKING:
    from planner.cpsat.placement import PlacementResult


def _shape(model: ModelSpec, dims: ParallelDims, devices_per_node: int) -> tuple[int, int, int]:
    slots = dims.physical_expert_slots(model)
    return dims.moe_ep, max(1, min(devices_per_node, dims.moe_ep)), slots


@functools.lru_cache(maxsize=256)
def greedy_imbalance(loads: ExpertLoads, devices: int, devices_per_node: int, slots: int) -> float:
    """Mean over layers of max/mean device load with the greedy global balancer."""
    if devices == 1:
        return 1.0
    vals = []
    for row in loads.tokens:
        p = greedy_global(row, num_devices=devices, slots=slots)
        vals.append(score_placement(p, row, devices_per_node=devices_per_node).imbalance)
    return sum(vals) / len(vals)


def layout_imbalance_greedy(model: ModelSpec, dims: ParallelDims, loads: ExpertLoads, devices_per_node: int) -> float:
    devices, dpn, slots = _shape(model, dims, devices_per_node)
    return greedy_imbalance(loads, devices, dpn, slots)


@functools.lru_cache(maxsize=8)
def layout_placement_cpsat(model: ModelSpec, dims: ParallelDims, loads: ExpertLoads, devices_per_node: int,
                           *, time_limit_s: float = 1.0, seed: int = 0) -> PlacementResult | None:
    """The CP-SAT placement of every layer on the layout's EP group; None when EP is 1 (nothing to balance).
    Cached: ``evaluate`` costs the plan with it and then reports the same placement."""
    from planner.cpsat.placement import place_all

    devices, dpn, slots = _shape(model, dims, devices_per_node)
    if devices == 1:
        return None
    assert model.moe is not None
    return place_all(loads, num_devices=devices, devices_per_node=dpn, slots=slots, time_limit_s=time_limit_s,
                     seed=seed, num_groups=model.moe.num_groups, topk_groups=model.moe.topk_groups)


def layout_imbalance_cpsat(model: ModelSpec, dims: ParallelDims, loads: ExpertLoads, devices_per_node: int,
                           *, time_limit_s: float = 1.0, seed: int = 0) -> float:
    """Mean over layers of max/mean device load of the CP-SAT placement for the layout's EP group."""
    res = layout_placement_cpsat(model, dims, loads, devices_per_node, time_limit_s=time_limit_s, seed=seed)
    return 1.0 if res is None else res.mean_imbalance("cpsat")
