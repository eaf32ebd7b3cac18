"""torchtitan's per-op selective activation checkpointing (``activation_checkpoint.mode = "selective"``,
``selective_ac_option = "op"``): which matmul outputs a decoder layer keeps and which it recomputes.

torchtitan wraps each TransformerBlock in a checkpoint whose policy (pytorch/torchtitan@92ed8b31
torchtitan/distributed/activation_checkpoint.py ``_get_custom_policy``) saves the outputs of the ops in the model's
``_op_sac_save_list`` and recomputes every other op; among them ``aten.mm`` is counted per block forward and only
the odd-numbered ones (1st, 3rd, ...) are saved.  Qwen3's list (torchtitan/models/qwen3/infra/parallelize.py at
the same commit) holds ``aten.mm``, the flash / efficient SDPA kernels, ``reduce_scatter_tensor``, ``aten.max`` and
flex attention: the routed experts' ``torch._grouped_mm`` (torchtitan/models/moe/moe.py
``_run_experts_grouped_mm``) is not in it and not counted, so the expert GEMMs, norms, activations, RoPE and
permutes all rerun before the backward.  Kept per layer: the block input, the saved mm outputs and the SDPA
output with its log-sum-exp.  Not modelled: collectives the policy reruns (Qwen3's list has no
``all_to_all_single``, Llama 4's has; sequence-parallel all-gathers): the step model reruns no communication under
this policy, which is exact for the row it prices (EP 1, TP 1).

The mm order is the modules' forward order in torchtitan: attention ``wq, wk, wv, wo`` (MLA: ``wq_a, wq_b`` or
``wq``, then ``wkv_a, wkv_b, wo``), then a dense FFN's ``w1, w3, w2`` (``w1, w2`` ungated) or a MoE block's router
``gate`` and its shared experts' ``w1, w3, w2``.  The cost models fuse some of these into one GEMM (``qkv`` =
wq + wk + wv, ``mlp_up`` = w1 + w3, ``mla_down`` = wq_a + wkv_a); a part carries its share of that GEMM.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models.specs import AttentionKind, ModelSpec
from cost_models.training.dims import TrainingDims


@dataclass(frozen=True, kw_only=True)
class MmPart:
    """One ``aten.mm`` of a torchtitan block: the cost models' GEMM it belongs to and its share of it."""

    linear: str
    """Name of the cost models' Linear (:func:`cost_models.training.layer_ops.attention_linears` / ``ffn_linears``)."""
    share: float
    """Fraction of that Linear's output columns (and time) this mm is."""
    out_elements_per_token: float
    """Output elements per token on one device."""
    saved: bool
    """Odd-numbered mm of the block: its output is kept; even-numbered ones rerun before the backward."""


def _order(model: ModelSpec, dims: TrainingDims, *, moe_layer: bool) -> list[tuple[str, float, float]]:
    """(linear, share, output elements per token) of every mm in the block's forward order."""
    a, h, tp = model.attention, model.hidden_size, dims.tp
    q_heads = a.num_q_heads // tp
    parts: list[tuple[str, float, float]] = []
    if a.kind is AttentionKind.MLA:
        rq = a.q_lora_rank or 0
        kv_a = a.kv_lora_rank + a.qk_rope_head_dim
        kv_b = q_heads * (a.qk_nope_head_dim + a.v_head_dim)
        if rq:
            parts += [("mla_down", rq / (rq + kv_a), rq), ("q_up", 1.0, q_heads * a.qk_head_dim)]
            parts.append(("mla_down", kv_a / (rq + kv_a), kv_a))
        else:
            # no q LoRA: torchtitan's wq is its own mm; the cost models' MLA has no such GEMM (counted, not timed)
            parts += [("mla_q", 1.0, q_heads * a.qk_head_dim), ("mla_down", 1.0, kv_a)]
        parts.append(("kv_up", 1.0, kv_b))
    else:
        kv_heads = max(1, a.num_kv_heads // tp)
        q, k, v = q_heads * a.qk_head_dim, kv_heads * a.qk_head_dim, kv_heads * a.v_head_dim
        parts += [("qkv", q / (q + k + v), q), ("qkv", k / (q + k + v), k), ("qkv", v / (q + k + v), v)]
    parts.append(("attn_out", 1.0, h))
    gated = model.ffn_gated
    if not moe_layer:
        f = model.dense_ffn_dim // tp
        parts += [("mlp_up", 0.5, f), ("mlp_up", 0.5, f)] if gated else [("mlp_up", 1.0, f)]
        parts.append(("mlp_down", 1.0, h))
        return parts
    moe = model.moe
    assert moe is not None
    parts.append(("router", 1.0, moe.num_routed_experts))
    if moe.shared_ffn_dim:
        fs = moe.shared_ffn_dim // tp
        parts += [("shared_up", 0.5, fs), ("shared_up", 0.5, fs)] if gated else [("shared_up", 1.0, fs)]
        parts.append(("shared_down", 1.0, h))
    return parts


def mm_parts(model: ModelSpec, dims: TrainingDims, *, moe_layer: bool) -> tuple[MmPart, ...]:
    """The block's mms in torchtitan's order, odd-numbered ones saved (module docstring)."""
    return tuple(MmPart(linear=name, share=share, out_elements_per_token=n, saved=i % 2 == 1)
                 for i, (name, share, n) in enumerate(_order(model, dims, moe_layer=moe_layer), start=1))


def recomputed_share(model: ModelSpec, dims: TrainingDims, *, moe_layer: bool) -> dict[str, float]:
    """Share of each counted Linear's forward GEMM that reruns before the backward (0 where every mm of it is
    saved).  Linears that are not ``aten.mm`` (the routed experts' grouped GEMMs) are absent: they rerun whole."""
    out: dict[str, float] = {}
    for p in mm_parts(model, dims, moe_layer=moe_layer):
        out[p.linear] = out.get(p.linear, 0.0) + (0.0 if p.saved else p.share)
    return out


def saved_mm_elements_per_token(model: ModelSpec, dims: TrainingDims, *, moe_layer: bool) -> float:
    """Output elements per token of the saved mms of one block on one device."""
    return sum(p.out_elements_per_token for p in mm_parts(model, dims, moe_layer=moe_layer) if p.saved)
