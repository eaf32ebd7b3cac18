"""Group collectives by algorithm and protocol: ring, tree, NVLink SHARP (NVLS), one-shot and two-shot custom
all-reduce.

Every NCCL algorithm is a fixed kernel cost :data:`NCCL_BASE_S` plus ``steps x step latency`` plus bytes moved per
device / achievable rate per tier; each ring or tree runs under one of NCCL's protocols (NVIDIA/nccl@5067397
src/graph/tuning.cc): **LL** (8-byte stores carrying 4 data bytes and a flag: no set-up, at
:data:`LL_BANDWIDTH_FRACTION` of the rate) or **Simple** (full rate after a set-up of :data:`SIMPLE_FIXED_S`);
a step costs the tier's ``latency_s`` under either.  NCCL's third protocol, LL128, was tried against the measured
curves (a set-up of 2-10 us at 0.6-0.92 of the rate) and improved none, and NCCL's tree inside one node is a
chain of the ring's ``2(n-1)`` steps at a lower rate (tuning.cc), never faster here: neither is a candidate.  The op runs the fastest candidate for its size and
topology; NCCL's tuner picks by its own model of the same terms, so "the fastest under ours" is the simplification.
Serving engines replace NCCL for small all-reduces inside one node with their own kernels (vLLM
``custom_all_reduce``, SGLang's copy of it, TensorRT-LLM's one-shot / two-shot kernels).

Per-rank volumes (the nccl-tests ``busBW`` factors, nccl-tests doc/PERFORMANCE.md), for ``n`` devices, ``g`` per
node on ``m = ceil(n / g)`` nodes:

* ring all-reduce of ``B``: intra-node reduce-scatter ``(g-1)/g B``, inter-node all-reduce of the node's shard
  ``2(m-1)/m B/g`` (each device drives its own NIC), intra-node all-gather ``(g-1)/g B``; ``2(g-1)`` scale-up and
  ``2(m-1)`` scale-out steps, phases back to back;
* tree all-reduce (``m > 1``, NCCL's double binary tree across nodes): the same intra-node phases; across nodes
  each device's shard goes up one tree and down the other, ``2 B/g`` on its NIC, in ``2 ceil(log2 m)`` steps;
* NVLS all-reduce (one node, NVSwitch with multicast reduction: Hopper / Blackwell): the switch reduces, so a
  device sends its whole buffer once and its reduced slice once (``B (1 + 1/n)``) and receives the same, at
  :data:`NVLS_LINK_FRACTION` of the line rate, after :data:`NVLS_LATENCY_S`;
* one-shot custom all-reduce (one node): every device reads the ``n-1`` peer buffers over NVLink and reduces
  locally, ``(n-1) B`` in at :data:`ONE_SHOT_READ_FRACTION` of the line rate; two-shot: reduce-scatter then
  all-gather through peer memory, ``2(n-1)/n B`` at the tier's achievable rate (vllm-project/vllm@c9eabec7
  csrc/custom_all_reduce.cuh, ``cross_device_reduce_1stage`` / ``_2stage``); each a fixed cost
  (:data:`ONE_SHOT_FIXED_S`, :data:`TWO_SHOT_FIXED_S`); available up to :data:`CUSTOM_ALL_REDUCE_MAX_BYTES` on
  :data:`CUSTOM_ALL_REDUCE_WORLD_SIZES`;
* all-gather of ``b`` per rank: ring ``(m-1) b`` out then ``(g-1) m b`` up, ``n-1`` steps; NVLS (one node)
  ``n b`` in;
* reduce-scatter of ``B``: ring ``(g-1)/g B`` up then ``(m-1)/m B/g`` out, ``n-1`` steps; NVLS (one node) ``B``
  out.

The constants marked *fitted* were fitted on one-node nccl-tests and engine measurements copied into
``tests/data/nccl_perf_aiconfigurator.csv`` and ``tests/data/custom_allreduce_aiconfigurator.csv``
(ai-dynamo/aiconfigurator@095f58a51c4c); each docstring names its rows.  A group of one, or zero bytes, costs
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from cost_models.comm_cost import CommCost, check, free, group_nodes, make_cost, per_s
from cost_models.specs import ClusterSpec

NCCL_BASE_S = 4.8e-6
"""Fixed cost of one NCCL collective kernel (launch and protocol set-up), every algorithm.  Fitted: the
intercept of the H200 NCCL 2.29.2 all_reduce times at 1-8 KiB against ring steps, 2 GPUs (2 steps, mean 6.43 us)
and 8 GPUs (14 steps, mean 16.38 us): ``6.43 - 2 x (16.38 - 6.43) / 12 = 4.77 us``; the slope is the NVLink 4
tier's ``latency_s`` (planner/catalog/device_links.py)."""

LL_BANDWIDTH_FRACTION = 0.38
"""Share of the tier's achievable rate the LL protocol reaches (half the bytes on the wire are flags, and LL runs
few channels; NCCL's tuner assumes 0.5 and caps it).  Fitted: minimax error over all H200 NCCL 2.29.2
all_reduce rows on 2/4/8 GPUs (1 KiB .. 512 MiB), with the other constants fixed."""

SIMPLE_FIXED_S = 15e-6
"""Set-up of the Simple protocol on top of :data:`NCCL_BASE_S` (its steps cost what LL steps cost).  Fitted:
minimax over the 180 H200 NCCL 2.29.2 rows (all_reduce, all_gather, reduce_scatter; 2/4/8 GPUs) with the other
constants fixed; the intercepts it stands for: 8-GPU all_gather 8 -> 16 MiB extrapolates to 19.5 us (7 steps),
2-GPU all_reduce 4 -> 8 MiB to 19.2 us (2 steps), so the set-up, not the step, is what Simple adds.  NCCL's tuner
models it the other way round (NVLink ring Simple 3.4 us per step against LL 0.6 us,
NVIDIA/nccl@5067397 src/graph/tuning.cc ``hwLatencies``); that reading puts the 8-GPU H200 all_gather rows at up
to +32 % (-26.5 % to +5.3 % with the set-up instead)."""

NVLS_LATENCY_S = 25e-6
"""Latency of one NVLS collective on top of :data:`NCCL_BASE_S`: NCCL's NVLink NVLS latency, 25 us
(NVIDIA/nccl@5067397 src/graph/tuning.cc ``hwLatencies``); checked, not fitted, on the 4- and 8-GPU H200 / H100
all_reduce rows from 4 MiB up."""

NVLS_LINK_FRACTION = 0.686
"""Fraction of the scale-up line rate NVLS collectives reach.  Fitted on one collective measurement: 8 x H100
NVLS all-reduce peak busBW ~480 GB/s, algBW ~275 GB/s (NCCL maintainer, NVIDIA/nccl-tests#212):
``275 x (1 + 1/8) / 450 = 0.687``.  Checked, not fitted: H200 475 GB/s (NVIDIA/nccl-tests#272), H800 215 GB/s
(NVIDIA/nccl#1374)."""

CUSTOM_ALL_REDUCE_MAX_BYTES = 8 * 2**20
"""Largest buffer the engines' custom all-reduce takes (vLLM ``CustomAllreduce(max_size=8192 * 1024)``,
vllm/distributed/device_communicators/custom_all_reduce.py); larger ones fall back to NCCL."""

CUSTOM_ALL_REDUCE_WORLD_SIZES = (2, 4, 6, 8)
"""Group sizes the custom kernels are compiled for (vLLM ``_SUPPORTED_WORLD_SIZES``)."""

CUSTOM_ALL_REDUCE_VENDORS = ("nvidia", "amd")
"""Vendors whose serving engines ship the peer-memory custom all-reduce (CUDA and ROCm builds of vLLM)."""

ONE_SHOT_FIXED_S = 4.5e-6
"""Fixed cost of one one-shot custom all-reduce (launch, start and end peer barriers).  Fitted: vLLM 0.19.0
CUDA-graph all_reduce on H200 at 1-4 KiB, 2/4/8 GPUs (4.4-4.8 us)."""

TWO_SHOT_FIXED_S = 8.5e-6
"""Fixed cost of one two-shot custom all-reduce (a third barrier between its reduce-scatter and all-gather
halves, and two kernel phases).  Fitted: vLLM 0.19.0 CUDA-graph all_reduce on H200, 8 GPUs at 512 KiB (11.1 us,
of which 1.75 x 512 KiB / 370 GB/s = 2.5 us moves bytes) and 4 GPUs at 512 KiB (10.5 - 2.1 us)."""

ONE_SHOT_READ_FRACTION = 0.63
"""Share of the scale-up line rate a one-shot all-reduce reads peer buffers at (every device pulls from all
``n-1`` peers at once).  Fitted: vLLM 0.19.0 CUDA-graph all_reduce on H200, the one-shot rows above the fixed
cost: 2 GPUs 1 MiB (269 GB/s), 4 GPUs 256 KiB (315 GB/s), 8 GPUs 128 KiB (278 GB/s); mean 287 / 450."""

ALGORITHMS = ("ring_ll", "ring_simple", "tree_ll", "tree_simple", "nvls", "one_shot", "two_shot")
"""Every ``CommCost.algorithm`` this module returns; ``algorithm="ring"`` (or ``"tree"``) forces that algorithm
under its fastest protocol."""


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """One NCCL protocol: its set-up cost and the share of the rate it reaches."""

    name: str
    """``ll`` or ``simple``."""
    fixed_s: float
    """Set-up cost on top of :data:`NCCL_BASE_S`, seconds."""
    bandwidth_fraction: float
    """Share of each tier's achievable rate."""


LL = Protocol(name="ll", fixed_s=0.0, bandwidth_fraction=LL_BANDWIDTH_FRACTION)
SIMPLE = Protocol(name="simple", fixed_s=SIMPLE_FIXED_S, bandwidth_fraction=1.0)
PROTOCOLS = (LL, SIMPLE)


def _phased(*, algorithm: str, up_bytes: float, out_bytes: float, latency_s: float,
            up_rate: float, out_rate: float, payload_bytes: float, bus_factor: float,
            detail: dict[str, float]) -> CommCost:
    """Phases run back to back: time = latency + up_bytes / up_rate + out_bytes / out_rate."""
    up_s = up_bytes / up_rate
    out_s = out_bytes / out_rate
    seconds = latency_s + up_s + out_s
    algo = per_s(payload_bytes, seconds)
    return make_cost(seconds=seconds, up_bytes=up_bytes, out_bytes=out_bytes, latency_s=latency_s, up_s=up_s,
                     out_s=out_s, algorithm=algorithm,
                     detail={**detail, "algo_bytes_per_s": algo, "bus_bytes_per_s": algo * bus_factor})


def _nccl(cluster: ClusterSpec, protocol: Protocol, *, algorithm: str, up_bytes: float, out_bytes: float,
          up_steps: int, out_steps: int, payload_bytes: float, bus_factor: float) -> CommCost:
    """A ring or tree under ``protocol``: base + the protocol's set-up + steps on each tier."""
    up, out = cluster.scale_up, cluster.scale_out
    latency_s = NCCL_BASE_S + protocol.fixed_s + up_steps * up.latency_s + out_steps * out.latency_s
    return _phased(algorithm=f"{algorithm}_{protocol.name}", up_bytes=up_bytes, out_bytes=out_bytes,
                   latency_s=latency_s, up_rate=up.effective_bytes_per_s * protocol.bandwidth_fraction,
                   out_rate=out.effective_bytes_per_s * protocol.bandwidth_fraction, payload_bytes=payload_bytes,
                   bus_factor=bus_factor, detail={"steps_scale_up": float(up_steps),
                                                  "steps_scale_out": float(out_steps)})


def _nvls(cluster: ClusterSpec, *, up_bytes: float, payload_bytes: float, bus_factor: float) -> CommCost:
    """NVLS in one node: base + :data:`NVLS_LATENCY_S` + bytes at :data:`NVLS_LINK_FRACTION` of the line rate."""
    return _phased(algorithm="nvls", up_bytes=up_bytes, out_bytes=0.0,
                   latency_s=NCCL_BASE_S + NVLS_LATENCY_S,
                   up_rate=cluster.scale_up.bytes_per_s * NVLS_LINK_FRACTION, out_rate=1.0,
                   payload_bytes=payload_bytes, bus_factor=bus_factor, detail={})


def _custom(cluster: ClusterSpec, *, algorithm: str, up_bytes: float, fixed_s: float, rate: float,
            payload_bytes: float, bus_factor: float) -> CommCost:
    """A peer-memory custom all-reduce: a fixed cost + the bytes it pulls over the scale-up tier."""
    return _phased(algorithm=algorithm, up_bytes=up_bytes, out_bytes=0.0, latency_s=fixed_s,
                   up_rate=rate, out_rate=1.0, payload_bytes=payload_bytes, bus_factor=bus_factor, detail={})


def _has_nvls(cluster: ClusterSpec, m: int) -> bool:
    return m == 1 and cluster.scale_up.multicast_reduction


def _custom_ok(cluster: ClusterSpec, n: int, m: int, nbytes: float) -> bool:
    return (m == 1 and n in CUSTOM_ALL_REDUCE_WORLD_SIZES and nbytes <= CUSTOM_ALL_REDUCE_MAX_BYTES
            and cluster.device.vendor in CUSTOM_ALL_REDUCE_VENDORS)


def _fastest(candidates: Iterable[CommCost], algorithm: str | None) -> CommCost:
    """The fastest candidate (first listed on a tie), or the fastest named ``algorithm`` (``ring`` matches
    ``ring_ll`` and ``ring_simple``)."""
    pool = list(candidates)
    if algorithm is not None:
        pool_named = [c for c in pool if c.algorithm == algorithm
                      or (algorithm in ("ring", "tree") and c.algorithm.startswith(f"{algorithm}_"))]
        if not pool_named:
            raise ValueError(f"algorithm {algorithm!r} is not available here; available: "
                             f"{', '.join(c.algorithm for c in pool)}")
        pool = pool_named
    return min(pool, key=lambda c: c.seconds)


def all_reduce_candidates(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int,
                          custom_kernels: bool = True) -> tuple[CommCost, ...]:
    """Every all-reduce algorithm and protocol available for this group and size (module docstring), ring first."""
    n, g = group_size, group_devices_per_node
    m = group_nodes(cluster, n, g)
    b, bus = bytes, 2 * (n - 1) / n
    up_bytes = 2 * (g - 1) / g * b
    out = [_nccl(cluster, p, algorithm="ring", up_bytes=up_bytes, out_bytes=2 * (m - 1) / m * b / g,
                 up_steps=2 * (g - 1), out_steps=2 * (m - 1), payload_bytes=b, bus_factor=bus) for p in PROTOCOLS]
    if m > 1:
        out += [_nccl(cluster, p, algorithm="tree", up_bytes=up_bytes, out_bytes=2 * b / g, up_steps=2 * (g - 1),
                      out_steps=2 * math.ceil(math.log2(m)), payload_bytes=b, bus_factor=bus) for p in PROTOCOLS]
    if _has_nvls(cluster, m):
        out.append(_nvls(cluster, up_bytes=b * (1 + 1 / n), payload_bytes=b, bus_factor=bus))
    if custom_kernels and _custom_ok(cluster, n, m, b):
        up = cluster.scale_up
        out.append(_custom(cluster, algorithm="one_shot", up_bytes=(n - 1) * b, fixed_s=ONE_SHOT_FIXED_S,
                           rate=up.bytes_per_s * ONE_SHOT_READ_FRACTION, payload_bytes=b, bus_factor=bus))
        if n > 2:  # vLLM runs one-shot at every size on 2 GPUs (custom_all_reduce.cuh ``world_size_ == 2``)
            out.append(_custom(cluster, algorithm="two_shot", up_bytes=2 * (n - 1) / n * b, fixed_s=TWO_SHOT_FIXED_S,
                               rate=up.effective_bytes_per_s, payload_bytes=b, bus_factor=bus))
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
    same-local-rank devices first, ``(m-1) b``, then the intra-node ring on ``m b`` chunks, ``(g-1) m b``) under
    each protocol, or NVLS in one node (each device receives the ``n b`` multicast)."""
    check("bytes_per_rank", bytes_per_rank)
    n, g = group_size, group_devices_per_node
    m = group_nodes(cluster, n, g)
    if n == 1 or bytes_per_rank == 0:
        return free()
    b, bus = bytes_per_rank, (n - 1) / n
    pool = [_nccl(cluster, p, algorithm="ring", up_bytes=(g - 1) * m * b, out_bytes=(m - 1) * b, up_steps=g - 1,
                  out_steps=m - 1, payload_bytes=n * b, bus_factor=bus) for p in PROTOCOLS]
    if _has_nvls(cluster, m):
        pool.append(_nvls(cluster, up_bytes=n * b, payload_bytes=n * b, bus_factor=bus))
    return _fastest(pool, algorithm)


def reduce_scatter(cluster: ClusterSpec, *, bytes: float, group_size: int, group_devices_per_node: int,
                   algorithm: str | None = None) -> CommCost:
    """Reduce-scatter of a ``bytes`` input (output ``bytes / n`` per rank): ring (intra-node ``(g-1)/g B``, then
    inter-node over the node's ``B/g`` shard, ``(m-1)/m B/g``) under each protocol, or NVLS in one node (``B``
    out)."""
    check("bytes", bytes)
    n, g = group_size, group_devices_per_node
    m = group_nodes(cluster, n, g)
    if n == 1 or bytes == 0:
        return free()
    bus = (n - 1) / n
    pool = [_nccl(cluster, p, algorithm="ring", up_bytes=(g - 1) / g * bytes, out_bytes=(m - 1) / m * bytes / g,
                  up_steps=g - 1, out_steps=m - 1, payload_bytes=bytes, bus_factor=bus) for p in PROTOCOLS]
    if _has_nvls(cluster, m):
        pool.append(_nvls(cluster, up_bytes=bytes, payload_bytes=bytes, bus_factor=bus))
    return _fastest(pool, algorithm)
