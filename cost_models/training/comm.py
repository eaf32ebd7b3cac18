"""Training collectives of one layer, one micro-batch and one step, built on :mod:`cost_models.comm`.

* Tensor parallelism (Korthikanti et al. 2022 §4.2.2): with sequence parallelism each TP region is entered by an
  all-gather and left by a reduce-scatter of the ``t x h`` activations (forward), and the mirror in backward
  (reduce-scatter, all-gather), plus the all-gather redone in backward because its output is not saved
  (Korthikanti: "we do not store the output of the all-gather"); without SP one all-reduce per region each way.
  A dense or attention-only block has two regions per layer (attention, FFN); in an MoE layer the routed experts
  take the sequence-sharded tokens straight into the dispatch, so only the attention and the shared expert are TP
  regions.
* Expert parallelism: DeepEP normal-kernel dispatch and combine (``ep_dispatch`` / ``ep_combine``,
  ``forward_in_node=True``) forward; in backward the combine's gradient travels like a dispatch and the
  dispatch's gradient like a combine, both BF16.  With the all-to-all dispatcher (:func:`alltoall_ep_seconds`)
  every (token, expert) copy is sent by one NCCL / HCCL all-to-all, BF16 both ways, without DeepEP's per-node
  dedup.
* Context parallelism: ring P2P of the local K and V chunk ``cp - 1`` times forward, K, V and their gradients
  backward (Megatron-Core ``p2p`` CP); Ulysses: all-to-alls of q, k, v in and the output back (forward), the
  mirror in backward, timed as a top-1 ``ep_dispatch`` over the CP group (every token to one uniformly chosen
  peer: the volume of an all-to-all).
* Pipeline: one activation send forward and one gradient send backward per micro-batch and chunk boundary, of
  ``t / tp x h`` bf16 elements with the scatter/gather optimisation (Narayanan et al. 2021 §4.1).
* Data parallelism: gradients reduce-scattered (ZeRO-1/2/3) or all-reduced (no sharding) in bf16/fp32 over the DP
  group (the expert part over the expert-DP group), updated parameters all-gathered in bf16 (ZeRO-1/2); FSDP
  all-gathers each layer's parameters in forward and again in backward and reduce-scatters its gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models import comm
from cost_models.comm_cost import all_to_all_scale_up_rate
from cost_models.specs import AttentionKind, ClusterSpec, ModelSpec
from cost_models.training.activations import ACT_BYTES, tokens_per_device
from cost_models.training.dims import ContextParallel, Dispatcher, OptimizerSharding, TrainingDims
from cost_models.training.specs import TrainingWorkload


@dataclass(frozen=True, kw_only=True)
class LayerComm:
    """Seconds of one layer's collectives for one micro-batch, by kind, forward and backward."""

    tp_forward_s: float
    tp_backward_s: float
    ep_forward_s: float
    ep_backward_s: float
    cp_forward_s: float
    cp_backward_s: float


def per_node(cluster: ClusterSpec, size: int, stride: int) -> int:
    """Devices of a group of ``size`` ranks spaced ``stride`` apart that share a node."""
    if stride >= cluster.devices_per_node:
        return 1
    return max(1, min(size, cluster.devices_per_node // stride))


def _tp_regions(model: ModelSpec, dims: TrainingDims, moe_layer: bool) -> int:
    """TP regions of one layer: attention and FFN; in an MoE layer attention, the shared expert, and the routed
    experts when they are tensor-parallel too (etp > 1: tokens gathered over the expert-TP group, timed here as
    over the TP group)."""
    if not moe_layer:
        return 2
    shared = 1 if model.moe is not None and model.moe.shared_ffn_dim else 0
    return 1 + shared + (1 if dims.etp > 1 else 0)


def tp_seconds(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *,
               moe_layer: bool) -> tuple[float, float]:
    """(forward, backward) seconds of one layer's TP collectives."""
    if dims.tp == 1:
        return 0.0, 0.0
    full = tokens_per_device(dims, workload) * model.hidden_size * ACT_BYTES
    g = per_node(cluster, dims.tp, 1)
    regions = _tp_regions(model, dims, moe_layer)
    if dims.sp_active:
        ag = comm.all_gather(cluster, bytes_per_rank=full / dims.tp, group_size=dims.tp, group_devices_per_node=g)
        rs = comm.reduce_scatter(cluster, bytes=full, group_size=dims.tp, group_devices_per_node=g)
        # forward AG + RS per region; backward RS + AG + the redone AG
        return regions * (ag.seconds + rs.seconds), regions * (2 * ag.seconds + rs.seconds)
    ar = comm.all_reduce(cluster, bytes=full, group_size=dims.tp, group_devices_per_node=g, custom_kernels=False)
    return regions * ar.seconds, regions * ar.seconds


@dataclass(frozen=True, kw_only=True)
class EpPhases:
    """One MoE layer's four all-to-alls for one micro-batch, seconds (DeepEP normal kernels)."""

    dispatch_forward_s: float
    combine_forward_s: float
    combine_backward_s: float
    """The combine's gradient, sent back the way tokens were dispatched (BF16)."""
    dispatch_backward_s: float
    """The dispatch's gradient, reduced back to the token owners the way a combine is."""


def ep_phase_seconds(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
                     ) -> EpPhases:
    """The four all-to-alls of one MoE layer's forward and backward (``ep_seconds`` sums them)."""
    moe = model.moe
    if moe is None or dims.ep == 1:
        return EpPhases(dispatch_forward_s=0.0, combine_forward_s=0.0, combine_backward_s=0.0,
                        dispatch_backward_s=0.0)
    stride = dims.etp
    if dims.dispatcher is Dispatcher.ALLTOALL:
        one = alltoall_ep_seconds(cluster, tokens_per_device=tokens_per_device(dims, workload) / dims.tp,
                                  token_bytes=model.hidden_size * ACT_BYTES, top_k=moe.top_k, ep_size=dims.ep,
                                  ep_devices_per_node=per_node(cluster, dims.ep, stride),
                                  imbalance=workload.routed_load_factor)
        return EpPhases(dispatch_forward_s=one, combine_forward_s=one, combine_backward_s=one,
                        dispatch_backward_s=one)
    common = dict(tokens_per_device=tokens_per_device(dims, workload) / dims.tp, hidden_size=model.hidden_size,
                  top_k=moe.top_k, ep_size=dims.ep, ep_devices_per_node=per_node(cluster, dims.ep, stride),
                  num_groups=moe.num_groups, topk_groups=moe.topk_groups, imbalance=workload.routed_load_factor,
                  num_experts=moe.num_routed_experts, forward_in_node=True)
    dispatch = comm.ep_dispatch(cluster, bytes_per_element=workload.dispatch_bytes_per_element,
                                scale_bytes_per_token=0.0, **common)
    combine = comm.ep_combine(cluster, bytes_per_element=ACT_BYTES, **common)
    grad_dispatch = comm.ep_dispatch(cluster, bytes_per_element=ACT_BYTES, **common)
    return EpPhases(dispatch_forward_s=dispatch.seconds, combine_forward_s=combine.seconds,
                    combine_backward_s=grad_dispatch.seconds, dispatch_backward_s=combine.seconds)


def alltoall_ep_seconds(cluster: ClusterSpec, *, tokens_per_device: float, token_bytes: float, top_k: int,
                        ep_size: int, ep_devices_per_node: int, imbalance: float = 1.0) -> float:
    """One all-to-all of the all-to-all dispatcher (dispatch or combine, forward or backward), seconds.

    Every device holds ``tokens_per_device x top_k`` token copies, permuted by destination expert, and sends
    each to the rank of its expert (Megatron-Core ``MoEAlltoAllTokenDispatcher.token_dispatch``: one
    ``all_to_all`` of the permuted tokens; the combine sends the expert outputs back the same way).  With the
    experts spread evenly over the ``P = ep_size`` ranks, ``g`` of them in the node, a copy stays on its device
    with probability ``1/P``, crosses the scale-up tier with ``(g-1)/P`` and the scale-out tier with ``(P-g)/P``
    (no per-node dedup: a token with two experts on one remote node crosses twice).  The tiers stream
    concurrently and the busiest rank moves ``imbalance`` x the mean:
    ``latency + imbalance x max(up_bytes / up_rate, out_bytes / out_rate)``, one latency step per tier used.
    """
    if ep_size == 1 or tokens_per_device == 0:
        return 0.0
    g = ep_devices_per_node
    copies_bytes = tokens_per_device * top_k * token_bytes
    up_bytes = copies_bytes * (g - 1) / ep_size
    out_bytes = copies_bytes * (ep_size - g) / ep_size
    up_s = up_bytes / all_to_all_scale_up_rate(cluster.scale_up)
    out_s = out_bytes / cluster.scale_out.effective_bytes_per_s if out_bytes else 0.0
    latency_s = (cluster.scale_up.latency_s if g > 1 else 0.0) + (cluster.scale_out.latency_s if out_bytes else 0.0)
    return latency_s + imbalance * max(up_s, out_s)


def ep_seconds(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
               ) -> tuple[float, float]:
    """(forward, backward) seconds of one MoE layer's dispatch + combine (DeepEP normal kernels)."""
    e = ep_phase_seconds(cluster, model, dims, workload)
    return e.dispatch_forward_s + e.combine_forward_s, e.combine_backward_s + e.dispatch_backward_s


def cp_seconds(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
               ) -> tuple[float, float]:
    """(forward, backward) seconds of one layer's context-parallel exchange (before any overlap)."""
    if dims.cp == 1:
        return 0.0, 0.0
    a, t = model.attention, tokens_per_device(dims, workload)
    heads = a.num_q_heads if a.kind is AttentionKind.MLA else a.num_kv_heads
    kv_heads = max(1.0, heads / dims.tp)
    stride = dims.tp
    g = per_node(cluster, dims.cp, stride)
    if dims.cp_kind is ContextParallel.RING:
        kv_bytes = t * kv_heads * (a.qk_head_dim + a.v_head_dim) * ACT_BYTES
        step = comm.point_to_point(cluster, bytes=kv_bytes, crosses_nodes=g < dims.cp)
        return (dims.cp - 1) * step.seconds, 2 * (dims.cp - 1) * step.seconds
    q_heads = a.num_q_heads / dims.tp
    width = q_heads * a.qk_head_dim + kv_heads * (a.qk_head_dim + a.v_head_dim) + q_heads * a.v_head_dim
    a2a = comm.ep_dispatch(cluster, tokens_per_device=t, hidden_size=int(width), top_k=1, ep_size=dims.cp,
                           ep_devices_per_node=g, bytes_per_element=ACT_BYTES, forward_in_node=True)
    return a2a.seconds, a2a.seconds


def layer_comm(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *,
               moe_layer: bool) -> LayerComm:
    tp_f, tp_b = tp_seconds(cluster, model, dims, workload, moe_layer=moe_layer)
    ep_f, ep_b = ep_seconds(cluster, model, dims, workload) if moe_layer else (0.0, 0.0)
    cp_f, cp_b = cp_seconds(cluster, model, dims, workload)
    return LayerComm(tp_forward_s=tp_f, tp_backward_s=tp_b, ep_forward_s=ep_f, ep_backward_s=ep_b,
                     cp_forward_s=cp_f, cp_backward_s=cp_b)


def pp_send_seconds(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload) -> float:
    """One activation (or gradient) hand-off between pipeline neighbours for one micro-batch."""
    if dims.pp == 1:
        return 0.0
    nbytes = tokens_per_device(dims, workload) * model.hidden_size * ACT_BYTES / dims.tp
    crosses = dims.stage_group_devices >= cluster.devices_per_node
    return comm.point_to_point(cluster, bytes=nbytes, crosses_nodes=crosses).seconds


@dataclass(frozen=True, kw_only=True)
class DataParallelComm:
    """Seconds of one step's data-parallel traffic on one device, before overlap."""

    grad_reduce_s: float
    param_gather_s: float
    bucket_reduce_s: float
    """One gradient bucket's reduction: what stays exposed after the last backward (the last bucket)."""


DDP_BUCKET_ELEMENTS = 40_000_000
"""Megatron-Core's default gradient bucket, ``max(40M, 1M x dp)`` elements
(megatron/core/distributed/distributed_data_parallel.py)."""


def data_parallel_comm(cluster: ClusterSpec, dims: TrainingDims, workload: TrainingWorkload, *,
                       dense_elements: float, expert_elements: float) -> DataParallelComm:
    """Gradient reduction and parameter gathering of one step for ``dense_elements`` parameters (DP group
    ``dp x cp``, strided by ``tp``) and ``expert_elements`` (expert-DP group, strided by ``ep x etp``)."""
    opt, s = workload.optimizer, dims.sharding
    reduce_s = gather_s = bucket_s = 0.0
    for elements, size, stride in ((dense_elements, dims.dp * dims.cp, dims.tp),
                                   (expert_elements, dims.edp, dims.ep * dims.etp)):
        if size == 1 or elements == 0:
            continue
        g = per_node(cluster, size, stride)
        bucket = min(elements, max(DDP_BUCKET_ELEMENTS, 1_000_000 * size))
        if s is OptimizerSharding.NONE:
            red = comm.all_reduce(cluster, bytes=elements * opt.grad_bytes, group_size=size,
                                  group_devices_per_node=g, custom_kernels=False)
            one = comm.all_reduce(cluster, bytes=bucket * opt.grad_bytes, group_size=size,
                                  group_devices_per_node=g, custom_kernels=False)
        else:
            red = comm.reduce_scatter(cluster, bytes=elements * opt.grad_bytes, group_size=size,
                                      group_devices_per_node=g)
            one = comm.reduce_scatter(cluster, bytes=bucket * opt.grad_bytes, group_size=size,
                                      group_devices_per_node=g)
            gather = comm.all_gather(cluster, bytes_per_rank=elements * opt.param_bytes / size, group_size=size,
                                     group_devices_per_node=g)
            gather_s += gather.seconds
        reduce_s += red.seconds
        bucket_s = max(bucket_s, one.seconds)
    return DataParallelComm(grad_reduce_s=reduce_s, param_gather_s=gather_s, bucket_reduce_s=bucket_s)
