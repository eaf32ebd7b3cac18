"""Communication costs on a two-tier network: group collectives, point-to-point, and the MoE all-to-all.

Every device owns one full-duplex port on each tier (``ClusterSpec.scale_up``: NVLink / HCCS / UB;
``ClusterSpec.scale_out``: one NIC).  A cost is ``latency_s`` (steps x the tier's ``latency_s``) plus a
bandwidth term ``bytes / rate`` for the busiest device, with ``rate = bytes_per_s x achievable_fraction``.

Group collectives (ring, bandwidth-optimal; the per-rank volumes behind the nccl-tests ``busBW`` factors,
nccl-tests doc/PERFORMANCE.md: all-reduce ``2(n-1)/n``, all-gather / reduce-scatter ``(n-1)/n``).  A group of
``n`` devices with ``g`` on each of ``m = ceil(n / g)`` nodes runs hierarchically, phases back to back:

* all-reduce of ``B`` bytes: intra-node reduce-scatter ``(g-1)/g B``, inter-node all-reduce of the node's
  ``B/g`` shard ``2(m-1)/m B/g`` (each of the ``g`` devices drives its own NIC), intra-node all-gather
  ``(g-1)/g B``; ``2(g-1)`` scale-up and ``2(m-1)`` scale-out steps;
* all-gather of ``b`` bytes per rank: inter-node all-gather ``(m-1) b``, then intra-node ``(g-1) m b``;
* reduce-scatter of ``B`` input bytes: intra-node ``(g-1)/g B``, then inter-node ``(m-1)/m B/g``.

With ``m = 1`` or ``g = 1`` these are the flat ring formulas on one tier.  A group of one, or zero bytes,
costs nothing.

EP dispatch / combine follows DeepEP's normal kernels (deepseek-ai/DeepEP README; DeepSeek-V3 report §3.2.2):
a token goes once to each distinct *device* holding one of its ``top_k`` experts, and across nodes once per
distinct destination *node* over RDMA, after which the receiving NIC's GPU forwards it over NVLink.  Per
token, with ``P`` EP devices, ``g`` per node, ``N = ceil(P / g)`` nodes:

* ``D_dev`` / ``D_node`` = expected distinct devices / nodes reached (:func:`_expected_units_hit`), exact for
  experts spread evenly in id order when ``num_experts`` is given, else the with-replacement form
  ``U (1 - (1 - 1/U)^top_k)``; node-limited routing (DeepSeek-V3: 8 groups, top-4) picks ``topk_groups`` of
  ``num_groups`` contiguous expert groups first, so a token reaches at most ``topk_groups`` group-nodes;
* scale-out sends ``D_node (N-1)/N`` (the own node is not sent over RDMA);
* scale-up sends ``D_dev (g-1)/g`` (a copy arrives at the destination node on the GPU with the source's
  local rank and crosses NVLink unless that GPU is the destination; ``N = 1`` gives ``D_dev (P-1)/P``);
* ``time = latency + imbalance x max(up_bytes / up_rate, out_bytes / out_rate)``: the tiers stream
  concurrently, and the busiest device receives (dispatch) or sends (combine) ``imbalance`` x the mean.

Combine mirrors dispatch (DeepEP reduces a token's partial outputs inside the node before the RDMA hop),
usually with a BF16 payload.  An all-to-all over a switched scale-up tier reaches less of the line rate
than rings do; see :data:`ALL_TO_ALL_SCALE_UP_FRACTION`.

Checked against DeepEP V1 on H800 (tests/test_comm.py): intranode EP8 and the RDMA-bound EP32 / EP64 rows
within 4 %; EP16 +12 %, where the model is NVLink-bound and DeepEP's in-node forwarding leg ran at ~122 GB/s
on the wire against 134 GB/s in its intranode kernel (not modelled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from types import MappingProxyType

from cost_models.kinds import Bound
from cost_models.specs import ClusterSpec, LinkSpec

LOW_LATENCY_RDMA_EFFICIENCY = 39.0 / 44.2
"""RDMA throughput of low-latency (decode) all-to-all kernels relative to the throughput kernels on the same NIC:
DeepEP V1 low-latency dispatch/combine reach 39 GB/s at EP128-256 on CX7 400G (specs.md §1.3, x) against the
44.2 GB/s on the wire of the normal kernels (DeepEP V2 README, x2): per-message overhead of small messages."""

ALL_TO_ALL_SCALE_UP_FRACTION = 0.70
"""Cap on the fraction of scale-up line rate an all-to-all reaches (every device streams to every peer
through the switch at once).  Measured: nccl-tests alltoall busBW at 512 MiB over line rate, H100 315/450 =
0.70, H200 311/450 = 0.69, A100 203/300 = 0.68 (specs.md §1.3); consistent with DeepEP intranode EP8 on H800,
153 GB/s counted with self-copies = 134 GB/s on the wire = 0.67 of 200.  Applied as
``min(achievable_fraction, 0.70)`` to the scale-up tier of dispatch / combine only."""

EP_PHASES = 2
"""Latency steps per tier of one DeepEP normal-kernel dispatch or combine: a notify round (per-rank token
counts and a barrier) and the data round (DeepEP ``notify_dispatch`` + ``dispatch``)."""

QUANT_BLOCK_ELEMENTS = 128
"""Elements per activation scale of a sub-16-bit EP payload: DeepSeek-V3 §3.3.2 1x128 tiles, one FP32 scale
each; DeepEP's benchmark counts FP8 dispatch as ``(1 + 4/128)`` bytes per element (tests/test_internode.py)."""

SCALE_BYTES = 4.0
"""One FP32 scale."""

_EPS = 1e-9


@dataclass(frozen=True, kw_only=True)
class CommCost:
    """One communication op as seen by the busiest device."""

    seconds: float
    """Wall time: ``latency_s`` plus the bandwidth term."""
    bytes_scale_up: float
    """Bytes each device sends over the scale-up tier (mean device)."""
    bytes_scale_out: float
    """Bytes each device sends over the scale-out tier (mean device)."""
    latency_s: float
    """The fixed part: steps x tier latency."""
    bound: Bound
    """``scale_up``, ``scale_out`` or ``latency``: the largest term of ``seconds``."""
    detail: Mapping[str, float] = field(default_factory=dict)
    """Intermediate quantities (copies per token, per-tier seconds, bandwidths as benchmarks report them)."""


def _cost(*, seconds: float, up_bytes: float, out_bytes: float, latency_s: float, up_s: float, out_s: float,
          detail: dict[str, float]) -> CommCost:
    bound = max(((Bound.LATENCY, latency_s), (Bound.SCALE_UP, up_s), (Bound.SCALE_OUT, out_s)), key=lambda kv: kv[1])[0]
    detail = {"scale_up_s": up_s, "scale_out_s": out_s, **detail}
    return CommCost(seconds=seconds, bytes_scale_up=up_bytes, bytes_scale_out=out_bytes, latency_s=latency_s,
                    bound=bound, detail=MappingProxyType(detail))


def _free() -> CommCost:
    return _cost(seconds=0.0, up_bytes=0.0, out_bytes=0.0, latency_s=0.0, up_s=0.0, out_s=0.0, detail={})


def _per_s(nbytes: float, seconds: float) -> float:
    return nbytes / seconds if seconds > 0 else 0.0


def _check(name: str, value: float, low: float = 0.0) -> None:
    if not (math.isfinite(value) and value >= low):
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")


def _group_nodes(cluster: ClusterSpec, group_size: int, per_node: int, what: str = "group") -> int:
    """Nodes a group spans (``ceil(n / g)``; an uneven last node is treated as full)."""
    _check(f"{what}_size", group_size, 1)
    if not 1 <= per_node <= min(group_size, cluster.devices_per_node):
        raise ValueError(f"{what}_devices_per_node must be in 1..min({what}_size={group_size}, "
                         f"devices_per_node={cluster.devices_per_node}), got {per_node}")
    return -(-group_size // per_node)


def _phased(cluster: ClusterSpec, *, up_bytes: float, out_bytes: float, up_steps: int, out_steps: int,
            payload_bytes: float, bus_factor: float) -> CommCost:
    """Phases run back to back: time = latency + up_bytes / up_rate + out_bytes / out_rate."""
    up_s = up_bytes / cluster.scale_up.effective_bytes_per_s
    out_s = out_bytes / cluster.scale_out.effective_bytes_per_s
    latency_s = up_steps * cluster.scale_up.latency_s + out_steps * cluster.scale_out.latency_s
    seconds = latency_s + up_s + out_s
    algo = _per_s(payload_bytes, seconds)
    return _cost(seconds=seconds, up_bytes=up_bytes, out_bytes=out_bytes, latency_s=latency_s, up_s=up_s,
                 out_s=out_s, detail={"steps_scale_up": float(up_steps), "steps_scale_out": float(out_steps),
                                      "algo_bytes_per_s": algo, "bus_bytes_per_s": algo * bus_factor})


def all_reduce(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int) -> CommCost:
    """All-reduce of a ``bytes`` buffer: hierarchical ring (module docstring); ``algo_bytes_per_s`` and
    ``bus_bytes_per_s = 2(n-1)/n x algo`` in ``detail`` follow nccl-tests."""
    _check("bytes", bytes)
    n, g = group_size, group_devices_per_node
    m = _group_nodes(cluster, n, g)
    if n == 1 or bytes == 0:
        return _free()
    return _phased(cluster, up_bytes=2 * (g - 1) / g * bytes, out_bytes=2 * (m - 1) / m * bytes / g,
                   up_steps=2 * (g - 1), out_steps=2 * (m - 1), payload_bytes=bytes, bus_factor=2 * (n - 1) / n)


def all_gather(cluster: ClusterSpec, *, bytes_per_rank: float, group_size: int,
               group_devices_per_node: int) -> CommCost:
    """All-gather of ``bytes_per_rank`` from each rank (output ``n x bytes_per_rank``): the inter-node ring
    among same-local-rank devices first, ``(m-1) b``, then the intra-node ring on ``m b`` chunks, ``(g-1) m b``."""
    _check("bytes_per_rank", bytes_per_rank)
    n, g = group_size, group_devices_per_node
    m = _group_nodes(cluster, n, g)
    if n == 1 or bytes_per_rank == 0:
        return _free()
    b = bytes_per_rank
    return _phased(cluster, up_bytes=(g - 1) * m * b, out_bytes=(m - 1) * b, up_steps=g - 1, out_steps=m - 1,
                   payload_bytes=n * b, bus_factor=(n - 1) / n)


def reduce_scatter(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int) -> CommCost:
    """Reduce-scatter of a ``bytes`` input (output ``bytes / n`` per rank): intra-node ring ``(g-1)/g B``,
    then inter-node ring over the node's ``B/g`` shard, ``(m-1)/m B/g``."""
    _check("bytes", bytes)
    n, g = group_size, group_devices_per_node
    m = _group_nodes(cluster, n, g)
    if n == 1 or bytes == 0:
        return _free()
    return _phased(cluster, up_bytes=(g - 1) / g * bytes, out_bytes=(m - 1) / m * bytes / g, up_steps=g - 1,
                   out_steps=m - 1, payload_bytes=bytes, bus_factor=(n - 1) / n)


def point_to_point(cluster: ClusterSpec, *, bytes: float, crosses_nodes: bool) -> CommCost:
    """One send of ``bytes`` (pipeline-stage hand-off): ``latency_s + bytes / rate`` on one tier."""
    _check("bytes", bytes)
    if bytes == 0:
        return _free()
    link = cluster.scale_out if crosses_nodes else cluster.scale_up
    t = bytes / link.effective_bytes_per_s
    up_s, out_s = (0.0, t) if crosses_nodes else (t, 0.0)
    return _cost(seconds=link.latency_s + t, up_bytes=0.0 if crosses_nodes else bytes,
                 out_bytes=bytes if crosses_nodes else 0.0, latency_s=link.latency_s, up_s=up_s, out_s=out_s,
                 detail={})


def _none_drawn(held_share: float, top_k: int, pool: float | None) -> float:
    """P(none of ``top_k`` draws hits a holder of ``held_share`` of the pool): without replacement from a pool
    of ``pool`` experts, or ``(1 - share)^top_k`` when the pool size is unknown."""
    if pool is None:
        return max(0.0, 1.0 - held_share) ** top_k
    p, held = 1.0, held_share * pool
    for i in range(top_k):
        p *= max(0.0, pool - held - i) / (pool - i)
    return p


@lru_cache(maxsize=4096)
def _expected_units_hit(*, units: int, top_k: int, num_groups: int, topk_groups: int,
                        num_experts: int | None) -> float:
    """Expected distinct units (``units`` equal contiguous slices of the expert-id range: devices or nodes)
    that hold at least one of a token's ``top_k`` experts.

    Routing model: ``topk_groups`` of ``num_groups`` equal contiguous groups are chosen uniformly, then
    ``top_k`` distinct experts uniformly among the chosen groups' experts.  For a unit overlapping ``f``
    whole groups and partial groups ``Q`` (at most two, at its ends)::

        P(miss) = sum_{S subset Q} sum_j C(f, j) C(G - f - |Q|, Gk - |S| - j) / C(G, Gk)
                  x P(no draw lands in the held share (j + sum_S q) / Gk)

    and ``E[hits] = sum_units (1 - P(miss))``.  With ``topk_groups >= num_groups`` this is
    ``U (1 - C(E - E/U, k) / C(E, k))`` (or ``U (1 - (1 - 1/U)^k)`` without ``num_experts``).
    """
    groups, chosen = (num_groups, topk_groups) if topk_groups < num_groups else (1, 1)
    pool = None if num_experts is None else num_experts * chosen / groups
    denom = math.comb(groups, chosen)
    memo: dict[tuple[int, tuple[float, ...]], float] = {}
    total = 0.0
    for u in range(units):
        lo, hi = u / units, (u + 1) / units
        full, partial = 0, []
        for grp in range(math.floor(lo * groups + _EPS), math.ceil(hi * groups - _EPS)):
            share = (min(hi, (grp + 1) / groups) - max(lo, grp / groups)) * groups
            if share >= 1 - _EPS:
                full += 1
            elif share > _EPS:
                partial.append(round(share, 12))
        key = (full, tuple(partial))
        if key not in memo:
            other = groups - full - len(partial)
            miss = 0.0
            for mask in product((0, 1), repeat=len(partial)):
                q, held_q = sum(mask), sum(s for s, b in zip(partial, mask, strict=True) if b)
                for j in range(full + 1):
                    rest = chosen - q - j
                    if 0 <= rest <= other:
                        weight = math.comb(full, j) * math.comb(other, rest) / denom
                        miss += weight * _none_drawn((j + held_q) / chosen, top_k, pool)
            memo[key] = 1.0 - miss
        total += memo[key]
    return total


def _check_routing(top_k: int, num_groups: int, topk_groups: int, num_experts: int | None) -> None:
    _check("top_k", top_k, 1)
    _check("num_groups", num_groups, 1)
    if not 1 <= topk_groups <= num_groups:
        raise ValueError(f"topk_groups must be in 1..num_groups={num_groups}, got {topk_groups}")
    if num_experts is not None and not top_k <= num_experts * min(topk_groups, num_groups) / num_groups:
        raise ValueError(f"top_k={top_k} exceeds the experts of {topk_groups} of {num_groups} groups "
                         f"of num_experts={num_experts}")


def cross_node_fraction(*, top_k: int, ep_size: int, ep_devices_per_node: int, num_groups: int = 1,
                        topk_groups: int = 1, num_experts: int | None = None) -> float:
    """Expected copies of a token that cross the scale-out tier, as a share of its ``top_k`` expert copies.

    ``D_node (N-1)/N / top_k`` with ``D_node`` from :func:`_expected_units_hit` over ``N`` nodes.  Without
    per-node dedup the share would be ``(N-1)/N`` (the routing ignores where the token lives); sending one
    copy per remote node and forwarding inside it (DeepEP) lowers it, and node-limited routing (at most
    ``topk_groups`` group-nodes) lowers it further: DeepSeek-V3 on 8 nodes, top-8 over top-4 of 8 groups,
    with replacement: ``D_node = 8 x 4/8 x (1 - (3/4)^8) = 3.60``, share ``3.60 x 7/8 / 8 = 0.39`` vs 0.875.
    """
    _check_routing(top_k, num_groups, topk_groups, num_experts)
    _check("ep_size", ep_size, 1)
    if not 1 <= ep_devices_per_node <= ep_size:
        raise ValueError(f"ep_devices_per_node must be in 1..ep_size={ep_size}, got {ep_devices_per_node}")
    nodes = -(-ep_size // ep_devices_per_node)
    if nodes == 1:
        return 0.0
    d_node = _expected_units_hit(units=nodes, top_k=top_k, num_groups=num_groups, topk_groups=topk_groups,
                                 num_experts=num_experts)
    return d_node * (nodes - 1) / nodes / top_k


def _all_to_all_scale_up_rate(link: LinkSpec) -> float:
    return link.bytes_per_s * min(link.achievable_fraction, ALL_TO_ALL_SCALE_UP_FRACTION)


def _ep_all_to_all(cluster: ClusterSpec, *, tokens_per_device: float, hidden_size: int, top_k: int, ep_size: int,
                   ep_devices_per_node: int, bytes_per_element: float, num_groups: int, topk_groups: int,
                   imbalance: float, num_experts: int | None, scale_bytes_per_token: float | None,
                   forward_in_node: bool) -> CommCost:
    for name, value in (("tokens_per_device", tokens_per_device), ("hidden_size", hidden_size),
                        ("bytes_per_element", bytes_per_element)):
        _check(name, value)
    _check("imbalance", imbalance, 1.0)
    _check_routing(top_k, num_groups, topk_groups, num_experts)
    g = ep_devices_per_node
    nodes = _group_nodes(cluster, ep_size, g, "ep")
    if ep_size == 1 or tokens_per_device == 0 or hidden_size == 0:
        return _free()
    if scale_bytes_per_token is None:
        sub16 = bytes_per_element < 2
        scale_bytes_per_token = hidden_size / QUANT_BLOCK_ELEMENTS * SCALE_BYTES if sub16 else 0.0
    _check("scale_bytes_per_token", scale_bytes_per_token)
    token_bytes = hidden_size * bytes_per_element + scale_bytes_per_token
    if token_bytes == 0:
        return _free()
    routing = {"top_k": top_k, "num_groups": num_groups, "topk_groups": topk_groups, "num_experts": num_experts}
    d_dev = _expected_units_hit(units=ep_size, **routing)
    d_node = _expected_units_hit(units=nodes, **routing) if nodes > 1 else 1.0
    up_rate = _all_to_all_scale_up_rate(cluster.scale_up)
    out_rate = cluster.scale_out.effective_bytes_per_s
    if forward_in_node:
        out_copies = d_node * (nodes - 1) / nodes
        up_copies = d_dev * (g - 1) / g
    elif nodes > 1:
        # low-latency kernels across nodes: one message per (token, expert), every remote one over RDMA, the
        # peers in the own node included ("pure RDMA", DeepEP README), at the LL kernels' RDMA efficiency
        out_copies = top_k * (ep_size - 1) / ep_size
        up_copies = 0.0
        out_rate *= LOW_LATENCY_RDMA_EFFICIENCY
    else:
        out_copies = 0.0
        up_copies = d_dev * (g - 1) / g
    up_bytes = tokens_per_device * up_copies * token_bytes
    out_bytes = tokens_per_device * out_copies * token_bytes
    up_s = imbalance * up_bytes / up_rate
    out_s = imbalance * out_bytes / out_rate
    lat_up = cluster.scale_up.latency_s if g > 1 else 0.0
    lat_out = cluster.scale_out.latency_s if nodes > 1 else 0.0
    latency_s = EP_PHASES * (lat_up + lat_out if forward_in_node else max(lat_up, lat_out))
    seconds = latency_s + max(up_s, out_s)
    # DeepEP's benchmark bytes (tests/test_intranode.py, test_internode.py): NVL = every token copy a device
    # receives, its own included; RDMA = one copy per destination node, the own node included.
    deepep_nvl = tokens_per_device * d_dev * token_bytes
    deepep_rdma = tokens_per_device * d_node * token_bytes if nodes > 1 else 0.0
    on_bound = out_bytes if out_s > up_s else up_bytes
    detail = {
        "token_bytes": token_bytes, "device_copies_per_token": d_dev, "node_copies_per_token": d_node,
        "scale_up_copies_per_token": up_copies, "scale_out_copies_per_token": out_copies,
        "cross_node_fraction": out_copies / top_k, "scale_up_rate_bytes_per_s": up_rate,
        "scale_out_rate_bytes_per_s": out_rate, "imbalance": imbalance,
        "bottleneck_bytes_per_s": _per_s(imbalance * on_bound, seconds),
        "deepep_nvl_bytes": deepep_nvl, "deepep_rdma_bytes": deepep_rdma,
        "deepep_nvl_bytes_per_s": _per_s(deepep_nvl, seconds), "deepep_rdma_bytes_per_s": _per_s(deepep_rdma, seconds),
        "algo_bytes_per_s": _per_s(deepep_rdma if nodes > 1 else deepep_nvl, seconds),
    }
    return _cost(seconds=seconds, up_bytes=up_bytes, out_bytes=out_bytes, latency_s=latency_s, up_s=up_s,
                 out_s=out_s, detail=detail)


def ep_dispatch(cluster: ClusterSpec, *, tokens_per_device: float, hidden_size: int, top_k: int, ep_size: int,
                ep_devices_per_node: int, bytes_per_element: float, num_groups: int = 1, topk_groups: int = 1,
                imbalance: float = 1.0, num_experts: int | None = None, scale_bytes_per_token: float | None = None,
                forward_in_node: bool = True) -> CommCost:
    """MoE dispatch: each device sends its ``tokens_per_device`` tokens to the devices of their experts.

    Formulas in the module docstring.  ``bytes_per_element`` is the payload element size (FP8: 1); payloads
    under 2 bytes per element also carry one FP32 scale per :data:`QUANT_BLOCK_ELEMENTS` unless
    ``scale_bytes_per_token`` says otherwise (DeepSeek-V3 hidden 7168: 7168 + 56 x 4 = 7392 bytes per token).
    ``num_experts`` (optional) makes the distinct-destination count exact; ``forward_in_node=False`` models a
    flat all-to-all that sends every copy straight to its device (NCCL all-to-all, DeepEP low-latency
    kernels).  ``detail["algo_bytes_per_s"]`` is the bandwidth DeepEP's benchmark prints: its NVL bytes (own
    device included) within one node, its RDMA bytes (own node included) across nodes.
    """
    return _ep_all_to_all(cluster, tokens_per_device=tokens_per_device, hidden_size=hidden_size, top_k=top_k,
                          ep_size=ep_size, ep_devices_per_node=ep_devices_per_node,
                          bytes_per_element=bytes_per_element, num_groups=num_groups, topk_groups=topk_groups,
                          imbalance=imbalance, num_experts=num_experts, scale_bytes_per_token=scale_bytes_per_token,
                          forward_in_node=forward_in_node)


def ep_combine(cluster: ClusterSpec, *, tokens_per_device: float, hidden_size: int, top_k: int, ep_size: int,
               ep_devices_per_node: int, bytes_per_element: float, num_groups: int = 1, topk_groups: int = 1,
               imbalance: float = 1.0, num_experts: int | None = None, scale_bytes_per_token: float | None = None,
               forward_in_node: bool = True) -> CommCost:
    """MoE combine: the mirror of :func:`ep_dispatch` (same copies, reverse direction; partial outputs of a
    token are summed inside the destination node before the RDMA hop), with the combine payload's
    ``bytes_per_element`` (BF16: 2, no scales).  The busiest device sends ``imbalance`` x the mean."""
    return _ep_all_to_all(cluster, tokens_per_device=tokens_per_device, hidden_size=hidden_size, top_k=top_k,
                          ep_size=ep_size, ep_devices_per_node=ep_devices_per_node,
                          bytes_per_element=bytes_per_element, num_groups=num_groups, topk_groups=topk_groups,
                          imbalance=imbalance, num_experts=num_experts, scale_bytes_per_token=scale_bytes_per_token,
                          forward_in_node=forward_in_node)
