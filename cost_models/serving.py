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

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from cost_models import memory, mtp
from cost_models.kinds import Phase
from cost_models.ops import PhaseShape
from cost_models.parallel import ParallelDims
from cost_models.specs import ClusterSpec, ModelSpec, ServingWorkload
from cost_models.step import OverlapModel, StepCost, step_cost, step_latency_s


class DecodeBatchLimit(enum.StrEnum):
    """What set the decode batch."""

    WORKLOAD = "workload"
    """Given by the workload (a batch or a concurrency)."""
    MEMORY = "memory"
    """The most sequences whose full-length KV fits."""
    TPOT_SLO = "tpot_slo"
    """The largest batch that meets the TPOT SLO."""


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
    aggregated_request_tok_per_s: float
    """Prompt and generated tokens per second one request sees over its aggregated cycle
    (:func:`request_tok_per_s`)."""
    decode_batch_per_device: float
    decode_batch_limit: DecodeBatchLimit
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
    shape = PhaseShape(phase=Phase.PREFILL, rank_tokens=rank_tokens, sequences_per_rank=rank_tokens / seq_len,
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
        mtp_modules=memory.mtp_modules(model, wl.mtp_tokens),
        runtime_reserve_bytes=wl.runtime_reserve_bytes, static_fraction=wl.static_memory_fraction)
    chunks = math.ceil(wl.input_tokens / rank_tokens)
    return PhaseResult(step=step, memory=mem, tokens_per_device_per_step=device_tokens,
                       sequences_per_device=shape.sequences_per_rank / dims.attn_tp,
                       throughput_tok_per_s_per_device=device_tokens / step.step_s / dims.pp,
                       latency_s=chunks * step.latency_s,
                       expert_tokens_per_local_expert=_expert_density(model, dims, device_tokens))


def _decode_step(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                 seqs_per_device: float, overlap_model: OverlapModel | None = None) -> StepCost:
    """One decode step of ``seqs_per_device`` sequences per device (what the TPOT batch search probes)."""
    q = 1 + wl.mtp_tokens
    rank_seqs = seqs_per_device * dims.attn_tp
    shape = PhaseShape(phase=Phase.DECODE, rank_tokens=rank_seqs * q, sequences_per_rank=rank_seqs,
                       context_tokens=decode_context(wl), query_tokens_per_sequence=q)
    step = step_cost(model, cluster, dims, shape, weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
                     dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance,
                     overlap_model=overlap_model, precisions=wl.precisions)
    return mtp.with_draft(step, mtp.decode_draft_layers(
        model, cluster, dims, draft_tokens=wl.mtp_tokens, sequences_per_rank=rank_seqs,
        context_tokens=decode_context(wl), precisions=wl.precisions, dispatch_precision=wl.dispatch_precision,
        imbalance=wl.expert_imbalance, overlap_model=overlap_model))


def _decode_latency_s(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                      seqs_per_device: float, overlap_model: OverlapModel | None = None) -> float:
    """``_decode_step(...).latency_s`` alone (:func:`cost_models.step.step_latency_s` plus the draft layers, in the
    same float order as :func:`cost_models.mtp.with_draft`): one probe of the TPOT batch search."""
    q = 1 + wl.mtp_tokens
    rank_seqs = seqs_per_device * dims.attn_tp
    shape = PhaseShape(phase=Phase.DECODE, rank_tokens=rank_seqs * q, sequences_per_rank=rank_seqs,
                       context_tokens=decode_context(wl), query_tokens_per_sequence=q)
    latency_s = step_latency_s(model, cluster, dims, shape, weight_precision=wl.weight_precision,
                               kv_precision=wl.kv_precision, dispatch_precision=wl.dispatch_precision,
                               imbalance=wl.expert_imbalance, overlap_model=overlap_model, precisions=wl.precisions)
    draft = mtp.decode_draft_layers(
        model, cluster, dims, draft_tokens=wl.mtp_tokens, sequences_per_rank=rank_seqs,
        context_tokens=decode_context(wl), precisions=wl.precisions, dispatch_precision=wl.dispatch_precision,
        imbalance=wl.expert_imbalance, overlap_model=overlap_model)
    return latency_s + sum(layer.total_s for layer in draft) if draft else latency_s


def _decode_at(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
               seqs_per_device: float, overlap_model: OverlapModel | None = None,
               step: StepCost | None = None) -> PhaseResult:
    """Decode at ``seqs_per_device``; ``step``: that batch's step when the batch search already costed it."""
    q = 1 + wl.mtp_tokens
    accepted = accepted_tokens_per_step(wl)
    if step is None:
        step = _decode_step(model, cluster, dims, wl, seqs_per_device, overlap_model)
    mem = memory.memory_breakdown(
        model, dims, capacity_bytes=cluster.device.hbm_bytes, weight_precision=wl.weight_precision,
        kv_precision=wl.kv_precision, act_precision=wl.activation_precision,
        dispatch_precision=wl.dispatch_precision, sequences_per_device=seqs_per_device,
        context_tokens=wl.input_tokens + wl.output_tokens, tokens_per_device=seqs_per_device * q,
        precisions=wl.precisions, mtp_modules=memory.mtp_modules(model, wl.mtp_tokens),
        runtime_reserve_bytes=wl.runtime_reserve_bytes, static_fraction=wl.static_memory_fraction)
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
        mtp_modules=memory.mtp_modules(model, wl.mtp_tokens),
        runtime_reserve_bytes=wl.runtime_reserve_bytes, static_fraction=wl.static_memory_fraction)


@dataclass(frozen=True, kw_only=True)
class DecodeBatch:
    """The decode batch :func:`decode_batch_search` chose, with the step it costed there."""

    batch_per_device: float
    limit: DecodeBatchLimit
    """``workload`` (given), ``memory`` or ``tpot_slo``."""
    step: StepCost | None
    """The decode step at ``max(batch_per_device, 1 / attn_tp)``, when the search costed it (else None)."""
    probes: int
    """Decode steps the search costed."""


def choose_decode_batch(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                        overlap_model: OverlapModel | None = None) -> tuple[float, str]:
    """Decode sequences per device: as given, else the largest that fits memory and meets the TPOT SLO.

    The batch is an integer number of sequences per attention rank (``attn_tp`` devices)."""
    found = decode_batch_search(model, cluster, dims, wl, overlap_model)
    return found.batch_per_device, found.limit


def decode_batch_search(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                        overlap_model: OverlapModel | None = None, *, hint_rank: int | None = None) -> DecodeBatch:
    """:func:`choose_decode_batch`, with the step at the chosen batch. ``hint_rank``: a rank batch expected near
    the answer (a sibling layout's); it changes which batches are probed, never the answer, because TPOT grows
    with the batch and the search returns the largest rank batch whose TPOT meets the SLO (tests compare it
    with a scan of every batch)."""
    if wl.decode_batch_per_device is not None:
        return DecodeBatch(batch_per_device=wl.decode_batch_per_device, limit=DecodeBatchLimit.WORKLOAD, step=None, probes=0)
    if wl.concurrency is not None:
        return DecodeBatch(batch_per_device=wl.concurrency / dims.world_devices * dims.pp, limit=DecodeBatchLimit.WORKLOAD,
                           step=None, probes=0)
    cap_rank = math.floor(max_decode_batch(model, cluster, dims, wl) * dims.attn_tp)
    if cap_rank < 1:
        return DecodeBatch(batch_per_device=0.0, limit=DecodeBatchLimit.MEMORY, step=None, probes=0)
    accepted = accepted_tokens_per_step(wl)
    latencies: dict[int, float] = {}  # each probe costs the latency only; the step at the answer is built after

    def tpot(b: int) -> float:
        if b not in latencies:
            latencies[b] = _decode_latency_s(model, cluster, dims, wl, b / dims.attn_tp, overlap_model)
        return latencies[b] / accepted

    slo = wl.tpot_slo_s
    if slo is None:
        rank, limit = cap_rank, DecodeBatchLimit.MEMORY
    else:
        rank, memory_bound = largest_rank_batch_within(tpot, cap_rank, slo, hint_rank)
        limit = DecodeBatchLimit.MEMORY if memory_bound else DecodeBatchLimit.TPOT_SLO
    step = _decode_step(model, cluster, dims, wl, rank / dims.attn_tp, overlap_model) if rank in latencies else None
    return DecodeBatch(batch_per_device=rank / dims.attn_tp, limit=limit, step=step, probes=len(latencies))


def largest_rank_batch_within(tpot: Callable[[int], float], cap_rank: int, slo_s: float,
                              hint_rank: int | None = None) -> tuple[int, bool]:
    """The largest rank batch in [1, ``cap_rank``] whose ``tpot`` meets ``slo_s`` (1 when none does), and
    whether ``cap_rank`` (memory) set it. ``tpot`` must not decrease with the batch.

    Without a hint: ``cap_rank``, then 1, then :func:`_largest_batch_within_tpot` between them. With one:
    probe the hint, then gallop away from it (steps 1, 2, 4, ...) until the SLO is crossed, and close that
    bracket the same way; a sibling layout's answer is usually within a few sequences, so two or three probes
    replace the eight to ten of a search over the whole range."""
    if hint_rank is None:
        t_cap = tpot(cap_rank)
        if t_cap <= slo_s:
            return cap_rank, True
        t_one = tpot(1)
        if t_one > slo_s:
            return 1, False
        return _largest_batch_within_tpot(tpot, 1, t_one, cap_rank, t_cap, slo_s), False
    g = min(max(hint_rank, 1), cap_rank)
    t_g, step = tpot(g), 1
    if t_g <= slo_s:  # gallop up: invariant tpot(lo) <= slo
        lo, t_lo = g, t_g
        while True:
            if lo == cap_rank:
                return cap_rank, True
            g = min(cap_rank, lo + step)
            t_g = tpot(g)
            if t_g > slo_s:
                return _largest_batch_within_tpot(tpot, lo, t_lo, g, t_g, slo_s), False
            lo, t_lo, step = g, t_g, step * 2
    hi, t_hi = g, t_g  # gallop down: invariant tpot(hi) > slo
    while True:
        if hi == 1:
            return 1, False
        g = max(1, hi - step)
        t_g = tpot(g)
        if t_g <= slo_s:
            return _largest_batch_within_tpot(tpot, g, t_g, hi, t_hi, slo_s), False
        hi, t_hi, step = g, t_g, step * 2


def _largest_batch_within_tpot(tpot: Callable[[int], float], lo: int, t_lo: float, hi: int, t_hi: float,
                               slo: float) -> int:
    """Largest integer rank batch in [lo, hi) whose TPOT meets the SLO, given ``tpot(lo) <= slo < tpot(hi)``
    (TPOT grows with the batch).

    Regula falsi with the Illinois weights: TPOT is close to affine in the batch (weights are read once per
    step, KV and activations grow linearly), so interpolating between a feasible and an infeasible batch lands
    within a few sequences of the answer; TPOT is convex at small batches (fixed latencies dominate), where
    plain regula falsi keeps one end for many steps, so an end kept twice in a row has its distance to the SLO
    halved (the Illinois rule). Each probe keeps the bracket, so the result is exact on the integers. Measured
    on the 105 pp=1 layouts of the 16 x H200 scenario: 569 probes with sibling hints, against 634 for the
    secant / bisection alternation it replaces."""
    w_lo, w_hi = t_lo - slo, t_hi - slo  # w_lo <= 0 < w_hi
    kept = 0  # which end the last probe moved: -1 lo, +1 hi (moving the same end twice halves the other)
    while hi - lo > 1:
        frac = -w_lo / (w_hi - w_lo) if w_hi > w_lo else 0.5
        g = min(hi - 1, max(lo + 1, round(lo + frac * (hi - lo))))
        t_g = tpot(g)
        if t_g <= slo:
            lo, w_lo = g, t_g - slo
            if kept == -1:
                w_hi /= 2
            kept = -1
        else:
            hi, w_hi = g, t_g - slo
            if kept == 1:
                w_lo /= 2
            kept = 1
    return lo


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


def request_tok_per_s(wl: ServingWorkload, cycle_s: float) -> float:
    """Prompt and generated tokens of one request over the time its slot lasts, ``(input + output) / cycle``:
    the speed the Qwen speed benchmark reports (QwenLM/Qwen3 ``docs/source/getting_started/speed_benchmark.md``:
    "(prompt + generated tokens) / time"). At one sequence per device the cycle is the prompt's prefill plus the
    output's decode steps, ``TTFT + output x TPOT``; e.g. 1,024 prompt and 2,048 output tokens in 20.0 s give
    3,072 / 20.0 = 153.6 tok/s."""
    return (wl.input_tokens + wl.output_tokens) / cycle_s


def evaluate(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
             overlap_model: OverlapModel | None = None, *, decode_hint_rank: int | None = None,
             decode_batch: DecodeBatch | None = None) -> ServingResult:
    """Prefill, decode and aggregated serving figures of ``dims`` for ``wl``. ``overlap_model`` replaces the
    closed-form two-batch overlap with an injected schedule (the CP-SAT interval model from the planner);
    ``decode_hint_rank`` guides the TPOT batch search (:func:`decode_batch_search`) without changing its answer;
    ``decode_batch``: that search's answer for these arguments, found elsewhere (the planner's helper process), so
    it is not searched again. Its step, when absent, is costed at the batch as the search would have costed it, so
    the result is the same either way."""
    pre = prefill(model, cluster, dims, wl, overlap_model)
    found = decode_batch if decode_batch is not None else decode_batch_search(
        model, cluster, dims, wl, overlap_model, hint_rank=decode_hint_rank)
    batch, why = found.batch_per_device, found.limit
    dec = _decode_at(model, cluster, dims, wl, max(batch, 1.0 / dims.attn_tp), overlap_model, found.step)
    b = dec.sequences_per_device
    accepted_steps = wl.output_tokens / accepted_tokens_per_step(wl)
    prefill_s = b * wl.input_tokens / pre.throughput_tok_per_s_per_device
    cycle_s = prefill_s * aggregated_prefill_stall(dims, wl) + accepted_steps * dec.step.step_s * dims.pp
    return ServingResult(prefill=pre, decode=dec,
                         aggregated_output_tok_per_s_per_device=b * wl.output_tokens / cycle_s,
                         aggregated_user_tok_per_s=wl.output_tokens / cycle_s,
                         aggregated_request_tok_per_s=request_tok_per_s(wl, cycle_s),
                         decode_batch_per_device=batch, decode_batch_limit=why)
