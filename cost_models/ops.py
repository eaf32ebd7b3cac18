"""The ops of one transformer layer as kernel and collective costs on one device.

Each builder returns a tuple of :class:`OpCost`, one per kernel or collective, timed by the compute model
(:mod:`cost_models.compute`, calibrated on measured H200 kernels) and the communication model
(:mod:`cost_models.comm`).  Shapes follow the serving engines:

* MLA prefill runs the plain (non-absorbed) form: latent up-projected to per-head K/V, FlashAttention over
  ``qk = nope + rope = 192``, ``v = 128`` (DeepSeek-V2 paper §2.1); MLA decode runs the weight-absorbed form
  (``W_UK`` folded into the query, ``W_UV`` after attention) which is MQA over the 576-wide latent with
  512-wide values (FlashMLA);
* q_a and kv_a down-projections are one fused GEMM (n = q_lora + kv_lora + rope);
* routed experts are two grouped GEMMs (gate+up fused, then down) over the device's local experts, with the
  busiest device's token counts (mean x imbalance);
* shared experts and dense FFNs are gated FFNs (gate+up fused, down).

Precision per op class (:class:`~cost_models.specs.OpPrecisions`): every GEMM reads its weights as stored
(:class:`~cost_models.specs.WeightFormat` bytes, block scales included) and runs at the weights' element type
where the device has tensor cores for it, else de-quantises them to BF16 (weight-only: Hopper runs FP4 experts
this way, A100 FP8 ones); attention math and KV storage have their own precisions.  The builders take the
precisions as ``precisions``; without it they use ``weight_precision`` / ``kv_precision`` for every class
(:meth:`OpPrecisions.uniform`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from cost_models import aux_kernels, comm, compute
from cost_models.expert_load import busiest_device_load_factor
from cost_models.kinds import Bound, OpKind, Phase
from cost_models.parallel import ParallelDims
from cost_models.specs import AttentionKind, ClusterSpec, ModelSpec, OpPrecisions, Precision, WeightFormat, memo_hash


@dataclass(frozen=True, kw_only=True)
class OpCost:
    """One kernel or collective of a layer, on the busiest device (frozen, so layer op tuples can be memoised:
    the builders below are pure and cached on their hashable arguments)."""

    name: str
    kind: OpKind
    seconds: float
    flops: float = 0.0
    hbm_bytes: float = 0.0
    scale_up_bytes: float = 0.0
    scale_out_bytes: float = 0.0
    bound: Bound | None = None
    """Which roof bound it (None: not timed against a roof, e.g. a hand-built op in a test)."""
    detail: Mapping[str, float] = field(default_factory=dict)
    algorithm: str = ""
    """A collective's algorithm (``ring``, ``nvls``, ``one_shot``, ``deepep_low_latency``, ...); empty for kernels."""


@memo_hash
@dataclass(frozen=True, kw_only=True)
class PhaseShape:
    """Tokens one device handles in one forward of a phase."""

    phase: Phase
    rank_tokens: float
    """Tokens per attention rank (an attention-DP rank is ``attn_tp`` devices sharing the same tokens)."""
    sequences_per_rank: float
    """Sequences per attention rank in this forward."""
    context_tokens: int
    """Attention length: prompt length (prefill) or KV length (decode)."""
    query_tokens_per_sequence: int = 1
    """Decode: query tokens per sequence per step (1 + speculative tokens)."""


def gemm_math(cluster: ClusterSpec, fmt: WeightFormat) -> Precision:
    """Tensor-core precision of a GEMM over ``fmt`` weights: their element type where the device supports it,
    else BF16 (weight-only de-quantisation)."""
    key = (compute.device_key(cluster.device), id(fmt))  # enum members live as long as the process
    found = _GEMM_MATH.get(key)
    if found is None:
        found = _GEMM_MATH[key] = fmt.element if cluster.device.supports(fmt.element) else Precision.BF16
    return found


_GEMM_MATH: dict[tuple[int, int], Precision] = {}
"""Memo of :func:`gemm_math` by (device, format) identity: it is asked before every GEMM of a plan search."""
_QUANT_BYTES: dict[tuple[int, int], float] = {}
"""Memo of :func:`activation_quant_bytes_per_element` by (device, format) identity."""


def attention_math(cluster: ClusterSpec, precision: Precision) -> Precision:
    """Precision the attention kernel's math runs at: the requested one where supported, else BF16."""
    return precision if cluster.device.supports(precision) else Precision.BF16


def _resolve(precisions: OpPrecisions | None, weight_precision: Precision | None,
             kv_precision: Precision = Precision.BF16) -> OpPrecisions:
    if precisions is not None:
        return precisions
    assert weight_precision is not None, "pass precisions or weight_precision"
    return OpPrecisions.uniform(weight_precision, kv_precision)


def _weight_gemm(cluster: ClusterSpec, name: str, fmt: WeightFormat, *, m: int, k: int, n: int,
                 batch: int = 1) -> OpCost:
    return _kernel(name, compute.gemm_cost(cluster.device, m=m, k=k, n=n, batch=batch, precision=gemm_math(cluster, fmt),
                                           weight_bytes_per_element=fmt.bytes_per_element))


def activation_quant_bytes_per_element(cluster: ClusterSpec, fmt: WeightFormat) -> float:
    """Bytes per element of a GEMM input's quantized copy (:func:`cost_models.aux_kernels.quantized_input_bytes_per_element`
    at the GEMM's math precision on this device); 0 when the GEMM runs in BF16."""
    return aux_kernels.quantized_input_bytes_per_element(gemm_math(cluster, fmt), fmt)


def activation_quant_ops(cluster: ClusterSpec, name: str, fmt: WeightFormat, *, m: float, k: int
                         ) -> tuple[OpCost, ...]:
    """The dynamic quantization pass in front of a GEMM that runs at a narrow precision (``name.quant``): a GEMM
    with FP8 / INT8 / FP4 tensor-core math takes its activations in that format with per-group scales computed
    at run time, so the BF16 input ``[m, k]`` is read once and its quantized copy written by a separate kernel
    before the GEMM (SGLang ``apply_w8a8_block_fp8_linear`` runs ``per_token_group_quant_fp8`` before every
    block-FP8 GEMM, python/sglang/srt/layers/quantization/fp8_utils.py; vLLM's ``fp8_utils.py`` the same).
    Bytes ``m x k x (2 + quantized bytes per element)``, timed as a memory-bound kernel. None (empty) when the
    GEMM runs in BF16, including weight-only FP4 / FP8 on a device without those tensor cores."""
    key = (compute.device_key(cluster.device), id(fmt))
    quant = _QUANT_BYTES.get(key)
    if quant is None:
        quant = _QUANT_BYTES[key] = activation_quant_bytes_per_element(cluster, fmt)
    if quant == 0.0:
        return ()
    rows = max(1, math.ceil(m))
    return (_elementwise(cluster, f"{name}.quant", rows * k * (Precision.BF16.bytes_per_element + quant)),)


def _quantized_gemm(cluster: ClusterSpec, name: str, fmt: WeightFormat, *, m: int, k: int, n: int,
                    batch: int = 1) -> tuple[OpCost, ...]:
    """A weight GEMM whose BF16 input is quantized first when it runs at a narrow precision
    (:func:`activation_quant_ops`), then the GEMM itself."""
    return activation_quant_ops(cluster, name, fmt, m=m * batch, k=k) + (
        _weight_gemm(cluster, name, fmt, m=m, k=k, n=n, batch=batch),)


def _kernel(name: str, cost: compute.KernelCost) -> OpCost:
    return OpCost(name=name, kind=OpKind.COMPUTE, seconds=cost.seconds, flops=cost.flops, hbm_bytes=cost.bytes,
                  bound=cost.bound, detail=cost.detail)  # read-only (a MappingProxyType): shared, not copied


def _collective(name: str, cost: comm.CommCost) -> OpCost:
    return OpCost(name=name, kind=OpKind.COMM, seconds=cost.seconds, scale_up_bytes=cost.bytes_scale_up,
                  scale_out_bytes=cost.bytes_scale_out, bound=cost.bound, detail=cost.detail,
                  algorithm=cost.algorithm)


def group_devices_per_node(cluster: ClusterSpec, group: int, stride: int = 1) -> int:
    """Devices of a group of ``group`` consecutive-rank devices (spaced ``stride`` apart) that share a node."""
    per_node = max(1, cluster.devices_per_node // stride)
    return max(1, min(group, per_node))


def _elementwise(cluster: ClusterSpec, name: str, nbytes: float) -> OpCost:
    return _kernel(name, compute.memory_bound_cost(cluster.device, bytes=nbytes))


@functools.lru_cache(maxsize=1 << 16)
def attention_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: PhaseShape,
                  weight_precision: Precision | None = None, kv_precision: Precision = Precision.BF16, *,
                  precisions: OpPrecisions | None = None) -> tuple[OpCost, ...]:
    """Projections, core attention, output projection and the TP all-reduce of one layer."""
    prec = _resolve(precisions, weight_precision, kv_precision)
    if model.attention.kind is AttentionKind.MFA:
        return mfa_attention_ops(model, cluster, dims, shape, prec)
    dev = cluster.device
    att = model.attention
    h = model.hidden_size
    heads = att.num_q_heads // dims.attn_tp
    t = max(1, math.ceil(shape.rank_tokens))
    proj, kv_precision = prec.attention_projections, prec.kv_cache
    math_p = attention_math(cluster, prec.attention)
    ops: list[OpCost] = [_elementwise(cluster, "attn.norm", 2 * t * h * 2)]
    if att.kind is AttentionKind.MLA:
        q_rank = att.q_lora_rank or 0
        ops += _quantized_gemm(cluster, "attn.qkv_a_proj", proj, m=t, k=h,
                               n=q_rank + att.kv_lora_rank + att.qk_rope_head_dim)
        q_in = q_rank if q_rank else h
        ops += _quantized_gemm(cluster, "attn.q_b_proj", proj, m=t, k=q_in, n=heads * att.qk_head_dim)
        if shape.phase == Phase.DECODE:
            bf16 = Precision.BF16
            ops.append(_kernel("attn.absorb_uk", compute.gemm_cost(dev, batch=heads, m=t, k=att.qk_nope_head_dim,
                                                                   n=att.kv_lora_rank, precision=bf16)))
            latent = att.kv_lora_rank + att.qk_rope_head_dim
            ops.append(_kernel("attn.core", compute.attention_decode_cost(
                dev, batch=max(1, math.ceil(shape.sequences_per_rank)), q_heads=heads * shape.query_tokens_per_sequence,
                kv_heads=1, qk_head_dim=latent, v_head_dim=att.kv_lora_rank, context_tokens=shape.context_tokens,
                kv_precision=kv_precision, kv_bytes_per_token=latent * kv_precision.bytes_per_element,
                math_precision=math_p)))
            ops.append(_kernel("attn.absorb_uv", compute.gemm_cost(dev, batch=heads, m=t, k=att.kv_lora_rank,
                                                                   n=att.v_head_dim, precision=bf16)))
        else:
            ops += _quantized_gemm(cluster, "attn.kv_b_proj", proj, m=t, k=att.kv_lora_rank,
                                   n=heads * (att.qk_nope_head_dim + att.v_head_dim))
            ops.append(_kernel("attn.core", _prefill_core(model, cluster, dims, shape, heads, heads, math_p)))
    else:
        kv_heads = max(1, att.num_kv_heads // dims.attn_tp)
        ops += _quantized_gemm(cluster, "attn.qkv_proj", proj, m=t, k=h, n=(heads + 2 * kv_heads) * att.qk_head_dim)
        if shape.phase == Phase.DECODE:
            ops.append(_kernel("attn.core", compute.attention_decode_cost(
                dev, batch=max(1, math.ceil(shape.sequences_per_rank)), q_heads=heads * shape.query_tokens_per_sequence,
                kv_heads=kv_heads, qk_head_dim=att.qk_head_dim, v_head_dim=att.v_head_dim,
                context_tokens=_effective_context(model, shape.context_tokens), kv_precision=kv_precision,
                math_precision=math_p)))
        else:
            ops.append(_kernel("attn.core", _prefill_core(model, cluster, dims, shape, heads, kv_heads, math_p)))
    ops.append(_rope_op(cluster, model, shape, heads, t, math_p))
    ops.append(_kv_write_op(cluster, model, dims, t, kv_precision))
    ops += _quantized_gemm(cluster, "attn.o_proj", proj, m=t, k=heads * att.v_head_dim, n=h)
    if dims.attn_tp > 1:
        ops.append(_collective("attn.tp_all_reduce", comm.all_reduce(
            cluster, bytes=t * h * 2, group_size=dims.attn_tp,
            group_devices_per_node=group_devices_per_node(cluster, dims.attn_tp))))
    return tuple(ops)


def _kv_write_op(cluster: ClusterSpec, model: ModelSpec, dims: ParallelDims, t: int,
                 kv_precision: Precision) -> OpCost:
    """``attn.kv_write``: the new tokens' cache entries (:func:`cost_models.aux_kernels.kv_write_bytes`)."""
    return _elementwise(cluster, "attn.kv_write", aux_kernels.kv_write_bytes(model, dims, t, kv_precision))


def _rope_op(cluster: ClusterSpec, model: ModelSpec, shape: PhaseShape, heads: int, t: int,
             math_precision: Precision) -> OpCost:
    """``attn.rope``, or ``attn.rope_quant`` for MLA decode at narrow attention math
    (:func:`cost_models.aux_kernels.rope_pass`)."""
    name, nbytes = aux_kernels.rope_pass(model, shape.phase, heads, t, math_precision)
    return _elementwise(cluster, name, nbytes)


@functools.lru_cache(maxsize=1 << 16)
def mfa_attention_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: PhaseShape,
                      prec: OpPrecisions) -> tuple[OpCost, ...]:
    """Multi-matrix Factorization Attention (Step-3, arXiv 2507.19427 §2; vLLM ``Step3TextAttention``).

    One fused GEMM projects the hidden state to the low-rank query and the shared key and value
    (``n = q_lora_rank + 2 x kv_heads x head_dim``; replicated under attention TP, as vLLM's ``ReplicatedLinear``),
    an RMS norm runs on the low-rank query, ``wq`` up-projects it to this device's heads; the core is MQA
    (decode: every query head of a sequence against ONE cached K/V head of ``head_dim``: FlashDecoding with all
    64 heads in one work unit, KV bytes ``2 x head_dim`` per token and layer)."""
    dev = cluster.device
    att = model.attention
    h = model.hidden_size
    heads = att.num_q_heads // dims.attn_tp
    kv_heads = att.num_kv_heads
    t = max(1, math.ceil(shape.rank_tokens))
    proj, kv_precision = prec.attention_projections, prec.kv_cache
    math_p = attention_math(cluster, prec.attention)
    rank = att.q_lora_rank or h
    ops: list[OpCost] = [_elementwise(cluster, "attn.norm", 2 * t * h * 2)]
    ops += _quantized_gemm(cluster, "attn.qkv_proj", proj, m=t, k=h,
                           n=rank + kv_heads * (att.qk_head_dim + att.v_head_dim))
    ops.append(_elementwise(cluster, "attn.q_norm", 2 * t * rank * 2))
    ops += _quantized_gemm(cluster, "attn.wq", proj, m=t, k=rank, n=heads * att.qk_head_dim)
    ops.append(_elementwise(cluster, "attn.rope", 2 * t * (heads + kv_heads) * att.qk_head_dim * 2))
    ops.append(_kv_write_op(cluster, model, dims, t, kv_precision))
    if shape.phase == Phase.DECODE:
        ops.append(_kernel("attn.core", compute.attention_decode_cost(
            dev, batch=max(1, math.ceil(shape.sequences_per_rank)), q_heads=heads * shape.query_tokens_per_sequence,
            kv_heads=kv_heads, qk_head_dim=att.qk_head_dim, v_head_dim=att.v_head_dim,
            context_tokens=shape.context_tokens, kv_precision=kv_precision, math_precision=math_p)))
    else:
        ops.append(_kernel("attn.core", _prefill_core(model, cluster, dims, shape, heads, kv_heads, math_p)))
    ops += _quantized_gemm(cluster, "attn.o_proj", proj, m=t, k=heads * att.v_head_dim, n=h)
    if dims.attn_tp > 1:
        ops.append(_collective("attn.tp_all_reduce", comm.all_reduce(
            cluster, bytes=t * h * 2, group_size=dims.attn_tp,
            group_devices_per_node=group_devices_per_node(cluster, dims.attn_tp))))
    return tuple(ops)


def _effective_context(model: ModelSpec, context_tokens: int) -> int:
    """Mean attended length over layers when some layers use a sliding window (gpt-oss: half of them)."""
    att = model.attention
    if att.sliding_window_tokens is None or not att.sliding_window_layer_fraction:
        return context_tokens
    f = att.sliding_window_layer_fraction
    return max(1, round((1 - f) * context_tokens + f * min(context_tokens, att.sliding_window_tokens)))


def _prefill_core(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: PhaseShape,
                  heads: int, kv_heads: int, math_precision: Precision) -> compute.KernelCost:
    att = model.attention
    seqs = max(1, math.ceil(shape.sequences_per_rank))
    return compute.attention_prefill_cost(cluster.device, batch=seqs, q_heads=heads, kv_heads=kv_heads,
                                          qk_head_dim=att.qk_head_dim, v_head_dim=att.v_head_dim,
                                          seq_tokens=_effective_context(model, shape.context_tokens), causal=True,
                                          precision=math_precision)


def gated_ffn_ops(cluster: ClusterSpec, prefix: str, *, tokens: float, hidden: int, width: float,
                  weight_format: WeightFormat, quantize_inputs: bool = False) -> tuple[OpCost, ...]:
    """Gate+up GEMM, SiLU-and-multiply, down GEMM of a gated FFN slice of ``width``; ``quantize_inputs``: each
    GEMM's BF16 input is quantized first when it runs at a narrow precision (:func:`activation_quant_ops`)."""
    t = max(1, math.ceil(tokens))
    w = max(1, round(width))

    def gemm(name: str, k: int, n: int) -> tuple[OpCost, ...]:
        if quantize_inputs:
            return _quantized_gemm(cluster, name, weight_format, m=t, k=k, n=n)
        return (_weight_gemm(cluster, name, weight_format, m=t, k=k, n=n),)

    return (gemm(f"{prefix}.up_gate", hidden, 2 * w) + (_elementwise(cluster, f"{prefix}.act", t * 3 * w * 2),)
            + gemm(f"{prefix}.down", w, hidden))


@functools.lru_cache(maxsize=1 << 16)
def dense_ffn_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: PhaseShape,
                  weight_precision: Precision | None = None, *,
                  precisions: OpPrecisions | None = None) -> tuple[OpCost, ...]:
    """Dense FFN of a dense layer with ``dense_tp``: the tokens of ``dense_tp / attn_tp`` ranks are gathered."""
    h = model.hidden_size
    tokens = shape.rank_tokens * dims.dense_tp / dims.attn_tp
    ops = [_elementwise(cluster, "ffn.norm", 2 * shape.rank_tokens * h * 2)]
    ops += gated_ffn_ops(cluster, "ffn", tokens=tokens, hidden=h, width=model.dense_ffn_dim / dims.dense_tp,
                         weight_format=_resolve(precisions, weight_precision).dense_ffn, quantize_inputs=True)
    if dims.dense_tp > 1:
        ops.append(_collective("ffn.tp_all_reduce", comm.all_reduce(
            cluster, bytes=math.ceil(tokens) * h * 2, group_size=dims.dense_tp,
            group_devices_per_node=group_devices_per_node(cluster, dims.dense_tp))))
    return tuple(ops)


@functools.lru_cache(maxsize=1 << 16)
def moe_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: PhaseShape, *,
            weight_precision: Precision | None = None, dispatch_precision: Precision, imbalance: float,
            precisions: OpPrecisions | None = None) -> tuple[OpCost, ...]:
    """Router, EP dispatch, routed grouped GEMMs, combine, shared expert of one MoE layer."""
    assert model.moe is not None
    moe = model.moe
    dev = cluster.device
    h = model.hidden_size
    t = max(1, math.ceil(shape.rank_tokens))
    prec = _resolve(precisions, weight_precision)
    routed = prec.routed_experts
    p = gemm_math(cluster, routed)
    ops: list[OpCost] = [_elementwise(cluster, "moe.norm", 2 * t * h * 2)]
    ops.append(_kernel("moe.router", compute.gemm_cost(dev, m=t, k=h, n=moe.num_routed_experts,
                                                       precision=Precision.BF16)))
    ops.append(_elementwise(cluster, "moe.topk", t * moe.num_routed_experts * 4 * 2))
    device_tokens = shape.rank_tokens / dims.attn_tp
    ep_per_node = group_devices_per_node(cluster, dims.moe_ep, stride=dims.moe_tp)
    # prefill uses throughput ("normal") kernels that send one copy per node and forward over the scale-up tier;
    # decode uses low-latency kernels that send every (token, expert) copy straight to its device (DeepEP README)
    normal = shape.phase == Phase.PREFILL
    if dims.moe_ep > 1:
        ops.append(_collective("moe.dispatch", comm.ep_dispatch(
            cluster, tokens_per_device=device_tokens, num_experts=moe.num_routed_experts, forward_in_node=normal, hidden_size=h, top_k=moe.top_k, ep_size=dims.moe_ep,
            ep_devices_per_node=ep_per_node, bytes_per_element=dispatch_precision.bytes_per_element,
            num_groups=moe.num_groups, topk_groups=moe.topk_groups, imbalance=imbalance)))
    counts = local_expert_tokens(model, dims, device_tokens, busiest_device_load_factor(
        tokens_per_device=device_tokens, top_k=moe.top_k, ep_size=dims.moe_ep, num_experts=moe.num_routed_experts,
        imbalance=imbalance))
    per_group = counts[0]
    local = len(counts)
    rows = per_group * local
    width = moe.expert_ffn_dim // dims.moe_tp
    # Normal dispatch delivers tokens in source-rank order; the contiguous-layout grouped GEMM (DeepGEMM README,
    # "contiguous layout") needs them grouped by expert, so prefill pays a scatter into expert order (read + write
    # the dispatched rows) and a gather back before the combine (read + write the BF16 expert outputs). The
    # low-latency (decode) dispatch receives straight into per-expert buffers (masked layout): no permutation.
    permute = normal and dims.moe_ep > 1
    if permute:
        ops.append(_elementwise(cluster, "moe.permute", 2 * rows * h * dispatch_precision.bytes_per_element))
    wb = routed.bytes_per_element
    # the EP dispatch delivers the tokens quantized when its payload is no wider than the GEMM's math (DeepEP
    # quantizes in the dispatch kernel); otherwise (no EP, or a BF16 payload) a quantization pass comes first
    if dims.moe_ep == 1 or dispatch_precision.bytes_per_element > p.bytes_per_element:
        ops += activation_quant_ops(cluster, "moe.experts_up_gate", routed, m=rows, k=h)
    ops.append(_kernel("moe.experts_up_gate", compute.grouped_gemm_cost(dev, tokens_per_group=counts, k=h, n=2 * width,
                                                                        precision=p, weight_bytes_per_element=wb)))
    ops.append(_elementwise(cluster, "moe.experts_act", rows * 3 * width * 2))
    ops += activation_quant_ops(cluster, "moe.experts_down", routed, m=rows, k=width)
    ops.append(_kernel("moe.experts_down", compute.grouped_gemm_cost(dev, tokens_per_group=counts, k=width, n=h,
                                                                     precision=p, weight_bytes_per_element=wb)))
    if permute:
        ops.append(_elementwise(cluster, "moe.unpermute", 2 * rows * h * Precision.BF16.bytes_per_element))
    if dims.moe_tp > 1:
        ops.append(_collective("moe.tp_all_reduce", comm.all_reduce(
            cluster, bytes=rows * h * 2, group_size=dims.moe_tp,
            group_devices_per_node=group_devices_per_node(cluster, dims.moe_tp))))
    if dims.moe_ep > 1:
        ops.append(_collective("moe.combine", comm.ep_combine(
            cluster, tokens_per_device=device_tokens, num_experts=moe.num_routed_experts, forward_in_node=normal, hidden_size=h, top_k=moe.top_k, ep_size=dims.moe_ep,
            ep_devices_per_node=ep_per_node, bytes_per_element=Precision.BF16.bytes_per_element,
            num_groups=moe.num_groups, topk_groups=moe.topk_groups, imbalance=imbalance)))
    if moe.shared_ffn_dim:
        ops += gated_ffn_ops(cluster, "moe.shared", tokens=t, hidden=h, width=moe.shared_ffn_dim / dims.attn_tp,
                             weight_format=prec.shared_experts, quantize_inputs=True)
    return tuple(ops)


def local_expert_tokens(model: ModelSpec, dims: ParallelDims, device_tokens: float, imbalance: float) -> list[int]:
    """Token counts of the busiest device's *active* local experts.

    The busiest device receives ``imbalance`` x the mean routed copies ``C``. Spread over its ``E`` local experts,
    the expected number of experts hit at least once is ``E * (1 - (1 - 1/E)^C)`` (each copy lands on a uniform
    local expert); experts with no token are skipped by grouped GEMM kernels, so their weights are not read.
    At large C every local expert is active; at batch 1 only about top_k experts are."""
    assert model.moe is not None
    copies = device_tokens * dims.unit_devices * model.moe.top_k / dims.moe_ep * imbalance
    local = dims.experts_per_device(model)
    active = max(1, min(local, round(local * (1 - (1 - 1 / local) ** copies))))
    return [max(1, math.ceil(copies / active))] * active


@functools.lru_cache(maxsize=1 << 16)
def head_ops(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, shape: PhaseShape, *,
             precisions: OpPrecisions | None = None, sampled_tokens: float | None = None) -> tuple[OpCost, ...]:
    """Final norm, vocabulary-parallel LM head for the tokens being sampled, and the embedding lookup.

    ``sampled_tokens`` (per attention rank) defaults to every decode token, or one per prefilled sequence."""
    h = model.hidden_size
    if sampled_tokens is None:
        sampled_tokens = shape.rank_tokens if shape.phase == Phase.DECODE else shape.sequences_per_rank
    s = max(1, math.ceil(sampled_tokens))
    head_format = precisions.lm_head if precisions is not None else WeightFormat.BF16
    ops = [
        _elementwise(cluster, "embed.lookup", 2 * math.ceil(shape.rank_tokens) * h * 2),
        _weight_gemm(cluster, "head.lm_head", head_format, m=s, k=h, n=model.vocab_size // dims.attn_tp),
        _elementwise(cluster, "head.sample", s * model.vocab_size / dims.attn_tp * 4),
    ]
    if dims.attn_tp > 1:
        ops.append(_collective("head.tp_all_gather", comm.all_gather(
            cluster, bytes_per_rank=s * 4 * 2, group_size=dims.attn_tp,
            group_devices_per_node=group_devices_per_node(cluster, dims.attn_tp))))
    return tuple(ops)


@functools.lru_cache(maxsize=1 << 12)
def mtp_projection_ops(model: ModelSpec, cluster: ClusterSpec, shape: PhaseShape) -> tuple[OpCost, ...]:
    """The input of a draft (MTP) module: RMSNorm of the embedding and of the previous hidden state, then the
    ``[t, 2h] x [2h, h]`` ``eh_proj`` (DeepSeek-V3 report §2.2), BF16 and unsharded (SGLang builds it as a plain
    ``nn.Linear`` in ``DeepseekModelNextN``), so every device of an attention-TP group runs it whole."""
    h = model.hidden_size
    t = max(1, math.ceil(shape.rank_tokens))
    return (
        _elementwise(cluster, "enorm_hnorm", 2 * (2 * t * h * 2)),
        _weight_gemm(cluster, "eh_proj", WeightFormat.BF16, m=t, k=2 * h, n=h),
    )
