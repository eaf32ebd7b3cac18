"""Kernel times of one decoder layer's forward and backward for one micro-batch on one device.

Every time comes from the kernel models of :mod:`cost_models.compute` (the same ones serving uses):

* a Linear layer ``[m, k] x [k, n]`` runs forward as that GEMM, backward as an input-gradient GEMM
  ``[m, n] x [n, k]`` and a weight-gradient GEMM ``[k, m] x [m, n]`` (both at the recipe's precision: DeepSeek-V3
  §3.3.1 runs Fprop, Dgrad and Wgrad in FP8); routed experts are batched GEMMs over the local experts at the
  busiest device's load;
* fused attention backward costs ``ATTENTION_BACKWARD_RATIO`` x its forward: FlashAttention-2's backward does 5
  matrix products against the forward's 2 (Dao 2023, arXiv 2307.08691 §3.1-3.2: backward FLOPs = 2.5 x forward);
  unfused attention (the 2021-2022 Megatron papers) is two batched GEMMs per head plus memory-bound softmax and
  dropout;
* norms, residual adds, activations, RoPE, MoE permutes, FP8 casts and the cross-entropy are memory-bound passes
  (``memory_bound_cost``), their backward moving ``ELEMENTWISE_BACKWARD_RATIO`` x the forward bytes.

Shapes: ``t = b s / cp`` tokens per TP group; GEMMs inside the TP region run on all ``t`` (gathered) tokens with
their head / FFN dimension split by ``tp``; norms run on ``t / tp`` with sequence parallelism.  Router, embedding,
head and attention stay BF16 (DeepSeek-V3 §3.3.1 keeps them in higher precision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from cost_models import compute
from cost_models.specs import AttentionKind, DeviceSpec, ModelSpec, Precision
from cost_models.training import op_sac
from cost_models.training.activations import routed_copies_per_device, tokens_per_device
from cost_models.training.dims import Dispatcher, TrainingDims
from cost_models.training.specs import RecomputeModule, TrainingOpClass, TrainingWorkload

ATTENTION_BACKWARD_RATIO = 2.5
"""Fused-attention backward / forward time: the FLOP ratio of FlashAttention-2 (5 GEMMs vs 2), same efficiency."""
ELEMENTWISE_BACKWARD_RATIO = 2.0
"""A memory-bound op's backward reads the incoming gradient and the saved input and writes one gradient: about
twice the forward's traffic (structural estimate)."""


@dataclass(frozen=True, kw_only=True)
class Linear:
    """One Linear layer's GEMM per micro-batch: ``batch`` independent ``[m, k] x [k, n]`` products."""

    name: str
    m: int
    k: int
    n: int
    batch: int = 1
    op_class: TrainingOpClass | None
    """The class whose precision this GEMM runs at (:meth:`TrainingWorkload.linear_precision`); None = BF16 under
    every recipe (the router)."""
    module: RecomputeModule | None = None
    """Recompute module that reruns this GEMM (MLA up-projections)."""


@dataclass(frozen=True, kw_only=True)
class LayerCompute:
    """Per-op seconds of one layer for one micro-batch on one device."""

    forward_s: Mapping[str, float]
    input_grad_s: Mapping[str, float]
    """Input-gradient GEMMs, attention backward, elementwise backward."""
    weight_grad_s: Mapping[str, float]
    """Weight-gradient GEMMs (W of the zero-bubble schedules)."""
    recompute_s: Mapping[str, float]
    """Forward ops rerun before the backward under the recompute policy."""
    flops: float
    """Forward FLOPs the kernels do (for utilisation breakdowns)."""

    @property
    def forward_total_s(self) -> float:
        return sum(self.forward_s.values())

    @property
    def backward_total_s(self) -> float:
        return sum(self.input_grad_s.values()) + sum(self.weight_grad_s.values()) + sum(self.recompute_s.values())

    @property
    def weight_grad_total_s(self) -> float:
        return sum(self.weight_grad_s.values())


def _gemm(device: DeviceSpec, m: int, k: int, n: int, batch: int, precision: Precision) -> compute.KernelCost:
    return compute.gemm_cost(device, m=max(1, m), k=max(1, k), n=max(1, n), batch=batch, precision=precision)


def _precision(device: DeviceSpec, workload: TrainingWorkload, lin: Linear) -> Precision:
    p = Precision.BF16 if lin.op_class is None else workload.linear_precision(lin.op_class)
    return p if device.supports(p) else Precision.BF16


def runs_fp8(workload: TrainingWorkload, lin: Linear) -> bool:
    """Whether ``lin`` runs at the recipe's FP8 (its input is then cast to FP8 before the GEMM)."""
    return lin.op_class is not None and workload.fp8(lin.op_class)


def attention_linears(model: ModelSpec, dims: TrainingDims, t: int) -> list[Linear]:
    a, h, tp = model.attention, model.hidden_size, dims.tp
    q_heads = a.num_q_heads // tp
    proj = TrainingOpClass.ATTENTION_PROJECTIONS
    if a.kind is AttentionKind.MLA:
        rq = a.q_lora_rank or 0
        out = [Linear(name="mla_down", m=t, k=h, n=rq + a.kv_lora_rank + a.qk_rope_head_dim, op_class=proj)]
        if rq:
            out.append(Linear(name="q_up", m=t, k=rq, n=q_heads * a.qk_head_dim, op_class=proj,
                              module=RecomputeModule.MLA_UP_PROJ))
        out.append(Linear(name="kv_up", m=t, k=a.kv_lora_rank, n=q_heads * (a.qk_nope_head_dim + a.v_head_dim),
                          op_class=proj, module=RecomputeModule.MLA_UP_PROJ))
    else:
        kv_heads = max(1, a.num_kv_heads // tp)
        out = [Linear(name="qkv", m=t, k=h, n=q_heads * a.qk_head_dim + kv_heads * (a.qk_head_dim + a.v_head_dim),
                      op_class=proj)]
    out.append(Linear(name="attn_out", m=t, k=q_heads * a.v_head_dim, n=h, op_class=proj))
    return out


def ffn_linears(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, t: int, *, moe_layer: bool
                ) -> list[Linear]:
    h, up = model.hidden_size, (2 if model.ffn_gated else 1)
    if not moe_layer:
        f = model.dense_ffn_dim // dims.tp
        dense = TrainingOpClass.DENSE_FFN
        return [Linear(name="mlp_up", m=t, k=h, n=up * f, op_class=dense),
                Linear(name="mlp_down", m=t, k=f, n=h, op_class=dense)]
    moe = model.moe
    assert moe is not None
    local_experts = moe.num_routed_experts // dims.ep
    per_expert = math.ceil(routed_copies_per_device(model, dims, workload) / local_experts)
    fe = moe.expert_ffn_dim // dims.etp
    routed, shared = TrainingOpClass.ROUTED_EXPERTS, TrainingOpClass.SHARED_EXPERTS
    out = [Linear(name="router", m=t // dims.tp, k=h, n=moe.num_routed_experts, op_class=None),
           Linear(name="expert_up", m=per_expert, k=h, n=up * fe, batch=local_experts, op_class=routed),
           Linear(name="expert_down", m=per_expert, k=fe, n=h, batch=local_experts, op_class=routed)]
    if moe.shared_ffn_dim:
        fs = moe.shared_ffn_dim // dims.tp
        out += [Linear(name="shared_up", m=t, k=h, n=up * fs, op_class=shared),
                Linear(name="shared_down", m=t, k=fs, n=h, op_class=shared)]
    return out


def _attention_core(device: DeviceSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
                    ) -> tuple[float, float, float]:
    """(forward s, backward s, forward FLOPs) of core attention on one device for one micro-batch."""
    a, b, s = model.attention, dims.micro_batch_sequences, workload.seq_tokens
    q_heads = a.num_q_heads // dims.tp
    kv_heads = q_heads if a.kind is AttentionKind.MLA else max(1, a.num_kv_heads // dims.tp)
    if workload.flash_attention:
        # FP8 attention (Transformer Engine fp8_dpa): the forward at the FP8 attention rate, the backward the same
        # multiple of it as in BF16 (estimated: no FP8 attention backward timing is at hand)
        math_p = Precision.FP8 if workload.fp8_attention else Precision.BF16
        k = compute.attention_prefill_cost(device, batch=b, q_heads=q_heads, kv_heads=kv_heads,
                                           qk_head_dim=a.qk_head_dim, v_head_dim=a.v_head_dim, seq_tokens=s,
                                           precision=math_p)
        # context parallelism: load-balanced causal ring, each rank 1/cp of the query-key blocks
        return k.seconds / dims.cp, ATTENTION_BACKWARD_RATIO * k.seconds / dims.cp, k.flops / dims.cp
    # unfused: QK^T and PV batched GEMMs over (sequence, head), softmax (+ dropout) memory-bound passes on s x s
    heads, sq = b * q_heads, s // dims.cp
    qk = _gemm(device, sq, a.qk_head_dim, s, heads, Precision.BF16)
    pv = _gemm(device, sq, s, a.v_head_dim, heads, Precision.BF16)
    score_bytes = heads * sq * s * (2 * 2 + (5 if workload.dropout else 0))
    soft = compute.memory_bound_cost(device, bytes=score_bytes)
    fwd = qk.seconds + pv.seconds + soft.seconds
    bwd = 2 * (qk.seconds + pv.seconds) + ELEMENTWISE_BACKWARD_RATIO * soft.seconds
    return fwd, bwd, qk.flops + pv.flops


def permute_passes(model: ModelSpec, dims: TrainingDims) -> int:
    """Memory-bound passes over the routed token copies in one MoE layer's forward (each reads and writes every
    copy in BF16: ``4 h`` bytes).

    DeepEP: the received tokens are permuted into expert order and unpermuted after the experts (2).  The
    all-to-all dispatcher adds, with more than one local expert, a sort of the received chunks by local expert
    after the dispatch and the reverse sort before the combine (``sort_chunks_by_idxs``, "permutation 2"), on top
    of the permute before and the unpermute after the all-to-alls (4); NVIDIA/Megatron-LM@d98e8a64
    megatron/core/transformer/moe/token_dispatcher.py ``dispatch_postprocess`` / ``combine_preprocess``.
    """
    local_experts = model.moe.num_routed_experts // dims.ep if model.moe is not None else 0
    if dims.dispatcher is Dispatcher.ALLTOALL and dims.ep > 1 and local_experts > 1:
        return 4
    return 2


def _elementwise_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, t: int, *, moe_layer: bool
                       ) -> dict[str, tuple[float, RecomputeModule | None]]:
    """Memory-bound passes of one layer's forward: bytes moved and the recompute module that reruns them."""
    h, a = model.hidden_size, model.attention
    sp = dims.tp if dims.sp_active else 1
    norm_tokens = t / sp
    out: dict[str, tuple[float, RecomputeModule | None]] = {
        "norms": (2 * norm_tokens * 4 * h, RecomputeModule.NORM),
        "residual_adds": (2 * norm_tokens * 6 * h, None),
        "rope": (t * 4 * (a.num_q_heads // dims.tp) * max(a.qk_rope_head_dim, a.qk_head_dim // 2) * 2, None),
    }
    if workload.dropout:
        out["dropout"] = (2 * norm_tokens * 5 * h, None)
    act = 6 if model.ffn_gated else 4
    if moe_layer and model.moe is not None:
        copies = routed_copies_per_device(model, dims, workload)
        out["moe_activation"] = (copies * act * model.moe.expert_ffn_dim / dims.etp, RecomputeModule.ACTIVATION)
        out["moe_permute"] = (copies * permute_passes(model, dims) * 4 * h, None)
        out["router_topk"] = (t / dims.tp * model.moe.num_routed_experts * 4 * 3, None)
        out["shared_activation"] = (t * act * model.moe.shared_ffn_dim / dims.tp, RecomputeModule.ACTIVATION)
    else:
        out["mlp_activation"] = (t * act * model.dense_ffn_dim / dims.tp, RecomputeModule.ACTIVATION)
    if workload.recipe.gemm_precision is Precision.FP8:
        linears = attention_linears(model, dims, t) + ffn_linears(model, dims, workload, t, moe_layer=moe_layer)
        # quantize every FP8 GEMM input (read bf16, write fp8: 3 bytes per element), forward only here
        casts = sum(3.0 * lin.batch * lin.m * lin.k for lin in linears if runs_fp8(workload, lin))
        if casts:
            out["fp8_casts"] = (casts, None)
    return out


def layer_compute(device: DeviceSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *,
                  moe_layer: bool) -> LayerCompute:
    """Kernel seconds of one decoder layer (attention + dense FFN or MoE) for one micro-batch on one device."""
    t = int(tokens_per_device(dims, workload))
    rec = workload.recompute
    fwd: dict[str, float] = {}
    dgrad: dict[str, float] = {}
    wgrad: dict[str, float] = {}
    redo: dict[str, float] = {}
    flops = 0.0
    # op-level SAC: the share of each counted matmul that reruns; a Linear it does not count (the routed experts'
    # grouped GEMMs) reruns whole, as does every memory-bound pass below
    sac = op_sac.recomputed_share(model, dims, moe_layer=moe_layer) if rec.op_sac else None
    for lin in attention_linears(model, dims, t) + ffn_linears(model, dims, workload, t, moe_layer=moe_layer):
        p = _precision(device, workload, lin)
        f = _gemm(device, lin.m, lin.k, lin.n, lin.batch, p)
        fwd[lin.name] = f.seconds
        flops += f.flops
        dgrad[lin.name] = _gemm(device, lin.m, lin.n, lin.k, lin.batch, p).seconds
        wgrad[lin.name] = _gemm(device, lin.k, lin.m, lin.n, lin.batch, p).seconds
        if sac is not None:
            share = sac.get(lin.name, 1.0)  # absent: not a counted mm (grouped expert GEMMs), reruns whole
        else:
            share = 1.0 if rec.full or (lin.module is not None and rec.drops(lin.module)) else 0.0
        if share:
            redo[lin.name] = share * f.seconds
    core_f, core_b, core_flops = _attention_core(device, model, dims, workload)
    fwd["core_attention"], dgrad["core_attention"] = core_f, core_b
    flops += core_flops
    if rec.drops(RecomputeModule.CORE_ATTENTION) or (rec.op_sac and not workload.flash_attention):
        redo["core_attention"] = core_f  # op-level SAC keeps an SDPA kernel's output, not unfused scores
    for name, (nbytes, module) in _elementwise_bytes(model, dims, workload, t, moe_layer=moe_layer).items():
        k = compute.memory_bound_cost(device, bytes=nbytes)
        fwd[name] = k.seconds
        dgrad[name] = ELEMENTWISE_BACKWARD_RATIO * k.seconds
        if rec.reruns_layer or (module is not None and rec.drops(module)):
            redo[name] = k.seconds
    return LayerCompute(forward_s=fwd, input_grad_s=dgrad, weight_grad_s=wgrad, recompute_s=redo, flops=flops)


def head_compute(device: DeviceSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload
                 ) -> LayerCompute:
    """The last stage's final norm, LM head GEMM (BF16) and vocab-parallel cross-entropy, per MTP head too."""
    t = int(tokens_per_device(dims, workload))
    heads = 1 + model.num_mtp_layers
    v = model.vocab_size // dims.tp
    head = _gemm(device, t, model.hidden_size, v, 1, Precision.BF16)
    dgrad = _gemm(device, t, v, model.hidden_size, 1, Precision.BF16)
    wgrad = _gemm(device, model.hidden_size, t, v, 1, Precision.BF16)
    ce = compute.memory_bound_cost(device, bytes=t * v * (2 + 4 + 4))
    fwd = {"lm_head": heads * head.seconds, "cross_entropy": heads * ce.seconds}
    dgrad_s = {"lm_head": heads * dgrad.seconds, "cross_entropy": heads * ELEMENTWISE_BACKWARD_RATIO * ce.seconds}
    wgrad_s = {"lm_head": heads * wgrad.seconds}
    if model.num_mtp_layers:
        # the MTP modules' [t, 2h] x [2h, h] merge projection (DeepSeek-V3 §2.2), split over tp: at the recipe
        # whatever the classes (Megatron-Core's eh_proj is in none of their module globs, so it keeps the recipe)
        p = workload.recipe.gemm_precision if device.supports(workload.recipe.gemm_precision) else Precision.BF16
        h, n = model.hidden_size, model.num_mtp_layers
        fwd["mtp_proj"] = n * _gemm(device, t, 2 * h, h // dims.tp, 1, p).seconds
        dgrad_s["mtp_proj"] = n * _gemm(device, t, h // dims.tp, 2 * h, 1, p).seconds
        wgrad_s["mtp_proj"] = n * _gemm(device, 2 * h, t, h // dims.tp, 1, p).seconds
    return LayerCompute(forward_s=fwd, input_grad_s=dgrad_s, weight_grad_s=wgrad_s, recompute_s={},
                        flops=heads * head.flops)
