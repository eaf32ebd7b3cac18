"""What a plan delivers: memory, prefill and decode step times, throughput, TTFT, TPOT, expert density.

Throughput conventions follow the published deployments (README "Accuracy"): prefill throughput is input
tokens per second per device, decode throughput is output tokens per second per device, both counted over
every device the plan occupies (all pipeline stages).

Aggregated serving (prefill and decode on the same devices, as TensorRT-LLM's max-throughput mode) is
composed from the two: each device alternates prefilling its sequences' prompts and decoding their outputs,
so per request cycle it spends ``B * input / prefill_rate + output * decode_step`` seconds for ``B * output``
output tokens.

Multi-token prediction (:mod:`cost_models.mtp`): a decode step verifies ``1 + k`` tokens per sequence and runs
the draft module's forwards after it; TPOT is the step time over the expected tokens per step
(``1 + a1 + a1 a2 + ...``), throughput the sequences times that over the step time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cost_models import memory, mtp
from cost_models.ops import PhaseShape
from cost_models.parallel import ParallelDims
from cost_models.specs import ClusterSpec, ModelSpec, ServingWorkload
from cost_models.step import OverlapModel, StepCost, step_cost


@dataclass(frozen=True, kw_only=True)
class PhaseResult:
    """Prefill or decode outcome of a plan."""

    step: StepCost
    memory: memory.MemoryBreakdown
    tokens_per_device_per_step: float
    """Tokens one device pushes through one step: input tokens (prefill) or sequences x query tokens per
    sequence (decode: 1 + speculative tokens)."""
    sequences_per_device: float
    """Sequences one device holds in the step (prefill: prompts or prompt chunks; decode: the decode batch)."""
    throughput_tok_per_s_per_device: float
    latency_s: float
    """TTFT (prefill) or TPOT (decode)."""
    expert_tokens_per_local_expert: float
    """Expert compute density: mean (token, expert) pairs each local expert GEMM gets per step."""


@dataclass(frozen=True, kw_only=True)
class ServingResult:
    prefill: PhaseResult
    decode: PhaseResult
    aggregated_output_tok_per_s_per_device: float
    aggregated_user_tok_per_s: float
    decode_batch_per_device: float
    decode_batch_limit: str
    """What set the decode batch: ``workload`` (given), ``memory`` or ``tpot_slo``."""


def _expert_density(model: ModelSpec, dims: ParallelDims, device_tokens: float) -> float:
    if model.moe is None:
        return 0.0
    copies = memory.routed_tokens_per_device(model, dims, device_tokens)
    return copies / dims.experts_per_device(model)


def prefill(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
            overlap_model: OverlapModel | None = None) -> PhaseResult:
    """One prefill forward of ``prefill_tokens_per_device`` tokens (default: one prompt per attention rank)."""
    device_tokens = wl.prefill_tokens_per_device or wl.input_tokens / dims.attn_tp
    rank_tokens = device_tokens * dims.attn_tp
    seq_len = min(wl.input_tokens, rank_tokens)
    shape = PhaseShape(phase="prefill", rank_tokens=rank_tokens, sequences_per_rank=rank_tokens / seq_len,
                       context_tokens=int(seq_len))
    step = step_cost(model, cluster, dims, shape, weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
                     dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance,
                     overlap_model=overlap_model, precisions=wl.precisions)
    if wl.mtp_tokens:
        step = mtp.with_draft(step, mtp.prefill_draft_layers(
            model, cluster, dims, shape, precisions=wl.precisions, dispatch_precision=wl.dispatch_precision,
            imbalance=wl.expert_imbalance, overlap_model=overlap_model))
    mem = memory.memory_breakdown(
        model, dims, capacity_bytes=cluster.device.hbm_bytes, weight_precision=wl.weight_precision,
        kv_precision=wl.kv_precision, act_precision=wl.activation_precision,
        dispatch_precision=wl.dispatch_precision, sequences_per_device=shape.sequences_per_rank / dims.attn_tp,
        context_tokens=int(seq_len), tokens_per_device=device_tokens, precisions=wl.precisions,
        mtp_modules=memory.mtp_modules(model, wl.mtp_tokens))
    chunks = math.ceil(wl.input_tokens / rank_tokens)
    return PhaseResult(step=step, memory=mem, tokens_per_device_per_step=device_tokens,
                       sequences_per_device=shape.sequences_per_rank / dims.attn_tp,
                       throughput_tok_per_s_per_device=device_tokens / step.step_s / dims.pp,
                       latency_s=chunks * step.latency_s,
                       expert_tokens_per_local_expert=_expert_density(model, dims, device_tokens))


def _decode_at(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
               seqs_per_device: float, overlap_model: OverlapModel | None = None) -> PhaseResult:
    q = 1 + wl.mtp_tokens
    accepted = accepted_tokens_per_step(wl)
    ctx = decode_context(wl)
    rank_seqs = seqs_per_device * dims.attn_tp
    shape = PhaseShape(phase="decode", rank_tokens=rank_seqs * q, sequences_per_rank=rank_seqs,
                       context_tokens=ctx, query_tokens_per_sequence=q)
    step = step_cost(model, cluster, dims, shape, weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
                     dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance,
                     overlap_model=overlap_model, precisions=wl.precisions)
    step = mtp.with_draft(step, mtp.decode_draft_layers(
        model, cluster, dims, draft_tokens=wl.mtp_tokens, sequences_per_rank=rank_seqs, context_tokens=ctx,
        precisions=wl.precisions, dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance,
        overlap_model=overlap_model))
    mem = memory.memory_breakdown(
        model, dims, capacity_bytes=cluster.device.hbm_bytes, weight_precision=wl.weight_precision,
        kv_precision=wl.kv_precision, act_precision=wl.activation_precision,
        dispatch_precision=wl.dispatch_precision, sequences_per_device=seqs_per_device,
        context_tokens=wl.input_tokens + wl.output_tokens, tokens_per_device=seqs_per_device * q,
        precisions=wl.precisions, mtp_modules=memory.mtp_modules(model, wl.mtp_tokens))
    return PhaseResult(step=step, memory=mem, tokens_per_device_per_step=seqs_per_device * q,
                       sequences_per_device=seqs_per_device,
                       throughput_tok_per_s_per_device=seqs_per_device * accepted / step.step_s / dims.pp,
                       latency_s=step.latency_s / accepted,
                       expert_tokens_per_local_expert=_expert_density(model, dims, seqs_per_device * q))


def accepted_tokens_per_step(wl: ServingWorkload) -> float:
    """Expected tokens each sequence advances per decode step (1 without MTP; see :mod:`cost_models.mtp`)."""
    return mtp.expected_tokens_per_step(wl.mtp_acceptance_by_position)


def decode_context(wl: ServingWorkload) -> int:
    return wl.decode_context_tokens or wl.input_tokens + wl.output_tokens // 2


def max_decode_batch(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload) -> float:
    """Most sequences per device whose full-length KV (input + output) fits in memory."""
    return memory.max_sequences_per_device(
        model, dims, capacity_bytes=cluster.device.hbm_bytes, weight_precision=wl.weight_precision,
        kv_precision=wl.kv_precision, act_precision=wl.activation_precision,
        dispatch_precision=wl.dispatch_precision, context_tokens=wl.input_tokens + wl.output_tokens,
        tokens_per_sequence_step=1 + wl.mtp_tokens, precisions=wl.precisions,
        mtp_modules=memory.mtp_modules(model, wl.mtp_tokens))


def choose_decode_batch(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                        overlap_model: OverlapModel | None = None) -> tuple[float, str]:
    """Decode sequences per device: as given, else the largest that fits memory and meets the TPOT SLO.

    The batch is an integer number of sequences per attention rank (``attn_tp`` devices)."""
    if wl.decode_batch_per_device is not None:
        return wl.decode_batch_per_device, "workload"
    if wl.concurrency is not None:
        return wl.concurrency / dims.world_devices * dims.pp, "workload"
    cap_rank = math.floor(max_decode_batch(model, cluster, dims, wl) * dims.attn_tp)
    if cap_rank < 1:
        return 0.0, "memory"
    at_cap = _decode_at(model, cluster, dims, wl, cap_rank / dims.attn_tp, overlap_model)
    if wl.tpot_slo_s is None or at_cap.latency_s <= wl.tpot_slo_s:
        return cap_rank / dims.attn_tp, "memory"
    return _largest_batch_within_tpot(model, cluster, dims, wl, cap_rank, at_cap.latency_s, overlap_model), "tpot_slo"


def _largest_batch_within_tpot(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                               cap_rank: int, t_cap: float, overlap_model: OverlapModel | None = None) -> float:
    """Largest integer rank batch in [1, cap_rank) whose TPOT meets the SLO (TPOT grows with the batch).

    Bracketing secant search: TPOT is close to affine in the batch (weights are read once per step, KV and
    activations grow linearly), so interpolating between a feasible and an infeasible batch lands within a few
    sequences of the answer; each probe keeps the bracket, so the result is exact on the integers."""
    slo = wl.tpot_slo_s
    assert slo is not None

    def tpot(b: int) -> float:
        return _decode_at(model, cluster, dims, wl, b / dims.attn_tp, overlap_model).latency_s

    lo, hi = 1, cap_rank
    t_lo, t_hi = tpot(lo), t_cap
    if t_lo > slo:
        return 1 / dims.attn_tp
    # invariant: tpot(lo) <= slo < tpot(hi). Secant guesses, with a bisection step whenever a guess failed to
    # halve the bracket (TPOT is convex in the batch and steps at wave boundaries, where a pure secant stalls);
    # a guess within about one sequence's TPOT of the SLO also probes its neighbour to close the bracket.
    bisect = False
    while hi - lo > 1:
        width = hi - lo
        if bisect:
            g = (lo + hi) // 2
        else:
            frac = (slo - t_lo) / (t_hi - t_lo) if t_hi > t_lo else 0.5
            g = min(hi - 1, max(lo + 1, lo + int(frac * width)))
        per_seq = (t_hi - t_lo) / width
        t_g = tpot(g)
        if t_g <= slo:
            lo, t_lo = g, t_g
            if g + 1 < hi and slo - t_g < 1.5 * per_seq:
                t_next = tpot(g + 1)
                if t_next > slo:
                    return g / dims.attn_tp
                lo, t_lo = g + 1, t_next
        else:
            hi, t_hi = g, t_g
            if g - 1 > lo and t_g - slo < 1.5 * per_seq:
                t_prev = tpot(g - 1)
                if t_prev <= slo:
                    return (g - 1) / dims.attn_tp
                hi, t_hi = g - 1, t_prev
        bisect = not bisect and (hi - lo) * 2 > width
    return lo / dims.attn_tp


def aggregated_prefill_stall(dims: ParallelDims, wl: ServingWorkload) -> float:
    """How many devices' worth of prefill time each device waits through in aggregated serving.

    Attention-DP ranks of one unit meet at every MoE all-to-all, so the layer time of an iteration is that of
    its slowest rank: when one rank runs a prompt while the others decode, all ``attn_dp`` ranks wait for it.
    New requests reach the ranks at independent times (each rank admits ``B / output`` requests per decode
    step, well under one), so prefills rarely coincide and every rank sits through every other rank's prefill:
    the stall factor is ``attn_dp`` (TensorRT-LLM's "attention DP balance" option exists to align these context
    phases; ``workload.aligned_prefill: true`` models an engine that does, factor 1)."""
    if wl.aligned_prefill or dims.moe_ep == 1:
        return 1.0
    return float(dims.attn_dp)


def evaluate(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
             overlap_model: OverlapModel | None = None) -> ServingResult:
    """Prefill, decode and aggregated serving figures of ``dims`` for ``wl``. ``overlap_model`` replaces the
    closed-form two-batch overlap with an injected schedule (the CP-SAT interval model from the planner)."""
    pre = prefill(model, cluster, dims, wl, overlap_model)
    batch, why = choose_decode_batch(model, cluster, dims, wl, overlap_model)
    dec = _decode_at(model, cluster, dims, wl, max(batch, 1.0 / dims.attn_tp), overlap_model)
    b = dec.sequences_per_device
    accepted_steps = wl.output_tokens / accepted_tokens_per_step(wl)
    prefill_s = b * wl.input_tokens / pre.throughput_tok_per_s_per_device
    cycle_s = prefill_s * aggregated_prefill_stall(dims, wl) + accepted_steps * dec.step.step_s * dims.pp
    return ServingResult(prefill=pre, decode=dec,
                         aggregated_output_tok_per_s_per_device=b * wl.output_tokens / cycle_s,
                         aggregated_user_tok_per_s=wl.output_tokens / cycle_s,
                         decode_batch_per_device=batch, decode_batch_limit=why)
