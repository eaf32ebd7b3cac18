"""Dense-layer mechanisms of the training step and memory: Megatron's overlap of the backward TP collectives
with the column-parallel Linear's own GEMMs (hand-derived from the kernel and collective models)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _train_rows import cluster, gpt

from cost_models import comm
from cost_models.training import layer_ops
from cost_models.training.comm import tp_seconds
from cost_models.training.dims import OptimizerSharding, TrainingDims
from cost_models.training.specs import TrainingWorkload
from cost_models.training.step import dense_tp_backward_s, rank_times

GPT = gpt("gpt-22b", hidden=6144, heads=64, layers=4)
W = TrainingWorkload(seq_tokens=2048, global_batch_sequences=4, flash_attention=False)


def _setup(sp: bool):
    c = cluster("a100_sxm_80gb", 8)
    dims = TrainingDims(tp=8, sequence_parallel=sp, micro_batch_sequences=4, sharding=OptimizerSharding.NONE)
    return c, dims, layer_ops.layer_compute(c.device, GPT, dims, W, moe_layer=False)


def test_without_sp_the_entry_all_reduce_hides_behind_the_weight_gradient_gemm():
    # t = 4 x 2048 = 8192 tokens, h = 6144: the all-reduce moves 8192 x 6144 x 2 B = 100.7 MB over TP8; the
    # column-parallel GEMMs of the two regions are qkv [8192, 6144] x [6144, 3 x 768] and mlp_up
    # [8192, 6144] x [6144, 3072]; their weight-gradient GEMMs run while the all-reduce of their input gradient
    # is in flight, so each region exposes max(0, AR - Wgrad)
    c, dims, lc = _setup(sp=False)
    ar = comm.all_reduce(c, bytes=8192 * 6144 * 2, group_size=8, group_devices_per_node=8,
                         custom_kernels=False).seconds
    expected = sum(max(0.0, ar - lc.weight_grad_s[n]) for n in ("qkv", "mlp_up"))
    assert dense_tp_backward_s(c, GPT, dims, W, lc) == pytest.approx(expected)
    # without the overlap: both all-reduces exposed, as tp_seconds prices them
    assert tp_seconds(c, GPT, dims, W, moe_layer=False)[1] == pytest.approx(2 * ar)
    off = replace(dims, tp_comm_overlap=False)
    assert dense_tp_backward_s(c, GPT, off, W, lc) == pytest.approx(2 * ar)
    assert expected < 2 * ar


def test_with_sp_all_gather_hides_behind_dgrad_and_reduce_scatter_behind_wgrad():
    # per region: the row-parallel exit's backward all-gather (exposed) + the entry's redone all-gather beside its
    # input-gradient GEMM + the reduce-scatter of its input gradient beside its weight-gradient GEMM
    c, dims, lc = _setup(sp=True)
    full = 8192 * 6144 * 2
    ag = comm.all_gather(c, bytes_per_rank=full / 8, group_size=8, group_devices_per_node=8).seconds
    rs = comm.reduce_scatter(c, bytes=full, group_size=8, group_devices_per_node=8).seconds
    expected = sum(ag + max(0.0, ag - lc.input_grad_s[n]) + max(0.0, rs - lc.weight_grad_s[n])
                   for n in ("qkv", "mlp_up"))
    assert dense_tp_backward_s(c, GPT, dims, W, lc) == pytest.approx(expected)
    assert tp_seconds(c, GPT, dims, W, moe_layer=False)[1] == pytest.approx(2 * (2 * ag + rs))


def test_rank_backward_exposes_less_tp_communication_with_the_overlap():
    # 4 dense layers: the exposed backward communication drops by 4 x (tp_seconds backward - dense_tp_backward_s)
    c, dims, lc = _setup(sp=False)
    on, off = rank_times(c, GPT, dims, W, 0), rank_times(c, GPT, replace(dims, tp_comm_overlap=False), W, 0)
    saved = 4 * (tp_seconds(c, GPT, dims, W, moe_layer=False)[1] - dense_tp_backward_s(c, GPT, dims, W, lc))
    assert saved > 0.0
    assert off.exposed_comm_backward_s - on.exposed_comm_backward_s == pytest.approx(saved)
    assert on.forward_s == pytest.approx(off.forward_s)


def test_a100_gemm_runs_at_boost_clock_throughout():
    # A100 (catalog sustained_clock_ratio 1.0): no power-limiter term.  6912 x 2048 x 16384 bf16 with 128 x 256
    # tiles: 54 x 8 = 432 tiles = 4 full waves of 108; one tile = 2 x 128 x 256 x 16384 = 1.074e9 FLOP at
    # 312e12 x 0.83 / 108 = 2.398e12 FLOP/s per SM = 447.8 us; 4 waves = 1,791 us of compute (with the Hopper
    # ratio 0.83 it would be 140 + (1791 - 140) / 0.83 = 2,129 us)
    from cost_models import compute, efficiency
    from planner.catalog.devices import get_device
    a100 = get_device("a100_sxm_80gb")
    c = compute.gemm_cost(a100, m=6912, k=16384, n=2048)
    assert c.detail["tile_m"] == 128 and c.detail["tile_n"] == 256 and c.detail["waves"] == 4
    per_wave = 2 * 128 * 256 * 16384 / (312e12 * efficiency.MATMUL_PEAK_FRACTION_WIDE / 108)
    assert c.detail["compute_s"] == pytest.approx(4 * per_wave)
    assert compute.sustained_clock_ratio(get_device("h100_sxm")) == efficiency.SUSTAINED_CLOCK_RATIO


@pytest.mark.parametrize(("m", "n", "k", "measured_tflop_per_s"), [
    (1024, 10240, 5120, 271.2),  # v2 table, torch 2.6.0+cu126
    (6912, 2048, 16384, 267.9),  # v1 table, CUDA 12.1
])
def test_a100_gemm_against_the_mamf_measurement(m, n, k, measured_tflop_per_s):
    # stas00/ml-engineering@b9e29720 compute/accelerator/README.md, Maximum Achievable Matmul FLOPS (A100 SXM,
    # best shape M x N x K); the model stays below (0.83 main-loop fraction is Hopper's): within 8 %
    from cost_models import compute
    from planner.catalog.devices import get_device
    c = compute.gemm_cost(get_device("a100_sxm_80gb"), m=m, k=k, n=n)
    predicted = c.flops / c.seconds / 1e12
    assert predicted == pytest.approx(measured_tflop_per_s, rel=0.08)


def test_interleaved_sends_are_exposed_per_chunk_without_p2p_overlap():
    # interleaved 1F1B, vpp 2, pp 2: with the overlap no send is charged; without it each chunk's send is, both
    # ways: forward and backward exposed communication grow by vpp x one send
    from cost_models.training.comm import pp_send_seconds
    from cost_models.training.dims import Schedule
    c = cluster("a100_sxm_80gb", 16)
    dims = TrainingDims(tp=8, pp=2, vpp=2, schedule=Schedule.INTERLEAVED, micro_batch_sequences=1,
                        sharding=OptimizerSharding.NONE)
    w = replace(W, global_batch_sequences=8)
    on, off = rank_times(c, GPT, dims, w, 0), rank_times(c, GPT, replace(dims, pp_comm_overlap=False), w, 0)
    send = pp_send_seconds(c, GPT, dims, w)
    assert send > 0.0 and "pp_send" not in on.by_op_s
    assert off.exposed_comm_forward_s - on.exposed_comm_forward_s == pytest.approx(2 * send)
    assert off.exposed_comm_backward_s - on.exposed_comm_backward_s == pytest.approx(2 * send)


def test_torch_fp32_loss_keeps_sixteen_bytes_per_vocabulary_entry():
    # Llama-shaped head at TP8: t = 16 x 8192 = 131,072 tokens, vocabulary 128,256 / 8 = 16,032 per device.
    # Megatron's fused cross-entropy: 6 B per entry (bf16 logits + fp32 softmax); torch's cross-entropy on
    # pred.float() under loss parallelism: 16 B (saved log-probs, zeros_like gradient, exp, their sum).
    # The head input terms (2 x 2 B x h / sp per token) are the same in both
    from cost_models.training.activations import head_bytes
    from planner.catalog.models import get_model
    model = get_model("llama-3.1-70b")
    dims = TrainingDims(tp=8, dp=32, micro_batch_sequences=16, sharding=OptimizerSharding.ZERO3)
    w = TrainingWorkload(seq_tokens=8192, global_batch_sequences=512)
    fused, torch_loss = head_bytes(model, dims, w), head_bytes(model, dims, replace(w, loss_fp32_upcast=True))
    assert torch_loss - fused == pytest.approx(131072 * 16032 * (16 - 6))
    # 131,072 x 16,032 x 16 B = 33.6 GB = 31.3 GiB of loss working set
    assert torch_loss - 131072 * 2 * 2 * 8192 / 8 == pytest.approx(131072 * 16032 * 16)


def test_reserved_peak_adds_the_allocator_fragmentation():
    # f = 0.15 of the reserved peak unused: an allocated 85 GiB reserves 100 GiB (15 GiB = 85 x 0.15 / 0.85)
    from cost_models.memory import GIB
    from cost_models.training.memory import TRAINING_RESERVE_BYTES, fragmentation_bytes, training_memory
    assert fragmentation_bytes(85 * GIB) == pytest.approx(15 * GIB)
    c, dims, _ = _setup(sp=True)
    m = training_memory(GPT, dims, W, rank=0, capacity_bytes=80 * GIB)
    allocated = m.state_bytes + m.activation_bytes + m.comm_buffer_bytes + m.unsharded_state_bytes
    assert m.reserve_bytes == pytest.approx(TRAINING_RESERVE_BYTES + fragmentation_bytes(allocated))
    assert m.used_bytes == pytest.approx(allocated / 0.85 + TRAINING_RESERVE_BYTES)
