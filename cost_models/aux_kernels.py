"""Byte counts of the auxiliary kernels around a layer's GEMMs and attention: the activation quantization pass in
front of a narrow-precision GEMM, RoPE (with the FP8 query of MLA decode) and the KV-cache write. Each is a
memory-bound kernel; :mod:`cost_models.ops` times it with :func:`cost_models.compute.memory_bound_cost`.
Pure functions, bytes in SI units.
"""

from __future__ import annotations

from cost_models.kinds import Phase
from cost_models.parallel import ParallelDims
from cost_models.specs import AttentionKind, ModelSpec, Precision, WeightFormat

BF16_BYTES = Precision.BF16.bytes_per_element

ACTIVATION_SCALE_GROUP = 128
"""Elements per activation scale of a 1-byte (FP8 / INT8) GEMM input: one FP32 scale per token and 128 channels
(DeepSeek-V3 report, arXiv 2412.19437 §3.3.1, "1x128 tile" activation scaling; DeepGEMM README: the LHS
scaling factors are per 1 x 128)."""


def quantized_input_bytes_per_element(math_precision: Precision, fmt: WeightFormat) -> float:
    """Bytes per element the quantized copy of a GEMM input takes (values + scales) when the GEMM's tensor-core
    math runs at ``math_precision``; 0 at BF16 (no quantization pass). FP8 / INT8: 1 + 4 / 128; FP4 formats their
    own block layout (NVFP4: 0.5 + 1 / 16)."""
    if math_precision.bytes_per_element >= BF16_BYTES:
        return 0.0
    if math_precision.bytes_per_element >= 1.0:
        return math_precision.bytes_per_element + 4.0 / ACTIVATION_SCALE_GROUP
    return math_precision.bytes_per_element + fmt.scale_bytes_per_element


def kv_write_bytes(model: ModelSpec, dims: ParallelDims, tokens: int, kv_precision: Precision) -> float:
    """Writing each new token's cache entry into the paged KV cache (SGLang ``set_kv_buffer``, vLLM
    ``reshape_and_cache_flash`` / ``concat_and_cache_mla``): the BF16 key / value (MLA: the 512-wide latent and
    the 64-wide rope key) read once and written at the cache precision, ``tokens x elements x (2 + kv bytes)``;
    e.g. DeepSeek-V3, 128 tokens, FP8 cache: 128 x 576 x 3 = 221,184 bytes. Elements per token as this device's
    cache holds them (the per-layer count of :func:`cost_models.memory.kv_bytes_per_token`)."""
    att = model.attention
    if att.kind is AttentionKind.MLA:
        elements = float(att.kv_lora_rank + att.qk_rope_head_dim)
    elif att.kind is AttentionKind.MFA:
        elements = float(att.num_kv_heads * (att.qk_head_dim + att.v_head_dim))
    else:
        elements = 2 * att.num_kv_heads * att.qk_head_dim / min(dims.attn_tp, att.num_kv_heads)
    return tokens * elements * (BF16_BYTES + kv_precision.bytes_per_element)


def rope_pass(model: ModelSpec, phase: Phase, heads: int, tokens: int, math_precision: Precision
              ) -> tuple[str, float]:
    """(op name, bytes) of RoPE on the query and key heads: ``attn.rope``, ``2 x tokens x heads x qk_head_dim x 2``
    bytes (BF16 read and written).

    MLA decode with narrow attention math (FP8 FlashMLA / TensorRT-LLM MLA kernels) takes the whole absorbed
    query in that format, so the rope kernel also quantizes it (``attn.rope_quant``: FlashInfer's fused MLA
    RoPE-quantize kernel, which the SGLang GB200 part II blog names): it reads the absorbed query
    ``[tokens, heads, kv_lora_rank]`` and its rope part ``[tokens, heads, rope]`` in BF16 and writes the
    concatenated ``[tokens, heads, kv_lora_rank + rope]`` at the math precision; e.g. DeepSeek-V3, 1 token,
    128 heads, FP8: 128 x 576 x (2 + 1) = 221,184 bytes."""
    att = model.attention
    if att.kind is AttentionKind.MLA and phase == Phase.DECODE and math_precision.bytes_per_element < BF16_BYTES:
        latent = att.kv_lora_rank + att.qk_rope_head_dim
        return "attn.rope_quant", tokens * heads * latent * (BF16_BYTES + math_precision.bytes_per_element)
    return "attn.rope", 2 * tokens * heads * att.qk_head_dim * BF16_BYTES
