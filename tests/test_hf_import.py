"""config.json importer: family dispatch, per-family key rules, precision, and errors that name the key."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import pytest

from cost_models.specs import AttentionKind, Precision, WeightFormat
from planner.catalog.errors import ConfigError
from planner.catalog.hf_import import Family, detect_family, model_from_hf_config
from planner.catalog.models import HF_CONFIG_DIR, get_model, load_hf_config, model_entry, model_ids

# Qwen2-57B-A14B as in NVIDIA/TensorRT-LLM tests/unittest/_torch/modeling/test_modeling_qwen_moe.py @08b2040c
# (QWEN2_57B_A14B_CONFIG; planner/catalog/SOURCES.md C6): the one shared_expert_intermediate_size user
QWEN2_57B = {
    "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 3584,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944,
    "moe_intermediate_size": 2560, "shared_expert_intermediate_size": 20480, "num_experts": 64,
    "num_experts_per_tok": 8, "decoder_sparse_step": 1, "mlp_only_layers": [], "vocab_size": 151936,
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


def cfg(name: str) -> dict:
    return copy.deepcopy(load_hf_config(name))


def test_kimi_k2_dispatches_on_architecture_not_model_type() -> None:
    kimi = cfg("Kimi-K2-Instruct.json")
    assert kimi["model_type"] == "kimi_k2"
    assert detect_family(kimi) is Family.DEEPSEEK
    model = model_from_hf_config(kimi, id="kimi")
    assert model.attention.kind is AttentionKind.MLA
    assert model.moe.num_routed_experts == 384 and model.moe.num_groups == 1 and model.num_dense_layers == 1
    # still DeepSeek-family without architectures, and from keys alone without model_type
    del kimi["architectures"]
    assert detect_family(kimi) is Family.DEEPSEEK
    del kimi["model_type"]
    assert detect_family(kimi) is Family.DEEPSEEK


def test_deepseek_v3_mla_groups_and_fp8() -> None:
    m = get_model("deepseek-v3")
    a = m.attention
    assert (a.qk_head_dim, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim) == (192, 128, 64, 128)
    assert (a.q_lora_rank, a.kv_lora_rank) == (1536, 512)
    assert (m.num_layers, m.num_dense_layers, m.num_moe_layers, m.num_mtp_layers) == (61, 3, 58, 1)
    assert (m.moe.num_groups, m.moe.topk_groups, m.moe.top_k) == (8, 4, 8)
    assert m.moe.shared_ffn_dim == 1 * 2048  # n_shared_experts x moe_intermediate_size
    assert m.native_precision is Precision.FP8
    assert m.dense_ffn_dim == 18432


def test_deepseek_v2_lite_has_no_q_compression() -> None:
    m = get_model("deepseek-v2-lite")
    assert m.attention.q_lora_rank is None
    assert m.moe.num_shared_experts == 2 and m.moe.shared_ffn_dim == 2 * 1408
    assert m.native_precision is Precision.BF16 and m.num_dense_layers == 1
    # MaxText writes 0 for "no q compression": same meaning
    c = cfg("DeepSeek-V2-Lite.json")
    c["q_lora_rank"] = 0
    assert model_from_hf_config(c, id="x").attention.q_lora_rank is None


def test_gpt_oss_head_dim_is_explicit_and_windows_alternate() -> None:
    m = get_model("gpt-oss-120b")
    a = m.attention
    assert a.qk_head_dim == 64 != m.hidden_size // a.num_q_heads  # 2880 / 64 = 45
    assert a.num_q_heads * a.qk_head_dim == 4096 != m.hidden_size
    assert a.sliding_window_tokens == 128 and a.sliding_window_layer_fraction == 0.5
    assert m.native_precision is Precision.FP4  # MXFP4 experts carry ~98 % of the weights
    assert m.moe.expert_ffn_dim == 2880 and m.moe.top_k == 4 and m.num_dense_layers == 0
    # without layer_types the HF default alternates (even layers sliding); top-k may be spelled experts_per_token
    c = cfg("gpt-oss-20b.json")
    del c["layer_types"], c["num_experts_per_tok"]
    m20 = model_from_hf_config(c, id="x")
    assert m20.attention.sliding_window_layer_fraction == 0.5 and m20.moe.top_k == 4


def test_gpt_oss_requires_head_dim() -> None:
    c = cfg("gpt-oss-20b.json")
    del c["head_dim"]
    with pytest.raises(ConfigError) as info:
        model_from_hf_config(c, id="x")
    assert info.value.key_path == "head_dim"


def test_qwen3_moe_layer_rules() -> None:
    m = get_model("qwen3-235b-a22b")
    assert m.attention.kind is AttentionKind.GQA and m.attention.qk_head_dim == 128
    assert m.num_dense_layers == 0 and m.dense_ffn_dim == 0  # intermediate_size unused
    assert m.moe.num_shared_experts == 0
    c = cfg("Qwen3-30B-A3B.json")
    c["mlp_only_layers"] = [0, 1]
    m = model_from_hf_config(c, id="x")
    assert (m.num_dense_layers, m.dense_ffn_dim) == (2, 6144)
    c["mlp_only_layers"], c["decoder_sparse_step"] = [], 2  # MoE on layers 1, 3, 5, ... -> 24 of 48
    assert model_from_hf_config(c, id="x").num_moe_layers == 24


def test_qwen2_moe_shared_expert_and_implicit_head_dim() -> None:
    m = model_from_hf_config(QWEN2_57B, id="qwen2-57b")
    assert m.attention.qk_head_dim == 3584 // 28 == 128
    assert (m.moe.num_shared_experts, m.moe.shared_ffn_dim) == (1, 20480)


def test_mixtral_and_llama() -> None:
    mix = get_model("mixtral-8x7b")
    assert mix.moe.expert_ffn_dim == 14336 and mix.num_dense_layers == 0
    assert mix.attention.sliding_window_tokens is None
    llama = get_model("llama-3.1-70b")
    assert llama.moe is None and llama.num_dense_layers == llama.num_layers == 80
    assert llama.num_moe_layers == 0 and llama.dense_ffn_dim == 28672
    c = cfg("Meta-Llama-3.1-70B.json")
    c["num_key_value_heads"] = 64
    assert model_from_hf_config(c, id="x").attention.kind is AttentionKind.MHA


def test_dtype_spellings() -> None:
    c = cfg("Mixtral-8x7B-v0.1.json")
    del c["torch_dtype"]
    c["dtype"] = "bfloat16"  # transformers >= 5 spelling
    assert model_from_hf_config(c, id="x").native_precision is Precision.BF16
    c["dtype"] = "float32"
    with pytest.raises(ConfigError) as info:
        model_from_hf_config(c, id="x")
    assert info.value.key_path == "dtype"


def test_missing_key_is_named() -> None:
    c = cfg("DeepSeek-V3.json")
    del c["hidden_size"]
    with pytest.raises(ConfigError) as info:
        model_from_hf_config(c, id="x")
    err = info.value
    assert err.key_path == "hidden_size"
    assert str(err).startswith("hf_config.hidden_size: got <missing>, expected an integer")


@pytest.mark.parametrize(("name", "key", "value", "path"), [
    ("DeepSeek-V3.json", "num_hidden_layers", "61", "num_hidden_layers"),
    ("DeepSeek-V3.json", "num_hidden_layers", True, "num_hidden_layers"),
    ("DeepSeek-V3.json", "q_lora_rank", "absent", "q_lora_rank"),
    ("DeepSeek-V3.json", "num_experts_per_tok", 300, "num_experts_per_tok"),
    ("DeepSeek-V3.json", "quantization_config", {"quant_method": "gptq"}, "quantization_config.quant_method"),
    ("Qwen3-30B-A3B.json", "mlp_only_layers", "0,1", "mlp_only_layers"),
    ("Meta-Llama-3.1-70B.json", "num_key_value_heads", 7, "num_key_value_heads"),
    ("Meta-Llama-3.1-70B.json", "architectures", ["BertModel"], "architectures"),
])
def test_bad_values_are_named(name: str, key: str, value: object, path: str) -> None:
    c = cfg(name)
    if value == "absent":
        del c[key]
    else:
        c[key] = value
    if path == "architectures":
        del c["model_type"]
    with pytest.raises(ConfigError) as info:
        model_from_hf_config(c, id="x")
    assert info.value.key_path == path
    assert str(info.value).startswith(f"hf_config.{path}: got ")


def test_name_defaults_to_id() -> None:
    assert model_from_hf_config(cfg("Qwen3-30B-A3B.json"), id="q").name == "q"


def _bundled_manifest() -> dict[str, str]:
    """File name -> SHA-256 from the table in ``hf_configs/SOURCES.md``."""
    rows = re.findall(r"^\| `([^`]+\.json)` \| [^|]+ \| `([0-9a-f]{64})` \|$",
                      (HF_CONFIG_DIR / "SOURCES.md").read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(rows)


def test_bundled_configs_are_listed_and_unchanged_since_bundled() -> None:
    manifest = _bundled_manifest()
    on_disk = {p.name for p in HF_CONFIG_DIR.glob("*.json")}
    # every catalog model's config is bundled, and every bundled file is in the provenance table
    assert {model_entry(i).config_file for i in model_ids()} <= on_disk
    assert set(manifest) == on_disk
    for name, digest in manifest.items():
        assert hashlib.sha256((HF_CONFIG_DIR / name).read_bytes()).hexdigest() == digest, name
    assert "DeepSeek-V2-Lite.json" in manifest and "**reconstructed**" in (HF_CONFIG_DIR / "SOURCES.md").read_text()


# --- quantization config per module (planner/catalog/hf_quant.py) -------------------------------------------------

def test_deepseek_fp8_block_config_quantizes_every_linear_but_the_head() -> None:
    p = get_model("deepseek-v3").checkpoint_precisions
    # quant_method fp8, weight_block_size [128, 128], no modules_to_not_convert in the file
    assert p.routed_experts is p.shared_experts is p.dense_ffn is p.attention_projections is WeightFormat.FP8
    assert p.lm_head is WeightFormat.BF16 and p.kv_cache is Precision.BF16


def test_gpt_oss_mxfp4_covers_the_experts_only() -> None:
    p = get_model("gpt-oss-120b").checkpoint_precisions
    # quant_method mxfp4; modules_to_not_convert: model.layers.*.self_attn, router, embed_tokens, lm_head
    assert p.routed_experts is WeightFormat.MXFP4
    assert p.attention_projections is WeightFormat.BF16 and p.lm_head is WeightFormat.BF16
    c = cfg("gpt-oss-20b.json")
    c["quantization_config"]["modules_to_not_convert"].append("model.layers.*.mlp.experts")
    assert model_from_hf_config(c, id="x").checkpoint_precisions.routed_experts is WeightFormat.BF16


def test_bf16_checkpoint_states_no_per_class_formats() -> None:
    assert get_model("qwen3-235b-a22b").checkpoint_precisions is None


# The ModelOpt unified-HF-export shape (hf_quant_config.json of nvidia/DeepSeek-R1-NVFP4 on Hugging Face, as read
# by vLLM's / SGLang's modelopt loaders): producer + quantization {quant_algo, kv_cache_quant_algo, group_size,
# exclude_modules}. Built here from that documented shape, not copied.
def _modelopt(excluded: list[str], kv: str | None = "FP8", algo: str = "NVFP4") -> dict:
    return {"producer": {"name": "modelopt", "version": "0.23.0"},
            "quantization": {"quant_algo": algo, "kv_cache_quant_algo": kv, "group_size": 16,
                             "exclude_modules": excluded}}


def test_modelopt_nvfp4_with_bf16_attention() -> None:
    excluded = [f"model.layers.{i}.self_attn*" for i in range(61)] + ["lm_head", "model.layers.*.mlp.gate"]
    m = model_from_hf_config(cfg("DeepSeek-R1.json"), id="r1-fp4", hf_quant_config=_modelopt(excluded))
    p = m.checkpoint_precisions
    assert p.routed_experts is p.shared_experts is p.dense_ffn is WeightFormat.NVFP4
    assert p.attention_projections is WeightFormat.BF16 and p.kv_cache is Precision.FP8
    assert m.native_precision is Precision.FP4


def test_modelopt_class_format_follows_most_layers() -> None:
    # two of 61 layers keep BF16 attention: attention counts as NVFP4; all dense layers' MLPs excluded: BF16 FFN
    excluded = ["model.layers.0.self_attn*", "model.layers.1.self_attn*", "model.layers.0.mlp*",
                "model.layers.1.mlp*", "model.layers.2.mlp*"]
    p = model_from_hf_config(cfg("DeepSeek-R1.json"), id="x", hf_quant_config=_modelopt(excluded, kv=None)
                             ).checkpoint_precisions
    assert p.attention_projections is WeightFormat.NVFP4 and p.dense_ffn is WeightFormat.BF16
    assert p.kv_cache is Precision.BF16


def test_modelopt_flat_inside_config_json() -> None:
    c = cfg("DeepSeek-R1.json")
    c["quantization_config"] = {"quant_method": "modelopt", **_modelopt([])["quantization"]}
    m = model_from_hf_config(c, id="x")
    assert m.checkpoint_precisions.attention_projections is WeightFormat.NVFP4 and m.native_precision is Precision.FP4


@pytest.mark.parametrize(("change", "key"), [
    ({"quant_algo": "W4A16_AWQ"}, "quantization.quant_algo"),
    ({"kv_cache_quant_algo": "INT4"}, "quantization.kv_cache_quant_algo"),
    ({"group_size": 32}, "quantization.group_size"),
    ({"exclude_modules": "lm_head"}, "quantization_config.exclude_modules"),
])
def test_modelopt_errors_name_the_key(change: dict, key: str) -> None:
    q = _modelopt([])
    q["quantization"].update(change)
    with pytest.raises(ConfigError) as e:
        model_from_hf_config(cfg("DeepSeek-R1.json"), id="x", hf_quant_config=q)
    assert e.value.key_path == key


def test_scenario_reads_hf_quant_config_beside_config_json(tmp_path: Path) -> None:
    import json

    from planner.inputs.scenario import load_scenario
    (tmp_path / "config.json").write_text(json.dumps(cfg("DeepSeek-R1.json")))
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(_modelopt(["lm_head", "model.layers.*.self_attn*"])))
    (tmp_path / "s.yaml").write_text("name: t\nmodel: {hf_config: config.json, precision: {attention_projections: "
                                     "fp8}}\ncluster: {device: b200, nodes: 1}\n"
                                     "workload: {input_tokens: 1000, output_tokens: 1000}\nplan: attn_dp=8,moe_ep=8\n")
    p = load_scenario(tmp_path / "s.yaml").workload.precisions
    assert p.routed_experts is WeightFormat.NVFP4 and p.attention_projections is WeightFormat.FP8
    assert p.kv_cache is Precision.FP8  # kv_cache_quant_algo FP8, no kv_precision in the scenario
