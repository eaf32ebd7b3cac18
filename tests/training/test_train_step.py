"""Step time: backward GEMM shapes, the composition of a step by hand, the F&B overlap, and monotonic properties."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _train_rows import cluster, gpt

from cost_models import comm, compute
from cost_models.specs import ClusterSpec, LinkSpec
from cost_models.step import COMM_SM_FRACTION_NORMAL
from cost_models.training import layer_ops
from cost_models.training.comm import DataParallelComm, data_parallel_comm
from cost_models.training.dims import A2AOverlap, OptimizerSharding, Schedule, TrainingDims
from cost_models.training.specs import Optimizer, Recompute, TrainingWorkload
from cost_models.training.step import RankTimes, chunk_times, dp_exposed_s, rank_times, training_step
from planner.catalog.models import get_model

SMALL = gpt("gpt-1b", hidden=2048, heads=16, layers=4)


def test_backward_is_input_and_weight_gradient_gemms():
    # mlp_up of a plain MLP, t = 2048 tokens, h 2048, f 8192: forward [t, h] x [h, f];
    # input gradient [t, f] x [f, h]; weight gradient [h, t] x [t, f]
    c = cluster("h100_sxm", 8)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8)
    lc = layer_ops.layer_compute(c.device, SMALL, TrainingDims(), w, moe_layer=False)
    d = c.device
    assert lc.forward_s["mlp_up"] == compute.gemm_cost(d, m=2048, k=2048, n=8192).seconds
    assert lc.input_grad_s["mlp_up"] == compute.gemm_cost(d, m=2048, k=8192, n=2048).seconds
    assert lc.weight_grad_s["mlp_up"] == compute.gemm_cost(d, m=2048, k=2048, n=8192).seconds
    # fused attention backward = 2.5 x forward (FlashAttention-2: 5 matrix products vs 2)
    assert lc.input_grad_s["core_attention"] == pytest.approx(2.5 * lc.forward_s["core_attention"])


def test_single_device_step_is_kernels_times_micro_batches_plus_optimizer():
    # one device, 8 micro-batches: step = 8 (F + B) + optimizer; no bubble, no communication
    c = ClusterSpec(device=cluster("h100_sxm", 8).device, num_nodes=1, devices_per_node=1,
                    scale_up=cluster("h100_sxm", 8).scale_up, scale_out=cluster("h100_sxm", 8).scale_out)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8)
    dims = TrainingDims(sharding=OptimizerSharding.NONE)
    lc = layer_ops.layer_compute(c.device, SMALL, dims, w, moe_layer=False)
    hc = layer_ops.head_compute(c.device, SMALL, dims, w)
    per_mb = 4 * (lc.forward_total_s + lc.backward_total_s) + hc.forward_total_s + hc.backward_total_s
    s = training_step(c, SMALL, dims, w)
    assert s.bubble_s == 0.0 and s.dp_exposed_s == 0.0
    assert s.step_s == pytest.approx(8 * per_mb + s.optimizer_s)
    # the optimizer reads/writes 30 bytes per parameter (Adam: master 4+4, moments 8+8, grad 4, param 2)
    params = 4 * (4 * 2048**2 + 2 * 2048 * 8192) + 2 * 51200 * 2048
    assert s.optimizer_s == pytest.approx(compute.memory_bound_cost(c.device, bytes=30 * params).seconds)


def test_paired_chunks_hide_the_all_to_all_behind_compute():
    # F&B = sum over the four phases of max(C + f M, M) + exposed (cost_models/training/pairing.py); here compute is
    # longer than the all-to-all in every phase, so it equals the aggregate max(C + f M, M) + exposed and the pace
    # falls by M (1 - f)
    c = cluster("h100_sxm", 256)
    model = get_model("qwen3-235b-a22b")
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=2048)
    base = TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED)
    pair = replace(base, a2a_overlap=A2AOverlap.FB_PAIRS)
    r = rank_times(c, model, pair, w, 1)
    t = chunk_times(pair, r)
    compute_s = r.forward_compute_s + r.backward_compute_s
    exposed = r.exposed_comm_forward_s + r.exposed_comm_backward_s
    # (+ the pipeline hand-offs the combined step exposes, test_train_dispatcher.py)
    assert t.overlapped_fb_s == pytest.approx(max(compute_s + COMM_SM_FRACTION_NORMAL * r.a2a_s, r.a2a_s) + exposed
                                              + r.p2p_paired_exposed_s)
    assert chunk_times(base, r).overlapped_fb_s == pytest.approx(t.forward_s + t.backward_s)
    assert training_step(c, model, pair, w).step_s < training_step(c, model, base, w).step_s


def test_full_recompute_costs_a_forward():
    c = cluster("a100_sxm_80gb", 8)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8)
    dims = TrainingDims(tp=8)
    none = training_step(c, SMALL, dims, w).step_s
    full = training_step(c, SMALL, dims, replace(w, recompute=Recompute.full_layers())).step_s
    lc = layer_ops.layer_compute(c.device, SMALL, dims, w, moe_layer=False)
    assert full > none
    # at least the rerun forward kernels of every layer of every micro-batch (8 micro-batches x 4 layers)
    assert full - none >= 8 * 4 * lc.forward_total_s * 0.999


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_more_bandwidth_is_never_slower(factor):
    model = get_model("deepseek-v3")
    base = cluster("h800", 256)
    fast_out = LinkSpec(bytes_per_s=base.scale_out.bytes_per_s * factor, latency_s=base.scale_out.latency_s,
                        achievable_fraction=base.scale_out.achievable_fraction)
    fast = replace(base, scale_out=fast_out)
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=512)
    dims = TrainingDims(pp=4, dp=64, ep=64, schedule=Schedule.ONE_F_ONE_B)
    assert training_step(fast, model, dims, w).step_s <= training_step(base, model, dims, w).step_s


def test_more_micro_batches_shrink_the_bubble_share():
    c = cluster("a100_sxm_80gb", 64)
    model = gpt("gpt-175b", hidden=12288, heads=96, layers=96)
    dims = TrainingDims(tp=8, pp=8, dp=1)
    shares = []
    for gbs in (16, 64, 256):
        s = training_step(c, model, dims, TrainingWorkload(seq_tokens=2048, global_batch_sequences=gbs))
        shares.append(s.bubble_s / s.step_s)
    assert shares[0] > shares[1] > shares[2]


def test_breakdown_adds_up_on_the_busiest_rank():
    c = cluster("h100_sxm", 256)
    model = get_model("qwen3-235b-a22b")
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=2048)
    dims = TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED)
    s = training_step(c, model, dims, w)
    r = s.by_resource_s
    # not paired: pipeline = compute + exposed communication + bubble
    assert r["compute"] + r["exposed_comm"] + r["bubble"] == pytest.approx(s.pipeline_s)
    assert s.step_s == pytest.approx(s.pipeline_s + r["dp_exposed"] + r["optimizer"])


def test_fsdp_under_pipeline_gathers_once_per_step_not_per_micro_batch():
    # FSDP with PP keeps the stage unsharded across micro-batches (memory.fsdp_stays_unsharded): no per-layer
    # all-gather / reduce-scatter inside a micro-batch, and the step's one gradient reduce-scatter and parameter
    # all-gather are the same DP traffic as ZeRO-2's (grads reduce-scattered, bf16 params gathered); what stays
    # exposed is one FSDP unit (a layer: half the stage's traffic here, 2 layers per stage) instead of one DDP bucket
    c = cluster("h100_sxm", 16)
    w = TrainingWorkload(seq_tokens=2048, global_batch_sequences=64)
    z3 = TrainingDims(pp=2, dp=8, sharding=OptimizerSharding.ZERO3)
    z2 = replace(z3, sharding=OptimizerSharding.ZERO2)
    assert rank_times(c, SMALL, z3, w, 0).by_op_s["fsdp_exposed"] == 0.0
    assert rank_times(c, SMALL, z3, w, 0).forward_s == rank_times(c, SMALL, z2, w, 0).forward_s
    s3, s2 = training_step(c, SMALL, z3, w), training_step(c, SMALL, z2, w)
    assert s3.dp_exposed_s > s2.dp_exposed_s
    assert s3.by_resource_s["dp_total"] == s2.by_resource_s["dp_total"] > 0


def test_fp16_gradients_are_all_reduced_in_two_bytes():
    c = cluster("a100_sxm_80gb", 16)
    dims = TrainingDims(tp=8, dp=2, sharding=OptimizerSharding.NONE)
    w32 = TrainingWorkload(seq_tokens=2048, global_batch_sequences=8)
    w16 = replace(w32, optimizer=Optimizer.ADAM_FP16_GRADS)
    d16 = data_parallel_comm(c, dims, w16, dense_elements=1e9, expert_elements=0)
    # 1e9 fp16 gradients = 2e9 bytes all-reduced over the 2 DP ranks, one per node (stride tp = 8)
    ar = comm.all_reduce(c, bytes=2e9, group_size=2, group_devices_per_node=1, custom_kernels=False)
    assert d16.grad_reduce_s == pytest.approx(ar.seconds)
    assert d16.grad_reduce_s < data_parallel_comm(c, dims, w32, dense_elements=1e9, expert_elements=0).grad_reduce_s


def test_fsdp_under_pipeline_exposes_one_layer_of_its_step_collectives():
    # reduce-scatter 1.6 s and all-gather 0.8 s for a 16-layer stage, hidden behind a 20 s backward and a 10 s
    # forward except one layer each: 1.6 / 16 + 0.8 / 16 = 0.1 + 0.05 = 0.15 s
    dpc = DataParallelComm(grad_reduce_s=1.6, param_gather_s=0.8, bucket_reduce_s=0.01)
    r = RankTimes(rank=0, forward_compute_s=10.0, backward_compute_s=20.0, weight_grad_s=5.0,
                  exposed_comm_forward_s=0.0, exposed_comm_backward_s=0.0, a2a_s=0.0)
    fsdp_pp = TrainingDims(tp=8, pp=2, dp=8, sharding=OptimizerSharding.ZERO3)
    assert dp_exposed_s(fsdp_pp, dpc, r, layers=16) == pytest.approx(0.15)
    # ZeRO-1: one DDP bucket (0.01 s) and the gather's matching share 0.8 x 0.01 / 1.6 = 0.005 s
    zero1 = TrainingDims(tp=8, pp=2, dp=8, sharding=OptimizerSharding.ZERO1)
    assert dp_exposed_s(zero1, dpc, r, layers=16) == pytest.approx(0.015)
    # a backward shorter than the reduction exposes the rest: 1.6 - 1.0 = 0.6, plus the 0.05 s gather layer
    short = RankTimes(rank=0, forward_compute_s=10.0, backward_compute_s=1.0, weight_grad_s=0.5,
                      exposed_comm_forward_s=0.0, exposed_comm_backward_s=0.0, a2a_s=0.0)
    assert dp_exposed_s(fsdp_pp, dpc, short, layers=16) == pytest.approx(0.65)
    # FSDP without PP gathers and reduces inside the layers: nothing left for the step
    assert dp_exposed_s(TrainingDims(tp=8, dp=8, sharding=OptimizerSharding.ZERO3), dpc, r, layers=16) == 0.0
