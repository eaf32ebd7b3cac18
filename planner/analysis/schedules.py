"""The overlap schedules of a scenario's plan: one MoE layer and one dense layer, solved with CP-SAT."""

from __future__ import annotations

from typing import Any

from planner.cpsat.schedule_result import LayerSchedule


def layer_schedules(sc: Any, dims: Any, *, phase: str, micro_batches: int, decode_batch: float | None = None,
                    time_limit_s: float = 5.0) -> dict[str, LayerSchedule]:
    """Schedules of one MoE layer and one dense layer (where the model has them) for a scenario's plan.

    The tokens per attention rank are the ones ``evaluate`` uses for the phase (the scenario's prefill chunk,
    or the decode batch it chooses, unless ``decode_batch`` gives it); each micro-batch carries 1/K of them."""
    from cost_models import ops as opmod
    from cost_models.parallel import ParallelDims
    from cost_models.serving import choose_decode_batch, decode_context
    from cost_models.step import COMM_SM_FRACTION_LOW_LATENCY, COMM_SM_FRACTION_NORMAL
    from planner.cpsat.schedule import overlapped_layer_time, schedule_layer

    model, cluster, wl = sc.model, sc.cluster, sc.workload
    if phase == "prefill":
        rank_tokens = (wl.prefill_tokens_per_device or wl.input_tokens / dims.attn_tp) * dims.attn_tp
        seq_len = min(wl.input_tokens, rank_tokens)
        shape = opmod.PhaseShape(phase="prefill", rank_tokens=rank_tokens / micro_batches,
                                 sequences_per_rank=rank_tokens / seq_len / micro_batches, context_tokens=int(seq_len))
        f = COMM_SM_FRACTION_NORMAL
    else:
        batch = decode_batch if decode_batch is not None else \
            choose_decode_batch(model, cluster, dims, wl, overlapped_layer_time)[0]
        q = 1 + wl.mtp_tokens
        seqs = max(batch, 1.0 / dims.attn_tp) * dims.attn_tp
        shape = opmod.PhaseShape(phase="decode", rank_tokens=seqs * q / micro_batches,
                                 sequences_per_rank=seqs / micro_batches, context_tokens=decode_context(wl),
                                 query_tokens_per_sequence=q)
        f = COMM_SM_FRACTION_LOW_LATENCY
    att = opmod.attention_ops(model, cluster, ParallelDims(attn_tp=dims.attn_tp), shape, precisions=wl.precisions)
    out: dict[str, LayerSchedule] = {}
    if model.moe is not None:
        moe_dims = ParallelDims(attn_tp=dims.attn_tp, attn_dp=dims.attn_dp, moe_ep=dims.moe_ep, moe_tp=dims.moe_tp,
                                redundant_experts=dims.redundant_experts)
        moe = opmod.moe_ops(model, cluster, moe_dims, shape, precisions=wl.precisions,
                            dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance)
        out["moe"] = schedule_layer(att + moe, micro_batches=micro_batches, comm_sm_fraction=f,
                                    time_limit_s=time_limit_s)
    if model.num_dense_layers:
        ffn = opmod.dense_ffn_ops(model, cluster, ParallelDims(attn_tp=dims.attn_tp, dense_tp=dims.dense_tp), shape,
                                  precisions=wl.precisions)
        out["dense"] = schedule_layer(att + ffn, micro_batches=micro_batches, comm_sm_fraction=f,
                                      time_limit_s=time_limit_s)
    return out
