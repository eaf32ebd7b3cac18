"""The ``cost`` document (schema ``moeplan.cost/1``): the predicted time of one kernel on one device."""

from __future__ import annotations

from typing import Literal

from cost_models.compute import KernelCost
from planner.documents.base import Document, NonNegative, Number, Phase, Positive, field, schema_id

COST_SCHEMA = "moeplan.cost/1"
KernelDtype = Literal["bf16", "fp8", "int8", "fp4"]
WeightDtype = Literal["bf16", "fp8", "int8", "mxfp4", "nvfp4"]
"""Weight storage formats with their scales (cost_models.specs.WeightFormat)."""
KvDtype = Literal["bf16", "fp8", "int8"]


class GemmArgs(Document):
    """What `moeplan cost gemm` was asked: a [batch, M, K] x [batch, K, N] GEMM."""

    m: Positive = field("Rows of the left operand (tokens); a count.")
    k: Positive = field("Reduction length; a count.")
    n: Positive = field("Columns of the right operand; a count.")
    batch: Positive = field("Independent GEMMs of this shape (experts); a count.")
    dtype: KernelDtype = field("Math (tensor-core) precision and activation storage.")
    weight_dtype: WeightDtype = field("Weight storage with its scales (--weight-dtype; --dtype's format when not "
                                      "given): `mxfp4` / `nvfp4` under `bf16` math is a weight-only kernel.")


class AttentionArgs(Document):
    """What `moeplan cost attention` was asked: causal prefill or one-token decode attention."""

    phase: Phase = field("`prefill` (causal, over the prompt) or `decode` (one query token over the KV cache).")
    batch: Positive = field("Sequences; a count.")
    q_heads: Positive = field("Query heads; a count.")
    kv_heads: Positive = field("KV heads (divides q_heads); a count.")
    head_dim: Positive = field("Elements per head.")
    context: Positive = field("Prompt length (prefill) or KV length (decode), tokens.")
    dtype: Literal["bf16", "fp8"] = field("Attention math precision (and Q storage).")
    kv_dtype: KvDtype = field("KV-cache storage (--kv-dtype; --dtype when not given).")


class CostDocument(Document):
    """Output of `moeplan cost gemm|attention --json`: the predicted time of one kernel on one device and what bound
    it. Versioning: adding an optional key keeps the version; removing, renaming or changing the meaning of a key
    bumps it."""

    schema_id: Literal["moeplan.cost/1"] = schema_id(COST_SCHEMA)
    kernel: Literal["gemm", "attention"] = field("The kernel costed.")
    device: str = field("Device catalog id.")
    args: GemmArgs | AttentionArgs = field("The kernel's shape, as given on the command line.")
    seconds: NonNegative = field("Predicted kernel time, seconds.")
    flops: NonNegative = field("Useful floating-point operations, FLOP (padding not counted).")
    bytes: NonNegative = field("Minimum HBM traffic, bytes: each input read once, each output written once.")
    bound: Literal["compute", "memory", "overhead"] = field("Which term dominated: `compute`, `memory` or `overhead` "
                                                           "(launch / tile overhead).")
    achieved_flop_per_s: NonNegative = field("flops / seconds, FLOP/s.")
    achieved_bytes_per_s: NonNegative = field("bytes / seconds, bytes/s.")
    detail: dict[str, Number] = field("The model's breakdown (kernel-specific): `compute_s`, `memory_s`, "
                                      "`overhead_s` (seconds), `waves`, `wave_efficiency`, `tile_efficiency` ... "
                                      "(counts and fractions).")


def cost_document(kernel: str, device_id: str, args: GemmArgs | AttentionArgs, c: KernelCost) -> CostDocument:
    return CostDocument(schema_id=COST_SCHEMA, kernel=kernel, device=device_id, args=args, seconds=c.seconds,
                        flops=c.flops, bytes=c.bytes, bound=c.bound, achieved_flop_per_s=c.flops / c.seconds,
                        achieved_bytes_per_s=c.bytes / c.seconds, detail=dict(c.detail))
