"""Parameter (weight-element) counts of a ModelSpec: per layer for memory models, and whole-model totals.

Counting rules (tests/test_params.py checks them against every published total, ``planner/catalog/SOURCES.md``):

* attention, GQA/MHA: q ``h x Hq*dqk``, k ``h x Hkv*dqk``, v ``h x Hkv*dv``, o ``Hq*dv x h``; head dims come from the
  spec, never from ``h / Hq`` (gpt-oss: 64 x 64 = 4096 != 2880);
* attention, MFA (Step-3, arXiv 2507.19427 §2): q ``h x rq + rq x Hq*dqk`` (low-rank query), k ``h x Hkv*dqk``,
  v ``h x Hkv*dv``, o ``Hq*dv x h``;
* attention, MLA (DeepSeek-V2 paper §2.1): q ``h x rq + rq x Hq*dqk`` (or ``h x Hq*dqk`` without q compression),
  kv_a ``h x (rkv + drope)``, kv_b ``rkv x Hq*(dnope + dv)``, o ``Hq*dv x h``;
* every FFN is gated (SwiGLU): ``3 x h x width``; shared experts are one FFN of ``shared_ffn_dim``;
* router ``h x E`` per MoE layer;
* embedding ``V x h`` plus an untied LM head ``h x V``;
* norms, biases, router score-correction biases and the Qwen2 shared-expert gate are ignored (< 0.01 %).

Multi-token-prediction layers are excluded from the totals (DeepSeek-V3: 671B, not 685B); see
:func:`mtp_weight_elements`.
"""

from __future__ import annotations

from cost_models.specs import AttentionKind, ModelSpec


def attention_weight_elements(model: ModelSpec) -> int:
    """Weights of one attention block (one layer)."""
    a, h = model.attention, model.hidden_size
    out = a.num_q_heads * a.v_head_dim * h
    q_width = a.num_q_heads * a.qk_head_dim
    low_rank_q = a.kind in (AttentionKind.MLA, AttentionKind.MFA) and a.q_lora_rank is not None
    q = h * a.q_lora_rank + a.q_lora_rank * q_width if low_rank_q else h * q_width
    if a.kind is AttentionKind.MLA:
        kv_down = h * (a.kv_lora_rank + a.qk_rope_head_dim)
        kv_up = a.kv_lora_rank * a.num_q_heads * (a.qk_nope_head_dim + a.v_head_dim)
        return q + kv_down + kv_up + out
    kv = h * a.num_kv_heads * (a.qk_head_dim + a.v_head_dim)
    return q + kv + out


def dense_ffn_weight_elements(model: ModelSpec) -> int:
    """Weights of one dense (non-MoE) gated FFN; 0 when the model has no dense layer."""
    return 3 * model.hidden_size * model.dense_ffn_dim if model.num_dense_layers else 0


def routed_expert_weight_elements(model: ModelSpec) -> int:
    """Weights of ONE routed expert in one MoE layer; 0 for a dense model."""
    return 3 * model.hidden_size * model.moe.expert_ffn_dim if model.moe else 0


def shared_expert_weight_elements(model: ModelSpec) -> int:
    """Weights of all shared experts of one MoE layer together (one FFN of ``shared_ffn_dim``)."""
    return 3 * model.hidden_size * model.moe.shared_ffn_dim if model.moe else 0


def router_weight_elements(model: ModelSpec) -> int:
    """Router (gate) weights of one MoE layer: ``h x E``."""
    return model.hidden_size * model.moe.num_routed_experts if model.moe else 0


def embedding_weight_elements(model: ModelSpec) -> int:
    """Input embedding plus the LM head (counted once when tied)."""
    table = model.vocab_size * model.hidden_size
    return table if model.tie_embeddings else 2 * table


def moe_layer_weight_elements(model: ModelSpec) -> int:
    """Weights of the FFN part of one MoE layer: all routed experts, shared experts and router."""
    if model.moe is None:
        return 0
    routed = model.moe.num_routed_experts * routed_expert_weight_elements(model)
    return routed + shared_expert_weight_elements(model) + router_weight_elements(model)


def mtp_weight_elements(model: ModelSpec) -> int:
    """Unique weights of the multi-token-prediction modules (DeepSeek-V3 style), shared embedding/head excluded.

    One module = one decoder layer (attention + MoE FFN, or dense FFN for a dense model) plus the ``2h x h``
    projection that merges the embedding with the previous hidden state (DeepSeek-V3 report §2.2).
    """
    ffn = moe_layer_weight_elements(model) if model.moe else 3 * model.hidden_size * model.dense_ffn_dim
    per_module = attention_weight_elements(model) + ffn + 2 * model.hidden_size**2
    return model.num_mtp_layers * per_module


def total_parameters(model: ModelSpec) -> int:
    """All weights of the serving model (MTP modules excluded)."""
    return (model.num_layers * attention_weight_elements(model)
            + model.num_dense_layers * dense_ffn_weight_elements(model)
            + model.num_moe_layers * moe_layer_weight_elements(model)
            + embedding_weight_elements(model))


def active_parameters(model: ModelSpec) -> int:
    """Weights one token touches: attention, dense FFNs, top-k routed + shared experts, router, embedding and head."""
    per_moe_layer = 0
    if model.moe is not None:
        per_moe_layer = (model.moe.top_k * routed_expert_weight_elements(model)
                         + shared_expert_weight_elements(model) + router_weight_elements(model))
    return (model.num_layers * attention_weight_elements(model)
            + model.num_dense_layers * dense_ffn_weight_elements(model)
            + model.num_moe_layers * per_moe_layer
            + embedding_weight_elements(model))
