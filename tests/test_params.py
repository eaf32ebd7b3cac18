"""Parameter counts: hand-derived per-layer values, anchors against the official totals, and properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cost_models import params
from cost_models.specs import AttentionKind, AttentionSpec, ModelSpec, MoESpec, Precision
from planner.catalog.hf_import import model_from_hf_config
from planner.catalog.models import get_model

# DeepSeek-V2 (AI-Hypercomputer/maxtext deepseek2-236b.yml @11767c88, SOURCES.md C2 [V]); not bundled, so written out here
DEEPSEEK_V2 = {
    "architectures": ["DeepseekV2ForCausalLM"], "hidden_size": 5120, "num_hidden_layers": 60,
    "first_k_dense_replace": 1, "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "intermediate_size": 12288, "moe_intermediate_size": 1536, "n_routed_experts": 160, "n_shared_experts": 2,
    "num_experts_per_tok": 6, "n_group": 8, "topk_group": 3, "vocab_size": 102400, "max_position_embeddings": 163840,
    "torch_dtype": "bfloat16",
}
# Qwen2-57B-A14B (NVIDIA/TensorRT-LLM QWEN2_57B_A14B_CONFIG @08b2040c, SOURCES.md C6)
QWEN2_57B = {
    "architectures": ["Qwen2MoeForCausalLM"], "hidden_size": 3584, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944, "moe_intermediate_size": 2560,
    "shared_expert_intermediate_size": 20480, "num_experts": 64, "num_experts_per_tok": 8, "vocab_size": 151936,
    "max_position_embeddings": 131072,
}


def test_deepseek_v3_per_layer_counts_by_hand() -> None:
    m = get_model("deepseek-v3")
    # MLA, h=7168, 128 heads, q_lora 1536, qk 192, kv_lora 512, rope 64, nope 128, v 128:
    # q: 7168*1536 + 1536*128*192 = 11,010,048 + 37,748,736 = 48,758,784
    # kv_a: 7168*(512+64) = 4,128,768; kv_b: 512*128*(128+128) = 16,777,216; o: 128*128*7168 = 117,440,512
    assert params.attention_weight_elements(m) == 48_758_784 + 4_128_768 + 16_777_216 + 117_440_512
    assert params.dense_ffn_weight_elements(m) == 3 * 7168 * 18432  # 396,361,728
    assert params.routed_expert_weight_elements(m) == 3 * 7168 * 2048  # 44,040,192
    assert params.shared_expert_weight_elements(m) == 3 * 7168 * 2048  # 1 shared expert
    assert params.router_weight_elements(m) == 7168 * 256
    assert params.embedding_weight_elements(m) == 2 * 129280 * 7168  # untied head
    # one MTP module: layer (187,105,280 attn + 257 experts + router) + 2h^2 eh_proj = 11.61e9;
    # tenstorrent/tt-metal README_WEIGHTS (SOURCES.md M1): "1 MTP module with 11.5B unique params"
    assert params.mtp_weight_elements(m) == pytest.approx(11.5e9, rel=0.015)


def test_gqa_uses_head_dim_not_hidden_over_heads() -> None:
    m = get_model("gpt-oss-120b")
    # q 2880*64*64 + k,v 2*2880*8*64 + o 64*64*2880 = 11,796,480 + 2,949,120 + 11,796,480
    assert params.attention_weight_elements(m) == 11_796_480 + 2_949_120 + 11_796_480


# Parameter counts recomputed once by hand from the config values with the rules in the cost_models.params docstring
# [D], each within rounding of the official total (SOURCES.md M1-M5, C7, C14): (total, active) in params.
# Tolerance 1 %, or half a unit of the last printed digit where the table prints fewer digits than 1 % needs
# (V2-Lite active "2.7B" is 2.66B rounded: +-0.05 / 2.7 = 1.9 %). Active counts include embedding and head.
RECOMPUTED = [
    ("deepseek-v3", 671.0e9, 37.6e9),
    ("deepseek-r1", 671.0e9, 37.6e9),  # same architecture and config values as V3
    ("deepseek-v2-lite", 15.7e9, 2.7e9),  # active printed with 2 significant digits
    ("kimi-k2", 1026e9, 32.9e9),
    ("qwen3-235b-a22b", 235.1e9, 22.2e9),
    ("qwen3-30b-a3b", 30.5e9, 3.35e9),
    ("mixtral-8x7b", 46.7e9, 12.9e9),
    ("mixtral-8x22b", 140.6e9, 39.2e9),
    ("gpt-oss-120b", 116.8e9, 5.7e9),
    ("gpt-oss-20b", 20.9e9, 4.2e9),
    ("llama-3.1-70b", 70.6e9, 70.6e9),  # dense: active = total
    ("llama-3.1-405b", 405.9e9, 405.9e9),
]


@pytest.mark.parametrize(("model_id", "total", "active"), RECOMPUTED)
def test_parameter_counts_match_the_recomputed_table(model_id: str, total: float, active: float) -> None:
    m = get_model(model_id)
    assert params.total_parameters(m) == pytest.approx(total, rel=0.01)
    active_tol = 0.05e9 if model_id == "deepseek-v2-lite" else 0.01 * active
    assert params.active_parameters(m) == pytest.approx(active, abs=active_tol)


@pytest.mark.parametrize(("cfg", "total", "active"), [
    (DEEPSEEK_V2, 235.7e9, 21.4e9),  # official 236B / 21B (DeepSeek-V2 README, SOURCES.md M2)
    (QWEN2_57B, 57.4e9, 14.3e9),  # official 57B / 14B [S] (shared FFN 20480 counted once per layer)
])
def test_unbundled_models_recomputed(cfg: dict, total: float, active: float) -> None:
    m = model_from_hf_config(cfg, id="x")
    assert params.total_parameters(m) == pytest.approx(total, rel=0.01)
    assert params.active_parameters(m) == pytest.approx(active, rel=0.01)


def test_dense_model_has_no_moe_elements() -> None:
    m = get_model("llama-3.1-70b")
    for fn in (params.routed_expert_weight_elements, params.shared_expert_weight_elements,
               params.router_weight_elements, params.moe_layer_weight_elements):
        assert fn(m) == 0


def _model(*, layers: int, dense: int, experts: int, top_k: int, shared: int, tie: bool, mla: bool) -> ModelSpec:
    if mla:
        att = AttentionSpec(kind=AttentionKind.MLA, num_q_heads=8, num_kv_heads=8, qk_head_dim=96, v_head_dim=64,
                            q_lora_rank=128, kv_lora_rank=64, qk_rope_head_dim=32)
    else:
        att = AttentionSpec(kind=AttentionKind.GQA, num_q_heads=8, num_kv_heads=2, qk_head_dim=64, v_head_dim=64)
    moe = MoESpec(num_routed_experts=experts, top_k=min(top_k, experts), expert_ffn_dim=128,
                  num_shared_experts=shared, shared_ffn_dim=128 * shared) if dense < layers else None
    return ModelSpec(id="p", name="p", hidden_size=256, num_layers=layers, num_dense_layers=dense,
                     dense_ffn_dim=512, vocab_size=1000, attention=att, moe=moe,
                     native_precision=Precision.BF16, max_context_tokens=4096, tie_embeddings=tie)


models = st.builds(
    lambda layers, dense_share, experts, top_k, shared, tie, mla: _model(
        layers=layers, dense=int(layers * dense_share), experts=experts, top_k=top_k, shared=shared, tie=tie,
        mla=mla),
    st.integers(1, 64), st.floats(0, 1), st.integers(1, 512), st.integers(1, 16), st.integers(0, 2), st.booleans(),
    st.booleans())


@given(models)
def test_active_never_exceeds_total(m: ModelSpec) -> None:
    assert 0 < params.active_parameters(m) <= params.total_parameters(m)


@given(models)
def test_more_routed_experts_add_exactly_their_weights_and_router(m: ModelSpec) -> None:
    if m.moe is None:
        return
    bigger = dataclasses.replace(m, moe=dataclasses.replace(m.moe, num_routed_experts=m.moe.num_routed_experts + 1))
    extra = params.total_parameters(bigger) - params.total_parameters(m)
    assert extra == m.num_moe_layers * (params.routed_expert_weight_elements(m) + m.hidden_size)
    assert params.active_parameters(bigger) - params.active_parameters(m) == m.num_moe_layers * m.hidden_size


@given(models)
def test_tying_embeddings_removes_one_vocab_table(m: ModelSpec) -> None:
    tied, untied = dataclasses.replace(m, tie_embeddings=True), dataclasses.replace(m, tie_embeddings=False)
    assert params.total_parameters(untied) - params.total_parameters(tied) == m.vocab_size * m.hidden_size
