"""Group collectives by algorithm: ring, tree, NVLink SHARP (NVLS), one-shot and two-shot custom all-reduce.

Every algorithm is ``latency = steps x tier latency_s`` plus ``bytes moved per device / achievable rate`` per
tier; the op runs the fastest algorithm available for its size and topology.  NCCL's tuner picks by its own
latency/bandwidth model (NVIDIA/nccl src/graph/tuning.cc); assuming it picks the fastest under ours is the
simplification.  Serving engines replace NCCL for small all-reduces inside one node with their own kernels
(vLLM ``custom_all_reduce``, SGLang's copy of it, TensorRT-LLM's one-shot / two-shot kernels).

Per-rank volumes (the nccl-tests ``busBW`` factors, nccl-tests doc/PERFORMANCE.md), for ``n`` devices, ``g`` per
node on ``m = ceil(n / g)`` nodes:

* ring all-reduce of ``B``: intra-node reduce-scatter ``(g-1)/g B``, inter-node all-reduce of the node's shard
  ``2(m-1)/m B/g`` (each device drives its own NIC), intra-node all-gather ``(g-1)/g B``; ``2(g-1)`` scale-up and
  ``2(m-1)`` scale-out steps, phases back to back;
* tree all-reduce (``m > 1``, NCCL's double binary tree across nodes): the same intra-node phases; across nodes
  each device's shard goes up one tree and down the other, ``2 B/g`` on its NIC, in ``2 ceil(log2 m)`` steps;
* NVLS all-reduce (one node, NVSwitch with multicast reduction: Hopper / Blackwell): the switch reduces, so a
  device sends its whole buffer once and its reduced slice once (``B (1 + 1/n)``) and receives the same, in 2
  steps (``multimem.ld_reduce``, then ``multimem.st``), at :data:`NVLS_LINK_FRACTION` of the line rate;
* one-shot custom all-reduce (one node): every device reads the ``n-1`` peer buffers over NVLink and reduces
  locally, ``(n-1) B`` in, 2 barriers; two-shot: reduce-scatter then all-gather through peer memory,
  ``2(n-1)/n B``, 3 barriers (vllm-project/vllm@c9eabec7 csrc/custom_all_reduce.cuh, ``cross_device_reduce_1stage``
  / ``_2stage``); available up to :data:`CUSTOM_ALL_REDUCE_MAX_BYTES` on :data:`CUSTOM_ALL_REDUCE_WORLD_SIZES`;
* all-gather of ``b`` per rank: ring ``(m-1) b`` out then ``(g-1) m b`` up; NVLS (one node) ``n b`` in, 1 step;
* reduce-scatter of ``B``: ring ``(g-1)/g B`` up then ``(m-1)/m B/g`` out; NVLS (one node) ``B`` out, 1 step.

A group of one, or zero bytes, costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cost_models.comm_cost import CommCost, check, free, group_nodes, make_cost, per_s
from cost_models.specs import ClusterSpec

NVLS_LINK_FRACTION = 0.686
"""Fraction of the scale-up line rate NVLS collectives reach.  Fitted on one collective measurement: 8 x H100
NVLS all-reduce peak busBW ~480 GB/s, algBW ~275 GB/s (NCCL maintainer, NVIDIA/nccl-tests#212):
``275 x (1 + 1/8) / 450 = 0.687``.  Checked, not fitted: H200 475 GB/s (NVIDIA/nccl-tests#272), H800 215 GB/s
(NVIDIA/nccl#1374)."""

NVLS_ALL_REDUCE_STEPS = 2
"""Switch round trips of one NVLS all-reduce: reduce (``multimem.ld_reduce``) and multicast (``multimem.st``)."""

CUSTOM_ALL_REDUCE_MAX_BYTES = 8 * 2**20
"""Largest buffer the engines' custom all-reduce takes (vLLM ``CustomAllreduce(max_size=8192 * 1024)``,
vllm/distributed/device_communicators/custom_all_reduce.py); larger ones fall back to NCCL."""

CUSTOM_ALL_REDUCE_WORLD_SIZES = (2, 4, 6, 8)
"""Group sizes the custom kernels are compiled for (vLLM ``_SUPPORTED_WORLD_SIZES``)."""

CUSTOM_ALL_REDUCE_VENDORS = ("nvidia", "amd")
"""Vendors whose serving engines ship the peer-memory custom all-reduce (CUDA and ROCm builds of vLLM)."""

ONE_SHOT_BARRIERS, TWO_SHOT_BARRIERS = 2, 3
"""Peer barriers per custom all-reduce: start + end (one-shot), start + middle + end (two-shot)."""

ALGORITHMS = ("ring", "tree", "nvls", "one_shot", "two_shot")


def _phased(cluster: ClusterSpec, *, algorithm: str, up_bytes: float, out_bytes: float, up_steps: int,
            out_steps: int, payload_bytes: float, bus_factor: float, up_rate: float | None = None) -> CommCost:
    """Phases run back to back: time = latency + up_bytes / up_rate + out_bytes / out_rate."""
    up_s = up_bytes / (up_rate or cluster.scale_up.effective_bytes_per_s)
    out_s = out_bytes / cluster.scale_out.effective_bytes_per_s
    latency_s = up_steps * cluster.scale_up.latency_s + out_steps * cluster.scale_out.latency_s
    seconds = latency_s + up_s + out_s
    algo = per_s(payload_bytes, seconds)
    return make_cost(seconds=seconds, up_bytes=up_bytes, out_bytes=out_bytes, latency_s=latency_s, up_s=up_s,
                     out_s=out_s, algorithm=algorithm,
                     detail={"steps_scale_up": float(up_steps), "steps_scale_out": float(out_steps),
                             "algo_bytes_per_s": algo, "bus_bytes_per_s": algo * bus_factor})


def _nvls_rate(cluster: ClusterSpec) -> float:
    return cluster.scale_up.bytes_per_s * NVLS_LINK_FRACTION


def _has_nvls(cluster: ClusterSpec, m: int) -> bool:
    return m == 1 and cluster.scale_up.multicast_reduction


def _custom_ok(cluster: ClusterSpec, n: int, m: int, nbytes: float) -> bool:
    return (m == 1 and n in CUSTOM_ALL_REDUCE_WORLD_SIZES and nbytes <= CUSTOM_ALL_REDUCE_MAX_BYTES
            and cluster.device.vendor in CUSTOM_ALL_REDUCE_VENDORS)


def _fastest(candidates: Iterable[CommCost], algorithm: str | None) -> CommCost:
    """The fastest candidate (first listed on a tie), or the one named ``algorithm``."""
    pool = list(candidates)
    if algorithm is not None:
        named = [c for c in pool if c.algorithm == algorithm]
        if not named:
            raise ValueError(f"algorithm {algorithm!r} is not available here; available: "
                             f"{', '.join(c.algorithm for c in pool)}")
        return named[0]
    return min(pool, key=lambda c: c.seconds)


def all_reduce_candidates(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int,
                          custom_kernels: bool = True) -> tuple[CommCost, ...]:
    """Every all-reduce algorithm available for this group and size (module docstring), ring first."""
    n, g = group_size, group_devices_per_node
    m = group_nodes(cluster, n, g)
    b, bus = bytes, 2 * (n - 1) / n
    out = [_phased(cluster, algorithm="ring", up_bytes=2 * (g - 1) / g * b, out_bytes=2 * (m - 1) / m * b / g,
                   up_steps=2 * (g - 1), out_steps=2 * (m - 1), payload_bytes=b, bus_factor=bus)]
    if m > 1:
        out.append(_phased(cluster, algorithm="tree", up_bytes=2 * (g - 1) / g * b, out_bytes=2 * b / g,
                           up_steps=2 * (g - 1), out_steps=2 * math.ceil(math.log2(m)), payload_bytes=b,
                           bus_factor=bus))
    if _has_nvls(cluster, m):
        out.append(_phased(cluster, algorithm="nvls", up_bytes=b * (1 + 1 / n), out_bytes=0.0,
                           up_steps=NVLS_ALL_REDUCE_STEPS, out_steps=0, payload_bytes=b, bus_factor=bus,
                           up_rate=_nvls_rate(cluster)))
    if custom_kernels and _custom_ok(cluster, n, m, b):
        out.append(_phased(cluster, algorithm="one_shot", up_bytes=(n - 1) * b, out_bytes=0.0,
                           up_steps=ONE_SHOT_BARRIERS, out_steps=0, payload_bytes=b, bus_factor=bus))
        out.append(_phased(cluster, algorithm="two_shot", up_bytes=2 * (n - 1) / n * b, out_bytes=0.0,
                           up_steps=TWO_SHOT_BARRIERS, out_steps=0, payload_bytes=b, bus_factor=bus))
    return tuple(out)


def all_reduce(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int,
               custom_kernels: bool = True, algorithm: str | None = None) -> CommCost:
    """All-reduce of a ``bytes`` buffer by the fastest available algorithm (or the named ``algorithm``, as
    ``NCCL_ALGO`` forces one); ``custom_kernels=False`` leaves the engines' one-/two-shot kernels out (NCCL
    only, as in training).  ``detail`` carries nccl-tests' ``algo_bytes_per_s`` and ``bus_bytes_per_s``."""
    check("bytes", bytes)
    group_nodes(cluster, group_size, group_devices_per_node)
    if group_size == 1 or bytes == 0:
        return free()
    return _fastest(all_reduce_candidates(cluster, bytes=bytes, group_size=group_size,
                                          group_devices_per_node=group_devices_per_node,
                                          custom_kernels=custom_kernels), algorithm)


def all_gather(cluster: ClusterSpec, *, bytes_per_rank: float, group_size: int, group_devices_per_node: int,
               algorithm: str | None = None) -> CommCost:
    """All-gather of ``bytes_per_rank`` from each rank (output ``n x bytes_per_rank``): ring (inter-node ring among
    same-local-rank devices first, ``(m-1) b``, then the intra-node ring on ``m b`` chunks, ``(g-1) m b``), or NVLS
    in one node (each device receives the ``n b`` multicast, 1 step)."""
    check("bytes_per_rank", bytes_per_rank)
    n, g = group_size, group_devices_per_node
    m = group_nodes(cluster, n, g)
    if n == 1 or bytes_per_rank == 0:
        return free()
    b, bus = bytes_per_rank, (n - 1) / n
    pool = [_phased(cluster, algorithm="ring", up_bytes=(g - 1) * m * b, out_bytes=(m - 1) * b, up_steps=g - 1,
                    out_steps=m - 1, payload_bytes=n * b, bus_factor=bus)]
    if _has_nvls(cluster, m):
        pool.append(_phased(cluster, algorithm="nvls", up_bytes=n * b, out_bytes=0.0, up_steps=1, out_steps=0,
                            payload_bytes=n * b, bus_factor=bus, up_rate=_nvls_rate(cluster)))
    return _fastest(pool, algorithm)


def reduce_scatter(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int,
                   algorithm: str | None = None) -> CommCost:
    """Reduce-scatter of a ``bytes`` input (output ``bytes / n`` per rank): ring (intra-node ``(g-1)/g B``, then
    inter-node over the node's ``B/g`` shard, ``(m-1)/m B/g``), or NVLS in one node (``B`` out, 1 step)."""
    check("bytes", bytes)
    n, g = group_size, group_devices_per_node
    m = group_nodes(cluster, n, g)
    if n == 1 or bytes == 0:
        return free()
    bus = (n - 1) / n
    pool = [_phased(cluster, algorithm="ring", up_bytes=(g - 1) / g * bytes, out_bytes=(m - 1) / m * bytes / g,
                    up_steps=g - 1, out_steps=m - 1, payload_bytes=bytes, bus_factor=bus)]
    if _has_nvls(cluster, m):
        pool.append(_phased(cluster, algorithm="nvls", up_bytes=bytes, out_bytes=0.0, up_steps=1, out_steps=0,
                            payload_bytes=bytes, bus_factor=bus, up_rate=_nvls_rate(cluster)))
    return _fastest(pool, algorithm)
