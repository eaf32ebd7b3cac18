"""A layer's overlap schedule as a result (solver-free): what :mod:`planner.cpsat.schedule` returns and what
documents and charts read without importing the solver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from planner.cpsat.stats import SolveStats

RESOURCES = ("compute", "scale_up", "scale_out")
"""The resources an op occupies: the compute stream and the two link tiers."""
_TOL_S = 1e-12


@dataclass(frozen=True, kw_only=True)
class ScheduledOp:
    """One op of one micro-batch of layer 0; layer i runs it ``i x period`` later."""

    micro_batch: int
    name: str
    kind: str
    resource: str
    start_s: float
    end_s: float
    sm_shared: bool = False
    """Launched on the compute units a comm kernel leaves free (so stretched)."""


@dataclass(frozen=True, kw_only=True)
class LayerSchedule:
    """A layer's periodic schedule, re-costed in floats."""

    makespan_s: float
    """Steady-state seconds per layer: the period (``window_layers = 1``: one layer's makespan)."""
    layer_latency_s: float
    """One layer from its first start to its last end (what the first layer of a step costs: pipeline fill)."""
    no_overlap_s: float
    """All ops of all micro-batches back to back."""
    busiest_resource: str
    busiest_resource_s: float
    """Its work per layer (compute: including the SM share of comm kernels): a lower bound on the makespan."""
    work_s: Mapping[str, float]
    busy_s: Mapping[str, float]
    """Seconds each resource is held per layer as scheduled (stretched compute included)."""
    exposed_comm_s: float
    """Seconds per period with a comm op in flight and no compute running."""
    intervals: tuple[ScheduledOp, ...]
    dependencies: tuple[tuple[str, str], ...]
    """Op-level (predecessor, successor) edges within a micro-batch."""
    micro_batches: int
    comm_sm_fraction: float
    """As quantized (per mille)."""
    window_layers: int
    stats: SolveStats


@dataclass(frozen=True, kw_only=True)
class IntSolution:
    """A layer schedule in solver units (ticks): start and launch mode per micro-batch, per block."""

    start_ticks: tuple[tuple[int, ...], ...]
    shared: tuple[tuple[bool, ...], ...]
    period_ticks: int
    stats: SolveStats


def fold(start: float, end: float, period: float) -> list[tuple[float, float]]:
    """An interval of a periodic schedule as pieces of ``[0, period)``."""
    if end - start <= _TOL_S:
        return []
    a = start % period
    b = a + (end - start)
    return [(a, b)] if b <= period + _TOL_S else [(a, period), (0.0, b - period)]


def _union(pieces: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(pieces):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


