"""Model FLOPs of one training step, counted the way the published tables count them.

:func:`megatron_flops` follows Megatron-LM's ``num_floating_point_operations`` (NVIDIA/Megatron-LM@d98e8a64
megatron/training/training.py, ``transformer_flops``), which the Megatron-Core / Megatron-Bridge tables divide by
step time to print TFLOP/s/GPU.  Per token, ``3 (fwd, dgrad, wgrad) x 2 (FMA)`` times:

* MLP: ``h x f x (3 gated | 2 plain)`` per dense layer; MoE: ``h x (f_e top_k + f_shared) x 3``;
* GQA / MHA: ``h (Hq d + 2 Hkv d) + Hq d h`` (Megatron uses one ``kv_channels`` for q, k, v: ``d = qk_head_dim``);
  core attention ``s x Hq d`` per token (``/2`` causal, ``x2`` for QK^T and PV);
* MLA (Megatron's ``qk_head_dim`` is the no-rope part, ``qk_pos_emb_head_dim`` the rope part):
  ``rq (h + Hq (dn + dr) + 1) + rkv (h + Hq (dn + dv) + 1) + h dr + Hq dv h``; core ``s Hq (dn + dr + dv) / 2``;
* logits ``h V`` per token for the head and each MTP head; MTP layers count as extra decoder layers of the last
  layer's kind, plus ``3 h + 2 h^2`` (norms and the eh projection) each.

The router GEMM and norms are not counted (Megatron does not).  :func:`narayanan_flops` is the closed form of
Narayanan et al. 2021 (arXiv 2104.04473, eq. 3) used for their Table 1: ``96 B s l h^2 (1 + s/(6h) + V/(16 l h))``
with activation recomputation (4 passes, no causal halving); :func:`korthikanti_model_flops` is the model-FLOP form
of Korthikanti et al. 2022 (arXiv 2205.05198 §6): ``72 B s l h^2 (1 + s/(6h) + V/(12 l h))``.
"""

from __future__ import annotations

from cost_models import params
from cost_models.specs import AttentionKind, ModelSpec


def _ffn_matrices(model: ModelSpec) -> int:
    return 3 if model.ffn_gated else 2


def attention_linear_elements_megatron(model: ModelSpec) -> float:
    """Per-token multiply-accumulates of one attention block's projections, Megatron's counting."""
    a, h = model.attention, model.hidden_size
    if a.kind is AttentionKind.MLA:
        dn, dr, dv, heads = a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim, a.num_q_heads
        q = h * heads * (dn + dr) if a.q_lora_rank is None else a.q_lora_rank * (h + heads * (dn + dr) + 1)
        kv = a.kv_lora_rank * (h + heads * (dn + dv) + 1) + h * dr
        return float(q + kv + heads * dv * h)
    d = a.qk_head_dim
    q_size, kv_size = d * a.num_q_heads, d * a.num_kv_heads
    return float(h * (q_size + 2 * kv_size) + q_size * h)


def attention_core_elements_megatron(model: ModelSpec) -> float:
    """Per ``seq^2`` multiply-accumulates of core attention, Megatron's counting (causal: halved)."""
    a = model.attention
    if a.kind is AttentionKind.MLA:
        return a.num_q_heads * (a.qk_head_dim + a.v_head_dim) / 2
    return a.qk_head_dim * a.num_q_heads / 2 * 2


def _layer_counts(model: ModelSpec, mtp_layers: int) -> tuple[int, int]:
    dense, moe = model.num_dense_layers, model.num_moe_layers
    last_is_moe = model.moe is not None and model.num_moe_layers > 0
    return (dense + (0 if last_is_moe else mtp_layers), moe + (mtp_layers if last_is_moe else 0))


def megatron_flops(model: ModelSpec, *, seq_tokens: int, batch_sequences: int, mtp_layers: int | None = None) -> float:
    """FLOPs of one step of ``batch_sequences`` sequences (module docstring); ``mtp_layers`` defaults to the
    model's own MTP depth."""
    mtp = model.num_mtp_layers if mtp_layers is None else mtp_layers
    h, tokens = model.hidden_size, batch_sequences * seq_tokens
    dense, moe = _layer_counts(model, mtp)
    layers = model.num_layers + mtp
    mats = _ffn_matrices(model)
    mlp = model.dense_ffn_dim * mats * dense
    if model.moe is not None:
        mlp += (model.moe.expert_ffn_dim * model.moe.top_k + model.moe.shared_ffn_dim) * mats * moe
    per_token = 6.0 * (h * mlp + attention_linear_elements_megatron(model) * layers
                       + mtp * (3 * h + 2 * h * h) + h * model.vocab_size * (mtp + 1))
    core = 6.0 * attention_core_elements_megatron(model) * layers
    return tokens * per_token + batch_sequences * seq_tokens**2 * core


def narayanan_flops(model: ModelSpec, *, seq_tokens: int, batch_sequences: int) -> float:
    """Narayanan et al. 2021 eq. 3 (with full recomputation): ``96 B s l h^2 (1 + s/(6h) + V/(16 l h))``."""
    b, s, n, h, v = batch_sequences, seq_tokens, model.num_layers, model.hidden_size, model.vocab_size
    return 96.0 * b * s * n * h * h * (1 + s / (6 * h) + v / (16 * n * h))


def korthikanti_model_flops(model: ModelSpec, *, seq_tokens: int, batch_sequences: int) -> float:
    """Korthikanti et al. 2022 model FLOPs (no recompute counted): ``72 B s l h^2 (1 + s/(6h) + V/(12 l h))``."""
    b, s, n, h, v = batch_sequences, seq_tokens, model.num_layers, model.hidden_size, model.vocab_size
    return 72.0 * b * s * n * h * h * (1 + s / (6 * h) + v / (12 * n * h))


def six_n_flops(model: ModelSpec, *, seq_tokens: int, batch_sequences: int) -> float:
    """``6 x active parameters`` per token plus causal core attention (Megatron's core term), the counting of the
    non-Megatron rows (Llama 3 paper, torchtitan): ``6 N tokens + 6 (Hq (dqk + dv) / 2) s^2 layers``."""
    tokens = batch_sequences * seq_tokens
    core = 6.0 * attention_core_elements_megatron(model) * model.num_layers * batch_sequences * seq_tokens**2
    return 6.0 * params.active_parameters(model) * tokens + core


def mfu(flops: float, step_s: float, devices: int, peak_flop_per_s: float) -> float:
    """Model FLOPs utilisation: ``flops / (step_s x devices x peak)``."""
    return flops / (step_s * devices * peak_flop_per_s)
