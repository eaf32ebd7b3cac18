"""Per-op-class weight formats from a checkpoint's quantization config (``quantization_config`` in config.json, or
NVIDIA ModelOpt's ``hf_quant_config.json``).

Dialects read (each from the files or the documented format named here):

* ``quant_method: fp8`` with ``weight_block_size: [128, 128]`` (DeepSeek-V3/R1, Kimi-K2 config.json in
  ``planner/catalog/hf_configs``): every linear layer FP8 with one FP32 scale per 128 x 128 block, except the
  modules in ``modules_to_not_convert`` (none in those files);
* ``quant_method: mxfp4`` (gpt-oss config.json): only the MoE experts are stored in MXFP4 (the transformers MXFP4
  integration swaps the expert blocks alone); ``modules_to_not_convert`` lists what stays BF16
  (``model.layers.*.self_attn``, the router, embedding and head);
* ModelOpt (TensorRT Model Optimizer unified Hugging Face export, e.g. ``nvidia/DeepSeek-R1-NVFP4``'s
  ``hf_quant_config.json``): ``{"producer": {...}, "quantization": {"quant_algo": "NVFP4" | "FP8",
  "kv_cache_quant_algo": "FP8" | null, "group_size": 16, "exclude_modules": [...]}}``; the same keys flat inside
  config.json's ``quantization_config`` with ``quant_method: modelopt`` (the shape vLLM's ``modelopt`` loader
  accepts). Every linear layer takes ``quant_algo`` except the modules ``exclude_modules`` matches (fnmatch
  patterns such as ``model.layers.30.self_attn*``); ``kv_cache_quant_algo: FP8`` means an FP8 KV cache.

A class's format is the one most of its layers have (a checkpoint that leaves a few layers' attention in BF16
counts as quantized attention when most layers are quantized). The LM head is BF16 unless a config quantizes it
by name; attention math is not stated by any of these formats (BF16).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from cost_models.specs import OpPrecisions, Precision, WeightFormat
from planner.catalog.errors import MISSING, ConfigError

_MODELOPT_ALGOS = {"NVFP4": WeightFormat.NVFP4, "FP8": WeightFormat.FP8}
_MODELOPT_KV = {None: None, "FP8": Precision.FP8}

CLASS_MODULES: Mapping[str, str] = {
    "attention_projections": "model.layers.{i}.self_attn.o_proj",
    "routed_experts": "model.layers.{i}.mlp.experts.0.down_proj",
    "shared_experts": "model.layers.{i}.mlp.shared_experts.down_proj",
    "dense_ffn": "model.layers.{i}.mlp.down_proj",
}
"""A representative module name per op class, in the Hugging Face naming of DeepSeek / Qwen / gpt-oss
checkpoints (``{i}`` = layer index), to test against a config's module patterns."""


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    """A module is excluded when a pattern names it or one of its parents (fnmatch wildcards allowed)."""
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p + ".*") for p in patterns)


def _patterns(quant: Mapping[str, Any], key: str) -> list[str]:
    value = quant.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"quantization_config.{key}", value, "a list of module names or patterns")
    return value


def _class_format(cls: str, layers: range, quantized: WeightFormat, patterns: Sequence[str]) -> WeightFormat:
    """``quantized`` unless most of the class's layers are excluded (BF16)."""
    if not layers:
        return WeightFormat.BF16
    excluded = sum(_excluded(CLASS_MODULES[cls].format(i=i), patterns) for i in layers)
    return WeightFormat.BF16 if excluded * 2 > len(layers) else quantized


def modelopt_section(cfg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ModelOpt keys of a config dict: ``hf_quant_config.json``'s ``quantization`` object, or a config.json
    ``quantization_config`` with ``quant_method: modelopt``; None when the dict is neither."""
    if isinstance(cfg.get("quantization"), Mapping):
        return cfg["quantization"]
    quant = cfg.get("quantization_config")
    if isinstance(quant, Mapping) and quant.get("quant_method") == "modelopt":
        return quant
    return None


def checkpoint_precisions(cfg: Mapping[str, Any], *, num_layers: int, num_dense_layers: int, moe: bool,
                          shared: bool, hf_quant_config: Mapping[str, Any] | None = None) -> OpPrecisions | None:
    """Per-class formats the checkpoint states; None when it states none (one dtype for everything).

    Dense layers are taken to be the first ``num_dense_layers`` (DeepSeek's ``first_k_dense_replace``)."""
    dense = range(num_dense_layers)
    moe_layers = range(num_dense_layers, num_layers) if moe else range(0)
    ranges = {"attention_projections": range(num_layers), "routed_experts": moe_layers,
              "shared_experts": moe_layers if shared else range(0), "dense_ffn": dense}
    modelopt = modelopt_section(hf_quant_config) if hf_quant_config is not None else modelopt_section(cfg)
    if hf_quant_config is not None and modelopt is None:
        raise ConfigError("hf_quant_config.quantization", MISSING, "an object with quant_algo (ModelOpt export)")
    if modelopt is not None:
        return _from_modelopt(modelopt, ranges)
    quant = cfg.get("quantization_config")
    if quant is None:
        return None
    method = quant.get("quant_method")
    patterns = _patterns(quant, "modules_to_not_convert")
    if method == "fp8":
        fmts = {c: _class_format(c, r, WeightFormat.FP8, patterns) for c, r in ranges.items()}
    elif method == "mxfp4":
        fmts = {c: WeightFormat.BF16 for c in ranges}
        fmts["routed_experts"] = _class_format("routed_experts", moe_layers, WeightFormat.MXFP4, patterns)
    else:
        raise ConfigError("quantization_config.quant_method", method,
                          "'fp8', 'mxfp4' or 'modelopt' (or no quantization_config)")
    return OpPrecisions(**fmts)


def _from_modelopt(section: Mapping[str, Any], ranges: Mapping[str, range]) -> OpPrecisions:
    algo = section.get("quant_algo", MISSING)
    if algo not in _MODELOPT_ALGOS:
        raise ConfigError("quantization.quant_algo", algo, f"one of {', '.join(_MODELOPT_ALGOS)}")
    kv = section.get("kv_cache_quant_algo")
    if kv not in _MODELOPT_KV:
        raise ConfigError("quantization.kv_cache_quant_algo", kv, "'FP8' or null")
    group = section.get("group_size", 16)
    if algo == "NVFP4" and group != 16:
        raise ConfigError("quantization.group_size", group, "16 (NVFP4 scales blocks of 16 elements)")
    patterns = _patterns(section, "exclude_modules")
    fmts = {c: _class_format(c, r, _MODELOPT_ALGOS[algo], patterns) for c, r in ranges.items()}
    return OpPrecisions(**fmts, kv_cache=_MODELOPT_KV[kv] or Precision.BF16)


def modelopt_precision(section: Mapping[str, Any]) -> Precision:
    """Element type of the bulk of a ModelOpt checkpoint's weights (its ``quant_algo``)."""
    algo = section.get("quant_algo", MISSING)
    if algo not in _MODELOPT_ALGOS:
        raise ConfigError("quantization.quant_algo", algo, f"one of {', '.join(_MODELOPT_ALGOS)}")
    return _MODELOPT_ALGOS[algo].element
