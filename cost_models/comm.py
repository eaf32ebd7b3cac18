"""Communication costs on a two-tier network: the one module the op builders call.

Every device owns one full-duplex port on each tier (``ClusterSpec.scale_up``: NVLink / HCCS / UB;
``ClusterSpec.scale_out``: one NIC).  A cost is ``latency_s`` plus bandwidth terms for the busiest device, with
``rate = bytes_per_s x achievable_fraction``; :class:`CommCost.algorithm` names how the op runs.

* group collectives by algorithm (ring, tree, NVLS, one-/two-shot custom all-reduce), the fastest available
  chosen by size and topology: :mod:`cost_models.collectives`;
* MoE dispatch / combine, DeepEP normal kernels: :mod:`cost_models.all_to_all`; low-latency kernels:
  :mod:`cost_models.all_to_all_ll`;
* point-to-point (pipeline hand-off): below.
"""

from __future__ import annotations

from cost_models.all_to_all import (
    EP_PHASES,
    QUANT_BLOCK_ELEMENTS,
    SCALE_BYTES,
    cross_node_fraction,
    ep_combine,
    ep_dispatch,
    expected_units_hit,
)
from cost_models.all_to_all_ll import DISPATCH_HEADER_BYTES, LOW_LATENCY_FIXED_S
from cost_models.collectives import (
    CUSTOM_ALL_REDUCE_MAX_BYTES,
    NVLS_LINK_FRACTION,
    all_gather,
    all_reduce,
    all_reduce_candidates,
    reduce_scatter,
)
from cost_models.comm_cost import ALL_TO_ALL_SCALE_UP_FRACTION, CommCost, check, free, make_cost
from cost_models.specs import ClusterSpec

__all__ = [
    "ALL_TO_ALL_SCALE_UP_FRACTION", "CUSTOM_ALL_REDUCE_MAX_BYTES", "DISPATCH_HEADER_BYTES", "EP_PHASES",
    "LOW_LATENCY_FIXED_S", "NVLS_LINK_FRACTION", "QUANT_BLOCK_ELEMENTS", "SCALE_BYTES", "CommCost", "all_gather",
    "all_reduce", "all_reduce_candidates", "cross_node_fraction", "ep_combine", "ep_dispatch",
    "expected_units_hit", "point_to_point", "reduce_scatter",
]


def point_to_point(cluster: ClusterSpec, *, bytes: float, crosses_nodes: bool) -> CommCost:
    """One send of ``bytes`` (pipeline-stage hand-off): ``latency_s + bytes / rate`` on one tier."""
    check("bytes", bytes)
    if bytes == 0:
        return free()
    link = cluster.scale_out if crosses_nodes else cluster.scale_up
    t = bytes / link.effective_bytes_per_s
    up_s, out_s = (0.0, t) if crosses_nodes else (t, 0.0)
    return make_cost(seconds=link.latency_s + t, up_bytes=0.0 if crosses_nodes else bytes,
                     out_bytes=bytes if crosses_nodes else 0.0, latency_s=link.latency_s, up_s=up_s, out_s=out_s,
                     detail={}, algorithm="direct")
