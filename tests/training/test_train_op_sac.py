"""torchtitan's per-op selective checkpointing (recompute op_sac) by hand: which mm of a block is kept (the
odd-numbered ones in forward order), what a layer saves, and what reruns before its backward."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _train_rows import ROWS_BY_ID, gpt

from cost_models.training import activations as act
from cost_models.training import layer_ops, op_sac
from cost_models.training.memory import training_memory
from cost_models.training.specs import Recompute

QWEN3 = ROWS_BY_ID["MEM-Q30-B200"]  # Qwen3-30B-A3B: GQA 32 q / 4 kv heads of 128, h 2048, 128 experts, no shared


def test_moe_block_keeps_wq_wv_and_the_router_gate():
    model, dims = QWEN3.model, QWEN3.dims
    parts = op_sac.mm_parts(model, dims, moe_layer=True)
    # torchtitan order wq, wk, wv, wo, router gate; the experts' grouped mm is not an aten.mm and not counted
    assert [(p.linear, p.out_elements_per_token, p.saved) for p in parts] == [
        ("qkv", 4096, True), ("qkv", 512, False), ("qkv", 512, True), ("attn_out", 2048, False),
        ("router", 128, True)]
    assert op_sac.recomputed_share(model, dims, moe_layer=True) == pytest.approx(
        {"qkv": 512 / 5120, "attn_out": 1.0, "router": 0.0})


def test_gated_dense_block_alternates_through_the_ffn():
    model = replace(gpt("g", hidden=4096, heads=32, layers=2), ffn_gated=True, dense_ffn_dim=11008)
    dims = QWEN3.dims  # tp 1
    saved = [(p.linear, p.saved) for p in op_sac.mm_parts(model, dims, moe_layer=False)]
    # wq S, wk R, wv S, wo R, w1 S, w3 R, w2 S
    assert saved == [("qkv", True), ("qkv", False), ("qkv", True), ("attn_out", False), ("mlp_up", True),
                     ("mlp_up", False), ("mlp_down", True)]
    assert op_sac.recomputed_share(model, dims, moe_layer=False) == pytest.approx(
        {"qkv": 1 / 3, "attn_out": 1.0, "mlp_up": 0.5, "mlp_down": 0.0})


def test_saved_bytes_of_a_qwen3_layer_by_hand():
    model, dims = QWEN3.model, QWEN3.dims
    w = replace(QWEN3.workload, recompute=Recompute.op_selective())
    t = 8 * 8192  # micro-batch 8 x seq 8,192, tp 1, cp 1
    got = act.layer_bytes(model, dims, w, moe_layer=True)
    assert got == pytest.approx({
        "layer_input": t * 2 * 2048,
        "saved_mm_outputs": t * 2 * (4096 + 512 + 128),
        "sdpa_output": t * (2 * 32 * 128 + 4 * 32)})
    # about 1.34 GiB a layer against 5.2 GiB with norms and activations recomputed
    assert sum(got.values()) / 2**30 == pytest.approx(1.33, abs=0.01)


def test_what_reruns_before_the_backward():
    model, dims, device = QWEN3.model, QWEN3.dims, QWEN3.cluster.device
    w = replace(QWEN3.workload, recompute=Recompute.op_selective())
    lc = layer_ops.layer_compute(device, model, dims, w, moe_layer=True)
    redo, fwd = lc.recompute_s, lc.forward_s
    # the routed experts' grouped GEMMs and every memory-bound pass rerun whole; wo whole, wk's share of qkv
    for name in ("expert_up", "expert_down", "attn_out", "norms", "moe_activation", "moe_permute"):
        assert redo[name] == fwd[name], name
    assert redo["qkv"] == pytest.approx(fwd["qkv"] * 512 / 5120)
    # saved: the router gate's output and the SDPA (flash) output
    assert "router" not in redo and "core_attention" not in redo


def test_memory_keeps_one_layers_rebuilt_activations():
    w = replace(QWEN3.workload, recompute=Recompute.op_selective())
    mem = training_memory(QWEN3.model, QWEN3.dims, w, rank=0, capacity_bytes=QWEN3.cluster.device.hbm_bytes)
    assert mem.activation_by_tensor["recompute_working_set"] == pytest.approx(
        act.full_layer_bytes(QWEN3.model, QWEN3.dims, w, moe_layer=True))
