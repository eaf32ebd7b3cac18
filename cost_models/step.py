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

Issue 4's CP-SAT schedule replaces this closed form with an interval schedule; this module stays the
fallback and the bound it is checked against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from cost_models import ops as opmod
from cost_models.kinds import OpKind, Phase
from cost_models.parallel import OverlapPolicy, ParallelDims, StageLayers
from cost_models.specs import ClusterSpec, ModelSpec, OpPrecisions, Precision

COMM_SM_FRACTION_NORMAL = 20 / 132
"""SMs DeepEP's high-throughput (normal) kernels occupy on an H800 (DeepSeek-V3 report §3.2.1: "only 20 SMs");
taken as the fraction of compute units communication occupies in prefill on any device."""

COMM_SM_FRACTION_LOW_LATENCY = 0.0
"""DeepEP low-latency kernels use a hook-based receive that occupies no SMs (DeepEP README)."""

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
    prec = precisions or OpPrecisions.uniform(weight_precision, kv_precision)
    stages = dims.pipeline_stages(model)
    two = dims.overlap is OverlapPolicy.TWO_BATCH

    # each builder sees only the degrees it depends on, so layouts that differ elsewhere (pp, dp, overlap, the
    # other sub-layer's degrees) share memoised op costs
    att_dims = ParallelDims(attn_tp=dims.attn_tp)
    ffn_dims = ParallelDims(attn_tp=dims.attn_tp, dense_tp=dims.dense_tp)
    moe_dims = ParallelDims(attn_tp=dims.attn_tp, attn_dp=dims.attn_dp, moe_ep=dims.moe_ep, moe_tp=dims.moe_tp,
                            redundant_experts=dims.redundant_experts)

    def layer_ops(s: opmod.PhaseShape, moe: bool) -> tuple[opmod.OpCost, ...]:
        att = opmod.attention_ops(model, cluster, att_dims, s, precisions=prec)
        if moe:
            return att + opmod.moe_ops(model, cluster, moe_dims, s, precisions=prec,
                                       dispatch_precision=dispatch_precision, imbalance=imbalance)
        return att + opmod.dense_ffn_ops(model, cluster, ffn_dims, s, precisions=prec)

    half = _half(shape)
    dense = moe = None
    if any(st.dense_layers for st in stages):
        dense = compose_layer("dense", 1, layer_ops(shape, False), layer_ops(half, False) if two else None, dims,
                              shape.phase, overlap_model)
    if any(st.moe_layers for st in stages):
        moe = compose_layer("moe", 1, layer_ops(shape, True), layer_ops(half, True) if two else None, dims,
                            shape.phase, overlap_model)
    head = compose_layer("head", 1, opmod.head_ops(model, cluster, att_dims, shape, precisions=prec), None, dims,
                         shape.phase)

    def stage_layers(st: StageLayers) -> list[LayerCost]:
        out = [dataclasses.replace(layer, count=n) for layer, n in ((dense, st.dense_layers), (moe, st.moe_layers))
               if layer is not None and n]
        return out + [head] if st.holds_head else out

    timed = [(sum(layer.total_s for layer in stage_layers(st)), st) for st in stages]
    slowest_s, slowest = max(timed, key=lambda t: t[0])  # the first of equals: deterministic
    layers = stage_layers(slowest)
    handoff = 0.0
    if dims.pp > 1:
        from cost_models import comm
        handoff = comm.point_to_point(cluster, bytes=shape.rank_tokens * model.hidden_size * 2,
                                      crosses_nodes=dims.unit_devices >= cluster.devices_per_node).seconds
    return StepCost(phase=shape.phase, layers=tuple(layers), step_s=slowest_s + handoff,
                    latency_s=sum(t for t, _ in timed) + (dims.pp - 1) * handoff, rank_tokens=shape.rank_tokens,
                    overlap=dims.overlap.value, by_resource=_by_resource(layers), stage=slowest)


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
