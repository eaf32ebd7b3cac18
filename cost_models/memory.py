"""Per-device memory of a plan: weights under its sharding, KV cache, activations, buffers, reserve.

Sources and arithmetic:

* weight element counts come from :mod:`cost_models.params` (recomputed from config.json values; checked
  against the published totals in tests/test_params.py);
* MLA caches ``kv_lora_rank + qk_rope_head_dim`` values per token per layer (DeepSeek-V2 paper §2.1.2;
  576 for V3: 61 x 576 x 2 B = 70,272 B/token in BF16); under attention TP the latent is not split by head,
  so every TP rank keeps the whole latent (replicated);
* GQA/MHA caches ``2 * kv_heads * head_dim`` values per token per layer, split over ``min(attn_tp, kv_heads)``;
* each op class's weights are stored in their own format (:class:`~cost_models.specs.WeightFormat`, scales
  included: FP8 one FP32 scale per 128 x 128 block, MXFP4 one E8M0 per 32, NVFP4 one E4M3 per 16);
* with multi-token prediction the draft modules add one decoder layer each (sharded like the main layers), their
  ``2h x h`` projection (replicated: SGLang's ``DeepseekModelNextN`` builds ``eh_proj`` as a plain, unsharded
  ``nn.Linear``) and one layer of KV per cached token; the embedding and head are shared with the main model
  (the draft modules run on the pipeline stage that holds the head);
* the runtime reserve and buffer sizes are estimates (see constants below), unless the engine sizes a static
  pool (weights + KV) as a fraction of the device (``static_fraction``, SGLang ``--mem-fraction-static``:
  :mod:`cost_models.memory_pool`); then everything outside the pool is the rest of the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cost_models import memory_pool, params
from cost_models.parallel import ParallelDims, StageLayers
from cost_models.specs import AttentionKind, ModelSpec, OpPrecisions, Precision, WeightFormat

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
    """Stored bytes per element of a one-precision ``weight_precision`` (``fp4`` = MXFP4), scales included."""
    return WeightFormat.for_precision(precision).bytes_per_element


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
    mtp_weight_bytes: float = 0.0
    """Multi-token-prediction draft modules (0 when MTP is off)."""

    @property
    def weight_bytes(self) -> float:
        return (self.attention_weight_bytes + self.dense_ffn_weight_bytes + self.shared_expert_weight_bytes
                + self.routed_expert_weight_bytes + self.router_weight_bytes + self.embedding_weight_bytes
                + self.mtp_weight_bytes)

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


def mtp_kv_bytes_per_token(model: ModelSpec, dims: ParallelDims, kv_precision: Precision, modules: int) -> float:
    """KV bytes per cached token of the draft modules: one full-attention layer each (MLA: the latent, replicated
    under attention TP; GQA: the device's share of the KV heads)."""
    att = model.attention
    if att.kind is AttentionKind.MLA:
        per_layer = att.kv_lora_rank + att.qk_rope_head_dim
    else:
        per_layer = 2 * att.num_kv_heads * att.qk_head_dim / min(dims.attn_tp, att.num_kv_heads)
    return modules * per_layer * kv_precision.bytes_per_element


def _longest_stage(model: ModelSpec, dims: ParallelDims) -> StageLayers:
    return max(dims.pipeline_stages(model), key=lambda st: st.layers)


def attention_replicated_elements(model: ModelSpec) -> int:
    """MLA down-projections (q_a, kv_a) are not split by head, so attention TP replicates them."""
    att = model.attention
    if att.kind is not AttentionKind.MLA:
        return 0
    return model.hidden_size * ((att.q_lora_rank or 0) + att.kv_lora_rank + att.qk_rope_head_dim)


def _layer_weight_bytes(model: ModelSpec, dims: ParallelDims, prec: OpPrecisions) -> dict[str, float]:
    """Weight bytes one device holds of ONE attention block, dense FFN and MoE FFN, by class."""
    att_total = params.attention_weight_elements(model)
    att_rep = attention_replicated_elements(model)
    out = {"attention": (att_rep + (att_total - att_rep) / dims.attn_tp) * prec.attention_projections.bytes_per_element,
           "dense_ffn": params.dense_ffn_weight_elements(model) / dims.dense_tp * prec.dense_ffn.bytes_per_element,
           "shared": 0.0, "routed": 0.0, "router": 0.0}
    if model.moe is not None:
        # shared experts are split like attention (TP inside the attention group, replicated across attn DP)
        out["shared"] = params.shared_expert_weight_elements(model) / dims.attn_tp * prec.shared_experts.bytes_per_element
        out["routed"] = (params.routed_expert_weight_elements(model) * dims.experts_per_device(model) / dims.moe_tp
                         * prec.routed_experts.bytes_per_element)
        out["router"] = params.router_weight_elements(model) * Precision.BF16.bytes_per_element
    return out


def mtp_modules(model: ModelSpec, mtp_tokens: int) -> int:
    """Draft modules a deployment with ``mtp_tokens`` draft tokens loads: the checkpoint's MTP layers, reused for
    further tokens (DeepSeek-V3 ships one and the engines chain it k times); a model without MTP layers gets one
    draft layer of its own shape (an EAGLE-style head), 0 when MTP is off."""
    if mtp_tokens <= 0:
        return 0
    return min(mtp_tokens, model.num_mtp_layers) if model.num_mtp_layers else 1


def mtp_weight_bytes(model: ModelSpec, dims: ParallelDims, prec: OpPrecisions, modules: int) -> float:
    """Weight bytes of ``modules`` draft modules on one device: one decoder layer each (an MoE layer for an MoE
    model, the DeepSeek-V3 report §2.2 module) plus its replicated BF16 ``2h x h`` projection."""
    if modules <= 0:
        return 0.0
    layer = _layer_weight_bytes(model, dims, prec)
    ffn = layer["shared"] + layer["routed"] + layer["router"] if model.moe is not None else layer["dense_ffn"]
    eh_proj = 2 * model.hidden_size**2 * Precision.BF16.bytes_per_element
    return modules * (layer["attention"] + ffn + eh_proj)


def weight_breakdown(model: ModelSpec, dims: ParallelDims, weight_precision: Precision | None = None,
                     stage: StageLayers | None = None, *, precisions: OpPrecisions | None = None,
                     mtp_modules: int = 0) -> dict[str, float]:
    """Weight bytes on one device of ``stage``, by kind (default: the stage with the most weight bytes), each op
    class in its own format (``precisions``; default: ``weight_precision`` for every class, BF16 head); the draft
    modules of multi-token prediction sit on the stage with the head."""
    if precisions is None:
        assert weight_precision is not None, "pass precisions or weight_precision"
        precisions = OpPrecisions.uniform(weight_precision)
    if stage is None:
        return max((weight_breakdown(model, dims, stage=st, precisions=precisions, mtp_modules=mtp_modules)
                    for st in dims.pipeline_stages(model)), key=lambda w: sum(w.values()))
    one = _layer_weight_bytes(model, dims, precisions)
    return {
        "attention_weight_bytes": one["attention"] * stage.layers,
        "dense_ffn_weight_bytes": one["dense_ffn"] * stage.dense_layers,
        "shared_expert_weight_bytes": one["shared"] * stage.moe_layers,
        "routed_expert_weight_bytes": one["routed"] * stage.moe_layers,
        "router_weight_bytes": one["router"] * stage.moe_layers,
        "embedding_weight_bytes": embedding_bytes(model, dims, stage, precisions.lm_head),
        "mtp_weight_bytes": mtp_weight_bytes(model, dims, precisions, mtp_modules) if stage.holds_head else 0.0,
    }


def embedding_bytes(model: ModelSpec, dims: ParallelDims, stage: StageLayers,
                    lm_head: WeightFormat | Precision | None = None) -> float:
    """Input embedding (BF16) and LM head (``lm_head``'s format, BF16 by default) on one device of ``stage``,
    vocabulary-parallel over the attention TP group. With one stage it holds both (one BF16 table when tied); with
    pp > 1 the first stage holds the embedding and the last the head, each a full table (a tied table is needed at
    both ends)."""
    table = model.vocab_size * model.hidden_size / dims.attn_tp
    emb = table * Precision.BF16.bytes_per_element
    head = table * (lm_head.bytes_per_element if lm_head is not None else Precision.BF16.bytes_per_element)
    if stage.holds_embedding and stage.holds_head:
        return emb if model.tie_embeddings else emb + head
    return (emb if stage.holds_embedding else 0.0) + ((emb if model.tie_embeddings else head) if stage.holds_head
                                                       else 0.0)


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
                     sequences_per_device: float, context_tokens: int, tokens_per_device: float,
                     precisions: OpPrecisions | None = None, mtp_modules: int = 0,
                     runtime_reserve_bytes: float | None = None,
                     static_fraction: float | None = None) -> MemoryBreakdown:
    """Full per-device memory for a phase that holds ``sequences_per_device`` sequences of ``context_tokens``
    and pushes ``tokens_per_device`` tokens through one forward, on the pipeline stage that uses the most.
    ``precisions`` (default: ``weight_precision`` / ``kv_precision`` for every class) sizes each class;
    ``mtp_modules`` adds the draft modules' weights and KV; ``runtime_reserve_bytes`` (default
    :data:`RUNTIME_RESERVE_BYTES`) is what the serving engine keeps outside them; ``static_fraction`` (an engine's
    static pool share, overriding ``runtime_reserve_bytes``) books the rest of the device outside the pool."""
    precisions = precisions or OpPrecisions.uniform(weight_precision, kv_precision)
    return max((_stage_breakdown(model, dims, st, capacity_bytes=capacity_bytes, precisions=precisions,
                                 act_precision=act_precision, dispatch_precision=dispatch_precision,
                                 sequences_per_device=sequences_per_device, context_tokens=context_tokens,
                                 tokens_per_device=tokens_per_device, mtp_modules=mtp_modules,
                                 runtime_reserve_bytes=RUNTIME_RESERVE_BYTES if runtime_reserve_bytes is None
                                 else runtime_reserve_bytes, static_fraction=static_fraction)
                for st in dict.fromkeys(dims.pipeline_stages(model))), key=lambda m: m.used_bytes)


def _stage_breakdown(model: ModelSpec, dims: ParallelDims, stage: StageLayers, *, capacity_bytes: float,
                     precisions: OpPrecisions, act_precision: Precision, dispatch_precision: Precision,
                     sequences_per_device: float, context_tokens: int, tokens_per_device: float,
                     mtp_modules: int = 0, runtime_reserve_bytes: float = RUNTIME_RESERVE_BYTES,
                     static_fraction: float | None = None) -> MemoryBreakdown:
    routed = routed_tokens_per_device(model, dims, tokens_per_device)
    # a device holds the KV of the sequences of its attention-DP rank; with attn_tp the rank's sequences are
    # shared by attn_tp devices, each keeping its share of heads (or the full latent under MLA).
    seqs_per_rank = sequences_per_device * dims.attn_tp
    kv_precision = precisions.kv_cache
    draft_kv = mtp_kv_bytes_per_token(model, dims, kv_precision, mtp_modules) if stage.holds_head else 0.0
    kv = (kv_bytes_per_sequence(model, dims, kv_precision, context_tokens, stage)
          + draft_kv * context_tokens) * seqs_per_rank
    act = activation_bytes(model, dims, tokens_per_device=tokens_per_device * dims.attn_tp,
                           routed_tokens_per_device=routed, act_precision=act_precision)
    comm = comm_buffer_bytes(model, dims, routed_tokens_per_device=routed, dispatch_precision=dispatch_precision)
    if static_fraction is not None:
        runtime_reserve_bytes = memory_pool.outside_pool_reserve_bytes(
            device_bytes=capacity_bytes, mem_fraction_static=static_fraction, activation_bytes=act,
            comm_buffer_bytes=comm)
    return MemoryBreakdown(
        **weight_breakdown(model, dims, stage=stage, precisions=precisions, mtp_modules=mtp_modules),
        kv_cache_bytes=kv, activation_bytes=act, comm_buffer_bytes=comm,
        runtime_reserve_bytes=runtime_reserve_bytes, capacity_bytes=capacity_bytes,
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
                             dispatch_precision: Precision, context_tokens: int, tokens_per_sequence_step: float,
                             precisions: OpPrecisions | None = None, mtp_modules: int = 0,
                             runtime_reserve_bytes: float | None = None,
                             static_fraction: float | None = None) -> float:
    """Largest number of sequences per device whose KV fits beside the static memory and activations, on every
    pipeline stage (``runtime_reserve_bytes`` and ``static_fraction`` as in :func:`memory_breakdown`).

    Every batch-dependent term (KV, activations, EP buffers) is proportional to the sequence count, so a stage's
    free memory is affine in it: ``free(s) = free(0) - s * (free(0) - free(1))``, solved exactly per stage; the
    tightest stage sets the batch. Under a static pool the booked reserve is ``max(share - act - comm, 0)``, so
    free memory is the smaller of two affine functions; one Newton step from the first root, on the piece active
    there, lands on the exact root."""
    precisions = precisions or OpPrecisions.uniform(weight_precision, kv_precision)
    reserve = RUNTIME_RESERVE_BYTES if runtime_reserve_bytes is None else runtime_reserve_bytes

    def free(stage: StageLayers, s: float) -> float:
        return _stage_breakdown(model, dims, stage, capacity_bytes=capacity_bytes, precisions=precisions,
                                act_precision=act_precision, dispatch_precision=dispatch_precision,
                                sequences_per_device=s, context_tokens=context_tokens,
                                tokens_per_device=s * tokens_per_sequence_step, mtp_modules=mtp_modules,
                                runtime_reserve_bytes=reserve, static_fraction=static_fraction).free_bytes

    def fits(stage: StageLayers) -> float:
        f0 = free(stage, 0.0)
        if f0 < 0:
            return 0.0
        per_seq = f0 - free(stage, 1.0)
        if per_seq <= 0:
            return float("inf")
        s = f0 / per_seq
        f_s = free(stage, s)
        if f_s < 0:  # the other affine piece is active at s (see docstring)
            s -= -f_s / (free(stage, s - 1.0) - f_s)
        return s

    return min(fits(st) for st in dict.fromkeys(dims.pipeline_stages(model)))
