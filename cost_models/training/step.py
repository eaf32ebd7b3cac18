"""Step time of a training layout: per-rank chunk times, the pipeline schedule, DP traffic and the optimizer.

Per pipeline rank and micro-batch, from :mod:`cost_models.training.layer_ops` (kernels) and
:mod:`cost_models.training.comm` (collectives):

* ``F`` = forward kernels + TP collectives + EP dispatch/combine + the CP exchange not hidden by attention
  (``max(0, cp - core attention)``: the ring overlaps KV chunks with the blocks of attention) + the PP send where
  the schedule does not overlap it (1F1B, ZB1P; DualPipe overlaps P2P with compute, interleaved 1F1B does
  unless ``pp_comm_overlap`` is off, :func:`cost_models.training.comm_exposed.exposed_pp_send_s`);
* ``B`` = input-gradient + weight-gradient kernels + recompute (the rerun forward ops; full recompute also reruns
  the forward TP collectives and all-to-alls) + the backward collectives (in a dense layer less what the
  column-parallel GEMMs hide, :func:`cost_models.training.comm_exposed.dense_tp_backward_s`); ``W`` = the weight-gradient kernels;
* ``F&B`` (DualPipe, and 1F1B with ``A2AOverlap.FB_PAIRS``): the compute ``C`` of one forward and one backward
  chunk with their all-to-all ``M`` running beside it.  While the all-to-all runs its kernels hold a fraction
  ``f`` of the compute units (DeepEP normal kernels: 20 of 132 SMs, DeepSeek-V3 §3.2.1; the constant serving
  uses); the pair runs as Megatron's four phases (:mod:`cost_models.training.pairing`), each
  ``max(C + f M, M)``, plus the communication that is not overlapped.

The busiest rank (largest ``F + B``) sets the pace; :func:`cost_models.training.pipeline.pipeline_s` adds the
schedule's bubble.  After the pipeline: the DP gradient reduction beyond what the last backward hides (at least
one bucket stays exposed), the parameter all-gather beyond what the first forward hides, and the optimizer step
(memory-bound over the rank's fp32 states).  FSDP's per-layer gathers hide behind that layer's compute; under
pipeline parallelism FSDP gathers once and reduces once per step (parameters stay unsharded across micro-batches,
:func:`cost_models.training.memory.fsdp_stays_unsharded`), which is then timed as the other shardings' DP traffic.  No host
overhead term: no source in the anchors measures one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cost_models import compute
from cost_models.specs import ClusterSpec, ModelSpec, Precision
from cost_models.step import COMM_SM_FRACTION_NORMAL
from cost_models.training import comm as tcomm
from cost_models.training import finetune, layer_ops, pairing
from cost_models.training.comm_exposed import (
    combined_step_p2p_exposed_s,
    combined_unpaired_share,
    dense_tp_backward_s,
    exposed_pp_send_s,
)
from cost_models.training.dims import (
    A2AOverlap,
    OptimizerSharding,
    Schedule,
    TrainingDims,
)
from cost_models.training.flops import megatron_flops
from cost_models.training.memory import (
    finetune_elements,
    fp32_params_are_master,
    fsdp_stays_unsharded,
    holds_last,
    rank_parameters,
)
from cost_models.training.pipeline import (
    ChunkTimes,
    bubble_s,
    pipeline_s,
)
from cost_models.training.specs import TrainingWorkload


@dataclass(frozen=True, kw_only=True)
class RankTimes:
    """One micro-batch through all chunks of one pipeline rank, seconds, with its parts."""

    rank: int
    forward_compute_s: float
    backward_compute_s: float
    """Input- and weight-gradient kernels plus recompute."""
    weight_grad_s: float
    exposed_comm_forward_s: float
    exposed_comm_backward_s: float
    a2a_s: float
    """EP dispatch + combine of forward and backward (exposed unless paired)."""
    by_op_s: dict[str, float] = field(default_factory=dict)
    """Seconds per op (compute and communication) for one micro-batch on this rank."""
    paired_s: float = 0.0
    """Compute and all-to-alls of one forward and one backward through all chunks run as overlapped pairs
    (:func:`cost_models.training.pairing.paired_layer_s` per MoE layer; dense layers and the head as compute),
    without the exposed TP / CP / PP communication."""
    unpaired_share: float = 0.0
    """Share of the layer passes the combined steps run unpaired (forward and backward chunks of unequal layer
    counts, :func:`cost_models.training.pipeline.unpaired_layer_share`); 0 unless interleaved and paired."""
    p2p_paired_exposed_s: float = 0.0
    """Pipeline hand-offs the combined 1F1B leaves exposed over one pass through all chunks
    (:func:`cost_models.training.comm_exposed.combined_step_p2p_exposed_s` per chunk); 0 unless interleaved with the all-to-all overlap."""

    @property
    def forward_s(self) -> float:
        return self.forward_compute_s + self.exposed_comm_forward_s

    @property
    def backward_s(self) -> float:
        return self.backward_compute_s + self.exposed_comm_backward_s


@dataclass(frozen=True, kw_only=True)
class TrainingStep:
    """Predicted step of one layout."""

    step_s: float
    pipeline_s: float
    bubble_s: float
    dp_exposed_s: float
    optimizer_s: float
    chunk: ChunkTimes
    busiest_rank: int
    micro_batches: int
    flops: float
    """Megatron ``num_floating_point_operations`` of the step."""
    tokens_per_s_per_device: float
    by_resource_s: dict[str, float]
    """Per-step seconds on the busiest rank: compute, exposed / overlapped communication per kind, bubble, DP,
    optimizer."""
    by_op_s: dict[str, float]
    """Per-step seconds on the busiest rank by op (forward + backward of every micro-batch)."""

    def tflop_per_s_per_device(self, devices: int) -> float:
        return self.flops / (self.step_s * devices) / 1e12

    def mfu(self, devices: int, peak_flop_per_s: float) -> float:
        return self.flops / (self.step_s * devices * peak_flop_per_s)


def _add(into: dict[str, float], ops: dict[str, float], scale: float, prefix: str = "") -> None:
    for k, v in ops.items():
        into[prefix + k] = into.get(prefix + k, 0.0) + v * scale


def _fsdp_layer_s(cluster: ClusterSpec, dims: TrainingDims, workload: TrainingWorkload, elements: float,
                  trainable_elements: float) -> tuple[float, float]:
    """(forward, backward) FSDP collectives of one layer: all-gather of ``elements``; all-gather + gradient
    reduce-scatter of the ``trainable_elements`` (fewer when fine-tuning)."""
    size = dims.dp * dims.cp
    if dims.sharding is not OptimizerSharding.ZERO3 or size == 1 or fsdp_stays_unsharded(dims):
        return 0.0, 0.0
    g = tcomm.per_node(cluster, size, dims.tp)
    opt = workload.optimizer
    ag = tcomm.comm.all_gather(cluster, bytes_per_rank=elements * opt.param_bytes / size, group_size=size,
                               group_devices_per_node=g)
    if not trainable_elements:
        return ag.seconds, ag.seconds
    rs = tcomm.comm.reduce_scatter(cluster, bytes=trainable_elements * opt.param_bytes, group_size=size,
                                   group_devices_per_node=g)
    return ag.seconds, ag.seconds + rs.seconds


def rank_times(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, rank: int
               ) -> RankTimes:
    """F, B, W parts of one micro-batch through every chunk of pipeline rank ``rank``."""
    device = cluster.device
    p = rank_parameters(model, dims, rank)
    last = holds_last(model, dims, rank)
    mtp = model.num_mtp_layers if last else 0
    layers = p.dense_layers + p.moe_layers + mtp
    per_layer_elements = p.total / max(1, layers)
    per_layer_trainable = per_layer_elements
    if workload.finetune is not None:
        e = finetune_elements(model, dims, workload, rank)
        per_layer_trainable = (e.dense_trainable + e.expert_trainable) / max(1, layers)
    fc = bc = wc = ef = eb = a2a = paired = 0.0
    by_op: dict[str, float] = {}
    for moe_layer, n in ((False, p.dense_layers), (True, p.moe_layers + mtp)):
        if n == 0:
            continue
        lc = finetune.layer_compute(device, model, dims, workload, moe_layer=moe_layer)
        cm = tcomm.layer_comm(cluster, model, dims, workload, moe_layer=moe_layer)
        if not moe_layer:
            cm = replace(cm, tp_backward_s=dense_tp_backward_s(cluster, model, dims, workload, lc))
        fs_f, fs_b = _fsdp_layer_s(cluster, dims, workload, per_layer_elements, per_layer_trainable)
        core_f, core_b = lc.forward_s["core_attention"], lc.input_grad_s["core_attention"]
        cp_f, cp_b = max(0.0, cm.cp_forward_s - core_f), max(0.0, cm.cp_backward_s - core_b)
        fsdp_f, fsdp_b = max(0.0, fs_f - lc.forward_total_s), max(0.0, fs_b - lc.backward_total_s)
        fc += n * lc.forward_total_s
        bc += n * lc.backward_total_s
        paired += n * (pairing.paired_layer_s(pairing.sub_blocks(lc), tcomm.ep_phase_seconds(
            cluster, model, dims, workload), sm_fraction=COMM_SM_FRACTION_NORMAL,
            redo_forward_a2a=workload.recompute.full) if moe_layer else lc.forward_total_s + lc.backward_total_s)
        wc += n * lc.weight_grad_total_s
        ef += n * (cm.tp_forward_s + cp_f + fsdp_f)
        eb += n * (cm.tp_backward_s + cp_b + fsdp_b + (cm.tp_forward_s if workload.recompute.full else 0.0))
        a2a += n * (cm.ep_forward_s + cm.ep_backward_s + (cm.ep_forward_s if workload.recompute.full else 0.0))
        _add(by_op, dict(lc.forward_s), n)
        _add(by_op, dict(lc.input_grad_s), n, "bwd_")
        _add(by_op, dict(lc.weight_grad_s), n, "wgrad_")
        _add(by_op, dict(lc.recompute_s), n, "recompute_")
        redo_tp = cm.tp_forward_s if workload.recompute.full else 0.0
        redo_ep = cm.ep_forward_s if workload.recompute.full else 0.0
        _add(by_op, {"tp_comm": cm.tp_forward_s + cm.tp_backward_s + redo_tp,
                     "ep_a2a": cm.ep_forward_s + cm.ep_backward_s + redo_ep,
                     "cp_exposed": cp_f + cp_b, "fsdp_exposed": fsdp_f + fsdp_b}, n)
    if last:
        hc = layer_ops.head_compute(device, model, dims, workload)
        if workload.finetune is not None:
            hc = finetune.adjust_layer(device, workload.finetune, hc, [])
        fc += hc.forward_total_s
        bc += hc.backward_total_s
        paired += hc.forward_total_s + hc.backward_total_s
        wc += hc.weight_grad_total_s
        _add(by_op, dict(hc.forward_s), 1.0)
        _add(by_op, dict(hc.input_grad_s), 1.0, "bwd_")
        _add(by_op, dict(hc.weight_grad_s), 1.0, "wgrad_")
    send = exposed_pp_send_s(cluster, model, dims, workload)
    if send:
        ef += send
        eb += send
        by_op["pp_send"] = 2 * send
    p2p_paired = dims.vpp * combined_step_p2p_exposed_s(cluster, model, dims, workload)
    unpaired = combined_unpaired_share(model, dims, workload, rank)
    if p2p_paired:
        by_op["pp_send_exposed"] = p2p_paired
    return RankTimes(rank=rank, forward_compute_s=fc, backward_compute_s=bc, weight_grad_s=wc,
                     exposed_comm_forward_s=ef, exposed_comm_backward_s=eb, a2a_s=a2a, by_op_s=by_op,
                     paired_s=paired, p2p_paired_exposed_s=p2p_paired, unpaired_share=unpaired)


def _paired(dims: TrainingDims) -> bool:
    return dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V) or dims.a2a_overlap is A2AOverlap.FB_PAIRS


def chunk_times(dims: TrainingDims, r: RankTimes) -> ChunkTimes:
    """The schedule's F, B, W, F&B for rank ``r``: per stage chunk for DualPipe(V), per rank otherwise."""
    per = 2 if dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V) else 1
    f = r.forward_s / per
    b = r.backward_s / per
    w = r.weight_grad_s / per
    m = r.a2a_s / per
    exposed = (r.exposed_comm_forward_s + r.exposed_comm_backward_s) / per
    # a chunk alone exposes its all-to-all, split evenly: forward and backward move the same bytes
    f += m / 2
    b += m / 2
    if _paired(dims):
        # the layers a combined step cannot pair run alone, as in an unpaired chunk
        u = r.unpaired_share
        fb = (1 - u) * (r.paired_s / per + exposed) + u * (f + b) + r.p2p_paired_exposed_s / per
    else:
        fb = f + b
    return ChunkTimes(forward_s=f, backward_s=b, weight_grad_s=w, overlapped_fb_s=fb)


def _pace(dims: TrainingDims, t: ChunkTimes) -> float:
    """What sets a rank's pace in steady state: F&B when chunks are paired, else F + B."""
    return t.overlapped_fb_s if _paired(dims) else t.forward_s + t.backward_s


def rank_passes_per_step(dims: TrainingDims, micro_batches: int) -> float:
    """Passes of a micro-batch through ALL of a rank's chunks per step: DualPipe sends half of the micro-batches
    through each of a rank's two stages (m/2 full passes); every other schedule m."""
    return micro_batches / 2 if dims.schedule is Schedule.DUALPIPE else float(micro_batches)


def _optimizer_s(cluster: ClusterSpec, dims: TrainingDims, workload: TrainingWorkload, dense: float, expert: float
                 ) -> float:
    """Memory-bound optimizer step over this device's shard: read/write master and moments, read the gradient,
    write the bf16 parameter (none with ``workload.fp32_params``)."""
    o = workload.optimizer
    if dims.sharding is OptimizerSharding.NONE:
        elements = dense + expert
    else:
        elements = dense / (dims.dp * dims.cp) + expert / dims.edp
    param_write = 0.0 if fp32_params_are_master(dims, workload) else o.param_bytes
    nbytes = elements * (2 * o.master_bytes + 2 * o.state_bytes + o.grad_bytes + param_write)
    return compute.memory_bound_cost(cluster.device, bytes=nbytes).seconds


def dp_exposed_s(dims: TrainingDims, dpc: tcomm.DataParallelComm, r: RankTimes, *, layers: int) -> float:
    """Seconds of the step's DP gradient reduction and parameter gathering that the busiest rank ``r`` cannot hide.

    Overlapped, the reduction hides behind the last backward and the gathering behind the first forward except
    their last / first unit: a DDP bucket, or under FSDP with pipeline parallelism one layer (torchtitan shards each
    TransformerBlock as its own FSDP unit, pytorch/torchtitan@9dec370 ``apply_fsdp``; the last micro-batch's
    backward reduce-scatters layer by layer, the first forward all-gathers layer by layer with one prefetched).
    Per-layer FSDP without pipeline parallelism is timed inside the layers (:func:`_fsdp_layer_s`): 0 here.
    """
    if dims.sharding is OptimizerSharding.ZERO3 and not fsdp_stays_unsharded(dims):
        return 0.0
    if not dims.overlap_grad_reduce:
        return dpc.grad_reduce_s + dpc.param_gather_s
    if fsdp_stays_unsharded(dims):
        reduce_unit, gather_unit = dpc.grad_reduce_s / max(1, layers), dpc.param_gather_s / max(1, layers)
    else:
        reduce_unit = dpc.bucket_reduce_s
        gather_unit = dpc.param_gather_s * dpc.bucket_reduce_s / dpc.grad_reduce_s if dpc.grad_reduce_s else 0.0
    return (max(reduce_unit, dpc.grad_reduce_s - r.backward_s)
            + max(gather_unit, dpc.param_gather_s - r.forward_s))


def training_step(cluster: ClusterSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
                  ) -> TrainingStep:
    """Predicted step time and its breakdown (module docstring)."""
    m = dims.micro_batches(workload.global_batch_sequences)
    ranks = [rank_times(cluster, model, dims, workload, r) for r in range(dims.pp)]
    busiest = max(ranks, key=lambda r: _pace(dims, chunk_times(dims, r)))
    t = chunk_times(dims, busiest)
    pipe = pipeline_s(dims.schedule, dims.stages, m, t, vpp=dims.vpp, paired=_paired(dims))
    bubble = bubble_s(dims.schedule, dims.stages, t, vpp=dims.vpp)
    p = rank_parameters(model, dims, busiest.rank)
    dense, expert = p.tp_sharded + p.replicated, p.expert_sharded
    dpc = tcomm.data_parallel_comm(cluster, dims, workload, dense_elements=dense, expert_elements=expert)
    if workload.finetune is not None:
        # only trainable parameters (and adapters) are reduced and updated; ZeRO-1/2 gather only the updated
        # ones, FSDP still gathers the frozen weights it shards
        e = finetune_elements(model, dims, workload, busiest.rank)
        dense, expert = e.dense_trainable, e.expert_trainable
        train = tcomm.data_parallel_comm(cluster, dims, workload, dense_elements=dense, expert_elements=expert)
        gather = dpc.param_gather_s if dims.sharding is OptimizerSharding.ZERO3 else train.param_gather_s
        dpc = replace(train, param_gather_s=gather)
    dp_exposed = dp_exposed_s(dims, dpc, busiest, layers=p.dense_layers + p.moe_layers)
    opt = _optimizer_s(cluster, dims, workload, dense, expert)
    step = pipe + dp_exposed + opt
    passes = rank_passes_per_step(dims, m)
    compute_s = passes * (busiest.forward_compute_s + busiest.backward_compute_s)
    a2a_total = passes * busiest.a2a_s
    a2a_hidden = a2a_total if _paired(dims) else 0.0
    by_resource = {"compute": compute_s, "bubble": bubble,
                   "exposed_comm": passes * (busiest.exposed_comm_forward_s + busiest.exposed_comm_backward_s)
                   + a2a_total - a2a_hidden,
                   "overlapped_comm": a2a_hidden,
                   "dp_exposed": dp_exposed, "dp_total": dpc.grad_reduce_s + dpc.param_gather_s, "optimizer": opt}
    by_op = {k: v * passes for k, v in busiest.by_op_s.items()}
    by_op.update(bubble=bubble, dp_exposed=dp_exposed, optimizer=opt)
    flops = megatron_flops(model, seq_tokens=workload.seq_tokens, batch_sequences=workload.global_batch_sequences)
    return TrainingStep(step_s=step, pipeline_s=pipe, bubble_s=bubble, dp_exposed_s=dp_exposed, optimizer_s=opt,
                        chunk=t, busiest_rank=busiest.rank, micro_batches=m, flops=flops,
                        tokens_per_s_per_device=workload.global_batch_tokens / (step * dims.world_devices),
                        by_resource_s=by_resource, by_op_s=by_op)


def bf16_peak(cluster: ClusterSpec) -> float:
    """The dense BF16 peak the published MFU figures divide by."""
    return cluster.device.peak_for(Precision.BF16)
