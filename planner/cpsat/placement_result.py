"""Expert placement results (solver-free): what :mod:`planner.cpsat.placement` returns and documents read."""

from __future__ import annotations

from dataclasses import dataclass

from planner.cpsat.placement_greedy import PlacementScore
from planner.cpsat.stats import SolveStats


@dataclass(frozen=True, kw_only=True)
class LayerResult:
    """One layer: the CP-SAT placement beside the two greedy baselines, the lower bound and the search stats."""

    layer: int
    cpsat: PlacementScore
    greedy_hierarchical: PlacementScore
    greedy_global: PlacementScore
    lower_bound_tokens: float
    """The larger of the mean device load and the smallest achievable largest per-replica load."""
    stats: SolveStats
    """The layer's whole search: objective and bound in tokens (the CP-SAT max device load and
    :attr:`lower_bound_tokens`); status OPTIMAL when the max load is at the bound, within quantization."""
    solves: int
    """CP-SAT solves behind it (sub-solves and the node solve)."""
    work_units: float
    """CP-SAT deterministic seconds they used (reproducible, unlike ``stats.wall_s``)."""
    stopped_by: str
    """Why the search ended: ``bound`` (proven optimal), ``gap_limit``, ``no_progress``, ``effort``
    (deterministic budget) or ``time_limit`` (wall clock: only this one makes a result timing-dependent)."""

    @property
    def bound_imbalance(self) -> float:
        mean = self.cpsat.mean_device_tokens
        return self.lower_bound_tokens / mean if mean else 1.0


METHODS = ("greedy_hierarchical", "greedy_global", "cpsat")
"""Field names of the three placements in :class:`LayerResult`, baseline first."""


@dataclass(frozen=True, kw_only=True)
class PlacementResult:
    """Every layer's placements and the summary over layers."""

    layers: tuple[LayerResult, ...]
    num_devices: int
    devices_per_node: int
    slots: int
    num_groups: int
    topk_groups: int
    time_limit_s: float
    """Wall-clock cap per layer."""
    work_limit_units: float
    """CP-SAT deterministic seconds per layer for the balance search."""
    seed: int
    source: str = ""
    wall_s: float = 0.0

    def imbalances(self, method: str = "cpsat") -> tuple[float, ...]:
        """Per layer, max / mean device load of ``method`` (one of :data:`METHODS`)."""
        return tuple(getattr(r, method).imbalance for r in self.layers)

    def mean_imbalance(self, method: str = "cpsat") -> float:
        v = self.imbalances(method)
        return sum(v) / len(v)

    def worst_imbalance(self, method: str = "cpsat") -> float:
        return max(self.imbalances(method))

    @property
    def mean_bound_imbalance(self) -> float:
        return sum(r.bound_imbalance for r in self.layers) / len(self.layers)

    @property
    def mean_gap(self) -> float:
        return sum(r.stats.gap for r in self.layers) / len(self.layers)

    @property
    def max_replicas(self) -> int:
        """The most replicas any expert has in any layer (the width of the padded logical-to-physical map)."""
        return max(max(r.cpsat.placement.replica_counts) for r in self.layers)


