"""Precision per op class: storage bytes of each format, GEMMs at their own peak and bytes, FP8 attention math,
per-class weight memory, the scenario keys and the CLI's refusal to price a non-native dtype silently."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from _devices import h200
from click.testing import CliRunner

from cost_models import compute, memory
from cost_models import ops as opmod
from cost_models.parallel import ParallelDims
from cost_models.specs import ClusterSpec, OpPrecisions, Precision, WeightFormat
from planner.catalog.models import get_model
from planner.cli import main
from planner.inputs.scenario import ScenarioError, load_scenario

V3 = get_model("deepseek-v3")
H200 = h200()
# B200 as in planner/catalog/SOURCES.md B200 (a,i): 2,250 / 4,500 / 9,000 dense BF16 / FP8 / FP4 TFLOP/s, 148 SMs
B200 = dataclasses.replace(H200, id="b200", name="B200", compute_units=148, hbm_bytes_per_s=7.7e12,
                           peak_flop_per_s={Precision.BF16: 2250e12, Precision.FP8: 4500e12,
                                            Precision.INT8: 4500e12, Precision.FP4: 9000e12})
# A100: no FP8 units (planner/catalog/SOURCES.md A100 (a,b))
A100 = dataclasses.replace(H200, id="a100", name="A100", compute_units=108, hbm_bytes_per_s=2.039e12,
                           peak_flop_per_s={Precision.BF16: 312e12, Precision.INT8: 624e12})


def _cluster(dev) -> ClusterSpec:
    return ClusterSpec(device=dev, num_nodes=1, devices_per_node=8, scale_up=dev.scale_up, scale_out=dev.scale_out)


def test_weight_format_bytes_follow_their_scale_layout():
    # OCP MX v1.0: MXFP4 = 32 E2M1 elements (4 bit) + one E8M0 scale (8 bit): (32 x 0.5 + 1) / 32 = 0.53125 B
    assert WeightFormat.MXFP4.bytes_per_element == 0.53125
    # NVIDIA NVFP4: 16 E2M1 elements + one E4M3 scale: (16 x 0.5 + 1) / 16 = 0.5625 B (FP32 per-tensor not counted)
    assert WeightFormat.NVFP4.bytes_per_element == 0.5625
    # DeepSeek-V3 FP8: one FP32 scale per 128 x 128 block: 1 + 4 / 16384 = 1.000244140625 B
    assert WeightFormat.FP8.bytes_per_element == 1.000244140625
    assert WeightFormat.BF16.bytes_per_element == 2.0
    assert WeightFormat.NVFP4.element is WeightFormat.MXFP4.element is Precision.FP4
    # the one-precision weight_precision: fp4 keeps meaning MXFP4 (gpt-oss's format)
    assert WeightFormat.for_precision(Precision.FP4) is WeightFormat.MXFP4


def test_weight_only_gemm_reads_stored_bytes_at_the_bf16_rate():
    m, k, n = 16, 7168, 4096
    c = compute.gemm_cost(H200, m=m, k=k, n=n, precision=Precision.BF16,
                          weight_bytes_per_element=WeightFormat.MXFP4.bytes_per_element)
    # activations bf16: 16 x 7168 x 2 = 229,376; weights 7168 x 4096 x 0.53125 = 15,597,568; out 16 x 4096 x 2 = 131,072
    assert c.bytes == 229_376 + 15_597_568 + 131_072
    bf16 = compute.gemm_cost(H200, m=m, k=k, n=n, precision=Precision.BF16)
    assert c.seconds < bf16.seconds  # a quarter of the weight bytes of a memory-bound GEMM


def test_native_fp4_gemm_runs_at_the_fp4_peak():
    # main-loop rate per SM: B200 FP4 9000 x 0.76 (narrow-operand efficiency) / 148; H200 has no FP4 units, so FP4
    # weights there run at the BF16 rate with the wide-operand efficiency, 989.4 x 0.83 / 132
    assert compute._matmul_unit_flop_per_s(B200, Precision.FP4) == pytest.approx(9000e12 * 0.76 / 148, rel=1e-12)
    assert compute._matmul_unit_flop_per_s(H200, Precision.FP4) == pytest.approx(989.4e12 * 0.83 / 132, rel=1e-12)
    # m=2048, k=7168, n=4096: 120.3 GFLOP, compute-bound on B200: FP4 takes about half the FP8 time (tile choice
    # and fixed costs keep it a little above 0.5)
    kw = dict(m=2048, k=7168, n=4096)
    fp4 = compute.gemm_cost(B200, precision=Precision.FP4, weight_bytes_per_element=0.5625, **kw)
    fp8 = compute.gemm_cost(B200, precision=Precision.FP8, **kw)
    assert fp4.bound == fp8.bound == "compute"
    assert 0.5 <= fp4.seconds / fp8.seconds <= 0.65


def test_fp8_attention_rate_is_fa3s_fp8_over_bf16_ratio():
    # FlashAttention-3 on H100 SXM: 740 TFLOP/s BF16 (of 989.4), ~1,200 FP8 (of 1,978.9). FP8 rate here =
    # 1978.9 x 0.76 x (1200/1978.9)/(740/989.4) = 0.76 x 1200 x 989.4 / 740 = 1,219.4 TFLOP/s device-wide
    rate = compute.attention_unit_flop_per_s(H200, Precision.FP8) * H200.compute_units
    assert rate == pytest.approx(0.76 * 1200e12 * 989.4 / 740, rel=1e-12)
    assert compute.attention_unit_flop_per_s(H200, Precision.BF16) * 132 == pytest.approx(0.76 * 989.4e12)
    # no FP8 units: FP8 math is priced at the BF16 rate
    assert compute.attention_unit_flop_per_s(A100, Precision.FP8) == compute.attention_unit_flop_per_s(
        A100, Precision.BF16)


def _mla_decode(dev, math: Precision):
    # DeepSeek MLA decode, absorbed: 16 sequences x 128 heads over a 576-wide latent, 4,096 cached tokens, FP8 KV
    return compute.attention_decode_cost(dev, batch=16, q_heads=128, kv_heads=1, qk_head_dim=576, v_head_dim=512,
                                         context_tokens=4096, kv_precision=Precision.FP8,
                                         kv_bytes_per_token=576.0, math_precision=math)


def test_fp8_decode_attention_uses_the_fp8_peak_where_the_device_has_it():
    bf16, fp8 = _mla_decode(H200, Precision.BF16), _mla_decode(H200, Precision.FP8)
    assert bf16.detail["split_kv"] == fp8.detail["split_kv"]
    # same work units, each at 1,219.4 instead of 0.76 x 989.4 = 751.9 TFLOP/s (all under the 140 us boost window):
    # compute 751.9 / 1219.4 = 0.617 of the BF16 kernel's
    assert fp8.detail["compute_s"] / bf16.detail["compute_s"] == pytest.approx(751.944 / 1219.395, rel=1e-4)
    assert fp8.seconds < bf16.seconds
    # A100 has no FP8 tensor cores: the same kernel asked for FP8 math runs at BF16 and costs the same
    assert _mla_decode(A100, Precision.FP8).seconds == _mla_decode(A100, Precision.BF16).seconds


def test_fp8_prefill_attention_speedup_matches_flashattention3():
    # cited measurement: FA3 forward on H100, FP8 ~1,200 vs BF16 740 TFLOP/s = 1.62x at long, compute-bound shapes
    kw = dict(batch=2, q_heads=32, kv_heads=32, qk_head_dim=128, v_head_dim=128, seq_tokens=16384)
    bf16 = compute.attention_prefill_cost(H200, precision=Precision.BF16, **kw)
    fp8 = compute.attention_prefill_cost(H200, precision=Precision.FP8, **kw)
    assert bf16.seconds / fp8.seconds == pytest.approx(1200 / 740, rel=0.05)


def test_weight_bytes_per_device_with_fp4_experts_and_fp8_attention():
    prec = OpPrecisions(routed_experts=WeightFormat.NVFP4, shared_experts=WeightFormat.FP8,
                        dense_ffn=WeightFormat.FP8, attention_projections=WeightFormat.FP8)
    dims = ParallelDims(attn_dp=8, moe_ep=8)  # 256 experts / 8 = 32 per device, attention replicated (attn_tp 1)
    w = memory.weight_breakdown(V3, dims, precisions=prec)
    fp8 = 1 + 4 / 16384
    # routed: 32 experts x 3 x 7168 x 2048 = 1,409,286,144 elements per layer x 58 MoE layers x 0.5625 B
    assert w["routed_expert_weight_bytes"] == pytest.approx(32 * 3 * 7168 * 2048 * 58 * 0.5625, rel=1e-12)
    # attention: 187,105,280 elements per layer (tests/test_params.py) x 61 layers x FP8 bytes
    assert w["attention_weight_bytes"] == pytest.approx(187_105_280 * 61 * fp8, rel=1e-12)
    # shared expert 3 x 7168 x 2048 x 58 and dense FFN 3 x 7168 x 18432 x 3, FP8
    assert w["shared_expert_weight_bytes"] == pytest.approx(3 * 7168 * 2048 * 58 * fp8, rel=1e-12)
    assert w["dense_ffn_weight_bytes"] == pytest.approx(3 * 7168 * 18432 * 3 * fp8, rel=1e-12)
    # router h x E BF16 per MoE layer; embedding + BF16 head, 2 x 129280 x 7168 x 2 B
    assert w["router_weight_bytes"] == 7168 * 256 * 58 * 2
    assert w["embedding_weight_bytes"] == 2 * 129280 * 7168 * 2
    # total 45.98 GB routed + 11.42 attention + 2.55 shared + 1.19 dense + 0.21 router + 3.71 embedding = 65.06 GB
    assert sum(w.values()) / 1e9 == pytest.approx(65.06, abs=0.01)


def test_moe_ops_price_each_class_at_its_own_format():
    prec = OpPrecisions(routed_experts=WeightFormat.NVFP4, shared_experts=WeightFormat.FP8,
                        dense_ffn=WeightFormat.FP8, attention_projections=WeightFormat.FP8)
    shape = opmod.PhaseShape(phase="decode", rank_tokens=64, sequences_per_rank=64, context_tokens=4096)
    dims = ParallelDims(attn_dp=8, moe_ep=8)
    ops = {o.name: o for o in opmod.moe_ops(V3, _cluster(B200), dims, shape, precisions=prec,
                                            dispatch_precision=Precision.FP8, imbalance=1.0)}
    # 64 tokens x 8 devices x top-8 / 8 ranks = 512 copies; the busiest device (cost_models/expert_load.py):
    # var 512 x 7/8 x 248/255 = 435.76, sd 20.875, z_8 1.4236 -> 1 + 1.4236 x 20.875 / 512 = 1.0580 -> 541.7
    # copies over 32 local experts (all active): ceil(16.93) = 17 rows each, 544 rows;
    # up_gate bytes = 544 x 7168 x 0.5 (FP4 activations) + 32 x 7168 x 4096 x 0.5625 + 544 x 4096 x 2
    up = ops["moe.experts_up_gate"]
    assert up.hbm_bytes == 544 * 7168 * 0.5 + 32 * 7168 * 4096 * 0.5625 + 544 * 4096 * 2
    # shared expert FP8 on B200: 64 x 7168 x 1 + 7168 x 4096 x (1 + 4/16384) + 64 x 4096 x 2
    assert ops["moe.shared.up_gate"].hbm_bytes == pytest.approx(64 * 7168 + 7168 * 4096 * (1 + 4 / 16384)
                                                                + 64 * 4096 * 2, rel=1e-12)


SCENARIO = """
name: t
model:
  catalog: deepseek-r1
  weight_precision: fp8
  kv_precision: fp8
  precision: {PRECISION}
cluster: {{device: {DEVICE}, nodes: 1}}
workload: {{input_tokens: 2000, output_tokens: 1000, decode_batch_per_device: 64}}
plan: attn_dp=8,moe_ep=8
"""


def _load(tmp_path: Path, precision: str, device: str = "b200"):
    p = tmp_path / "s.yaml"
    p.write_text(SCENARIO.format(PRECISION=precision, DEVICE=device))
    return load_scenario(p)


def test_scenario_precision_keys_override_class_by_class(tmp_path):
    sc = _load(tmp_path, "{routed_experts: nvfp4, attention: fp8}")
    p = sc.workload.precisions
    assert p.routed_experts is WeightFormat.NVFP4 and p.attention is Precision.FP8
    # the rest keep weight_precision / kv_precision; the head stays BF16
    assert p.shared_experts is p.dense_ffn is p.attention_projections is WeightFormat.FP8
    assert p.kv_cache is Precision.FP8 and p.lm_head is WeightFormat.BF16


def test_scenario_precision_errors_name_the_key(tmp_path):
    with pytest.raises(ScenarioError) as e:
        _load(tmp_path, "{routed_expert: nvfp4}")
    assert e.value.path == "model.precision.routed_expert"
    with pytest.raises(ScenarioError) as e:  # Hopper has no FP4 tensor cores and the checkpoint is FP8
        _load(tmp_path, "{routed_experts: nvfp4}", device="h200_sxm")
    assert e.value.path == "model.precision.routed_experts" and "FP4" in e.value.accepted
    with pytest.raises(ScenarioError) as e:
        _load(tmp_path, "{attention: fp8}", device="a100_sxm_80gb")
    assert e.value.path == "model.precision.attention"
    with pytest.raises(ScenarioError) as e:
        _load(tmp_path, "{kv_cache: bf16}")
    assert e.value.path == "model.precision.kv_cache"


def test_gpt_oss_on_hopper_keeps_bf16_attention_and_mxfp4_experts(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nmodel: {catalog: gpt-oss-120b}\ncluster: {device: h200_sxm, nodes: 1}\n"
                 "workload: {input_tokens: 1000, output_tokens: 1000}\nplan: attn_tp=8,moe_ep=8\n")
    prec = load_scenario(p).workload.precisions
    assert prec.routed_experts is WeightFormat.MXFP4 and prec.attention_projections is WeightFormat.BF16
    # Hopper has no FP4 tensor cores: the expert GEMMs run at BF16 on the stored MXFP4 bytes
    assert opmod.gemm_math(_cluster(H200), prec.routed_experts) is Precision.BF16


def test_cost_gemm_refuses_a_dtype_the_device_lacks_and_prices_weight_only_on_request():
    args = ["cost", "gemm", "--device", "a100_sxm_80gb", "--m", "16", "--k", "7168", "--n", "4096"]
    res = CliRunner().invoke(main, args + ["--dtype", "fp8"])
    assert res.exit_code == 2 and "--dtype" in res.output and "weight-dtype fp8" in res.output
    res = CliRunner().invoke(main, args + ["--weight-dtype", "fp8", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    # bf16 activations 16 x 7168 x 2, FP8 weights 7168 x 4096 x (1 + 4/16384), bf16 out 16 x 4096 x 2
    assert doc["bytes"] == pytest.approx(16 * 7168 * 2 + 7168 * 4096 * (1 + 4 / 16384) + 16 * 4096 * 2, rel=1e-12)
    assert doc["args"]["weight_dtype"] == "fp8"
