"""Multi-token prediction: expected accepted tokens, the decode step as verify + draft forwards, TPOT and
throughput from them, the draft modules' weights and KV, and the scenario keys."""

from __future__ import annotations

import dataclasses

import pytest
from _clusters import h800_cluster

from cost_models import memory, mtp, serving
from cost_models import ops as opmod
from cost_models.parallel import ParallelDims
from cost_models.specs import OpPrecisions, Precision, ServingWorkload
from cost_models.step import step_cost
from planner.catalog.models import get_model
from planner.inputs.scenario import ScenarioError, load_scenario

V3 = get_model("deepseek-v3")


def test_expected_tokens_per_step_is_the_accepted_prefix():
    assert mtp.expected_tokens_per_step(()) == 1.0
    # k = 1, a = 0.7 (CM-D): 1 + 0.7
    assert mtp.expected_tokens_per_step((0.7,)) == pytest.approx(1.7)
    # k = 3, a = 0.8 at every position: 1 + 0.8 + 0.64 + 0.512 = 2.952
    assert mtp.expected_tokens_per_step((0.8,) * 3) == pytest.approx(2.952)
    # per position 0.9, 0.8, 0.7: 1 + 0.9 + 0.9 x 0.8 + 0.9 x 0.8 x 0.7 = 1 + 0.9 + 0.72 + 0.504 = 3.124
    assert mtp.expected_tokens_per_step((0.9, 0.8, 0.7)) == pytest.approx(3.124)
    # DeepSeek-V3 report §5.4.3: second-token acceptance 85-90 % -> 1.85-1.9 tokens per step at k = 1
    assert 1.85 <= mtp.expected_tokens_per_step((0.85,)) <= mtp.expected_tokens_per_step((0.9,)) <= 1.9
    with pytest.raises(ValueError):
        mtp.expected_tokens_per_step((1.2,))


CLUSTER = h800_cluster(num_nodes=1)
DIMS = ParallelDims(attn_dp=8, moe_ep=8)
PREC = OpPrecisions.uniform(Precision.FP8)


def _wl(k: int, acceptance: float = 0.8) -> ServingWorkload:
    return ServingWorkload(input_tokens=4096, output_tokens=1024, weight_precision=Precision.FP8,
                           dispatch_precision=Precision.FP8, activation_precision=Precision.FP8,
                           decode_batch_per_device=32, decode_context_tokens=4096, mtp_tokens=k,
                           mtp_acceptance=acceptance)


def _forward_s(shape: opmod.PhaseShape) -> float:
    """One draft forward summed op by op (no overlap): norms + eh_proj, attention, MoE, head over 32 sequences."""
    moe_dims = ParallelDims(attn_dp=8, moe_ep=8)
    ops = (opmod.mtp_projection_ops(V3, CLUSTER, shape)
           + opmod.attention_ops(V3, CLUSTER, ParallelDims(), shape, precisions=PREC)
           + opmod.moe_ops(V3, CLUSTER, moe_dims, shape, precisions=PREC, dispatch_precision=Precision.FP8,
                           imbalance=1.0)
           + opmod.head_ops(V3, CLUSTER, ParallelDims(), shape, precisions=PREC, sampled_tokens=32))
    return sum(o.seconds for o in ops)


def test_decode_step_is_verify_at_k_plus_1_then_the_draft_forwards():
    k = 2
    res = serving.evaluate(V3, CLUSTER, DIMS, _wl(k))
    verify_shape = opmod.PhaseShape(phase="decode", rank_tokens=32 * 3, sequences_per_rank=32, context_tokens=4096,
                                    query_tokens_per_sequence=3)
    verify = step_cost(V3, CLUSTER, DIMS, verify_shape, weight_precision=Precision.FP8,
                       kv_precision=Precision.BF16, dispatch_precision=Precision.FP8, precisions=PREC)
    # draft: one extend forward over the k + 1 = 3 verified tokens per sequence, then k - 1 = 1 forward at 1 token
    one = dataclasses.replace(verify_shape, rank_tokens=32, query_tokens_per_sequence=1)
    draft_s = _forward_s(verify_shape) + (k - 1) * _forward_s(one)
    step = res.decode.step
    assert step.step_s == pytest.approx(verify.step_s + draft_s, rel=1e-12)
    assert [layer.count for layer in step.layers if layer.kind == "mtp"] == [1, 1, 1, 1]
    # TPOT = step / (1 + 0.8 + 0.64); throughput = 32 sequences x 2.44 tokens / step
    assert res.decode.latency_s == pytest.approx(step.step_s / 2.44, rel=1e-12)
    assert res.decode.throughput_tok_per_s_per_device == pytest.approx(32 * 2.44 / step.step_s, rel=1e-12)
    assert any(name.startswith("mtp.moe.dispatch") for name in step.op_totals())


def test_without_mtp_nothing_is_drafted():
    res = serving.evaluate(V3, CLUSTER, DIMS, _wl(0))
    assert all(layer.kind != "mtp" for layer in res.decode.step.layers + res.prefill.step.layers)
    assert res.decode.memory.mtp_weight_bytes == 0.0


def test_draft_costs_more_per_step_but_pays_back_in_tokens():
    base, k1 = (serving.evaluate(V3, CLUSTER, DIMS, _wl(k)) for k in (0, 1))
    assert k1.decode.step.step_s > base.decode.step.step_s  # verify at 2 tokens + a draft forward
    assert k1.decode.latency_s < base.decode.latency_s  # 1.8 tokens per step more than pays for it here


def test_mtp_weights_and_kv_on_each_device():
    dims = DIMS
    w = memory.mtp_weight_bytes(V3, dims, PREC, modules=1)
    fp8 = 1 + 4 / 16384
    # one MoE layer on an EP8 device: attention 187,105,280 + 32 local experts x 3 x 7168 x 2048 + shared
    # 3 x 7168 x 2048, FP8; router 7168 x 256 BF16; eh_proj 2 x 7168 x 7168 BF16 (replicated)
    want = ((187_105_280 + 32 * 3 * 7168 * 2048 + 3 * 7168 * 2048) * fp8 + 7168 * 256 * 2 + 2 * 7168 * 7168 * 2)
    assert w == pytest.approx(want, rel=1e-12)
    # DeepSeek-V3 ships one MTP module and the engines chain it for k = 3
    assert memory.mtp_modules(V3, 3) == 1 and memory.mtp_modules(V3, 0) == 0
    # KV: one more layer of the 576-wide latent, BF16: 61 x 576 x 2 = 70,272 -> + 1,152 B per token
    assert memory.mtp_kv_bytes_per_token(V3, dims, Precision.BF16, 1) == 576 * 2
    res0, res1 = (serving.evaluate(V3, CLUSTER, DIMS, _wl(k)) for k in (0, 3))
    ctx = 4096 + 1024
    assert res1.decode.memory.kv_cache_bytes - res0.decode.memory.kv_cache_bytes == pytest.approx(
        32 * ctx * 576 * 2, rel=1e-12)
    assert res1.decode.memory.mtp_weight_bytes == pytest.approx(want, rel=1e-12)


def test_scenario_takes_per_position_acceptance(tmp_path):
    text = ("name: t\nmodel: {catalog: deepseek-v3}\ncluster: {device: h200_sxm, nodes: 1}\n"
            "workload: {input_tokens: 1024, output_tokens: 2048, decode_batch_per_device: 1, mtp: MTP}\n"
            "plan: attn_tp=8,moe_ep=8\n")
    p = tmp_path / "s.yaml"
    p.write_text(text.replace("MTP", "{tokens: 3, acceptance: [0.9, 0.8, 0.7]}"))
    wl = load_scenario(p).workload
    assert wl.mtp_acceptance_by_position == (0.9, 0.8, 0.7)
    assert serving.accepted_tokens_per_step(wl) == pytest.approx(3.124)
    p.write_text(text.replace("MTP", "{tokens: 3, acceptance: [0.9, 0.8]}"))
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert e.value.path == "workload.mtp.acceptance"
    p.write_text(text.replace("MTP", "{tokens: 2, acceptance: 1.5}"))
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert e.value.path == "workload.mtp.acceptance"
