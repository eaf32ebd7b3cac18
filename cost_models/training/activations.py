"""Activation bytes one device keeps per layer and micro-batch for the backward pass.

Base: Korthikanti et al. 2022 (arXiv 2205.05198) §4, Table 2.  Per layer of a GPT block (``s`` tokens, micro-batch
``b``, hidden ``h``, ``a`` heads, 2-byte activations, 1-byte dropout masks) it keeps ``sbh (34 + 5 a s / h)`` bytes:
attention 11 sbh (QKV input 2, Q and K 4, V 2, projection input 2, dropout mask 1) plus 5 a s^2 b (softmax output
2, its dropout mask 1, dropout output 2); MLP 19 sbh (fc1 input 2, GeLU input 8, fc2 input 8, dropout mask 1); the
two norm inputs 4 sbh.  Tensor parallelism splits the 24 sbh + 5 a s^2 b that live inside the TP region; sequence
parallelism also splits the remaining 10 sbh (norm inputs, the inputs of the column-parallel GEMMs, dropout masks);
selective recompute drops the 5 a s^2 b; full recompute keeps the layer input (2 sbh) only.  This module itemises
those tensors so the same terms extend to:

* fused (flash) attention, which keeps its output and a 4-byte log-sum-exp per head instead of the s x s terms
  (Dao 2023, FlashAttention-2 §3.1) [extension];
* GQA: K and V at ``Hkv`` heads; gated FFNs keep gate and up outputs (``2 x 2 f``) and the activation output
  [extension];
* MLA (DeepSeek-V2 §2.1): the normed input of the down-projections, the q and kv latents before and after their
  norms, the decoupled rope key, and per-head q, k, v after the up-projections; the latents are kept on every TP
  rank (the down-projections are not split by heads) [extension];
* MoE: the normed input of the router and the fp32 router scores, then per routed copy (``top_k`` per token, the
  busiest EP rank receiving ``imbalance`` x the mean; ``etp`` ranks share each copy and split its width) the
  expert input, the gate/up outputs and the activation output; the routing weights are applied at the activation
  (Megatron-Core ``activation_func_with_probs``), so the expert outputs need not be kept [extension];
* FP8 recipes keep Linear inputs at ``recipe.saved_linear_input_bytes_per_element`` (DeepSeek-V3 §3.3.4) [extension],
  a class kept in BF16 (``workload.bf16_classes``) at 2 bytes.

Names of the recompute modules follow Megatron-Core's ``--recompute-modules``.
"""

from __future__ import annotations

from dataclasses import replace

from cost_models.specs import AttentionKind, ModelSpec
from cost_models.training import op_sac
from cost_models.training.dims import TrainingDims
from cost_models.training.specs import Recompute, RecomputeModule, TrainingOpClass, TrainingWorkload

ACT_BYTES = 2.0
"""bf16 activations."""
MASK_BYTES = 1.0
"""A dropout mask element (Korthikanti Table 2)."""
LSE_BYTES = 4.0
"""fp32 log-sum-exp per query row and head kept by fused attention."""
ROUTER_SCORE_BYTES = 4.0
"""fp32 router scores per expert per token (Megatron-Core computes routing in fp32)."""
LOGIT_BYTES = 4.0 + 2.0
"""Per vocabulary entry of the last stage: bf16 logits and the fp32 softmax of the vocab-parallel cross-entropy."""
TORCH_LOSS_BYTES = 4 * 4.0
"""Per vocabulary entry at the peak of PyTorch's cross-entropy on fp32-upcast logits under loss parallelism
(pytorch/pytorch@3be12382 torch/distributed/tensor/parallel/loss.py): its backward
``_nll_loss_and_log_softmax_backward`` holds the saved fp32 log-probabilities, the ``zeros_like`` gradient, ``exp``
of the log-probabilities and their sum at once (4 x 4 bytes); the forward ``_log_softmax`` peaks lower, at the
bf16 logits (2), the fp32 copy, ``shifted`` and its ``exp`` (3 x 4): 14 bytes."""


def tokens_per_device(dims: TrainingDims, workload: TrainingWorkload) -> float:
    """Tokens of one micro-batch in the attention of one device's TP group: ``b s / cp``."""
    return dims.micro_batch_sequences * workload.seq_tokens / dims.cp


def _sp(dims: TrainingDims) -> float:
    """Divisor of the tensors outside the TP region: tp with sequence parallelism, else 1."""
    return float(dims.tp) if dims.sp_active else 1.0


def _drop(workload: TrainingWorkload, module: RecomputeModule) -> bool:
    return workload.recompute.drops(module)


def attention_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload) -> dict[str, float]:
    """Saved bytes of one attention block per micro-batch on one device, by tensor."""
    a, h, tp = model.attention, model.hidden_size, dims.tp
    t = tokens_per_device(dims, workload)
    lin = workload.saved_input_bytes_per_element(TrainingOpClass.ATTENTION_PROJECTIONS)
    q_heads, kv_heads = a.num_q_heads / tp, max(1.0, a.num_kv_heads / tp)
    out = {"attn_norm_input": t * ACT_BYTES * h / _sp(dims)}
    normed = 0.0 if _drop(workload, RecomputeModule.NORM) else t * lin * h / _sp(dims)
    if a.kind is AttentionKind.MLA:
        rq = a.q_lora_rank or 0
        out["mla_down_input"] = normed
        latents = (2 * rq + 2 * a.kv_lora_rank + a.qk_rope_head_dim) * ACT_BYTES
        normed_latents = 0.0 if _drop(workload, RecomputeModule.NORM) else (rq + a.kv_lora_rank) * lin
        out["mla_latents"] = t * (latents + normed_latents)
        up = 0.0 if _drop(workload, RecomputeModule.MLA_UP_PROJ) else 1.0
        out["qkv"] = up * t * ACT_BYTES * q_heads * (2 * a.qk_head_dim + a.v_head_dim)
    else:
        out["qkv_input"] = normed
        out["qkv"] = t * ACT_BYTES * (q_heads * a.qk_head_dim + kv_heads * (a.qk_head_dim + a.v_head_dim))
    if workload.flash_attention:
        out["core_attention"] = t * LSE_BYTES * q_heads
    elif not _drop(workload, RecomputeModule.CORE_ATTENTION):
        # Korthikanti: 5 a s^2 b bytes per layer = 5 a s per token (softmax 2, mask 1, dropout output 2)
        out["core_attention"] = t * 5.0 * q_heads * workload.seq_tokens
    out["proj_input"] = t * lin * q_heads * a.v_head_dim
    if workload.dropout:
        out["attn_dropout_mask"] = t * MASK_BYTES * h / _sp(dims)
    return out


def _ffn_bytes(tokens: float, width: float, gated: bool, lin: float, drop_act: bool,
               fc1_output_bytes: float = ACT_BYTES) -> dict[str, float]:
    """Gate/up outputs (2 x width gated, width plain) and the activation output (the down-projection input)."""
    return {"fc1_output": tokens * fc1_output_bytes * width * (2 if gated else 1),
            "fc2_input": 0.0 if drop_act else tokens * lin * width}


def dense_ffn_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload) -> dict[str, float]:
    """Saved bytes of one dense FFN block per micro-batch on one device."""
    h, t = model.hidden_size, tokens_per_device(dims, workload)
    lin = workload.saved_input_bytes_per_element(TrainingOpClass.DENSE_FFN)
    out = {"mlp_norm_input": t * ACT_BYTES * h / _sp(dims),
           "fc1_input": 0.0 if _drop(workload, RecomputeModule.NORM) else t * lin * h / _sp(dims)}
    ffn = _ffn_bytes(t, model.dense_ffn_dim / dims.tp, model.ffn_gated, lin,
                     _drop(workload, RecomputeModule.ACTIVATION))
    out.update({f"mlp_{k}": v for k, v in ffn.items()})
    if workload.dropout:
        out["mlp_dropout_mask"] = t * MASK_BYTES * h / _sp(dims)
    return out


def routed_copies_per_device(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload) -> float:
    """Routed token copies the busiest device receives per micro-batch: ``top_k x load x (t / tp) x etp``."""
    if model.moe is None:
        return 0.0
    local = tokens_per_device(dims, workload) / dims.tp
    return model.moe.top_k * workload.routed_load_factor * local * dims.etp


def moe_ffn_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload) -> dict[str, float]:
    """Saved bytes of one MoE block (router, routed experts, shared experts) per micro-batch on one device."""
    moe, h = model.moe, model.hidden_size
    assert moe is not None
    t = tokens_per_device(dims, workload)
    lin = workload.saved_input_bytes_per_element(TrainingOpClass.ROUTED_EXPERTS)
    drop_act = _drop(workload, RecomputeModule.ACTIVATION)
    out = {"moe_norm_input": t * ACT_BYTES * h / _sp(dims),
           "router_input": 0.0 if _drop(workload, RecomputeModule.NORM) else t * ACT_BYTES * h / _sp(dims),
           "router_scores": t * ROUTER_SCORE_BYTES * moe.num_routed_experts / _sp(dims)}
    copies = routed_copies_per_device(model, dims, workload)
    out["expert_input"] = copies * lin * h
    ffn = _ffn_bytes(copies, moe.expert_ffn_dim / dims.etp, model.ffn_gated, lin, drop_act,
                     fc1_output_bytes=workload.swiglu_input_bytes_per_element)
    out.update({f"expert_{k}": v for k, v in ffn.items()})
    if moe.shared_ffn_dim:
        shared = _ffn_bytes(t, moe.shared_ffn_dim / dims.tp, model.ffn_gated,
                            workload.saved_input_bytes_per_element(TrainingOpClass.SHARED_EXPERTS), drop_act)
        out.update({f"shared_{k}": v for k, v in shared.items()})
    return out


def layer_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *, moe_layer: bool
                ) -> dict[str, float]:
    """Saved bytes of one decoder layer per micro-batch; under full recompute only the layer input."""
    if workload.recompute.full:
        t = tokens_per_device(dims, workload)
        return {"layer_input": t * ACT_BYTES * model.hidden_size / _sp(dims)}
    if workload.recompute.op_sac:
        return op_sac_layer_bytes(model, dims, workload, moe_layer=moe_layer)
    return {**attention_bytes(model, dims, workload), **layer_ffn_bytes(model, dims, workload, moe_layer=moe_layer)}


def op_sac_layer_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *, moe_layer: bool
                       ) -> dict[str, float]:
    """Saved bytes of one layer under torchtitan's op-level selective checkpointing (:mod:`.op_sac`): the block
    input, the saved (odd-numbered) matmul outputs and the SDPA output with its log-sum-exp, all bf16 but the
    fp32 log-sum-exp; the unfused attention's scores are not an SDPA output and rerun."""
    t, a = tokens_per_device(dims, workload), model.attention
    q_heads = a.num_q_heads / dims.tp
    out = {"layer_input": t * ACT_BYTES * model.hidden_size / _sp(dims),
           "saved_mm_outputs": t * ACT_BYTES * op_sac.saved_mm_elements_per_token(model, dims, moe_layer=moe_layer)}
    if workload.flash_attention:
        out["sdpa_output"] = t * (ACT_BYTES * q_heads * a.v_head_dim + LSE_BYTES * q_heads)
    return out


def layer_ffn_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *, moe_layer: bool
                    ) -> dict[str, float]:
    return moe_ffn_bytes(model, dims, workload) if moe_layer else dense_ffn_bytes(model, dims, workload)


def full_layer_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *, moe_layer: bool) -> float:
    """Every saved tensor of one layer with recompute off: the working set a full-recompute backward rebuilds."""
    bare = replace(workload, recompute=Recompute.none())
    return sum(layer_bytes(model, dims, bare, moe_layer=moe_layer).values())


def head_bytes(model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload) -> float:
    """The last stage's final norm, head input and logits for one micro-batch (consumed by its own backward)."""
    t, h = tokens_per_device(dims, workload), model.hidden_size
    heads = 1 + model.num_mtp_layers
    # a chunked loss keeps one chunk's logits and softmax alive at a time
    per_entry = TORCH_LOSS_BYTES if workload.loss_fp32_upcast else LOGIT_BYTES
    logits = per_entry * model.vocab_size / dims.tp / workload.loss_chunks
    return heads * t * (2 * ACT_BYTES * h / _sp(dims) + logits)

