"""Build a ModelSpec from a Hugging Face ``config.json`` dict.

Families (key names as in each family's config.json, listed in ``hf_configs/SOURCES.md``): DeepSeek-V2/V3 and
Kimi-K2 (MLA + routed/shared experts), Qwen2-MoE / Qwen3-MoE, Mixtral, gpt-oss, Step-3 (MFA attention; its text
decoder, also nested as ``text_config`` of the ``step3_vl`` wrapper) and dense Llama. The family is chosen from
``architectures`` first, then
``model_type``, then tell-tale keys: Kimi-K2 says ``model_type: kimi_k2`` but is a ``DeepseekV3ForCausalLM``.

A missing or ill-typed key raises :class:`~planner.catalog.errors.ConfigError` naming the key, the value and what
would be accepted; optional keys fall back to the Hugging Face defaults of that family.

Precision: ``native_precision`` is the format of the bulk of the weights: FP8 for DeepSeek-V3/R1 and Kimi-K2
(``quant_method: fp8``), FP4 for gpt-oss, whose routed experts ship as MXFP4 while attention, router, embeddings
and head stay BF16 (``modules_to_not_convert``), FP4 / FP8 for NVIDIA ModelOpt checkpoints (``quant_algo``); BF16
for ``torch_dtype``/``dtype`` bfloat16 or float16 (same 2-byte storage), and BF16 when no dtype is given.
``checkpoint_precisions`` holds the format of each op class where the quantization config states one
(:mod:`planner.catalog.hf_quant`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from cost_models.specs import AttentionKind, AttentionSpec, ModelSpec, MoESpec, Precision
from planner.catalog.errors import MISSING, ConfigError
from planner.catalog.hf_quant import checkpoint_precisions, modelopt_precision, modelopt_section


class Family(enum.Enum):
    """Config dialects the importer understands."""

    DEEPSEEK = "deepseek"
    QWEN_MOE = "qwen_moe"
    MIXTRAL = "mixtral"
    GPT_OSS = "gpt_oss"
    LLAMA = "llama"
    STEP3 = "step3"


_BY_ARCHITECTURE = {
    "DeepseekV2ForCausalLM": Family.DEEPSEEK, "DeepseekV3ForCausalLM": Family.DEEPSEEK,
    "Qwen2MoeForCausalLM": Family.QWEN_MOE, "Qwen3MoeForCausalLM": Family.QWEN_MOE,
    "MixtralForCausalLM": Family.MIXTRAL, "GptOssForCausalLM": Family.GPT_OSS, "LlamaForCausalLM": Family.LLAMA,
    "Step3TextForCausalLM": Family.STEP3, "Step3VLForConditionalGeneration": Family.STEP3,
}
_BY_MODEL_TYPE = {
    "deepseek_v2": Family.DEEPSEEK, "deepseek_v3": Family.DEEPSEEK, "kimi_k2": Family.DEEPSEEK,
    "qwen2_moe": Family.QWEN_MOE, "qwen3_moe": Family.QWEN_MOE, "mixtral": Family.MIXTRAL,
    "gpt_oss": Family.GPT_OSS, "llama": Family.LLAMA, "step3_text": Family.STEP3, "step3_vl": Family.STEP3,
}


class _Cfg:
    """Typed reads from a config dict; every failure names the key."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        if not isinstance(cfg, Mapping):
            raise ConfigError("<root>", cfg, "a JSON object (dict)")
        self.cfg = cfg

    def integer(self, key: str, *, default: Any = MISSING, minimum: int = 1) -> int:
        value = self.cfg.get(key, default)
        if value is MISSING:
            raise ConfigError(key, MISSING, f"an integer >= {minimum}")
        return _as_int(key, value, minimum)

    def optional(self, key: str, *, minimum: int = 0) -> int | None:
        """An integer, or None when the key is absent or null."""
        value = self.cfg.get(key)
        return None if value is None else _as_int(key, value, minimum)

    def flag(self, key: str, default: bool) -> bool:
        value = self.cfg.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true or false")
        return value

    def layer_list(self, key: str) -> list[int]:
        value = self.cfg.get(key) or []
        if not isinstance(value, list):
            raise ConfigError(key, value, "a list of layer indices")
        return [_as_int(f"{key}[{i}]", v, 0) for i, v in enumerate(value)]


MIN_VOCAB = 1_024
"""Smallest vocabulary read: the LM head is split over up to 1,024 TP ranks and every shard needs a column."""
MAX_CONFIG_INT = 2**31 - 1
"""Largest integer read from a config.json (sizes, counts, context lengths): keeps every product finite."""


def _as_int(key: str, value: Any, minimum: int) -> int:
    ok = (not isinstance(value, bool) and isinstance(value, int | float) and minimum <= value <= MAX_CONFIG_INT
          and float(value).is_integer())
    if not ok:
        raise ConfigError(key, value, f"an integer in {minimum} .. {MAX_CONFIG_INT:,}")
    return int(value)


def detect_family(cfg: Mapping[str, Any]) -> Family:
    """Config family from ``architectures``, then ``model_type``, then keys only one family has."""
    archs = cfg.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not all(isinstance(a, str) for a in archs)):
        raise ConfigError("architectures", archs, "a list of class names")
    for arch in archs or []:
        if arch in _BY_ARCHITECTURE:
            return _BY_ARCHITECTURE[arch]
    model_type = cfg.get("model_type")
    if isinstance(model_type, str) and model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type]
    if "kv_lora_rank" in cfg:
        return Family.DEEPSEEK
    if "num_experts" in cfg and "moe_intermediate_size" in cfg:
        return Family.QWEN_MOE
    if "num_local_experts" in cfg:
        return Family.GPT_OSS if "layer_types" in cfg else Family.MIXTRAL
    raise ConfigError("architectures", archs, f"one of {', '.join(_BY_ARCHITECTURE)} "
                      f"(or model_type one of {', '.join(_BY_MODEL_TYPE)})")


def native_precision(cfg: Mapping[str, Any]) -> Precision:
    """Format of the bulk of the released weights (see module docstring)."""
    quant = cfg.get("quantization_config")
    if quant is not None:
        if not isinstance(quant, Mapping):
            raise ConfigError("quantization_config", quant, "an object with quant_method")
        method = quant.get("quant_method", MISSING)
        if method == "fp8":
            fmt = quant.get("fmt", "e4m3")
            if fmt not in ("e4m3", "e5m2"):
                raise ConfigError("quantization_config.fmt", fmt, "'e4m3' or 'e5m2'")
            return Precision.FP8
        if method == "mxfp4":
            return Precision.FP4
        if method == "modelopt":
            return modelopt_precision(quant)
        raise ConfigError("quantization_config.quant_method", method,
                          "'fp8', 'mxfp4' or 'modelopt' (or no quantization_config)")
    key = "torch_dtype" if "torch_dtype" in cfg else "dtype"
    dtype = cfg.get(key)
    if dtype is None or dtype in ("bfloat16", "float16"):
        return Precision.BF16
    raise ConfigError(key, dtype, "'bfloat16' or 'float16'")


def _common(c: _Cfg) -> dict[str, Any]:
    return dict(hidden_size=c.integer("hidden_size"), num_layers=c.integer("num_hidden_layers"),
                vocab_size=c.integer("vocab_size", minimum=MIN_VOCAB), max_context_tokens=c.integer("max_position_embeddings"),
                tie_embeddings=c.flag("tie_word_embeddings", False), native_precision=native_precision(c.cfg))


def _gqa(c: _Cfg, hidden: int, *, head_dim_required: bool, window: int | None = None,
         window_fraction: float = 0.0) -> AttentionSpec:
    heads = c.integer("num_attention_heads")
    kv_heads = c.integer("num_key_value_heads", default=heads)
    if heads % kv_heads:
        raise ConfigError("num_key_value_heads", kv_heads, f"a divisor of num_attention_heads={heads}")
    head_dim = c.integer("head_dim") if head_dim_required else c.optional("head_dim", minimum=1)
    if head_dim is None:
        if hidden % heads:
            raise ConfigError("head_dim", MISSING, f"explicit (hidden_size={hidden} is not a multiple of {heads})")
        head_dim = hidden // heads
    kind = AttentionKind.MHA if kv_heads == heads else AttentionKind.GQA
    return AttentionSpec(kind=kind, num_q_heads=heads, num_kv_heads=kv_heads, qk_head_dim=head_dim,
                         v_head_dim=head_dim, sliding_window_tokens=window,
                         sliding_window_layer_fraction=window_fraction if window else 0.0)


def _check_top_k(top_k: int, experts: int, key: str) -> None:
    if top_k > experts:
        raise ConfigError("num_experts_per_tok", top_k, f"at most {key}={experts}")


def _deepseek(c: _Cfg) -> dict[str, Any]:
    base = _common(c)
    layers = base["num_layers"]
    heads = c.integer("num_attention_heads")
    rope, nope = c.integer("qk_rope_head_dim"), c.integer("qk_nope_head_dim")
    if "q_lora_rank" not in c.cfg:
        raise ConfigError("q_lora_rank", MISSING, "an integer, or null for a plain q projection")
    q_lora = c.optional("q_lora_rank") or None  # null (V2-Lite) or 0 (MaxText) = plain q projection
    attention = AttentionSpec(kind=AttentionKind.MLA, num_q_heads=heads,
                              num_kv_heads=c.integer("num_key_value_heads", default=heads), qk_head_dim=nope + rope,
                              v_head_dim=c.integer("v_head_dim"), q_lora_rank=q_lora,
                              kv_lora_rank=c.integer("kv_lora_rank"), qk_rope_head_dim=rope)
    experts = c.optional("n_routed_experts") or 0
    first_dense = c.integer("first_k_dense_replace", default=0, minimum=0)
    freq = c.integer("moe_layer_freq", default=1)
    if first_dense > layers:
        raise ConfigError("first_k_dense_replace", first_dense, f"at most num_hidden_layers={layers}")
    moe_layers = sum(1 for i in range(layers) if experts and i >= first_dense and i % freq == 0)
    moe = None
    if moe_layers:
        top_k = c.integer("num_experts_per_tok")
        _check_top_k(top_k, experts, "n_routed_experts")
        width = c.integer("moe_intermediate_size")
        shared = c.optional("n_shared_experts") or 0
        groups = c.optional("n_group", minimum=1) or 1
        topk_groups = c.optional("topk_group", minimum=1) or 1
        if experts % groups or topk_groups > groups:
            raise ConfigError("n_group", groups, f"a divisor of n_routed_experts={experts} and >= topk_group")
        moe = MoESpec(num_routed_experts=experts, top_k=top_k, expert_ffn_dim=width, num_shared_experts=shared,
                      shared_ffn_dim=shared * width, num_groups=groups, topk_groups=topk_groups)
    dense_layers = layers - moe_layers
    return dict(base, attention=attention, moe=moe, num_dense_layers=dense_layers,
                dense_ffn_dim=c.integer("intermediate_size") if dense_layers else 0,
                num_mtp_layers=c.integer("num_nextn_predict_layers", default=0, minimum=0))


def _qwen_moe(c: _Cfg) -> dict[str, Any]:
    base = _common(c)
    layers = base["num_layers"]
    window, fraction = None, 0.0
    if c.flag("use_sliding_window", False):
        window = c.integer("sliding_window")
        full = c.integer("max_window_layers", default=layers, minimum=0)  # layers >= max_window_layers use the window
        fraction = max(layers - full, 0) / layers
    attention = _gqa(c, base["hidden_size"], head_dim_required=False, window=window, window_fraction=fraction)
    experts = c.integer("num_experts", default=0, minimum=0)
    step = c.integer("decoder_sparse_step", default=1)
    mlp_only = set(c.layer_list("mlp_only_layers"))
    moe_layers = sum(1 for i in range(layers) if experts and i not in mlp_only and (i + 1) % step == 0)
    moe = None
    if moe_layers:
        top_k = c.integer("num_experts_per_tok")
        _check_top_k(top_k, experts, "num_experts")
        shared_width = c.integer("shared_expert_intermediate_size", default=0, minimum=0)  # Qwen2-MoE only
        moe = MoESpec(num_routed_experts=experts, top_k=top_k, expert_ffn_dim=c.integer("moe_intermediate_size"),
                      num_shared_experts=1 if shared_width else 0, shared_ffn_dim=shared_width)
    dense_layers = layers - moe_layers
    return dict(base, attention=attention, moe=moe, num_dense_layers=dense_layers,
                dense_ffn_dim=c.integer("intermediate_size") if dense_layers else 0)


def _all_moe(c: _Cfg, attention: AttentionSpec, base: dict[str, Any], top_k_keys: tuple[str, ...]) -> dict[str, Any]:
    """Mixtral / gpt-oss: every layer is MoE and ``intermediate_size`` is the expert width."""
    experts = c.integer("num_local_experts")
    top_k = next((c.integer(k) for k in top_k_keys if k in c.cfg), None)
    if top_k is None:
        raise ConfigError(top_k_keys[0], MISSING, "an integer >= 1")
    _check_top_k(top_k, experts, "num_local_experts")
    moe = MoESpec(num_routed_experts=experts, top_k=top_k, expert_ffn_dim=c.integer("intermediate_size"))
    return dict(base, attention=attention, moe=moe, num_dense_layers=0, dense_ffn_dim=0)


def _mixtral(c: _Cfg) -> dict[str, Any]:
    base = _common(c)
    window = c.optional("sliding_window", minimum=1)
    attention = _gqa(c, base["hidden_size"], head_dim_required=False, window=window, window_fraction=1.0)
    return _all_moe(c, attention, base, ("num_experts_per_tok",))


def _gpt_oss(c: _Cfg) -> dict[str, Any]:
    base = _common(c)
    layer_types = c.cfg.get("layer_types")
    if layer_types is None:  # HF GptOssConfig default: even layers sliding, odd layers full
        fraction = (base["num_layers"] + 1) // 2 / base["num_layers"]
    elif not isinstance(layer_types, list) or len(layer_types) != base["num_layers"]:
        raise ConfigError("layer_types", layer_types, f"a list of {base['num_layers']} layer kinds")
    else:
        fraction = sum(t == "sliding_attention" for t in layer_types) / len(layer_types)
    attention = _gqa(c, base["hidden_size"], head_dim_required=True, window=c.integer("sliding_window"),
                     window_fraction=fraction)
    return _all_moe(c, attention, base, ("num_experts_per_tok", "experts_per_token"))


def _llama(c: _Cfg) -> dict[str, Any]:
    base = _common(c)
    attention = _gqa(c, base["hidden_size"], head_dim_required=False)
    return dict(base, attention=attention, moe=None, num_dense_layers=base["num_layers"],
                dense_ffn_dim=c.integer("intermediate_size"))


def _step3_moe_layers(c: _Cfg, layers: int) -> set[int]:
    """``moe_layers_enum``: MoE layer indices as a comma string (the checkpoint) or a list; absent = every layer
    but the first (vLLM ``Step3TextDecoderLayer`` default)."""
    raw = c.cfg.get("moe_layers_enum")
    if raw is None:
        return set(range(1, layers))
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)):
        raise ConfigError("moe_layers_enum", raw, "a comma-separated string or a list of layer indices")
    out: set[int] = set()
    for i, item in enumerate(items):
        try:
            index = int(str(item).strip()) if len(str(item)) <= 12 else -1
        except ValueError:
            raise ConfigError(f"moe_layers_enum[{i}]", item, f"a layer index in 0..{layers - 1}") from None
        if not 0 <= index < layers:
            raise ConfigError(f"moe_layers_enum[{i}]", item, f"a layer index in 0..{layers - 1}")
        out.add(index)
    return out


def _step3(outer: _Cfg) -> dict[str, Any]:
    """Step-3: MFA attention (``share_q_dim`` low-rank query, ``num_attention_groups`` shared K/V heads of
    ``head_dim``), ``moe_layers_enum`` MoE layers with one shared expert of ``share_expert_dim``."""
    text = outer.cfg.get("text_config", outer.cfg)
    c = _Cfg(text)
    layers = c.integer("num_hidden_layers")
    heads = c.integer("num_attention_heads")
    groups = c.integer("num_attention_groups", default=1)
    if heads % groups:
        raise ConfigError("num_attention_groups", groups, f"a divisor of num_attention_heads={heads}")
    head_dim = c.integer("head_dim")
    attention = AttentionSpec(kind=AttentionKind.MFA, num_q_heads=heads, num_kv_heads=groups, qk_head_dim=head_dim,
                              v_head_dim=head_dim, q_lora_rank=c.integer("share_q_dim"))
    moe_layers = len(_step3_moe_layers(c, layers))
    experts = c.integer("moe_num_experts")
    top_k = c.integer("moe_top_k")
    _check_top_k(top_k, experts, "moe_num_experts")
    shared = c.integer("share_expert_dim", default=0, minimum=0)
    moe = MoESpec(num_routed_experts=experts, top_k=top_k, expert_ffn_dim=c.integer("moe_intermediate_size"),
                  num_shared_experts=1 if shared else 0, shared_ffn_dim=shared) if moe_layers else None
    context_key = "max_position_embedding" if "max_position_embedding" in text else "max_seq_len"
    quantized = outer if "quantization_config" in outer.cfg else c
    return dict(hidden_size=c.integer("hidden_size"), num_layers=layers, vocab_size=c.integer("vocab_size", minimum=MIN_VOCAB),
                max_context_tokens=c.integer(context_key), tie_embeddings=c.flag("tie_word_embeddings", False),
                native_precision=native_precision(quantized.cfg), attention=attention, moe=moe,
                num_dense_layers=layers - moe_layers,
                dense_ffn_dim=c.integer("intermediate_size") if layers - moe_layers else 0)


_BUILDERS = {Family.DEEPSEEK: _deepseek, Family.QWEN_MOE: _qwen_moe, Family.MIXTRAL: _mixtral,
             Family.GPT_OSS: _gpt_oss, Family.LLAMA: _llama, Family.STEP3: _step3}


def model_from_hf_config(cfg: Mapping[str, Any], *, id: str, name: str | None = None,
                         hf_quant_config: Mapping[str, Any] | None = None) -> ModelSpec:
    """ModelSpec of the decoder described by a config.json dict; raises ConfigError on a bad or missing key.

    ``hf_quant_config``: a ModelOpt ``hf_quant_config.json`` dict shipped beside config.json; it states the
    checkpoint's formats (and overrides config.json's dtype as the native precision)."""
    c = _Cfg(cfg)
    fields = _BUILDERS[detect_family(cfg)](c)
    moe = fields["moe"]
    per_class = checkpoint_precisions(cfg, num_layers=fields["num_layers"], num_dense_layers=fields["num_dense_layers"],
                                      moe=moe is not None, shared=bool(moe and moe.shared_ffn_dim),
                                      hf_quant_config=hf_quant_config)
    if hf_quant_config is not None:
        section = modelopt_section(hf_quant_config)
        assert section is not None  # checkpoint_precisions raised otherwise
        fields["native_precision"] = modelopt_precision(section)
    return ModelSpec(id=id, name=name or id, checkpoint_precisions=per_class, **fields)


_COMMON_KEYS = {
    "hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "vocab_size": "vocab_size",
    "max_context_tokens": "max_position_embeddings", "tie_embeddings": "tie_word_embeddings",
    "native_precision": "quantization_config.quant_method, else torch_dtype / dtype",
    "attention.num_q_heads": "num_attention_heads", "attention.num_kv_heads": "num_key_value_heads",
    "attention.qk_head_dim": "head_dim (else hidden_size / num_attention_heads)",
    "attention.v_head_dim": "head_dim (else hidden_size / num_attention_heads)",
}
FAMILY_KEYS: Mapping[Family, Mapping[str, str]] = {
    Family.DEEPSEEK: {
        **_COMMON_KEYS, "num_dense_layers": "first_k_dense_replace, moe_layer_freq",
        "dense_ffn_dim": "intermediate_size", "num_mtp_layers": "num_nextn_predict_layers",
        "attention.num_kv_heads": "num_key_value_heads (nominal under MLA)",
        "attention.qk_head_dim": "qk_nope_head_dim + qk_rope_head_dim", "attention.v_head_dim": "v_head_dim",
        "attention.q_lora_rank": "q_lora_rank", "attention.kv_lora_rank": "kv_lora_rank",
        "attention.qk_rope_head_dim": "qk_rope_head_dim", "moe.num_routed_experts": "n_routed_experts",
        "moe.top_k": "num_experts_per_tok", "moe.expert_ffn_dim": "moe_intermediate_size",
        "moe.num_shared_experts": "n_shared_experts",
        "moe.shared_ffn_dim": "n_shared_experts * moe_intermediate_size", "moe.num_groups": "n_group",
        "moe.topk_groups": "topk_group"},
    Family.QWEN_MOE: {
        **_COMMON_KEYS, "num_dense_layers": "mlp_only_layers, decoder_sparse_step",
        "dense_ffn_dim": "intermediate_size (dense layers only)", "moe.num_routed_experts": "num_experts",
        "moe.top_k": "num_experts_per_tok", "moe.expert_ffn_dim": "moe_intermediate_size",
        "moe.shared_ffn_dim": "shared_expert_intermediate_size",
        "attention.sliding_window_tokens": "use_sliding_window, sliding_window, max_window_layers"},
    Family.MIXTRAL: {
        **_COMMON_KEYS, "moe.num_routed_experts": "num_local_experts", "moe.top_k": "num_experts_per_tok",
        "moe.expert_ffn_dim": "intermediate_size", "attention.sliding_window_tokens": "sliding_window"},
    Family.GPT_OSS: {
        **_COMMON_KEYS, "attention.qk_head_dim": "head_dim", "attention.v_head_dim": "head_dim",
        "moe.num_routed_experts": "num_local_experts", "moe.top_k": "num_experts_per_tok",
        "moe.expert_ffn_dim": "intermediate_size", "attention.sliding_window_tokens": "sliding_window",
        "attention.sliding_window_layer_fraction": "layer_types (share of sliding_attention)"},
    Family.LLAMA: {**_COMMON_KEYS, "num_dense_layers": "num_hidden_layers", "dense_ffn_dim": "intermediate_size"},
    Family.STEP3: {
        **_COMMON_KEYS, "max_context_tokens": "max_position_embedding (else max_seq_len)",
        "attention.num_kv_heads": "num_attention_groups", "attention.qk_head_dim": "head_dim",
        "attention.v_head_dim": "head_dim", "attention.q_lora_rank": "share_q_dim",
        "num_dense_layers": "num_hidden_layers minus the moe_layers_enum count",
        "dense_ffn_dim": "intermediate_size", "moe.num_routed_experts": "moe_num_experts", "moe.top_k": "moe_top_k",
        "moe.expert_ffn_dim": "moe_intermediate_size", "moe.shared_ffn_dim": "share_expert_dim",
        "moe.num_shared_experts": "1 when share_expert_dim > 0"},
}
"""ModelSpec field path -> the config.json key(s) it is read from, per family (for provenance reports)."""
