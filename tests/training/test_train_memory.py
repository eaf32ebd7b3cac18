"""Training memory: Megatron's bytes per parameter exactly, weight sharding by hand, Korthikanti's Table 2 from the
itemised activations, and the MoE / MLA / GQA extensions by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _train_rows import gpt

from cost_models.training import activations as act
from cost_models.training.dims import OptimizerSharding, Schedule, TrainingDims
from cost_models.training.memory import bytes_per_parameter, rank_parameters, training_memory
from cost_models.training.specs import Optimizer, PrecisionRecipe, Recompute, RecomputeModule, TrainingWorkload
from planner.catalog.models import get_model

GIB = 2**30


@pytest.mark.parametrize("dp", [1, 2, 8, 64, 128])
def test_megatron_bytes_per_parameter(dp):
    # NVIDIA/Megatron-LM@d98e8a64 megatron/training/theoretical_memory_usage.py, num_bytes_per_parameter:
    # "18 if not args.use_distributed_optimizer else 6 + (12 / data_parallel_size)"
    assert bytes_per_parameter(Optimizer.ADAM, OptimizerSharding.NONE, dp) == 18
    assert bytes_per_parameter(Optimizer.ADAM, OptimizerSharding.ZERO1, dp) == 6 + 12 / dp
    # ZeRO-2 also shards the fp32 gradient, ZeRO-3 everything
    assert bytes_per_parameter(Optimizer.ADAM, OptimizerSharding.ZERO2, dp) == 2 + 16 / dp
    assert bytes_per_parameter(Optimizer.ADAM, OptimizerSharding.ZERO3, dp) == 18 / dp


def test_deepseek_bf16_moments_save_four_bytes():
    # DeepSeek-V3 §3.3.4: BF16 moments -> 2 + 4 + 4 + 2 + 2 = 14 bytes unsharded
    assert bytes_per_parameter(Optimizer.ADAM_BF16_MOMENTS, OptimizerSharding.NONE, 1) == 14


def test_fp16_gradients_save_two_bytes():
    # Megatron-LM --fp16 without --accumulate-allreduce-grads-in-fp32: 2 (fp16 param) + 2 (fp16 grad) + 4 (master)
    # + 8 (moments) = 16
    assert bytes_per_parameter(Optimizer.ADAM_FP16_GRADS, OptimizerSharding.NONE, 1) == 16


def test_qwen3_30b_weights_by_hand():
    # Qwen3-30B-A3B: h 2048, 48 layers, 32 q / 4 kv heads x 128, 128 experts x 768, V 151936, untied.
    # attention: q 2048 x 4096 + kv 2048 x 2 x 512 + o 4096 x 2048 = 8,388,608 + 2,097,152 + 8,388,608 = 18,874,368
    # expert 3 x 2048 x 768 = 4,718,592; router 2048 x 128 = 262,144; table 151936 x 2048 = 311,164,928
    # TP 1, PP 2, EP 8: rank 0 = 24 layers + embedding:
    #   tp part 24 x 18,874,368 + 311,164,928 = 764,149,760; routers 24 x 262,144 = 6,291,456
    #   experts 24 x 128 x 4,718,592 / 8 = 1,811,939,328
    model = get_model("qwen3-30b-a3b")
    dims = TrainingDims(pp=2, dp=8, ep=8)
    p = rank_parameters(model, dims, 0)
    assert p.tp_sharded == 764_149_760
    assert p.replicated == 6_291_456
    assert p.expert_sharded == 1_811_939_328
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=256)
    mem = training_memory(model, dims, w, rank=0, capacity_bytes=64 * GIB)
    # ZeRO-1: dense over dp 8 (6 + 12/8 = 7.5 B), experts over edp = 8 / 8 = 1 (6 + 12 = 18 B)
    expect = (764_149_760 + 6_291_456) * 7.5 + 1_811_939_328 * 18
    assert mem.state_bytes == pytest.approx(expect)


def _korthikanti(*, s, b, h, a, t, sp, selective):
    """Korthikanti et al. 2022 (arXiv 2205.05198) Table 2, bytes per layer."""
    core = 0.0 if selective else 5.0 * a * s / (h * t)
    return s * b * h * (34.0 / t + core) if sp else s * b * h * (10.0 + 24.0 / t + core)


@pytest.mark.parametrize(("tp", "sp", "selective"), [
    (1, False, False), (8, False, False), (8, True, False), (8, False, True), (8, True, True), (4, True, True)])
def test_korthikanti_table_2_reproduced(tp, sp, selective):
    model = gpt("gpt3", hidden=12288, heads=96, layers=96)
    rec = Recompute.selective(RecomputeModule.CORE_ATTENTION) if selective else Recompute.none()
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8, recompute=rec, flash_attention=False,
                         dropout=True)
    dims = TrainingDims(tp=tp, sequence_parallel=sp)
    got = sum(act.layer_bytes(model, dims, w, moe_layer=False).values())
    assert got == pytest.approx(_korthikanti(s=2048, b=1, h=12288, a=96, t=tp, sp=sp, selective=selective))


def test_full_recompute_keeps_the_layer_input():
    # Korthikanti §5: 2 s b h per layer; with SP split over t
    model = gpt("gpt3", hidden=12288, heads=96, layers=96)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8, recompute=Recompute.full_layers())
    assert sum(act.layer_bytes(model, TrainingDims(tp=8, sequence_parallel=True), w, moe_layer=False).values()) == (
        2 * 2048 * 12288 / 8)


def test_moe_activations_by_hand():
    # Qwen3-30B-A3B, s 4096, b 1, tp 1, ep 8, bf16, no recompute, balanced; per token:
    # norm input 2 x 2048 = 4096; router input 4096; scores 4 x 128 = 512
    # routed copies 8 / token: expert input 2 x 2048, gate+up 2 x 2 x 768, act out 2 x 768
    #   = 8 x (4096 + 3072 + 1536) = 69,632
    # -> 78,336 B per token x 4096 = 320,864,256
    model = get_model("qwen3-30b-a3b")
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=8)
    got = act.moe_ffn_bytes(model, TrainingDims(dp=8, ep=8), w)
    assert sum(got.values()) == 78_336 * 4096
    # imbalance 1.5 scales only the routed part: + 0.5 x 69,632 x 4096
    heavy = act.moe_ffn_bytes(model, TrainingDims(dp=8, ep=8), replace(w, expert_imbalance=1.5))
    assert sum(heavy.values()) - sum(got.values()) == pytest.approx(0.5 * 69_632 * 4096)
    # a capacity factor caps the busiest rank's load
    capped = act.moe_ffn_bytes(model, TrainingDims(dp=8, ep=8), replace(w, expert_imbalance=1.5,
                                                                          capacity_factor=1.25))
    assert sum(capped.values()) - sum(got.values()) == pytest.approx(0.25 * 69_632 * 4096)


def test_mla_activations_by_hand():
    # DeepSeek-V3 attention, s 4096, b 1, tp 1, bf16, flash, no recompute; per token:
    # norm input 2 x 7168 = 14,336; normed down input 14,336
    # latents: 2 (2 x 1536 + 2 x 512 + 64) = 8,320 before norms, normed q and kv latents 2 (1536 + 512) = 4,096
    # q, k, v per head: 2 x 128 x (2 x 192 + 128) = 131,072; log-sum-exp 4 x 128 = 512; out-proj input
    # 2 x 128 x 128 = 32,768 -> 205,440 per token
    model = get_model("deepseek-v3")
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=8)
    got = act.attention_bytes(model, TrainingDims(), w)
    assert sum(got.values()) == 205_440 * 4096
    # MLA up-projection recompute drops q, k, v: 131,072 per token
    up = act.attention_bytes(model, TrainingDims(),
                             replace(w, recompute=Recompute.selective(RecomputeModule.MLA_UP_PROJ)))
    assert sum(got.values()) - sum(up.values()) == 131_072 * 4096


def test_fp8_blockwise_caches_linear_inputs_in_fp8():
    # the QKV input (GQA) at 1 + 4/128 bytes instead of 2: Llama 3 405B h 16384, tp 8 with SP, s 8192:
    # 8192 x 16384 / 8 x (2 - 1.03125)
    model = get_model("llama-3.1-405b")
    w = TrainingWorkload(seq_tokens=8192, global_batch_sequences=8)
    d = TrainingDims(tp=8)
    bf16 = act.attention_bytes(model, d, w)["qkv_input"]
    fp8 = act.attention_bytes(model, d, replace(w, recipe=PrecisionRecipe.FP8_BLOCKWISE))["qkv_input"]
    assert bf16 - fp8 == pytest.approx(8192 * 16384 / 8 * (2 - 1.03125))


def test_in_flight_micro_batches_multiply_the_layers_activations():
    # GPT 16 layers, PP 4 (4 layers per rank), 1F1B: rank 0 holds 4 micro-batches, rank 3 one
    model = gpt("g", hidden=1024, heads=16, layers=16)
    w = TrainingWorkload(seq_tokens=1024, global_batch_sequences=32)
    d = TrainingDims(pp=4, dp=1, schedule=Schedule.ONE_F_ONE_B)
    per_layer = sum(act.layer_bytes(model, d, w, moe_layer=False).values())
    first = training_memory(model, d, w, rank=0, capacity_bytes=80 * GIB)
    assert first.activation_bytes == pytest.approx(4 * 4 * per_layer)
    last = training_memory(model, d, w, rank=3, capacity_bytes=80 * GIB)
    assert last.activation_bytes == pytest.approx(4 * per_layer + act.head_bytes(model, d, w))


def test_more_data_parallel_ranks_never_more_state_bytes():
    model = get_model("qwen3-30b-a3b")
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=512)
    prev = None
    for dp in (1, 2, 4, 8, 16):
        d = TrainingDims(dp=dp, ep=1, sharding=OptimizerSharding.ZERO1)
        b = training_memory(model, d, w, rank=0, capacity_bytes=1e12).state_bytes
        assert prev is None or b < prev
        prev = b


def test_fsdp_under_pipeline_keeps_the_stage_unsharded_by_hand():
    # torchtitan (no reshard after forward with PP) + torch.distributed.pipelining (no gradient sync until the last
    # micro-batch) + FSDP2 (unsynced gradients accumulate in the fp32 reduce dtype): per parameter element of the
    # rank, 2 (bf16 param) + 4 (fp32 grad) bytes on top of the 18 / dp sharded states.
    # GPT h 1024, 16 heads, 8 layers, V 51200, PP 2, TP 1, DP 4: rank 0 = 4 layers + embedding.
    #   layer: attention 4 h^2 = 4,194,304 + MLP 2 x h x 4h = 8,388,608 -> 12,582,912; 4 layers 50,331,648
    #   embedding 51200 x 1024 = 52,428,800 -> 102,760,448 elements; unsharded 6 x that = 616,562,688 bytes
    model = gpt("g", hidden=1024, heads=16, layers=8)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8)
    dims = TrainingDims(pp=2, dp=4, sharding=OptimizerSharding.ZERO3)
    mem = training_memory(model, dims, w, rank=0, capacity_bytes=80 * GIB)
    assert rank_parameters(model, dims, 0).total == 102_760_448
    assert mem.unsharded_state_bytes == 616_562_688
    assert mem.comm_buffer_bytes == 0  # no per-layer gather buffer: the whole stage is already gathered
    assert mem.used_bytes == pytest.approx(mem.state_bytes + mem.activation_bytes + mem.reserve_bytes + 616_562_688)
    # without PP, FSDP reshards per layer: two unsharded layers (gather + prefetch) in bf16, nothing kept
    flat = training_memory(model, replace(dims, pp=1, dp=8), w, rank=0, capacity_bytes=80 * GIB)
    assert flat.unsharded_state_bytes == 0 and flat.comm_buffer_bytes > 0
    # ZeRO-1 under PP keeps nothing extra (its parameters are never sharded)
    z1 = training_memory(model, replace(dims, sharding=OptimizerSharding.ZERO1), w, rank=0, capacity_bytes=80 * GIB)
    assert z1.unsharded_state_bytes == 0


def test_a_chunked_loss_keeps_one_chunk_of_logits():
    # Qwen3-30B-A3B (vocabulary 151,936, hidden 2048), s 8192, b 1, tp 1: per token the head keeps the final norm's
    # input and output (2 x 2 x 2048 = 8,192 B) and the logits + fp32 softmax (6 x 151,936 = 911,616 B);
    # in 8 chunks the logits part is 113,952 B per token
    model = get_model("qwen3-30b-a3b")
    d = TrainingDims(dp=8, sharding=OptimizerSharding.ZERO3)
    whole = TrainingWorkload(seq_tokens=8192, global_batch_sequences=64)
    chunked = TrainingWorkload(seq_tokens=8192, global_batch_sequences=64, loss_chunks=8)
    assert act.head_bytes(model, d, whole) == pytest.approx(8192 * (8192 + 911_616))
    assert act.head_bytes(model, d, chunked) == pytest.approx(8192 * (8192 + 113_952))


def test_fsdp2_fp32_parameters_are_the_master():
    # torchtitan's FSDP2 keeps fp32 parameter shards that the optimizer updates in place: fp32 param (the master)
    # + fp32 gradient + two fp32 moments = 16 B per parameter over the FSDP group, no bf16 shard beside them
    from _train_rows import ROWS_BY_ID
    r = ROWS_BY_ID["MEM-Q30-B200"]  # FSDP8, EP 1
    cap = r.cluster.device.hbm_bytes
    p = rank_parameters(r.model, r.dims, 0)
    fsdp2 = training_memory(r.model, r.dims, replace(r.workload, fp32_params=True), rank=0, capacity_bytes=cap)
    megatron = training_memory(r.model, r.dims, replace(r.workload, fp32_params=False), rank=0, capacity_bytes=cap)
    assert fsdp2.parameter_bytes == 0.0
    assert fsdp2.parameter_bytes + fsdp2.gradient_bytes + fsdp2.optimizer_bytes == pytest.approx(16 * p.total / 8)
    assert megatron.parameter_bytes == pytest.approx(2 * p.total / 8)
    assert megatron.state_bytes - fsdp2.state_bytes == pytest.approx(2 * p.total / 8)
    # not under ZeRO-1: Megatron's distributed optimizer keeps its bf16 model copy
    z1 = replace(r.dims, sharding=OptimizerSharding.ZERO1)
    assert training_memory(r.model, z1, replace(r.workload, fp32_params=True), rank=0,
                           capacity_bytes=cap).parameter_bytes == pytest.approx(2 * p.total)
