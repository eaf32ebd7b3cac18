"""Activation quantization passes in front of narrow-precision GEMMs (cost_models.ops.activation_quant_ops), and the
request-level speed of the Qwen speed benchmark (cost_models.serving.request_tok_per_s)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from _clusters import h800_device
from _devices import h200
from click.testing import CliRunner

from cost_models import efficiency as eff
from cost_models import ops as opmod
from cost_models.kinds import Phase
from cost_models.parallel import ParallelDims
from cost_models.serving import request_tok_per_s
from cost_models.specs import ClusterSpec, OpPrecisions, Precision, ServingWorkload, WeightFormat
from planner.catalog.models import get_model
from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
V3 = get_model("deepseek-v3")
H200 = h200()
# A100: no FP8 units (planner/catalog/SOURCES.md A100 (a,b)): FP8 weights run weight-only at the BF16 rate
A100 = dataclasses.replace(H200, id="a100", name="A100", compute_units=108, hbm_bytes_per_s=2.039e12,
                           peak_flop_per_s={Precision.BF16: 312e12, Precision.INT8: 624e12})
# B200 dense peaks as planner/catalog/SOURCES.md B200 (a,i): native FP4
B200 = dataclasses.replace(H200, id="b200", name="B200", compute_units=148, hbm_bytes_per_s=7.7e12,
                           peak_flop_per_s={Precision.BF16: 2250e12, Precision.FP8: 4500e12,
                                            Precision.INT8: 4500e12, Precision.FP4: 9000e12})


def _cluster(dev) -> ClusterSpec:
    return ClusterSpec(device=dev, num_nodes=1, devices_per_node=8, scale_up=dev.scale_up, scale_out=dev.scale_out)


def test_fp8_quant_pass_is_one_memory_bound_kernel_over_input_and_its_fp8_copy():
    (op,) = opmod.activation_quant_ops(_cluster(H200), "attn.o_proj", WeightFormat.FP8, m=16, k=16384)
    # bytes: 16 x 16,384 elements x (2 read + 1 written + 4 / 128 of FP32 scale) = 262,144 x 3.03125 = 794,624
    assert op.name == "attn.o_proj.quant"
    assert op.hbm_bytes == 794_624
    # time: launch 3.7 us + 794,624 / (0.578 x 4.8e12 B/s) = 3.7 us + 0.2864 us = 3.986 us
    assert op.seconds == pytest.approx(eff.KERNEL_LAUNCH_S + 794_624 / (eff.HBM_COPY_FRACTION * 4.8e12), rel=1e-12)
    assert op.seconds == pytest.approx(3.986e-6, abs=1e-9)


# Measured: vllm-project/vllm pull request #25427 (2025-09-22), "H100 Benchmark", table "Before", column CUDA
# (vLLM's per-token-group FP8 quantization kernel, group (1, 128), column-major scales), hidden size 7,168:
# batch 1 -> 3.785 us, batch 16 -> 4.251 us. H800 has H100's HBM3 (3.35 TB/s; tests/_clusters.py).
@pytest.mark.parametrize(("tokens", "measured_us"), [(1, 3.785134), (16, 4.250782)])
def test_quant_pass_against_the_measured_vllm_kernel_on_h100(tokens, measured_us):
    (op,) = opmod.activation_quant_ops(_cluster(h800_device()), "x", WeightFormat.FP8, m=tokens, k=7168)
    # batch 16: 16 x 7,168 x 3.03125 = 347,648 B; 3.7 us + 347,648 / (0.578 x 3.35e12) = 3.88 us (-9 %)
    assert op.seconds * 1e6 == pytest.approx(measured_us, rel=0.15)


def test_no_quant_pass_when_the_gemm_runs_in_bf16():
    assert opmod.activation_quant_ops(_cluster(H200), "x", WeightFormat.BF16, m=128, k=7168) == ()
    # FP8 weights on a device without FP8 units are de-quantised in the kernel (weight-only): BF16 input, no pass
    assert opmod.activation_quant_ops(_cluster(A100), "x", WeightFormat.FP8, m=128, k=7168) == ()
    # NVFP4 experts on Hopper likewise run weight-only at BF16
    assert opmod.activation_quant_ops(_cluster(H200), "x", WeightFormat.NVFP4, m=128, k=7168) == ()


def test_nvfp4_pass_writes_fp4_values_with_their_block_scales():
    # native FP4 math on B200: 0.5 B values + one FP8 scale per 16 elements = 0.5625 B per element
    assert opmod.activation_quant_bytes_per_element(_cluster(B200), WeightFormat.NVFP4) == 0.5625
    (op,) = opmod.activation_quant_ops(_cluster(B200), "moe.experts_down", WeightFormat.NVFP4, m=1, k=2048)
    assert op.hbm_bytes == 2048 * (2 + 0.5625)  # = 5,248


def _moe_names(dims: ParallelDims, dispatch: Precision) -> list[str]:
    shape = opmod.PhaseShape(phase=Phase.DECODE, rank_tokens=128, sequences_per_rank=128, context_tokens=2048)
    ops = opmod.moe_ops(V3, _cluster(H200), dims, shape, precisions=OpPrecisions.uniform(Precision.FP8),
                        dispatch_precision=dispatch, imbalance=1.0)
    return [o.name for o in ops]


def test_fp8_ep_dispatch_delivers_the_expert_input_already_quantized():
    ep8 = ParallelDims(attn_dp=8, moe_ep=8)
    names = _moe_names(ep8, Precision.FP8)
    assert "moe.experts_up_gate.quant" not in names  # DeepEP quantizes in the dispatch kernel
    assert names.index("moe.experts_down.quant") == names.index("moe.experts_down") - 1
    assert "moe.shared.up_gate.quant" in names and "moe.shared.down.quant" in names
    # a BF16 payload, or no EP at all, needs the pass before the up GEMM
    assert "moe.experts_up_gate.quant" in _moe_names(ep8, Precision.BF16)
    assert "moe.experts_up_gate.quant" in _moe_names(ParallelDims(), Precision.FP8)


def test_every_fp8_attention_projection_gets_its_pass_and_bf16_ones_none():
    shape = opmod.PhaseShape(phase=Phase.PREFILL, rank_tokens=4096, sequences_per_rank=1, context_tokens=4096)
    fp8 = opmod.attention_ops(V3, _cluster(H200), ParallelDims(), shape, precisions=OpPrecisions.uniform(Precision.FP8))
    quant = [o.name for o in fp8 if o.name.endswith(".quant")]
    assert quant == ["attn.qkv_a_proj.quant", "attn.q_b_proj.quant", "attn.kv_b_proj.quant", "attn.o_proj.quant"]
    bf16 = opmod.attention_ops(V3, _cluster(H200), ParallelDims(), shape, precisions=OpPrecisions.uniform(Precision.BF16))
    assert not [o for o in bf16 if o.name.endswith(".quant")]


def test_request_speed_counts_prompt_and_generated_tokens_over_the_cycle():
    wl = ServingWorkload(input_tokens=1024, output_tokens=2048)
    # (1,024 + 2,048) / 20 s = 153.6 tok/s
    assert request_tok_per_s(wl, 20.0) == pytest.approx(153.6)


def test_request_speed_at_batch_one_is_prompt_plus_output_over_ttft_plus_decode():
    res = CliRunner().invoke(main, ["evaluate", str(ROOT / "scenarios/validation/qwen_sb_30b_h20_bf16_in6144.yaml"),
                                    "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    ttft, tpot = doc["prefill"]["ttft_s"], doc["decode"]["tpot_s"]
    # one sequence on one device: its slot is its own prefill then 2,048 decode steps
    assert doc["aggregated"]["request_tok_per_s"] == pytest.approx((6144 + 2048) / (ttft + 2048 * tpot), rel=1e-9)


def test_fp8_mla_decode_rope_also_writes_the_absorbed_query_in_fp8():
    shape = opmod.PhaseShape(phase=Phase.DECODE, rank_tokens=1, sequences_per_rank=1, context_tokens=4096)
    fp8_attention = dataclasses.replace(OpPrecisions.uniform(Precision.FP8), attention=Precision.FP8)
    ops = {o.name: o for o in opmod.attention_ops(V3, _cluster(H200), ParallelDims(), shape, precisions=fp8_attention)}
    # 1 token x 128 heads x (512 + 64) x (2 read + 1 written) = 221,184 bytes, replacing the BF16 rope pass
    assert ops["attn.rope_quant"].hbm_bytes == 221_184
    assert "attn.rope" not in ops
    # BF16 attention math keeps the plain rope: 2 x 1 x 128 x 192 x 2 = 98,304 bytes
    bf16 = {o.name: o for o in opmod.attention_ops(V3, _cluster(H200), ParallelDims(), shape,
                                                   precisions=OpPrecisions.uniform(Precision.FP8))}
    assert bf16["attn.rope"].hbm_bytes == 98_304 and "attn.rope_quant" not in bf16


def test_every_new_token_is_written_into_the_kv_cache_once_per_layer():
    shape = opmod.PhaseShape(phase=Phase.DECODE, rank_tokens=128, sequences_per_rank=128, context_tokens=4096)
    prec = dataclasses.replace(OpPrecisions.uniform(Precision.FP8), kv_cache=Precision.FP8)
    ops = {o.name: o for o in opmod.attention_ops(V3, _cluster(H200), ParallelDims(), shape, precisions=prec)}
    # MLA caches the latent: 128 tokens x (512 + 64) x (2 read + 1 written) = 221,184 bytes
    assert ops["attn.kv_write"].hbm_bytes == 221_184
    qwen = get_model("qwen3-30b-a3b")
    ops = {o.name: o for o in opmod.attention_ops(qwen, _cluster(H200), ParallelDims(attn_tp=2), shape,
                                                  precisions=OpPrecisions.uniform(Precision.BF16))}
    # GQA, 4 KV heads of 128 split over attention TP 2: 2 x 4 x 128 / 2 = 512 elements; 128 x 512 x 4 = 262,144
    assert ops["attn.kv_write"].hbm_bytes == 262_144
