"""Low-latency (decode) MoE all-to-all as DeepEP V1's low-latency kernels run it.

deepseek-ai/DeepEP@de8cfca csrc/kernels/internode_ll.cu: dispatch sends one message per (token, selected expert),
even when two of a token's experts live on the same device, straight into the expert's receive slot; a
destination reachable by NVLink peer pointer (``nvshmemi_get_p2p_ptr``, the own node when
``allow_nvlink_for_low_latency_mode``) is written with stores over NVLink, every other one with an RDMA put
(IBGDA); a per-expert count follows the data, and the receiving half of the kernel copies the received messages
out of the receive buffer into per-expert layout.  Combine sends each expert output (BF16) back to its token's
device the same way, and the receiver reduces the ``top_k`` outputs of each token.  There is no per-node
deduplication, so node-limited routing changes nothing in expectation: an expert choice is uniform over
experts either way.

Per device, ``T`` tokens, ``k`` experts each, ``P`` EP devices, ``g`` per node:

* messages ``M = T k``; to the own device ``M/P`` (a local copy), to the ``g-1`` node peers ``M (g-1)/P`` over
  the scale-up tier (NVLink path on), to the rest ``M (P-g)/P`` over RDMA (``M (P-1)/P`` with the NVLink path
  off: "pure RDMA", NIC loopback inside a node);
* message bytes: dispatch ``hidden x element bytes + scales`` + a 16-byte source-info header
  (:data:`DISPATCH_HEADER_BYTES`), combine ``hidden x 2``;
* the busiest receiver (dispatch) / sender (combine): a device's received count is a sum of ``T P`` independent
  per-token counts, variance ``M (1 - 1/P) (E-k)/(E-1)``; the expected maximum over ``P`` devices is the mean
  plus ``z_P`` standard deviations (Blom's normal order statistic); a measured ``imbalance`` above that wins;
* time ``= fixed + tier latency + max(up_bytes / up_rate, out_bytes / out_rate) + hbm_bytes / hbm_rate``: NVLink
  stores and RDMA puts are issued concurrently by different warps; the receive-side copy (dispatch) or reduction
  (combine) reads and writes HBM after the last message lands.  Rates are the tiers' all-to-all rates the normal
  kernels use (NVLink all-to-all cap, NIC achievable fraction), so the only constant fitted here is
  :data:`LOW_LATENCY_FIXED_S`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from cost_models.comm_cost import CommCost, all_to_all_scale_up_rate, make_cost, per_s
from cost_models.specs import ClusterSpec

LOW_LATENCY_FIXED_S = 10.7e-6
"""Fixed time of one low-latency dispatch or combine kernel beyond one tier latency: the send loop's start (FP8
cast, slot atomics), the per-expert count round and the grid-wide wait.  Fitted, minimax (the smallest
worst-case relative error, 12 %), on the 24 DeepEP V1 low-latency kernel timings in
tests/data/deepep_low_latency.csv (H800 + CX7: the NVLink-path table of DeepEP@de8cfca and the pure-RDMA table
of DeepEP@ebfe47e); the one constant fitted in this model (least squares gives 5.0 us, worst row 19 %)."""

DISPATCH_HEADER_BYTES = 16.0
"""Source-token info (one ``int4``) at the head of every low-latency dispatch message (internode_ll.cu
``num_bytes_per_msg = sizeof(int4) + ...``; DeepEP's test counts ``hidden + hidden / 128 * 4 + 16`` bytes)."""


def expected_max_z(count: int) -> float:
    """Expected largest of ``count`` standard normal draws, Blom's ``Phi^-1((n - 0.375) / (n + 0.25))``
    (n = 8: 1.43, exact 1.42; n = 256: 2.82); 0 for one draw."""
    if count <= 1:
        return 0.0
    return NormalDist().inv_cdf((count - 0.375) / (count + 0.25))


def busiest_receiver_factor(*, messages_per_device: float, ep_size: int, top_k: int,
                            num_experts: int | None) -> float:
    """Busiest device's received messages over the mean, from routing randomness alone (module docstring)."""
    if messages_per_device <= 0 or ep_size <= 1:
        return 1.0
    spread = 1.0 if num_experts is None or num_experts <= 1 else (num_experts - top_k) / (num_experts - 1)
    var = messages_per_device * (1 - 1 / ep_size) * max(0.0, spread)
    return 1.0 + expected_max_z(ep_size) * math.sqrt(var) / messages_per_device


def low_latency_all_to_all(cluster: ClusterSpec, *, tokens_per_device: float, message_bytes: float, top_k: int,
                           ep_size: int, ep_devices_per_node: int, imbalance: float, num_experts: int | None,
                           nvlink_in_node: bool, receive_hbm_bytes: float) -> CommCost:
    """One low-latency dispatch or combine (module docstring); ``receive_hbm_bytes`` is the HBM traffic of the
    receiving half per mean device (dispatch: read + write of the received messages; combine: read of the
    ``top_k`` outputs per token + write of the reduced token)."""
    g, p = ep_devices_per_node, ep_size
    messages = tokens_per_device * top_k
    near = g if nvlink_in_node else 1
    up_msgs = messages * (g - 1) / p if nvlink_in_node else 0.0
    out_msgs = messages * (p - near) / p
    factor = max(imbalance, busiest_receiver_factor(messages_per_device=messages, ep_size=p, top_k=top_k,
                                                    num_experts=num_experts))
    up_bytes, out_bytes = up_msgs * message_bytes, out_msgs * message_bytes
    up_rate = all_to_all_scale_up_rate(cluster.scale_up)
    out_rate = cluster.scale_out.effective_bytes_per_s
    up_s, out_s = factor * up_bytes / up_rate, factor * out_bytes / out_rate
    memory_s = factor * receive_hbm_bytes / cluster.device.hbm_bytes_per_s
    tier = cluster.scale_out if out_msgs > 0 else cluster.scale_up
    latency_s = LOW_LATENCY_FIXED_S + tier.latency_s
    seconds = latency_s + max(up_s, out_s) + memory_s
    deepep_bytes = messages * message_bytes  # DeepEP's test: every selection, own device included
    detail = {
        "messages_per_device": messages, "scale_up_messages": up_msgs, "scale_out_messages": out_msgs,
        "message_bytes": message_bytes, "receive_factor": factor, "memory_s": memory_s,
        "scale_up_rate_bytes_per_s": up_rate, "scale_out_rate_bytes_per_s": out_rate,
        "cross_node_fraction": out_msgs / messages if messages else 0.0,
        "deepep_ll_bytes": deepep_bytes, "algo_bytes_per_s": per_s(deepep_bytes, seconds),
    }
    return make_cost(seconds=seconds, up_bytes=up_bytes, out_bytes=out_bytes, latency_s=latency_s, up_s=up_s,
                     out_s=out_s, memory_s=memory_s, detail=detail, algorithm="deepep_low_latency")

