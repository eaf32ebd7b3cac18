"""The engine's iteration in aggregated serving: each forward runs every running sequence's next token plus, within
the iteration's token budget, a prefill chunk of a waiting prompt.

TensorRT-LLM's in-flight batching (``max_num_tokens``), vLLM's scheduler (``max_num_batched_tokens``) and SGLang's
chunked prefill (``chunked_prefill_size``) all work this way; the budget counts decode and prefill tokens of one
attention rank together. The engines' defaults, read from their sources:

* TensorRT-LLM ``max_num_tokens`` 8,192 (``BuildConfig``, NVIDIA/TensorRT-LLM@008b2b8d
  ``tensorrt_llm/builder.py``; ``max_batch_size`` 2,048 there);
* vLLM ``max_num_batched_tokens`` on GPUs of 70 GiB or more other than A100: 8,192 for the OpenAI server, 16,384
  for the ``LLM`` class; else 2,048 / 8,192 (vLLM 0.11.0 ``vllm/engine/arg_utils.py``,
  ``EngineArgs._set_default_args``);
* SGLang ``chunked_prefill_size`` by GPU memory: 2,048 below 35 GiB, 4,096 below 60 GiB, 8,192 below 160 GiB
  (H100, H20, H200), 16,384 above (B200, MI300), divided by ``dp_size`` under DP attention (SGLang 0.5.5
  ``python/sglang/srt/server_args.py``, ``_handle_gpu_memory_settings`` and ``_handle_data_parallelism``).

(vLLM 0.11.0 and SGLang 0.5.5 are the wheels tests/test_engine_parsers.py pins.)

Steady state, per attention rank with ``B`` decode slots, prompts of ``I`` tokens and ``S`` decode steps per
request: a slot frees every ``S / B`` iterations, so the rank must prefill ``B I / S`` prompt tokens per
iteration on average. A prompt is admitted into a free slot, beside the ``B - 1`` other slots' decode tokens, so
the room for it is ``budget - (B - 1) q`` tokens (``q`` tokens per sequence per step, 1 + draft tokens). A rank
carries a chunk in a fraction ``p = (B I / S) / chunk`` of its iterations (:func:`iteration_mix`).

Synchronisation across attention-DP ranks: the ranks of one MoE unit meet at every MoE collective, so an
iteration lasts as long as its slowest rank. When the ranks admit prompts at independent times, an iteration
carries a chunk somewhere with probability ``1 - (1 - p)^attn_dp``; when they admit in the same iterations (a
closed-loop benchmark whose equal-length requests start together, or TensorRT-LLM's attention-DP balance that
holds context phases until every rank has one), in a fraction ``p`` of iterations, each with ``attn_dp`` chunks
(:class:`PrefillAlignment`).

A mixed iteration costs the decode step plus the marginal cost of its chunk tokens in a forward that already
carries the decode tokens: weights are read and fixed kernel costs paid once per iteration, so they cancel in the
difference (:func:`chunk_extra_s`).

Status: not the path ``serving.evaluate`` takes. Composed with today's decode step this mechanism puts the one
validation row it moves (TRT-H200) 70-80 % too fast, because the measured iteration is about twice the modelled
decode step, which no kernel measurement explains; README "Accuracy" gives the numbers and
``benchmarks/aggregated_iteration.py`` prints them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cost_models.kinds import Phase
from cost_models.ops import PhaseShape
from cost_models.parallel import ParallelDims
from cost_models.specs import ClusterSpec, ModelSpec, ServingWorkload
from cost_models.step import OverlapModel, step_cost


class PrefillAlignment(enum.StrEnum):
    """Whether the attention-DP ranks of a unit admit prompts in the same iterations."""

    ALIGNED = "aligned"
    """Every rank admits in the same iterations (equal-length closed-loop requests started together; TensorRT-LLM
    attention-DP balance)."""
    INDEPENDENT = "independent"
    """Each rank admits at its own times (requests arrive independently)."""


@dataclass(frozen=True, kw_only=True)
class IterationMix:
    """Steady-state prefill load of one attention rank's iterations (:func:`iteration_mix`)."""

    room_tokens: float
    """Budget left for prefill beside the other slots' decode tokens: ``budget - (B - 1) q``."""
    chunk_tokens: float
    """Prefill tokens of an iteration that carries a chunk: ``min(I, room)`` (the whole prompt when unchunked)."""
    prefill_tokens_per_iteration: float
    """Prompt tokens a rank must prefill per iteration on average: ``B I / S``."""
    rank_mixed_fraction: float
    """Fraction of a rank's iterations that carry a chunk: ``min(1, B I / (S chunk))``."""
    mixed_fraction: float
    """Fraction of iterations in which some rank of the unit carries a chunk (the unit runs at its pace)."""
    chunks_per_mixed_iteration: float
    """Expected ranks carrying a chunk in such an iteration."""
    iterations_per_request: float
    """Iterations a decode slot lasts per request: ``S``, or ``B I / chunk`` when the budget binds."""


def iteration_mix(*, attn_dp: int, batch_per_rank: float, input_tokens: int, decode_steps_per_request: float,
                  budget_tokens: int, query_tokens_per_sequence: int = 1, chunked: bool = True,
                  alignment: PrefillAlignment = PrefillAlignment.INDEPENDENT) -> IterationMix:
    """The prefill each iteration carries, per attention rank and across the unit's ``attn_dp`` ranks.

    ``chunked=False`` is an engine that admits only whole prompts (TensorRT-LLM's MLA on Hopper: "MLA chunked
    context support ... not supported on Hopper"), so the budget must hold a prompt beside ``B - 1`` decode
    slots; a ValueError says what budget would. Only ranks that meet (``attn_dp`` > 1) synchronise."""
    if batch_per_rank < 1 or input_tokens < 1 or decode_steps_per_request <= 0 or budget_tokens < 1:
        raise ValueError("iteration_mix needs batch_per_rank >= 1, input_tokens >= 1, decode steps > 0, budget >= 1")
    room = budget_tokens - (batch_per_rank - 1) * query_tokens_per_sequence
    if not chunked and room < input_tokens:
        need = input_tokens + (batch_per_rank - 1) * query_tokens_per_sequence
        raise ValueError(f"a whole {input_tokens}-token prompt beside {batch_per_rank - 1:g} decode slots needs a "
                         f"token budget of at least {need:g}, got {budget_tokens}")
    if room < 1:
        raise ValueError(f"token budget {budget_tokens} leaves no room for prefill beside "
                         f"{batch_per_rank - 1:g} decode slots of {query_tokens_per_sequence} tokens")
    chunk = min(float(input_tokens), room)
    demand = batch_per_rank * input_tokens / decode_steps_per_request
    p = min(1.0, demand / chunk)
    if attn_dp == 1 or alignment is PrefillAlignment.ALIGNED:
        mixed, chunks = p, float(attn_dp)
    else:
        mixed = 1.0 - (1.0 - p) ** attn_dp
        chunks = attn_dp * p / mixed if mixed > 0 else 0.0
    return IterationMix(room_tokens=room, chunk_tokens=chunk, prefill_tokens_per_iteration=demand,
                        rank_mixed_fraction=p, mixed_fraction=mixed, chunks_per_mixed_iteration=chunks,
                        iterations_per_request=max(decode_steps_per_request, batch_per_rank * input_tokens / chunk))


SPREAD_OP_PREFIXES = ("moe.experts_", "moe.permute", "moe.unpermute")
"""Ops that run over the tokens the unit routes to a device, not over one rank's own tokens: a chunk on some
ranks adds ``chunk x chunks / attn_dp`` tokens to each device's expert GEMMs (and their permutations)."""


def _forward_ops_s(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                   rank_tokens: float, overlap_model: OverlapModel | None) -> dict[str, float]:
    """Seconds per op name of one prefill-shaped forward of ``rank_tokens`` per rank (prompts of ``input``)."""
    seq = min(float(wl.input_tokens), rank_tokens)
    shape = PhaseShape(phase=Phase.PREFILL, rank_tokens=rank_tokens, sequences_per_rank=rank_tokens / seq,
                       context_tokens=max(1, int(seq)))
    return step_cost(model, cluster, dims, shape, weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
                     dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance,
                     overlap_model=overlap_model, precisions=wl.precisions).op_totals()


def chunk_extra_s(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                  mix: IterationMix, batch_per_rank: float, overlap_model: OverlapModel | None = None) -> float:
    """Seconds a mixed iteration adds to the decode step: per op, a forward of ``B + extra`` tokens per rank minus
    one of ``B`` (so weight reads and fixed costs cancel), ``extra`` being the whole chunk for the busy rank's own
    ops and the chunks spread over the unit for :data:`SPREAD_OP_PREFIXES`."""
    if mix.mixed_fraction == 0.0:
        return 0.0
    b = max(batch_per_rank, 1.0)
    base = _forward_ops_s(model, cluster, dims, wl, b, overlap_model)
    own = _forward_ops_s(model, cluster, dims, wl, b + mix.chunk_tokens, overlap_model)
    spread_tokens = mix.chunk_tokens * mix.chunks_per_mixed_iteration / dims.attn_dp
    spread = _forward_ops_s(model, cluster, dims, wl, b + spread_tokens, overlap_model)
    return sum(max(0.0, (spread if name.startswith(SPREAD_OP_PREFIXES) else own)[name] - base.get(name, 0.0))
               for name in own)


def request_cycle_s(mix: IterationMix, decode_step_s: float, chunk_extra: float, pp: int = 1) -> float:
    """Seconds a decode slot lasts per request: its iterations, each the decode step plus the mixed iterations'
    share of the chunk's cost, ``iterations x (step + mixed_fraction x extra) x pp``."""
    return mix.iterations_per_request * (decode_step_s + mix.mixed_fraction * chunk_extra) * pp
