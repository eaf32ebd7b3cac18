"""The result type of every communication cost and the helpers the collective and all-to-all models share.

A cost is ``latency_s`` (steps x the tier's ``latency_s``, plus kernel-level fixed costs where a kernel has one)
plus bandwidth terms for the busiest device; ``algorithm`` names how the op runs (``ring``, ``nvls``,
``one_shot``, ``deepep_low_latency``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cost_models.specs import ClusterSpec, LinkSpec

ALL_TO_ALL_SCALE_UP_FRACTION = 0.70
"""Cap on the fraction of scale-up line rate an all-to-all reaches (every device streams to every peer
through the switch at once).  Measured: nccl-tests alltoall busBW at 512 MiB over line rate, H100 315/450 =
0.70, H200 311/450 = 0.69, A100 203/300 = 0.68 (planner/catalog/SOURCES.md source a: aiconfigurator nccl_perf); consistent with DeepEP intranode EP8 on H800,
153 GB/s counted with self-copies = 134 GB/s on the wire = 0.67 of 200.  Applied as
``min(achievable_fraction, 0.70)`` to the scale-up tier of dispatch / combine only."""


@dataclass(frozen=True, kw_only=True)
class CommCost:
    """One communication op as seen by the busiest device."""

    seconds: float
    """Wall time: ``latency_s`` plus the bandwidth terms."""
    bytes_scale_up: float
    """Bytes each device sends over the scale-up tier (mean device)."""
    bytes_scale_out: float
    """Bytes each device sends over the scale-out tier (mean device)."""
    latency_s: float
    """The fixed part: steps x tier latency (+ a kernel's fixed cost)."""
    bound: str
    """``scale_up``, ``scale_out``, ``memory`` or ``latency``: the largest term of ``seconds``."""
    detail: Mapping[str, float] = field(default_factory=dict)
    """Intermediate quantities (copies per token, per-tier seconds, bandwidths as benchmarks report them)."""
    algorithm: str = ""
    """How the op runs: ``ring``, ``tree``, ``nvls``, ``one_shot``, ``two_shot``, ``direct``,
    ``deepep_normal``, ``deepep_low_latency``; empty for a free op."""


def make_cost(*, seconds: float, up_bytes: float, out_bytes: float, latency_s: float, up_s: float, out_s: float,
              detail: dict[str, float], algorithm: str, memory_s: float = 0.0) -> CommCost:
    """A CommCost whose ``bound`` is the largest of its latency, per-tier and memory terms."""
    terms = (("latency", latency_s), ("scale_up", up_s), ("scale_out", out_s), ("memory", memory_s))
    bound = max(terms, key=lambda kv: kv[1])[0]
    detail = {"scale_up_s": up_s, "scale_out_s": out_s, **detail}
    return CommCost(seconds=seconds, bytes_scale_up=up_bytes, bytes_scale_out=out_bytes, latency_s=latency_s,
                    bound=bound, detail=MappingProxyType(detail), algorithm=algorithm)


def free() -> CommCost:
    """A group of one or an empty payload: nothing moves."""
    return make_cost(seconds=0.0, up_bytes=0.0, out_bytes=0.0, latency_s=0.0, up_s=0.0, out_s=0.0, detail={},
                     algorithm="")


def per_s(nbytes: float, seconds: float) -> float:
    return nbytes / seconds if seconds > 0 else 0.0


def check(name: str, value: float, low: float = 0.0) -> None:
    if not (math.isfinite(value) and value >= low):
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")


def group_nodes(cluster: ClusterSpec, group_size: int, per_node: int, what: str = "group") -> int:
    """Nodes a group spans (``ceil(n / g)``; an uneven last node is treated as full)."""
    check(f"{what}_size", group_size, 1)
    if not 1 <= per_node <= min(group_size, cluster.devices_per_node):
        raise ValueError(f"{what}_devices_per_node must be in 1..min({what}_size={group_size}, "
                         f"devices_per_node={cluster.devices_per_node}), got {per_node}")
    return -(-group_size // per_node)


def all_to_all_scale_up_rate(link: LinkSpec) -> float:
    """Scale-up rate of an all-to-all: the line rate at ``min(achievable_fraction, ALL_TO_ALL_SCALE_UP_FRACTION)``."""
    return link.bytes_per_s * min(link.achievable_fraction, ALL_TO_ALL_SCALE_UP_FRACTION)
