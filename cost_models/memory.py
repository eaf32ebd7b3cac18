"""Per-device memory of a plan: weights under its sharding, KV cache, activations, buffers, reserve.

Sources and arithmetic:

* weight element counts come from :mod:`cost_models.params` (recomputed from config.json values; checked
  against the published totals in tests/test_params.py);
* MLA caches ``kv_lora_rank + qk_rope_head_dim`` values per token per layer (DeepSeek-V2 paper §2.1.2;
  576 for V3: 61 x 576 x 2 B = 70,272 B/token in BF16); under attention TP the latent is not split by head,
  so every TP rank keeps the whole latent (replicated);
* GQA/MHA caches ``2 * kv_heads * head_dim`` values per token per layer, split over ``min(attn_tp, kv_heads)``;
* block-scaled FP8 weights carry one FP32 scale per 128 x 128 block (DeepSeek-V3 config
  ``weight_block_size: [128, 128]``): 4 / 16384 bytes per element;
* the runtime reserve and buffer sizes are estimates (see constants below).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cost_models import params
from cost_models.parallel import ParallelDims, StageLayers
from cost_models.specs import AttentionKind, ModelSpec, Precision

GIB = 2**30

RUNTIME_RESERVE_BYTES = 3 * GIB
"""CUDA/CANN context, GEMM workspaces, NCCL/HCCL internal buffers, allocator fragmentation.
Estimated: serving engines leave 8-12 % of an 80 GB card outside their static pool
(SGLang ``mem_fraction_static`` 0.85-0.9 on 80 GB), of which activations are a separate term here."""

FP8_BLOCK_SCALE_BYTES_PER_ELEMENT = 4.0 / (128 * 128)
"""One FP32 scale per 128x128 block (DeepSeek-V3 quantization_config)."""

EP_BUFFER_COPIES = 2.0
"""Send + receive staging for dispatch and combine (DeepEP allocates separate NVL and RDMA buffers)."""


def weight_bytes_per_element(precision: Precision) -> float:
    extra = FP8_BLOCK_SCALE_BYTES_PER_ELEMENT if precision in (Precision.FP8, Precision.INT8) else 0.0
    if precision is Precision.FP4:
        extra = 1.0 / 32  # MXFP4: one 8-bit scale per 32 elements (OCP MX spec)
    return precision.bytes_per_element + extra


@dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Bytes on the busiest device of a plan."""

    attention_weight_bytes: float
    dense_ffn_weight_bytes: float
    shared_expert_weight_bytes: float
    routed_expert_weight_bytes: float
    router_weight_bytes: float
    embedding_weight_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    comm_buffer_bytes: float
    runtime_reserve_bytes: float
    capacity_bytes: float

    @property
    def weight_bytes(self) -> float:
        return (self.attention_weight_bytes + self.dense_ffn_weight_bytes + self.shared_expert_weight_bytes
                + self.routed_expert_weight_bytes + self.router_weight_bytes + self.embedding_weight_bytes)

    @property
    def static_bytes(self) -> float:
        """Everything that does not grow with the batch: weights, buffers, reserve."""
        return self.weight_bytes + self.comm_buffer_bytes + self.runtime_reserve_bytes

    @property
    def used_bytes(self) -> float:
        return self.static_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def free_bytes(self) -> float:
        return self.capacity_bytes - self.used_bytes

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d.update(weight_bytes=self.weight_bytes, static_bytes=self.static_bytes, used_bytes=self.used_bytes,
                 free_bytes=self.free_bytes)
        return d


def kv_bytes_per_token(model: ModelSpec, dims: ParallelDims, kv_precision: Precision,
                       stage: StageLayers | None = None) -> float:
    """KV-cache bytes one device holds per token of one of its sequences, over the layers of ``stage``
    (default: the stage with the most layers)."""
    att = model.attention
    layers = (stage or _longest_stage(model, dims)).layers
    if att.kind is AttentionKind.MLA:
        per_layer = att.kv_lora_rank + att.qk_rope_head_dim
    else:
        split = min(dims.attn_tp, att.num_kv_heads)
        per_layer = 2 * att.num_kv_heads * att.qk_head_dim / split
        if att.sliding_window_tokens is not None and att.sliding_window_layer_fraction:
            # sliding layers keep at most the window; callers asking per token of long context get the mean
            per_layer *= 1.0 - att.sliding_window_layer_fraction
    return per_layer * layers * kv_precision.bytes_per_element


def sliding_kv_bytes_per_sequence(model: ModelSpec, dims: ParallelDims, kv_precision: Precision,
                                  stage: StageLayers | None = None) -> float:
    """Fixed KV bytes per sequence held by sliding-window layers (window tokens each), 0 if none."""
    att = model.attention
    if att.sliding_window_tokens is None or not att.sliding_window_layer_fraction or att.kind is AttentionKind.MLA:
        return 0.0
    split = min(dims.attn_tp, att.num_kv_heads)
    per_layer = 2 * att.num_kv_heads * att.qk_head_dim / split
    layers = (stage or _longest_stage(model, dims)).layers * att.sliding_window_layer_fraction
    return per_layer * layers * att.sliding_window_tokens * kv_precision.bytes_per_element


def kv_bytes_per_sequence(model: ModelSpec, dims: ParallelDims, kv_precision: Precision, context_tokens: int,
                          stage: StageLayers | None = None) -> float:
    """KV bytes one sequence of ``context_tokens`` occupies on each device of its attention rank."""
    window = model.attention.sliding_window_tokens
    full = kv_bytes_per_token(model, dims, kv_precision, stage) * context_tokens
    if window is None:
        return full
    return full + sliding_kv_bytes_per_sequence(model, dims, kv_precision, stage) * min(1.0, context_tokens / window)


def _longest_stage(model: ModelSpec, dims: ParallelDims) -> StageLayers:
    return max(dims.pipeline_stages(model), key=lambda st: st.layers)


def attention_replicated_elements(model: ModelSpec) -> int:
    """MLA down-projections (q_a, kv_a) are not split by head, so attention TP replicates them."""
    att = model.attention
    if att.kind is not AttentionKind.MLA:
        return 0
    return model.hidden_size * ((att.q_lora_rank or 0) + att.kv_lora_rank + att.qk_rope_head_dim)


def weight_breakdown(model: ModelSpec, dims: ParallelDims, weight_precision: Precision,
                     stage: StageLayers | None = None) -> dict[str, float]:
    """Weight bytes on one device of ``stage``, by kind (default: the stage with the most weight bytes)."""
    if stage is None:
        return max((weight_breakdown(model, dims, weight_precision, st) for st in dims.pipeline_stages(model)),
                   key=lambda w: sum(w.values()))
    wb = weight_bytes_per_element(weight_precision)
    bf16 = Precision.BF16.bytes_per_element
    att_total = params.attention_weight_elements(model)
    att_rep = attention_replicated_elements(model)
    att_dev = (att_rep + (att_total - att_rep) / dims.attn_tp) * stage.layers * wb
    dense_dev = params.dense_ffn_weight_elements(model) / dims.dense_tp * stage.dense_layers * wb
    moe_layers = stage.moe_layers
    shared_dev = routed_dev = router_dev = 0.0
    if model.moe is not None:
        # shared experts are split like attention (TP inside the attention group, replicated across attn DP)
        shared_dev = params.shared_expert_weight_elements(model) / dims.attn_tp * moe_layers * wb
        routed_dev = (params.routed_expert_weight_elements(model) * dims.experts_per_device(model) / dims.moe_tp
                      * moe_layers * wb)
        router_dev = params.router_weight_elements(model) * moe_layers * bf16
    return {
        "attention_weight_bytes": att_dev,
        "dense_ffn_weight_bytes": dense_dev,
        "shared_expert_weight_bytes": shared_dev,
        "routed_expert_weight_bytes": routed_dev,
        "router_weight_bytes": router_dev,
        "embedding_weight_bytes": embedding_bytes(model, dims, stage),
    }


def embedding_bytes(model: ModelSpec, dims: ParallelDims, stage: StageLayers) -> float:
    """Input embedding and LM head on one device of ``stage``, vocabulary-parallel over the attention TP group
    (BF16). With one stage it holds both (one table when tied); with pp > 1 the first stage holds the embedding
    and the last the head, each a full table (a tied table is needed at both ends)."""
    table = model.vocab_size * model.hidden_size / dims.attn_tp * Precision.BF16.bytes_per_element
    if stage.holds_embedding and stage.holds_head:
        return table if model.tie_embeddings else 2 * table
    return table * (stage.holds_embedding + stage.holds_head)


def activation_bytes(model: ModelSpec, dims: ParallelDims, *, tokens_per_device: float,
                     routed_tokens_per_device: float, act_precision: Precision) -> float:
    """Peak transient activation bytes of one forward on one device.

    Residual stream and norm output (2 x tokens x hidden), the widest FFN intermediate (gate+up output, 2 x width),
    routed-expert gather buffers, and FP32 logits for the sequences being sampled. Estimated from the op shapes;
    engines reuse buffers between layers, so one layer's peak is what counts.
    """
    h = model.hidden_size
    ab = max(act_precision.bytes_per_element, 2.0)
    dense_width = model.dense_ffn_dim / dims.dense_tp if model.num_dense_layers else 0.0
    resid = 3 * tokens_per_device * h * ab
    dense_inter = tokens_per_device * 2 * dense_width * ab
    moe_inter = 0.0
    if model.moe is not None:
        moe_inter = routed_tokens_per_device * (h + 2 * model.moe.expert_ffn_dim / dims.moe_tp) * ab
    att = model.attention
    qkv = tokens_per_device * (att.num_q_heads * (att.qk_head_dim + att.v_head_dim)) / dims.attn_tp * ab
    logits = tokens_per_device * model.vocab_size / dims.attn_tp * 4.0
    return resid + max(dense_inter, moe_inter, qkv, logits)


def comm_buffer_bytes(model: ModelSpec, dims: ParallelDims, *, routed_tokens_per_device: float,
                      dispatch_precision: Precision) -> float:
    """EP dispatch/combine staging buffers (receive side sized for the routed tokens, BF16 combine)."""
    if model.moe is None or dims.moe_ep == 1:
        return 0.0
    per_token = model.hidden_size * (dispatch_precision.bytes_per_element + Precision.BF16.bytes_per_element)
    return EP_BUFFER_COPIES * routed_tokens_per_device * per_token


def memory_breakdown(model: ModelSpec, dims: ParallelDims, *, capacity_bytes: float, weight_precision: Precision,
                     kv_precision: Precision, act_precision: Precision, dispatch_precision: Precision,
                     sequences_per_device: float, context_tokens: int, tokens_per_device: float) -> MemoryBreakdown:
    """Full per-device memory for a phase that holds ``sequences_per_device`` sequences of ``context_tokens``
    and pushes ``tokens_per_device`` tokens through one forward, on the pipeline stage that uses the most."""
    return max((_stage_breakdown(model, dims, st, capacity_bytes=capacity_bytes, weight_precision=weight_precision,
                                 kv_precision=kv_precision, act_precision=act_precision,
                                 dispatch_precision=dispatch_precision, sequences_per_device=sequences_per_device,
                                 context_tokens=context_tokens, tokens_per_device=tokens_per_device)
                for st in dict.fromkeys(dims.pipeline_stages(model))), key=lambda m: m.used_bytes)


def _stage_breakdown(model: ModelSpec, dims: ParallelDims, stage: StageLayers, *, capacity_bytes: float,
                     weight_precision: Precision, kv_precision: Precision, act_precision: Precision,
                     dispatch_precision: Precision, sequences_per_device: float, context_tokens: int,
                     tokens_per_device: float) -> MemoryBreakdown:
    routed = routed_tokens_per_device(model, dims, tokens_per_device)
    # a device holds the KV of the sequences of its attention-DP rank; with attn_tp the rank's sequences are
    # shared by attn_tp devices, each keeping its share of heads (or the full latent under MLA).
    seqs_per_rank = sequences_per_device * dims.attn_tp
    kv = kv_bytes_per_sequence(model, dims, kv_precision, context_tokens, stage) * seqs_per_rank
    return MemoryBreakdown(
        **weight_breakdown(model, dims, weight_precision, stage),
        kv_cache_bytes=kv,
        activation_bytes=activation_bytes(model, dims, tokens_per_device=tokens_per_device * dims.attn_tp,
                                          routed_tokens_per_device=routed, act_precision=act_precision),
        comm_buffer_bytes=comm_buffer_bytes(model, dims, routed_tokens_per_device=routed,
                                            dispatch_precision=dispatch_precision),
        runtime_reserve_bytes=RUNTIME_RESERVE_BYTES,
        capacity_bytes=capacity_bytes,
    )


def routed_tokens_per_device(model: ModelSpec, dims: ParallelDims, tokens_per_device: float) -> float:
    """Mean (token, expert) pairs one device's experts receive when every device pushes ``tokens_per_device``
    distinct tokens: unit tokens x top_k spread over moe_ep ranks (each rank's moe_tp devices share them)."""
    if model.moe is None:
        return 0.0
    unit_tokens = tokens_per_device * dims.unit_devices
    return unit_tokens * model.moe.top_k / dims.moe_ep


def max_sequences_per_device(model: ModelSpec, dims: ParallelDims, *, capacity_bytes: float,
                             weight_precision: Precision, kv_precision: Precision, act_precision: Precision,
                             dispatch_precision: Precision, context_tokens: int, tokens_per_sequence_step: float
                             ) -> float:
    """Largest number of sequences per device whose KV fits beside the static memory and activations, on every
    pipeline stage.

    Every batch-dependent term (KV, activations, EP buffers) is proportional to the sequence count, so a stage's
    free memory is affine in it: ``free(s) = free(0) - s * (free(0) - free(1))``, solved exactly per stage; the
    tightest stage sets the batch."""
    def free(stage: StageLayers, s: float) -> float:
        return _stage_breakdown(model, dims, stage, capacity_bytes=capacity_bytes, weight_precision=weight_precision,
                                kv_precision=kv_precision, act_precision=act_precision,
                                dispatch_precision=dispatch_precision, sequences_per_device=s,
                                context_tokens=context_tokens, tokens_per_device=s * tokens_per_sequence_step
                                ).free_bytes

    def fits(stage: StageLayers) -> float:
        f0 = free(stage, 0.0)
        if f0 < 0:
            return 0.0
        per_seq = f0 - free(stage, 1.0)
        return f0 / per_seq if per_seq > 0 else float("inf")

    return min(fits(st) for st in dict.fromkeys(dims.pipeline_stages(model)))
