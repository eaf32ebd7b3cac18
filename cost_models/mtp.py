"""Multi-token prediction (speculative decoding with MTP / EAGLE-style draft layers): what it costs per step and
what it yields.

One decode step with ``k`` draft tokens per sequence (the cycle of SGLang's EAGLE worker with ``topk 1`` and of
TensorRT-LLM's MTP, on the draft module of the DeepSeek-V3 report §2.2: RMSNorm of the previous hidden state and
of the next token's embedding, their concatenation projected by ``eh_proj`` (``2h x h``), one decoder layer, the
shared output head):

1. **verify**: the main model's forward over ``k + 1`` query tokens per sequence (the last accepted token and the
   ``k`` drafts): :func:`cost_models.step.step_cost` with ``query_tokens_per_sequence = k + 1``;
2. **draft extend**: one draft-module forward over the same ``k + 1`` tokens per sequence (the engines run it as a
   CUDA graph padded to ``k + 1`` tokens, SGLang ``EAGLEDraftExtendCudaGraphRunner``), which writes the module's KV
   for the accepted tokens and yields draft 1 (LM head over one token per sequence);
3. **draft decode**: ``k - 1`` further draft-module forwards at one token per sequence for drafts 2..k.

Prefill runs the draft module once over the prompt (its KV and the first draft).

Acceptance.  ``acceptance[j]`` is the probability that draft ``j + 1`` is accepted given that drafts ``1..j``
were (verification stops at the first rejection, so the accepted run is a prefix).  Expected tokens per step:
``1 + a1 + a1 a2 + ... + a1 ... ak`` (the verified token always counts): with one constant ``a``,
``1 + a + ... + a^k``.  DeepSeek-V3 report §5.4.3 states the acceptance of "the second token prediction" at
85-90 %, i.e. ``a1`` in this convention, for 1.85-1.9 tokens per step ("1.8 times TPS").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from cost_models import ops as opmod
from cost_models.parallel import OverlapPolicy, ParallelDims
from cost_models.specs import ClusterSpec, ModelSpec, OpPrecisions, Precision
from cost_models.step import LayerCost, OverlapModel, StepCost, _by_resource, compose_layer


def expected_tokens_per_step(acceptance: Sequence[float]) -> float:
    """Mean tokens a sequence advances per step: ``1 + a1 + a1 a2 + ...`` over the conditional acceptances."""
    total, run = 1.0, 1.0
    for i, a in enumerate(acceptance):
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"acceptance[{i}] must be in [0, 1], got {a}")
        run *= a
        total += run
    return total


def _renamed(ops: tuple[opmod.OpCost, ...]) -> tuple[opmod.OpCost, ...]:
    return tuple(dataclasses.replace(o, name=f"mtp.{o.name}") for o in ops)


def draft_io_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape, *,
                 precisions: OpPrecisions) -> tuple[opmod.OpCost, ...]:
    """What a draft forward runs around its decoder layer: norms + ``eh_proj`` before it, the head over one token
    per sequence (the draft being sampled) after it. Op names carry the prefix ``mtp.``."""
    head = opmod.head_ops(model, cluster, ParallelDims(attn_tp=dims.attn_tp), shape, precisions=precisions,
                          sampled_tokens=shape.sequences_per_rank)
    return _renamed(opmod.mtp_projection_ops(model, cluster, shape) + head)


def draft_layer_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape, *,
                    precisions: OpPrecisions, dispatch_precision: Precision, imbalance: float
                    ) -> tuple[opmod.OpCost, ...]:
    """The draft module's decoder layer over ``shape`` (attention over its own KV, then its MoE or dense FFN).
    Op names carry the prefix ``mtp.``."""
    att_dims = ParallelDims(attn_tp=dims.attn_tp)
    layer = opmod.attention_ops(model, cluster, att_dims, shape, precisions=precisions)
    if model.moe is not None:
        moe_dims = ParallelDims(attn_tp=dims.attn_tp, attn_dp=dims.attn_dp, moe_ep=dims.moe_ep, moe_tp=dims.moe_tp,
                                redundant_experts=dims.redundant_experts)
        layer += opmod.moe_ops(model, cluster, moe_dims, shape, precisions=precisions,
                               dispatch_precision=dispatch_precision, imbalance=imbalance)
    else:
        layer += opmod.dense_ffn_ops(model, cluster, ParallelDims(attn_tp=dims.attn_tp, dense_tp=dims.dense_tp),
                                     shape, precisions=precisions)
    return _renamed(layer)


def _half(shape: opmod.PhaseShape) -> opmod.PhaseShape:
    return dataclasses.replace(shape, rank_tokens=shape.rank_tokens / 2, sequences_per_rank=shape.sequences_per_rank / 2)


def _forward(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape, count: int, *,
             precisions: OpPrecisions, dispatch_precision: Precision, imbalance: float,
             overlap_model: OverlapModel | None) -> tuple[LayerCost, LayerCost]:
    """``count`` draft forwards of ``shape``: the decoder layer under the plan's overlap policy (one more layer of
    the same engine, so it overlaps like the main layers), the projection and head once over the whole batch,
    like the main model's head (splitting them would read their weights twice)."""
    kw = dict(precisions=precisions, dispatch_precision=dispatch_precision, imbalance=imbalance)
    full = draft_layer_ops(model, cluster, dims, shape, **kw)
    half = (draft_layer_ops(model, cluster, dims, _half(shape), **kw)
            if dims.overlap is OverlapPolicy.TWO_BATCH else None)
    io = draft_io_ops(model, cluster, dims, shape, precisions=precisions)
    return (compose_layer("mtp", count, full, half, dims, shape.phase, overlap_model),
            compose_layer("mtp", count, io, None, dims, shape.phase))


def decode_draft_layers(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, *, draft_tokens: int,
                        sequences_per_rank: float, context_tokens: int, precisions: OpPrecisions,
                        dispatch_precision: Precision, imbalance: float,
                        overlap_model: OverlapModel | None = None) -> tuple[LayerCost, ...]:
    """The draft work of one decode step with ``draft_tokens`` = k: the extend forward at k + 1 tokens per
    sequence, then k - 1 forwards at one token per sequence (none when k = 0)."""
    if draft_tokens <= 0:
        return ()
    kw = dict(precisions=precisions, dispatch_precision=dispatch_precision, imbalance=imbalance,
              overlap_model=overlap_model)
    q = draft_tokens + 1
    extend = opmod.PhaseShape(phase="decode", rank_tokens=sequences_per_rank * q,
                              sequences_per_rank=sequences_per_rank, context_tokens=context_tokens,
                              query_tokens_per_sequence=q)
    layers = _forward(model, cluster, dims, extend, 1, **kw)
    if draft_tokens > 1:
        one = dataclasses.replace(extend, rank_tokens=sequences_per_rank, query_tokens_per_sequence=1)
        layers += _forward(model, cluster, dims, one, draft_tokens - 1, **kw)
    return layers


def prefill_draft_layers(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: opmod.PhaseShape, *,
                         precisions: OpPrecisions, dispatch_precision: Precision, imbalance: float,
                         overlap_model: OverlapModel | None = None) -> tuple[LayerCost, ...]:
    """The draft module's forward over the prompt chunk of a prefill step (its KV and the first draft)."""
    return _forward(model, cluster, dims, shape, 1, precisions=precisions, dispatch_precision=dispatch_precision,
                    imbalance=imbalance, overlap_model=overlap_model)


def with_draft(step: StepCost, draft: tuple[LayerCost, ...]) -> StepCost:
    """``step`` followed by the draft layers: they run after the verify forward on the last pipeline stage, so
    they add to both the step interval and the latency."""
    if not draft:
        return step
    draft_s = sum(layer.total_s for layer in draft)
    layers = step.layers + draft
    return dataclasses.replace(step, layers=layers, step_s=step.step_s + draft_s,
                               latency_s=step.latency_s + draft_s, by_resource=_by_resource(list(layers)))
