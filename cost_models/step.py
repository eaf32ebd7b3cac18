"""Compose per-layer op costs into prefill and decode step times under an overlap policy.

Overlap policies
----------------
``none``: every op of a layer runs back to back; communication is fully exposed.

``two_batch``: the step's tokens are split into two micro-batches and one micro-batch's communication runs
while the other computes (DeepSeek-V3 technical report §3.4 / "Inference System Overview"; SGLang two-batch
overlap).  Per layer the two streams interleave, so in steady state a layer costs

    max(C2, M2) + switch_overhead

where ``C2`` is the summed compute of both halves (each op re-timed at half the tokens, so small-batch GEMM
inefficiency is paid, not assumed away) and ``M2`` the summed communication of both halves.  What overlap costs:

* communication kernels that run on SMs (DeepEP normal kernels, prefill) take ``COMM_SM_FRACTION`` of the
  compute units while they run, slowing the overlapped part of the compute by ``1 / (1 - f)``;
* half-size micro-batches run GEMMs at lower efficiency and re-read every weight twice (in ``C2``);
* one stream switch per op boundary (``STREAM_SWITCH_S``).

``single_batch``: SGLang's single-batch overlap (:func:`compose_single_batch`): no split; in the low-latency
(decode) kernels the dispatch is in flight while the shared expert runs, and the combine streams each expert
block out as the down GEMM finishes it.

Issue 4's CP-SAT schedule replaces this closed form with an interval schedule; this module stays the
fallback and the bound it is checked against.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from cost_models import ops as opmod
from cost_models import sbo_blackwell
from cost_models.kinds import OpKind, Phase
from cost_models.parallel import OverlapPolicy, ParallelDims, StageLayers
from cost_models.specs import ClusterSpec, ModelSpec, OpPrecisions, Precision, WeightFormat

COMM_SM_FRACTION_NORMAL = 20 / 132
"""SMs DeepEP's high-throughput (normal) kernels occupy on an H800 (DeepSeek-V3 report §3.2.1: "only 20 SMs");
taken as the fraction of compute units communication occupies in prefill on any device."""

COMM_SM_FRACTION_LOW_LATENCY = 0.0
"""DeepEP low-latency kernels use a hook-based receive that occupies no SMs (DeepEP README)."""

SBO_COMBINE_SM_FRACTION = 3 / 132
"""SMs the combine send holds while it streams behind the down GEMM under single-batch overlap: SGLang's Hopper
default ``communicate_num_sms = 3`` of an H100/H200/H800's 132 (sgl-project/sglang@0ac832c
``python/sglang/srt/batch_overlap/single_batch_overlap.py``, ``compute_overlap_args``); the down GEMM runs on the
other 129."""

STREAM_SWITCH_S = 2e-6
"""Per-op cost of alternating two micro-batches on one compute stream (estimated: one event wait)."""


OverlapModel = Callable[[tuple[opmod.OpCost, ...], int, float], float]
"""An injected overlap schedule: (one micro-batch's ops, micro-batches, fraction of compute units communication
kernels hold) -> steady-state seconds per layer. The planner passes the CP-SAT interval schedule
(``planner.cpsat.schedule.overlapped_layer_time``); cost_models itself stays solver-free."""


@dataclass(frozen=True, kw_only=True)
class LayerCost:
    """One layer type's time on the busiest device, with its ops."""

    kind: str
    """``dense``, ``moe`` or ``head``."""
    count: int
    """How many such layers the device's stage runs per step."""
    ops: tuple[opmod.OpCost, ...]
    compute_s: float
    comm_s: float
    layer_s: float
    exposed_comm_s: float
    overlapped_comm_s: float
    overlap_overhead_s: float

    @property
    def total_s(self) -> float:
        return self.layer_s * self.count


@dataclass(frozen=True, kw_only=True)
class StepCost:
    """One forward (prefill chunk or decode step) of one pipeline stage, on the busiest device."""

    phase: Phase
    layers: tuple[LayerCost, ...]
    step_s: float
    """Time of one step of the slowest stage plus its hand-off (the throughput-setting interval)."""
    latency_s: float
    """Time for a token to pass all ``pp`` stages (plus stage hand-offs)."""
    rank_tokens: float
    """Tokens per attention rank in this step."""
    overlap: str
    by_resource: dict[str, float] = field(default_factory=dict)
    stage: StageLayers | None = None
    """The pipeline stage timed (the slowest): its layer counts are those of :attr:`layers`."""

    def op_totals(self) -> dict[str, float]:
        """Seconds per op name summed over the layers of the step."""
        out: dict[str, float] = {}
        for layer in self.layers:
            for op in layer.ops:
                out[op.name] = out.get(op.name, 0.0) + op.seconds * layer.count
        return out


def _half(shape: opmod.PhaseShape) -> opmod.PhaseShape:
    return opmod.PhaseShape(phase=shape.phase, rank_tokens=shape.rank_tokens / 2,
                            sequences_per_rank=shape.sequences_per_rank / 2, context_tokens=shape.context_tokens,
                            query_tokens_per_sequence=shape.query_tokens_per_sequence)


def closed_form_overlap_s(micro_batch_ops: tuple[opmod.OpCost, ...], micro_batches: int,
                          comm_sm_fraction: float) -> float:
    """The closed-form overlapped layer time (an :data:`OverlapModel`): ``max(compute + SM share, comm)``, where
    the SM share stretches compute by ``f / (1 - f)`` of the communication it hides."""
    c = micro_batches * sum(o.seconds for o in micro_batch_ops if o.kind == OpKind.COMPUTE)
    m = micro_batches * sum(o.seconds for o in micro_batch_ops if o.kind == OpKind.COMM)
    return max(c + min(c, m) * comm_sm_fraction / (1 - comm_sm_fraction), m)


def compose_layer(kind: str, count: int, full_ops: tuple[opmod.OpCost, ...], half_ops: tuple[opmod.OpCost, ...] | None,
                  dims: ParallelDims, phase: Phase, overlap_model: OverlapModel | None = None) -> LayerCost:
    """Apply the overlap policy to one layer's ops (``half_ops``: the same ops at half the tokens)."""
    compute_full = sum(o.seconds for o in full_ops if o.kind == OpKind.COMPUTE)
    comm_full = sum(o.seconds for o in full_ops if o.kind == OpKind.COMM)
    if dims.overlap is OverlapPolicy.NONE or half_ops is None or comm_full == 0.0:
        return LayerCost(kind=kind, count=count, ops=full_ops, compute_s=compute_full, comm_s=comm_full,
                         layer_s=compute_full + comm_full, exposed_comm_s=comm_full, overlapped_comm_s=0.0,
                         overlap_overhead_s=0.0)
    c2 = 2 * sum(o.seconds for o in half_ops if o.kind == OpKind.COMPUTE)
    m2 = 2 * sum(o.seconds for o in half_ops if o.kind == OpKind.COMM)
    f = COMM_SM_FRACTION_NORMAL if phase == Phase.PREFILL else COMM_SM_FRACTION_LOW_LATENCY
    overlapped = min(c2, m2)
    sm_penalty = overlapped * f / (1 - f)
    switch = STREAM_SWITCH_S * len(half_ops)
    layer_s = (overlap_model or closed_form_overlap_s)(half_ops, 2, f) + switch
    if overlap_model is not None:  # the schedule accounts for the SM share itself (stretched compute blocks)
        sm_penalty = 0.0
    exposed = max(0.0, layer_s - c2 - sm_penalty - switch)
    doubled = tuple(
        opmod.OpCost(name=o.name, kind=o.kind, seconds=2 * o.seconds, flops=2 * o.flops, hbm_bytes=2 * o.hbm_bytes,
                     scale_up_bytes=2 * o.scale_up_bytes, scale_out_bytes=2 * o.scale_out_bytes, bound=o.bound,
                     detail=o.detail, algorithm=o.algorithm) for o in half_ops)
    return LayerCost(kind=kind, count=count, ops=doubled, compute_s=c2, comm_s=m2, layer_s=layer_s,
                     exposed_comm_s=exposed, overlapped_comm_s=m2 - exposed,
                     overlap_overhead_s=sm_penalty + switch + (c2 - compute_full))


def _ll_parts(op: opmod.OpCost) -> tuple[float, float, float]:
    """A low-latency all-to-all split as :mod:`cost_models.all_to_all_ll` sums it: (kernel fixed cost, in flight =
    tier latency + the busier tier's wire time, receive-side HBM pass)."""
    from cost_models.all_to_all_ll import LOW_LATENCY_FIXED_S
    memory_s = op.detail.get("memory_s", 0.0)
    fixed_s = min(LOW_LATENCY_FIXED_S, op.seconds - memory_s)
    return fixed_s, op.seconds - fixed_s - memory_s, memory_s


def compose_single_batch(kind: str, count: int, ops: tuple[opmod.OpCost, ...],
                         blackwell: tuple[int, bool] | None = None) -> LayerCost:
    """SGLang's single-batch overlap (SBO) of one MoE layer, as sgl-project/sglang@0ac832c runs it on Hopper
    (``python/sglang/srt/batch_overlap/single_batch_overlap.py``): the DeepEP low-latency dispatch is issued
    send-only, the shared expert runs while the messages are in flight, and the receive half completes after it
    (``enable_dispatch_shared_overlap``); the down GEMM signals each finished expert block and the combine sends it
    at once from ``3`` SMs on a second stream (``enable_combine_down_gemm_two_stream_overlap``). Per layer

        layer = rest + D_fixed + max(D_flight, shared) + D_recv
                + max(down x 1 / (1 - f), C_fixed + C_wire) + C_latency + C_recv

    where ``rest`` is every other op (attention, router, up GEMM, activation, ...), ``D_*`` / ``C_*`` the dispatch /
    combine split by :func:`_ll_parts` (fixed kernel cost, in flight, receive pass; the combine's in-flight time
    is its wire time, then one tier latency for the last block to land) and ``f`` =
    :data:`SBO_COMBINE_SM_FRACTION`. No batch is split, so no half-size GEMM is paid. SBO needs the masked
    per-expert layout of the low-latency kernels (``compute_overlap_args`` reads a 3-D ``[experts, tokens,
    hidden]`` receive buffer); a layer without them (prefill's normal kernels) runs back to back.
    ``blackwell`` = (SMs, down-GEMM signal): SGLang's Blackwell paths instead (:mod:`cost_models.sbo_blackwell`)."""
    names = {o.name: o for o in ops}
    compute = sum(o.seconds for o in ops if o.kind == OpKind.COMPUTE)
    comm = sum(o.seconds for o in ops if o.kind == OpKind.COMM)
    dispatch, combine, down = names.get("moe.dispatch"), names.get("moe.combine"), names.get("moe.experts_down")
    if dispatch is None or combine is None or down is None or dispatch.algorithm != "deepep_low_latency":
        return LayerCost(kind=kind, count=count, ops=ops, compute_s=compute, comm_s=comm, layer_s=compute + comm,
                         exposed_comm_s=comm, overlapped_comm_s=0.0, overlap_overhead_s=0.0)
    shared_s = sum(o.seconds for o in ops if o.name.startswith("moe.shared."))
    rest_s = compute + comm - dispatch.seconds - combine.seconds - down.seconds - shared_s
    d_fixed, d_flight, d_recv = _ll_parts(dispatch)
    c_fixed, c_flight, c_recv = _ll_parts(combine)
    c_latency = max(0.0, c_flight - max(combine.detail.get("scale_up_s", 0.0), combine.detail.get("scale_out_s", 0.0)))
    c_wire = c_flight - c_latency
    down_s = down.seconds / (1 - SBO_COMBINE_SM_FRACTION)
    layer_s = (rest_s + d_fixed + max(d_flight, shared_s) + d_recv
               + max(down_s, c_fixed + c_wire) + c_latency + c_recv)
    overhead = down_s - down.seconds
    if blackwell is not None:
        layer_s, overhead = sbo_blackwell.blackwell_sbo_layer_s(
            ops, compute_units=blackwell[0], down_signal=blackwell[1], combine_parts=(c_fixed, c_wire, c_latency, c_recv))
    exposed = layer_s - compute - overhead
    return LayerCost(kind=kind, count=count, ops=ops, compute_s=compute, comm_s=comm, layer_s=layer_s,
                     exposed_comm_s=exposed, overlapped_comm_s=comm - exposed, overlap_overhead_s=overhead)


@functools.lru_cache(maxsize=1 << 15)
def _layer(kind: str, model: ModelSpec, cluster: ClusterSpec, att_dims: ParallelDims, sub_dims: ParallelDims,
           shape: opmod.PhaseShape, overlap: OverlapPolicy, prec: OpPrecisions, dispatch_precision: Precision,
           imbalance: float, overlap_model: OverlapModel | None) -> LayerCost:
    """One layer of ``kind`` (``dense``: attention + dense FFN over ``sub_dims``; ``moe``: attention + MoE over
    ``sub_dims``; ``head``) under ``overlap``, count 1. Pure and memoised: it depends only on the degrees its
    builders see, so layouts that differ elsewhere share it."""
    policy = ParallelDims(overlap=overlap)  # compose_layer reads only the overlap policy

    def ops_at(s: opmod.PhaseShape) -> tuple[opmod.OpCost, ...]:
        att = opmod.attention_ops(model, cluster, att_dims, s, precisions=prec)
        if kind == "moe":
            return att + opmod.moe_ops(model, cluster, sub_dims, s, precisions=prec,
                                       dispatch_precision=dispatch_precision, imbalance=imbalance)
        return att + opmod.dense_ffn_ops(model, cluster, sub_dims, s, precisions=prec)

    if kind == "head":
        return compose_layer("head", 1, opmod.head_ops(model, cluster, att_dims, shape, precisions=prec), None,
                             policy, shape.phase)
    if kind == "moe" and overlap is OverlapPolicy.SINGLE_BATCH:
        blackwell = ((cluster.device.compute_units, prec.routed_experts is WeightFormat.NVFP4)
                     if sbo_blackwell.runs_blackwell_sbo(cluster.device) else None)
        return compose_single_batch("moe", 1, ops_at(shape), blackwell)
    half = ops_at(_half(shape)) if overlap is OverlapPolicy.TWO_BATCH else None
    return compose_layer(kind, 1, ops_at(shape), half, policy, shape.phase, overlap_model)


def step_cost(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape, *,
              weight_precision: Precision, kv_precision: Precision, dispatch_precision: Precision,
              imbalance: float = 1.0, overlap_model: OverlapModel | None = None,
              precisions: OpPrecisions | None = None) -> StepCost:
    """Time of one forward of ``shape`` tokens per attention rank, on the slowest pipeline stage.

    Every stage's composition comes from :meth:`ParallelDims.pipeline_stages` (the split memory reads too); a
    stage's time is its layer counts times the per-layer costs, plus the head on the last stage (the first
    stage's embedding lookup, well under 0.1 % of a stage, is counted with the head). ``step_s`` is the slowest
    stage (it sets the pipeline's interval); ``latency_s`` is every stage once plus the hand-offs.
    ``precisions`` gives each op class its own precision; None = ``weight_precision`` / ``kv_precision`` for all."""
    stages, dense, moe, head = _stage_layers(model, cluster, dims, shape, weight_precision, kv_precision,
                                             dispatch_precision, imbalance, overlap_model, precisions)

    def stage_layers(st: StageLayers) -> list[LayerCost]:
        out = [dataclasses.replace(layer, count=n) for layer, n in ((dense, st.dense_layers), (moe, st.moe_layers))
               if layer is not None and n]
        return out + [head] if st.holds_head else out

    timed = [(_stage_s(st, dense, moe, head), st) for st in stages]
    slowest_s, slowest = max(timed, key=lambda t: t[0])  # the first of equals: deterministic
    layers = stage_layers(slowest)
    handoff = _handoff_s(model, cluster, dims, shape)
    return StepCost(phase=shape.phase, layers=tuple(layers), step_s=slowest_s + handoff,
                    latency_s=sum(t for t, _ in timed) + (dims.pp - 1) * handoff, rank_tokens=shape.rank_tokens,
                    overlap=dims.overlap.value, by_resource=_by_resource(layers), stage=slowest)


def step_latency_s(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape, *,
                   weight_precision: Precision, kv_precision: Precision, dispatch_precision: Precision,
                   imbalance: float = 1.0, overlap_model: OverlapModel | None = None,
                   precisions: OpPrecisions | None = None) -> float:
    """``step_cost(...).latency_s`` alone (the same floats, summed in the same order), without the breakdown:
    what the decode batch search compares against the TPOT SLO at every batch it probes."""
    stages, dense, moe, head = _stage_layers(model, cluster, dims, shape, weight_precision, kv_precision,
                                             dispatch_precision, imbalance, overlap_model, precisions)
    return (sum(_stage_s(st, dense, moe, head) for st in stages)
            + (dims.pp - 1) * _handoff_s(model, cluster, dims, shape))


@functools.lru_cache(maxsize=1 << 12)
def _sub_dims(dims: ParallelDims) -> tuple[ParallelDims, ParallelDims, ParallelDims]:
    """The degrees each layer builder sees (attention; dense FFN; MoE): layouts that differ elsewhere (pp, dp,
    overlap, the other sub-layer's degrees) share memoised op costs."""
    return (ParallelDims(attn_tp=dims.attn_tp), ParallelDims(attn_tp=dims.attn_tp, dense_tp=dims.dense_tp),
            ParallelDims(attn_tp=dims.attn_tp, attn_dp=dims.attn_dp, moe_ep=dims.moe_ep, moe_tp=dims.moe_tp,
                         redundant_experts=dims.redundant_experts))


def _stage_layers(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape,
                  weight_precision: Precision, kv_precision: Precision, dispatch_precision: Precision,
                  imbalance: float, overlap_model: OverlapModel | None, precisions: OpPrecisions | None
                  ) -> tuple[tuple[StageLayers, ...], LayerCost | None, LayerCost | None, LayerCost]:
    """The pipeline stages and the per-layer costs (dense, MoE, head; count 1) they are composed of."""
    prec = precisions or OpPrecisions.uniform(weight_precision, kv_precision)
    stages = dims.pipeline_stages(model)
    # each builder sees only the degrees it depends on, so layouts that differ elsewhere (pp, dp, overlap, the
    # other sub-layer's degrees) share memoised op costs, and layouts that differ only outside a layer's own
    # degrees and overlap (dense_tp for the MoE layer, the MoE degrees for the dense one, pp) its composed cost
    att_dims, ffn_dims, moe_dims = _sub_dims(dims)
    dense = moe = None
    if any(st.dense_layers for st in stages):
        dense = _layer("dense", model, cluster, att_dims, ffn_dims, shape, dims.overlap, prec, dispatch_precision,
                       imbalance, overlap_model)
    if any(st.moe_layers for st in stages):
        moe = _layer("moe", model, cluster, att_dims, moe_dims, shape, dims.overlap, prec, dispatch_precision,
                     imbalance, overlap_model)
    head = _layer("head", model, cluster, att_dims, att_dims, shape, OverlapPolicy.NONE, prec, dispatch_precision,
                  imbalance, None)
    return stages, dense, moe, head


def _stage_s(st: StageLayers, dense: LayerCost | None, moe: LayerCost | None, head: LayerCost) -> float:
    """One stage's time: ``sum(layer.total_s for layer in its layers)``, in the same float order."""
    t = 0
    for layer, n in ((dense, st.dense_layers), (moe, st.moe_layers)):
        if layer is not None and n:
            t += layer.layer_s * n
    return t + head.layer_s if st.holds_head else t


def _handoff_s(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape) -> float:
    """The activations' hand-off between two pipeline stages (0 without a pipeline)."""
    if dims.pp == 1:
        return 0.0
    from cost_models import comm
    return comm.point_to_point(cluster, bytes=shape.rank_tokens * model.hidden_size * 2,
                               crosses_nodes=dims.unit_devices >= cluster.devices_per_node).seconds


def _by_resource(layers: list[LayerCost]) -> dict[str, float]:
    """Seconds by what bound each op: compute, memory, overhead, scale_up, scale_out, latency; plus the
    exposed / overlapped split of communication and the overlap overhead."""
    out: dict[str, float] = {}
    for layer in layers:
        for op in layer.ops:
            key = op.bound or op.kind
            out[key] = out.get(key, 0.0) + op.seconds * layer.count
    out["comm_exposed"] = sum(layer.exposed_comm_s * layer.count for layer in layers)
    out["comm_overlapped"] = sum(layer.overlapped_comm_s * layer.count for layer in layers)
    out["overlap_overhead"] = sum(layer.overlap_overhead_s * layer.count for layer in layers)
    return out
