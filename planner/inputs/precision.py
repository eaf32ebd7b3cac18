"""Precision per op class at the YAML edge: the ``model.precision`` section and how each class is resolved.

Precedence, class by class: ``model.precision.<class>``; else ``model.weight_precision`` (every weight class but
the head); else the checkpoint's own format for the class (``quantization_config`` / ``hf_quant_config.json``,
:mod:`planner.catalog.hf_quant`); else its native precision.  Attention math is BF16 and the head BF16 unless set;
the KV cache is ``kv_precision`` (or ``model.precision.kv_cache``), else the checkpoint's, else BF16.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cost_models.specs import WEIGHT_CLASSES, DeviceSpec, ModelSpec, OpPrecisions, Precision, WeightFormat


class PrecisionProblem(Exception):
    """A precision key that cannot be honoured: its YAML path, the value and what is accepted."""

    def __init__(self, path: str, value: object, accepted: str) -> None:
        self.path, self.value, self.accepted = path, value, accepted
        super().__init__(f"{path}: got {value!r}; accepted: {accepted}")


_WEIGHT_FORMAT = Literal["bf16", "fp8", "int8", "mxfp4", "nvfp4"]


class PrecisionSection(BaseModel):
    """Precision per op class; an absent key falls back to ``weight_precision`` (weights), the checkpoint's own
    format of that class, BF16 attention math and head, ``kv_precision`` for the cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routed_experts: _WEIGHT_FORMAT | None = None
    shared_experts: _WEIGHT_FORMAT | None = None
    dense_ffn: _WEIGHT_FORMAT | None = None
    attention_projections: _WEIGHT_FORMAT | None = None
    attention: Literal["bf16", "fp8"] | None = None
    """Attention math (FlashMLA FP8, FlashAttention-3 FP8)."""
    kv_cache: Literal["bf16", "fp8", "int8"] | None = None
    lm_head: Literal["bf16", "fp8"] | None = None


def resolve_precisions(model: ModelSpec, dev: DeviceSpec, given: PrecisionSection, *, weight_precision: str | None,
                       kv_precision: str | None) -> OpPrecisions:
    """Each op class's precision: ``model.precision.<class>``, else ``weight_precision`` (weight classes but the
    head), else the checkpoint's format for the class, else its native precision; attention math BF16 and the
    KV cache ``kv_precision`` (else the checkpoint's, else BF16) unless ``model.precision`` says otherwise."""
    ckpt = model.checkpoint_precisions or OpPrecisions.uniform(model.native_precision)
    if kv_precision and given.kv_cache and kv_precision != given.kv_cache:
        raise PrecisionProblem("model.precision.kv_cache", given.kv_cache,
                               f"the same as model.kv_precision ({kv_precision}), or only one of the two")
    values: dict[str, Any] = {}
    fp4_ok = dev.supports(Precision.FP4)
    for cls in WEIGHT_CLASSES:
        label, own = getattr(given, cls), getattr(ckpt, cls)
        if label is not None:
            fmt = WeightFormat.from_label(label)
            if fmt.element is Precision.FP4 and not fp4_ok and own is not fmt:
                # FP4 storage needs FP4 tensor cores unless the checkpoint ships the class so (weight-only kernels)
                raise PrecisionProblem(f"model.precision.{cls}", label,
                                       f"a format {dev.name} runs (it has no FP4 tensor cores): bf16, fp8, int8, "
                                       f"or the checkpoint's own {own.label}")
        elif weight_precision is not None and cls != "lm_head":
            fmt = WeightFormat.for_precision(Precision.from_label(weight_precision))
            if fmt.element is own.element or (fmt.element is Precision.FP4 and not fp4_ok):
                # the checkpoint's scale layout for its element type; FP4 without FP4 tensor cores only where
                # the checkpoint ships it (gpt-oss on Hopper: MXFP4 experts, BF16 attention)
                fmt = own
        else:
            fmt = own
        values[cls] = fmt
    attention = Precision.from_label(given.attention or "bf16")
    if not dev.supports(attention):
        raise PrecisionProblem("model.precision.attention", attention.label,
                               f"bf16 ({dev.name} has no {attention.label} tensor cores)")
    kv = given.kv_cache or kv_precision
    kv_cache = Precision.from_label(kv) if kv else ckpt.kv_cache
    return OpPrecisions(**values, attention=attention, kv_cache=kv_cache)
