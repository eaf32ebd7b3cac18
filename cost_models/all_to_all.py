"""MoE dispatch / combine: DeepEP's normal (throughput) kernels here, its low-latency kernels in
:mod:`cost_models.all_to_all_ll`.

Normal kernels (deepseek-ai/DeepEP README; DeepSeek-V3 report §3.2.2): a token goes once to each distinct
*device* holding one of its ``top_k`` experts, and across nodes once per distinct destination *node* over RDMA,
after which the receiving NIC's GPU forwards it over NVLink.  Per token, with ``P`` EP devices, ``g`` per node,
``N = ceil(P / g)`` nodes:

* ``D_dev`` / ``D_node`` = expected distinct devices / nodes reached (:func:`expected_units_hit`), exact for
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
than rings do (:data:`cost_models.comm_cost.ALL_TO_ALL_SCALE_UP_FRACTION`).

Checked against DeepEP V1 on H800 (tests/test_comm.py): intranode EP8 and the RDMA-bound EP32 / EP64 rows
within 4 %; EP16 +12 %, where the model is NVLink-bound and DeepEP's in-node forwarding leg ran at ~122 GB/s
on the wire against 134 GB/s in its intranode kernel (not modelled).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import product

from cost_models.all_to_all_ll import DISPATCH_HEADER_BYTES, low_latency_all_to_all
from cost_models.comm_cost import CommCost, all_to_all_scale_up_rate, check, free, group_nodes, make_cost, per_s
from cost_models.specs import ClusterSpec

EP_PHASES = 2
"""Latency steps per tier of one DeepEP normal-kernel dispatch or combine: a notify round (per-rank token
counts and a barrier) and the data round (DeepEP ``notify_dispatch`` + ``dispatch``)."""

QUANT_BLOCK_ELEMENTS = 128
"""Elements per activation scale of a sub-16-bit EP payload: DeepSeek-V3 §3.3.2 1x128 tiles, one FP32 scale
each; DeepEP's benchmark counts FP8 dispatch as ``(1 + 4/128)`` bytes per element (tests/test_internode.py)."""

SCALE_BYTES = 4.0
"""One FP32 scale."""

_EPS = 1e-9


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
def expected_units_hit(*, units: int, top_k: int, num_groups: int, topk_groups: int,
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


def check_routing(top_k: int, num_groups: int, topk_groups: int, num_experts: int | None) -> None:
    check("top_k", top_k, 1)
    check("num_groups", num_groups, 1)
    if not 1 <= topk_groups <= num_groups:
        raise ValueError(f"topk_groups must be in 1..num_groups={num_groups}, got {topk_groups}")
    if num_experts is not None and not top_k <= num_experts * min(topk_groups, num_groups) / num_groups:
        raise ValueError(f"top_k={top_k} exceeds the experts of {topk_groups} of {num_groups} groups "
                         f"of num_experts={num_experts}")


def cross_node_fraction(*, top_k: int, ep_size: int, ep_devices_per_node: int, num_groups: int = 1,
                        topk_groups: int = 1, num_experts: int | None = None) -> float:
    """Expected copies of a token that cross the scale-out tier, as a share of its ``top_k`` expert copies.

    ``D_node (N-1)/N / top_k`` with ``D_node`` from :func:`expected_units_hit` over ``N`` nodes.  Without
    per-node dedup the share would be ``(N-1)/N`` (the routing ignores where the token lives); sending one
    copy per remote node and forwarding inside it (DeepEP) lowers it, and node-limited routing (at most
    ``topk_groups`` group-nodes) lowers it further: DeepSeek-V3 on 8 nodes, top-8 over top-4 of 8 groups,
    with replacement: ``D_node = 8 x 4/8 x (1 - (3/4)^8) = 3.60``, share ``3.60 x 7/8 / 8 = 0.39`` vs 0.875.
    """
    check_routing(top_k, num_groups, topk_groups, num_experts)
    check("ep_size", ep_size, 1)
    if not 1 <= ep_devices_per_node <= ep_size:
        raise ValueError(f"ep_devices_per_node must be in 1..ep_size={ep_size}, got {ep_devices_per_node}")
    nodes = -(-ep_size // ep_devices_per_node)
    if nodes == 1:
        return 0.0
    d_node = expected_units_hit(units=nodes, top_k=top_k, num_groups=num_groups, topk_groups=topk_groups,
                                 num_experts=num_experts)
    return d_node * (nodes - 1) / nodes / top_k


def _normal(cluster: ClusterSpec, *, tokens_per_device: float, token_bytes: float, ep_size: int, g: int,
            nodes: int, imbalance: float, routing: dict) -> CommCost:
    """DeepEP normal kernels: per-node dedup over RDMA, forwarding over NVLink (module docstring)."""
    d_dev = expected_units_hit(units=ep_size, **routing)
    d_node = expected_units_hit(units=nodes, **routing) if nodes > 1 else 1.0
    up_rate = all_to_all_scale_up_rate(cluster.scale_up)
    out_rate = cluster.scale_out.effective_bytes_per_s
    out_copies = d_node * (nodes - 1) / nodes
    up_copies = d_dev * (g - 1) / g
    up_bytes = tokens_per_device * up_copies * token_bytes
    out_bytes = tokens_per_device * out_copies * token_bytes
    up_s = imbalance * up_bytes / up_rate
    out_s = imbalance * out_bytes / out_rate
    lat_up = cluster.scale_up.latency_s if g > 1 else 0.0
    lat_out = cluster.scale_out.latency_s if nodes > 1 else 0.0
    latency_s = EP_PHASES * (lat_up + lat_out)
    seconds = latency_s + max(up_s, out_s)
    # DeepEP's benchmark bytes (tests/test_intranode.py, test_internode.py): NVL = every token copy a device
    # receives, its own included; RDMA = one copy per destination node, the own node included.
    deepep_nvl = tokens_per_device * d_dev * token_bytes
    deepep_rdma = tokens_per_device * d_node * token_bytes if nodes > 1 else 0.0
    on_bound = out_bytes if out_s > up_s else up_bytes
    detail = {
        "token_bytes": token_bytes, "device_copies_per_token": d_dev, "node_copies_per_token": d_node,
        "scale_up_copies_per_token": up_copies, "scale_out_copies_per_token": out_copies,
        "cross_node_fraction": out_copies / routing["top_k"], "scale_up_rate_bytes_per_s": up_rate,
        "scale_out_rate_bytes_per_s": out_rate, "imbalance": imbalance,
        "bottleneck_bytes_per_s": per_s(imbalance * on_bound, seconds),
        "deepep_nvl_bytes": deepep_nvl, "deepep_rdma_bytes": deepep_rdma,
        "deepep_nvl_bytes_per_s": per_s(deepep_nvl, seconds), "deepep_rdma_bytes_per_s": per_s(deepep_rdma, seconds),
        "algo_bytes_per_s": per_s(deepep_rdma if nodes > 1 else deepep_nvl, seconds),
    }
    return make_cost(seconds=seconds, up_bytes=up_bytes, out_bytes=out_bytes, latency_s=latency_s, up_s=up_s,
                     out_s=out_s, detail=detail, algorithm="deepep_normal")


def _ep_all_to_all(cluster: ClusterSpec, *, tokens_per_device: float, hidden_size: int, top_k: int, ep_size: int,
                   ep_devices_per_node: int, bytes_per_element: float, num_groups: int, topk_groups: int,
                   imbalance: float, num_experts: int | None, scale_bytes_per_token: float | None,
                   forward_in_node: bool, nvlink_in_node: bool, combine: bool) -> CommCost:
    for name, value in (("tokens_per_device", tokens_per_device), ("hidden_size", hidden_size),
                        ("bytes_per_element", bytes_per_element)):
        check(name, value)
    check("imbalance", imbalance, 1.0)
    check_routing(top_k, num_groups, topk_groups, num_experts)
    g = ep_devices_per_node
    nodes = group_nodes(cluster, ep_size, g, "ep")
    if ep_size == 1 or tokens_per_device == 0 or hidden_size == 0:
        return free()
    if scale_bytes_per_token is None:
        sub16 = bytes_per_element < 2
        scale_bytes_per_token = hidden_size / QUANT_BLOCK_ELEMENTS * SCALE_BYTES if sub16 else 0.0
    check("scale_bytes_per_token", scale_bytes_per_token)
    token_bytes = hidden_size * bytes_per_element + scale_bytes_per_token
    if token_bytes == 0:
        return free()
    if forward_in_node:
        routing = {"top_k": top_k, "num_groups": num_groups, "topk_groups": topk_groups, "num_experts": num_experts}
        return _normal(cluster, tokens_per_device=tokens_per_device, token_bytes=token_bytes, ep_size=ep_size, g=g,
                       nodes=nodes, imbalance=imbalance, routing=routing)
    messages = tokens_per_device * top_k
    if combine:  # read the top-k BF16 outputs of every token, write the reduced token
        message_bytes = token_bytes
        receive_hbm = messages * message_bytes + tokens_per_device * token_bytes
    else:  # copy every received message out of the receive buffer into per-expert layout
        message_bytes = token_bytes + DISPATCH_HEADER_BYTES
        receive_hbm = 2 * messages * message_bytes
    cost = low_latency_all_to_all(cluster, tokens_per_device=tokens_per_device, message_bytes=message_bytes,
                                  top_k=top_k, ep_size=ep_size, ep_devices_per_node=g, imbalance=imbalance,
                                  num_experts=num_experts, nvlink_in_node=nvlink_in_node,
                                  receive_hbm_bytes=receive_hbm)
    return cost


def ep_dispatch(cluster: ClusterSpec, *, tokens_per_device: float, hidden_size: int, top_k: int, ep_size: int,
                ep_devices_per_node: int, bytes_per_element: float, num_groups: int = 1, topk_groups: int = 1,
                imbalance: float = 1.0, num_experts: int | None = None, scale_bytes_per_token: float | None = None,
                forward_in_node: bool = True, nvlink_in_node: bool = True) -> CommCost:
    """MoE dispatch: each device sends its ``tokens_per_device`` tokens to the devices of their experts.

    ``forward_in_node=True``: DeepEP normal kernels (module docstring); ``False``: DeepEP low-latency kernels
    (:mod:`cost_models.all_to_all_ll`), whose in-node peers go over NVLink when ``nvlink_in_node`` (DeepEP
    ``allow_nvlink_for_low_latency_mode``, on by default) and over RDMA otherwise.  ``bytes_per_element`` is
    the payload element size (FP8: 1); payloads under 2 bytes per element also carry one FP32 scale per
    :data:`QUANT_BLOCK_ELEMENTS` unless ``scale_bytes_per_token`` says otherwise (DeepSeek-V3 hidden 7168:
    7168 + 56 x 4 = 7392 bytes per token).  ``num_experts`` (optional) makes the distinct-destination count
    exact.  ``detail["algo_bytes_per_s"]`` is the bandwidth DeepEP's benchmark prints.
    """
    return _ep_all_to_all(cluster, tokens_per_device=tokens_per_device, hidden_size=hidden_size, top_k=top_k,
                          ep_size=ep_size, ep_devices_per_node=ep_devices_per_node,
                          bytes_per_element=bytes_per_element, num_groups=num_groups, topk_groups=topk_groups,
                          imbalance=imbalance, num_experts=num_experts, scale_bytes_per_token=scale_bytes_per_token,
                          forward_in_node=forward_in_node, nvlink_in_node=nvlink_in_node, combine=False)


def ep_combine(cluster: ClusterSpec, *, tokens_per_device: float, hidden_size: int, top_k: int, ep_size: int,
               ep_devices_per_node: int, bytes_per_element: float, num_groups: int = 1, topk_groups: int = 1,
               imbalance: float = 1.0, num_experts: int | None = None, scale_bytes_per_token: float | None = None,
               forward_in_node: bool = True, nvlink_in_node: bool = True) -> CommCost:
    """MoE combine: the mirror of :func:`ep_dispatch` (same copies, reverse direction; the normal kernels sum a
    token's partial outputs inside the destination node before the RDMA hop, the low-latency kernels send every
    expert output back and reduce on the receiver), with the combine payload's ``bytes_per_element`` (BF16: 2,
    no scales).  The busiest device sends ``imbalance`` x the mean."""
    return _ep_all_to_all(cluster, tokens_per_device=tokens_per_device, hidden_size=hidden_size, top_k=top_k,
                          ep_size=ep_size, ep_devices_per_node=ep_devices_per_node,
                          bytes_per_element=bytes_per_element, num_groups=num_groups, topk_groups=topk_groups,
                          imbalance=imbalance, num_experts=num_experts, scale_bytes_per_token=scale_bytes_per_token,
                          forward_in_node=forward_in_node, nvlink_in_node=nvlink_in_node, combine=True)
