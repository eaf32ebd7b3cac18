"""Communication the training overlaps leave exposed: a dense layer's backward TP collectives beside its own
column-parallel GEMMs, the pipeline sends each schedule exposes, and the combined 1F1B's hand-offs and unpaired
layer passes (interleaved 1F1B with the all-to-all overlap). :mod:`cost_models.training.step` adds them to the
per-rank chunk times."""

from __future__ import annotations

from cost_models.specs import ClusterSpec, ModelSpec
from cost_models.training import comm as tcomm
from cost_models.training import finetune, layer_ops, pairing
from cost_models.training.activations import ACT_BYTES, tokens_per_device
from cost_models.training.dims import A2AOverlap, Schedule, TrainingDims, chunk_layers, rank_chunks
from cost_models.training.pipeline import combined_step_chunks, unpaired_layer_share
from cost_models.training.specs import TrainingWorkload

TP_REGION_ENTRY_LINEARS = ("qkv", "mlp_up")
"""The column-parallel GEMM that enters each TP region of a dense layer (attention, FFN); an attention without a
``qkv`` GEMM (MLA) gets no overlap in its region."""


def dense_tp_backward_s(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload,
                        lc: layer_ops.LayerCompute) -> float:
    """Exposed seconds of one dense layer's backward TP collectives with Megatron's overlap (``tp_comm_overlap``).

    NVIDIA/Megatron-LM@02bb1f5c megatron/mpu/layers.py: without sequence parallelism the column-parallel Linear's
    backward launches the all-reduce of its input gradient asynchronously and computes its weight gradient
    meanwhile (``ColumnParallelLinearWithAsyncAllreduce``); with sequence parallelism it launches the all-gather
    of its saved input before the input-gradient GEMM and the reduce-scatter of the input gradient before the
    weight-gradient GEMM (``ColumnParallelLinearWithSequenceParallelism``).  The row-parallel Linear's backward
    all-gather (the gradient of its forward reduce-scatter) has nothing to hide behind.  Per region:
    ``max(0, AR - Wgrad)`` (no SP) or ``AG + max(0, AG - Dgrad) + max(0, RS - Wgrad)`` (SP).  Not overlapped
    (``tp_comm_overlap`` false) or at tp = 1: the full :func:`cost_models.training.comm.tp_seconds` backward.
    """
    if dims.tp == 1 or not dims.tp_comm_overlap:
        return tcomm.tp_seconds(cluster, model, dims, workload, moe_layer=False)[1]
    full = tokens_per_device(dims, workload) * model.hidden_size * ACT_BYTES
    g = tcomm.per_node(cluster, dims.tp, 1)
    exposed = 0.0
    for name in TP_REGION_ENTRY_LINEARS:
        dgrad, wgrad = lc.input_grad_s.get(name, 0.0), lc.weight_grad_s.get(name, 0.0)
        if dims.sp_active:
            ag = tcomm.comm.all_gather(cluster, bytes_per_rank=full / dims.tp, group_size=dims.tp,
                                       group_devices_per_node=g).seconds
            rs = tcomm.comm.reduce_scatter(cluster, bytes=full, group_size=dims.tp, group_devices_per_node=g).seconds
            exposed += ag + max(0.0, ag - dgrad) + max(0.0, rs - wgrad)
        else:
            ar = tcomm.comm.all_reduce(cluster, bytes=full, group_size=dims.tp, group_devices_per_node=g,
                                       custom_kernels=False).seconds
            exposed += max(0.0, ar - wgrad)
    return exposed


def exposed_pp_send_s(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
                      ) -> float:
    """Exposed seconds of one micro-batch's pipeline sends through a rank, each direction: one send (1F1B, ZB1P);
    under interleaved 1F1B without ``pp_comm_overlap`` one per chunk (``vpp``: every chunk hands its output to
    the next rank and waits for it, Megatron-LM before NVIDIA/Megatron-LM f9283c5a); 0 where overlapped."""
    if dims.schedule in (Schedule.ONE_F_ONE_B, Schedule.ZERO_BUBBLE):
        return tcomm.pp_send_seconds(cluster, model, dims, workload)
    if dims.schedule is Schedule.INTERLEAVED and not dims.pp_comm_overlap:
        return dims.vpp * tcomm.pp_send_seconds(cluster, model, dims, workload)
    return 0.0


def combined_unpaired_share(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, rank: int) -> float:
    """Share of rank ``rank``'s layer passes that the combined 1F1B runs unpaired (interleaved + all-to-all
    overlap only): its local chunks' decoder layers (the MTP layers join the model's last chunk) over its steady
    steps (:func:`cost_models.training.pipeline.combined_step_chunks`)."""
    if dims.schedule is not Schedule.INTERLEAVED or dims.a2a_overlap is not A2AOverlap.FB_PAIRS:
        return 0.0
    counts = chunk_layers(model, dims)
    counts[-1] += model.num_mtp_layers
    sizes = [counts[c] for c in rank_chunks(dims, rank)]
    steps = combined_step_chunks(dims.pp, rank, dims.micro_batches(workload.global_batch_sequences), dims.vpp)
    return unpaired_layer_share(sizes, steps)


def combined_step_p2p_exposed_s(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims,
                                workload: TrainingWorkload) -> float:
    """Seconds of pipeline hand-off one combined forward-and-backward chunk step exposes (interleaved 1F1B with
    the all-to-all overlap).

    Megatron-Core's combined step (``TransformerModelChunkSchedulePlan.run``, NVIDIA/Megatron-LM@d98e8a64
    megatron/core/models/common/model_chunk_schedule_plan.py) issues ``send_forward_recv_forward`` and then
    ``send_backward_recv_backward`` after the chunk's last layer pair and waits for both at the start of the next
    step ("p2p_comm_sync"); in between only the first layer's delayed attention weight gradients run.  Both
    hand-offs use the one pipeline communicator, one after the other (each sends and receives at once):
    ``max(0, 2 x send - attention wgrad of one layer)``.  0 for any other schedule (the interleaved schedule
    alone overlaps P2P with the next micro-batch's compute, Megatron ``--overlap-p2p-comm``).
    """
    if dims.schedule is not Schedule.INTERLEAVED or dims.a2a_overlap is not A2AOverlap.FB_PAIRS or dims.pp == 1:
        return 0.0
    moe_layer = model.moe is not None
    lc = finetune.layer_compute(cluster.device, model, dims, workload, moe_layer=moe_layer)
    tail = pairing.sub_blocks(lc).attn_wgrad_s
    return max(0.0, 2 * tcomm.pp_send_seconds(cluster, model, dims, workload) - tail)
