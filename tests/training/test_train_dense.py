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
