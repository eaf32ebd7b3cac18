"""Step composition: hand-checked structure and the Hypothesis property that more bandwidth never makes a
prefill or decode step slower."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models import comm, memory
from cost_models.ops import PhaseShape
from cost_models.parallel import OverlapPolicy, ParallelDims, StageLayers, pipeline_stages, stage_layer_counts
from cost_models.specs import ClusterSpec, Precision
from cost_models.step import step_cost
from planner.catalog.devices import get_device
from planner.catalog.models import get_model

V3 = get_model("deepseek-v3")
H800 = get_device("h800")


def cluster(hbm: float = 1.0, up: float = 1.0, out: float = 1.0, nodes: int = 4) -> ClusterSpec:
    dev = dataclasses.replace(
        H800, hbm_bytes_per_s=H800.hbm_bytes_per_s * hbm,
        scale_up=dataclasses.replace(H800.scale_up, bytes_per_s=H800.scale_up.bytes_per_s * up),
        scale_out=dataclasses.replace(H800.scale_out, bytes_per_s=H800.scale_out.bytes_per_s * out))
    return ClusterSpec(device=dev, num_nodes=nodes, devices_per_node=8, scale_up=dev.scale_up,
                       scale_out=dev.scale_out)


PLANS = [
    ParallelDims(attn_dp=32, moe_ep=32),
    ParallelDims(attn_dp=32, moe_ep=32, micro_batches=2, overlap=OverlapPolicy.TWO_BATCH),
    ParallelDims(attn_tp=8, attn_dp=4, moe_ep=32, dense_tp=8),
]
SHAPES = [PhaseShape(phase="decode", rank_tokens=64, sequences_per_rank=64, context_tokens=4096),
          PhaseShape(phase="prefill", rank_tokens=8192, sequences_per_rank=2, context_tokens=4096)]


def _step(c: ClusterSpec, dims: ParallelDims, shape: PhaseShape) -> float:
    return step_cost(V3, c, dims, shape, weight_precision=Precision.FP8, kv_precision=Precision.BF16,
                     dispatch_precision=Precision.FP8).step_s


@settings(max_examples=30, deadline=None)
@given(plan=st.sampled_from(PLANS), shape=st.sampled_from(SHAPES),
       hbm=st.floats(1.0, 3.0), up=st.floats(1.0, 3.0), out=st.floats(1.0, 3.0))
def test_more_bandwidth_never_makes_a_step_slower(plan, shape, hbm, up, out):
    if plan.attn_tp > 1 and shape.phase == "decode":
        shape = dataclasses.replace(shape, rank_tokens=shape.rank_tokens * plan.attn_tp)
    base = _step(cluster(), plan, shape)
    assert _step(cluster(hbm=hbm, up=up, out=out), plan, shape) <= base * (1 + 1e-9)


def test_step_is_sum_of_layers_and_counts_every_layer():
    s = step_cost(V3, cluster(), PLANS[0], SHAPES[0], weight_precision=Precision.FP8, kv_precision=Precision.BF16,
                  dispatch_precision=Precision.FP8)
    counts = {layer.kind: layer.count for layer in s.layers}
    assert counts == {"dense": 3, "moe": 58, "head": 1}  # DeepSeek-V3: first_k_dense_replace 3 of 61 layers
    assert s.step_s == sum(layer.total_s for layer in s.layers)


def test_overlap_hides_communication_but_costs_compute():
    none = step_cost(V3, cluster(), PLANS[0], SHAPES[1], weight_precision=Precision.FP8,
                     kv_precision=Precision.BF16, dispatch_precision=Precision.FP8)
    tbo = step_cost(V3, cluster(), PLANS[1], SHAPES[1], weight_precision=Precision.FP8,
                    kv_precision=Precision.BF16, dispatch_precision=Precision.FP8)
    moe_none = next(x for x in none.layers if x.kind == "moe")
    moe_tbo = next(x for x in tbo.layers if x.kind == "moe")
    assert moe_tbo.layer_s < moe_none.layer_s               # overlap pays off in prefill here
    assert moe_tbo.overlapped_comm_s > 0 and moe_none.overlapped_comm_s == 0
    assert moe_tbo.overlap_overhead_s > 0                   # half-size GEMMs, SM share, stream switches


# ---- pipeline stages: one split, read by step time (the slowest stage) and memory (the fullest) -------------

def test_deepseek_v3_stage_split_pp2_and_pp4():
    # 61 layers, the first 3 dense. Floor split with the remainder on the stages before the last
    # (vLLM get_pp_indices): pp 2 -> 31 + 30; pp 4 -> 15 + 15 + 16 + 15.
    assert stage_layer_counts(61, 2) == (31, 30)
    assert stage_layer_counts(61, 4) == (15, 15, 16, 15)
    pp2 = pipeline_stages(V3, 2)
    assert [(s.dense_layers, s.moe_layers) for s in pp2] == [(3, 28), (0, 30)]  # 3 + 28 = 31; 30 all-MoE
    assert [(s.holds_embedding, s.holds_head) for s in pp2] == [(True, False), (False, True)]
    pp4 = pipeline_stages(V3, 4)
    assert [(s.dense_layers, s.moe_layers) for s in pp4] == [(3, 12), (0, 15), (0, 16), (0, 15)]
    assert pp4[3].holds_head and not pp4[2].holds_head
    assert pipeline_stages(V3, 1)[0] == StageLayers(dense_layers=3, moe_layers=58, holds_embedding=True,
                                                    holds_head=True)


@pytest.mark.parametrize("pp", [2, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.phase)
def test_step_times_the_slowest_stage(pp, shape):
    c = cluster()
    flat = ParallelDims(attn_tp=8, moe_ep=8, dense_tp=8)
    dims = dataclasses.replace(flat, pp=pp)
    kw = dict(weight_precision=Precision.FP8, kv_precision=Precision.BF16, dispatch_precision=Precision.FP8)
    one = {layer.kind: layer.layer_s for layer in step_cost(V3, c, flat, shape, **kw).layers}
    # per-layer times do not depend on pp; a stage's time is its layer counts times them (+ the head at the end)
    stage_s = [st.dense_layers * one["dense"] + st.moe_layers * one["moe"] + (one["head"] if st.holds_head else 0.0)
               for st in pipeline_stages(V3, pp)]
    handoff = comm.point_to_point(c, bytes=shape.rank_tokens * V3.hidden_size * 2, crosses_nodes=True).seconds
    got = step_cost(V3, c, dims, shape, **kw)
    assert got.step_s == pytest.approx(max(stage_s) + handoff, rel=1e-12)
    assert got.latency_s == pytest.approx(sum(stage_s) + (pp - 1) * handoff, rel=1e-12)
    slowest = pipeline_stages(V3, pp)[stage_s.index(max(stage_s))]
    assert got.stage == slowest
    counts = {layer.kind: layer.count for layer in got.layers}
    assert counts.get("dense", 0) == slowest.dense_layers and counts.get("moe", 0) == slowest.moe_layers


def test_memory_counts_the_layers_of_one_real_stage():
    # pp 2: stage 0 = 3 dense + 28 MoE (+ embedding), stage 1 = 30 MoE (+ head); the old count took 3 dense and
    # 31 MoE layers at once. Weights scale with each stage's own layer counts: routed experts x 28/58 and
    # x 30/58 of the whole model's per-device bytes, attention x 31/61 and x 30/61, and one of the two
    # (untied) vocabulary tables each.
    flat = ParallelDims(attn_tp=8, moe_ep=8, dense_tp=8)
    dims = dataclasses.replace(flat, pp=2)
    whole = memory.weight_breakdown(V3, flat, Precision.FP8)
    s0, s1 = (memory.weight_breakdown(V3, dims, Precision.FP8, st) for st in pipeline_stages(V3, 2))
    assert s0["routed_expert_weight_bytes"] == pytest.approx(whole["routed_expert_weight_bytes"] * 28 / 58)
    assert s1["routed_expert_weight_bytes"] == pytest.approx(whole["routed_expert_weight_bytes"] * 30 / 58)
    assert s0["attention_weight_bytes"] == pytest.approx(whole["attention_weight_bytes"] * 31 / 61)
    assert s1["attention_weight_bytes"] == pytest.approx(whole["attention_weight_bytes"] * 30 / 61)
    assert s0["dense_ffn_weight_bytes"] == whole["dense_ffn_weight_bytes"] and s1["dense_ffn_weight_bytes"] == 0
    assert s0["embedding_weight_bytes"] == s1["embedding_weight_bytes"] == whole["embedding_weight_bytes"] / 2
    # the default is the heavier stage, and the breakdown's busiest device is one stage's, not a mix
    assert memory.weight_breakdown(V3, dims, Precision.FP8) == max((s0, s1), key=lambda w: sum(w.values()))
    kw = dict(capacity_bytes=141e9, weight_precision=Precision.FP8, kv_precision=Precision.BF16,
              act_precision=Precision.BF16, dispatch_precision=Precision.FP8, context_tokens=4096)
    m = memory.memory_breakdown(V3, dims, sequences_per_device=8, tokens_per_device=8, **kw)
    assert {k: v for k, v in m.as_dict().items() if k in s0} in (s0, s1)
    # KV: 31 layers on stage 0 (the longer), 576 latent values x 2 B per token per layer (MLA)
    assert memory.kv_bytes_per_token(V3, dims, Precision.BF16) == 31 * 576 * 2
    # the batch that fits is the tightest stage's
    cap = memory.max_sequences_per_device(V3, dims, tokens_per_sequence_step=1, **kw)
    full = memory.memory_breakdown(V3, dims, sequences_per_device=cap, tokens_per_device=cap, **kw)
    assert full.free_bytes == pytest.approx(0.0, abs=1e3)
