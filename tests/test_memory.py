"""cost_models.memory, hand-derived: KV bytes per token (MLA, GQA, sliding window), weight bytes per device
under attention TP, EP and expert TP (ETP), EP buffers, and the exact max-sequences solve.

Shapes are the bundled config.json values (planner/catalog/hf_configs):
DeepSeek-V3: hidden 7168, 61 layers = 3 dense + 58 MoE, MLA q_lora 1536, kv_lora 512, rope 64, nope 128, v 128,
128 heads, dense FFN 18432, expert FFN 2048, 256 routed + 1 shared expert, top-8, vocab 129280 (untied head).
Qwen3-235B-A22B: 94 layers, GQA 4 KV heads x head_dim 128.  gpt-oss-120b: 36 layers, 8 KV heads x head_dim 64,
half the layers a 128-token sliding window.
"""

from __future__ import annotations

import pytest

from cost_models import memory
from cost_models.parallel import ParallelDims
from cost_models.specs import Precision
from planner.catalog.models import get_model

BF16, FP8, FP4 = Precision.BF16, Precision.FP8, Precision.FP4
V3 = get_model("deepseek-v3")
# FP8 block-scaled: 1 byte + one FP32 scale per 128 x 128 block = 1 + 4/16384 = 1 + 1/4096 bytes per element
FP8_BYTES = 1 + 1 / 4096


def test_weight_bytes_per_element() -> None:
    assert memory.weight_bytes_per_element(BF16) == 2.0
    assert memory.weight_bytes_per_element(FP8) == FP8_BYTES  # 1.000244140625
    assert memory.weight_bytes_per_element(FP4) == 0.5 + 1 / 32  # MXFP4: one 8-bit scale per 32 elements


@pytest.mark.parametrize("attn_tp", [1, 8])
def test_mla_kv_bytes_per_token_is_the_whole_latent_on_every_tp_rank(attn_tp: int) -> None:
    dims = ParallelDims(attn_tp=attn_tp, attn_dp=16 // attn_tp, moe_ep=16)
    # (kv_lora_rank + qk_rope_head_dim) = 512 + 64 = 576 values per layer, not split by head under TP:
    # 61 layers x 576 x 2 B = 70,272 B in BF16; 35,136 B in FP8
    assert memory.kv_bytes_per_token(V3, dims, BF16) == 70_272
    assert memory.kv_bytes_per_token(V3, dims, FP8) == 35_136
    # a 4,000-token sequence: 70,272 x 4,000 = 281,088,000 B
    assert memory.kv_bytes_per_sequence(V3, dims, BF16, 4000) == 281_088_000


def test_mla_kv_cache_of_a_device_holds_its_whole_attention_rank() -> None:
    dims = ParallelDims(attn_tp=8, attn_dp=2, moe_ep=16)
    mb = memory.memory_breakdown(V3, dims, capacity_bytes=141 * 2**30, weight_precision=FP8, kv_precision=BF16,
                                 act_precision=BF16, dispatch_precision=FP8, sequences_per_device=10,
                                 context_tokens=4000, tokens_per_device=10)
    # 10 sequences per device x attn_tp 8 = 80 sequences per attention rank, each TP device keeps every latent:
    # 80 x 281,088,000 B = 22,487,040,000 B
    assert mb.kv_cache_bytes == 22_487_040_000


@pytest.mark.parametrize(("attn_tp", "expected"), [(1, 192_512), (2, 96_256), (4, 48_128), (8, 48_128)])
def test_gqa_kv_bytes_per_token_split_over_at_most_the_kv_heads(attn_tp: int, expected: int) -> None:
    # 2 (K and V) x 4 KV heads x 128 = 1,024 values per layer x 94 layers x 2 B = 192,512 B (188 KiB) per token;
    # split over min(attn_tp, 4): TP 8 replicates each KV head on 2 devices, so it keeps what TP 4 keeps
    model = get_model("qwen3-235b-a22b")
    assert memory.kv_bytes_per_token(model, ParallelDims(attn_tp=attn_tp), BF16) == expected


def test_sliding_window_layers_keep_at_most_the_window() -> None:
    model = get_model("gpt-oss-120b")
    dims = ParallelDims()
    # full-attention layers: 2 x 8 x 64 = 1,024 values x 18 layers (half of 36) x 2 B = 36,864 B per token
    assert memory.kv_bytes_per_token(model, dims, BF16) == 36_864
    # sliding layers: 1,024 x 18 x 128 window tokens x 2 B = 4,718,592 B per sequence once the window is full
    assert memory.sliding_kv_bytes_per_sequence(model, dims, BF16) == 4_718_592
    # 4,096 tokens: 36,864 x 4,096 + 4,718,592 = 150,994,944 + 4,718,592 = 155,713,536 B
    assert memory.kv_bytes_per_sequence(model, dims, BF16, 4096) == 155_713_536
    # 64 tokens fill half the window: 36,864 x 64 + 4,718,592 x 64/128 = 2,359,296 + 2,359,296 = 4,718,592 B
    assert memory.kv_bytes_per_sequence(model, dims, BF16, 64) == 4_718_592


# one routed expert: 3 (gate, up, down) x 7168 x 2048 = 44,040,192 elements
EXPERT_ELEMENTS = 44_040_192


@pytest.mark.parametrize(("dims", "experts_per_device"), [
    (ParallelDims(attn_dp=16, moe_ep=16), 16),                        # EP16: 256 / 16
    (ParallelDims(attn_dp=16, moe_ep=16, redundant_experts=16), 17),  # 272 slots / 16
    (ParallelDims(attn_dp=8, moe_ep=8), 32),                          # EP8: 256 / 8
])
def test_routed_expert_bytes_per_device_at_ep(dims: ParallelDims, experts_per_device: int) -> None:
    # experts per device x 44,040,192 x 58 MoE layers x (1 + 1/4096) B; EP16: 16 x 44,040,192 x 58
    # = 40,869,298,176 elements, + 40,869,298,176 / 4096 = 9,977,856 scale bytes -> 40,879,276,032 B (38.07 GiB)
    expected = experts_per_device * EXPERT_ELEMENTS * 58 * FP8_BYTES
    got = memory.weight_breakdown(V3, dims, FP8)["routed_expert_weight_bytes"]
    assert got == expected
    if experts_per_device == 16:
        assert got == 40_879_276_032


def test_expert_tp_splits_each_expert_so_ep8_etp2_holds_what_ep16_holds() -> None:
    ep16 = memory.weight_breakdown(V3, ParallelDims(attn_dp=16, moe_ep=16), FP8)
    # EP8 x ETP2 on 16 devices: 256 / 8 = 32 experts per rank, each expert's FFN width split in 2:
    # 32 x 44,040,192 / 2 x 58 x (1 + 1/4096) = 40,879,276,032 B, the same as 16 whole experts
    etp = memory.weight_breakdown(V3, ParallelDims(attn_dp=16, moe_ep=8, moe_tp=2), FP8)
    assert etp["routed_expert_weight_bytes"] == ep16["routed_expert_weight_bytes"] == 40_879_276_032


def test_weights_of_one_device_by_kind_under_attention_tp() -> None:
    tp1 = memory.weight_breakdown(V3, ParallelDims(attn_dp=16, moe_ep=16), FP8)
    tp8 = memory.weight_breakdown(V3, ParallelDims(attn_tp=8, attn_dp=2, moe_ep=16), FP8)
    # MLA per layer: q 7168 x 1536 + 1536 x 128 x 192 = 48,758,784; kv_a 7168 x 576 = 4,128,768;
    # kv_b 512 x 128 x 256 = 16,777,216; o 128 x 128 x 7168 = 117,440,512; total 187,105,280 elements.
    # TP1: 187,105,280 x 61 = 11,413,422,080 + 2,786,480 scale bytes = 11,416,208,560 B
    assert tp1["attention_weight_bytes"] == 11_416_208_560
    # TP8: the down-projections 7168 x (1536 + 512 + 64) = 15,138,816 are replicated, the rest split:
    # 15,138,816 + 171,966,464 / 8 = 36,634,624 per layer x 61 = 2,234,712,064 + 545,584 = 2,235,257,648 B
    assert tp8["attention_weight_bytes"] == 2_235_257_648
    # dense FFN: 3 x 7168 x 18432 = 396,361,728 x 3 layers = 1,189,085,184 + 290,304 = 1,189,375,488 B (dense_tp 1)
    assert tp1["dense_ffn_weight_bytes"] == tp8["dense_ffn_weight_bytes"] == 1_189_375_488
    # shared expert (one 2048-wide FFN): 44,040,192 x 58 = 2,554,331,136 + 623,616 = 2,554,954,752 B; / 8 under TP8
    assert tp1["shared_expert_weight_bytes"] == 2_554_954_752
    assert tp8["shared_expert_weight_bytes"] == 2_554_954_752 / 8
    # router in BF16 whatever the weight precision: 7168 x 256 x 58 x 2 B = 212,860,928 B
    assert tp1["router_weight_bytes"] == tp8["router_weight_bytes"] == 212_860_928
    # embedding + untied head in BF16, vocabulary-parallel over attention TP: 2 x 129,280 x 7168 x 2 B
    # = 3,706,716,160 B; / 8 = 463,339,520 B
    assert tp1["embedding_weight_bytes"] == 3_706_716_160
    assert tp8["embedding_weight_bytes"] == 463_339_520


def test_ep_buffers_are_sized_for_the_routed_tokens() -> None:
    dims = ParallelDims(attn_dp=16, moe_ep=16)
    # 100 tokens per device x 16 devices x top-8 / 16 EP ranks = 800 (token, expert) pairs per device
    assert memory.routed_tokens_per_device(V3, dims, 100) == 800
    # 2 copies x 800 x 7168 x (1 B FP8 dispatch + 2 B BF16 combine) = 34,406,400 B
    assert memory.comm_buffer_bytes(V3, dims, routed_tokens_per_device=800, dispatch_precision=FP8) == 34_406_400
    # no all-to-all without EP
    assert memory.comm_buffer_bytes(V3, ParallelDims(attn_dp=16, moe_ep=1, moe_tp=16),
                                    routed_tokens_per_device=800, dispatch_precision=FP8) == 0.0


def test_max_sequences_fills_the_device_exactly() -> None:
    dims = ParallelDims(attn_dp=16, moe_ep=16, redundant_experts=16)
    kw = dict(capacity_bytes=141 * 2**30, weight_precision=FP8, kv_precision=BF16, act_precision=BF16,
              dispatch_precision=FP8, context_tokens=5000)
    s = memory.max_sequences_per_device(V3, dims, **kw, tokens_per_sequence_step=1.0)
    full = memory.memory_breakdown(V3, dims, **kw, sequences_per_device=s, tokens_per_device=s)
    # free memory is affine in the sequence count, so the solve lands on zero free bytes
    assert full.free_bytes == pytest.approx(0.0, abs=1.0)
    # and the KV of s sequences is most of what was free with none: s x 5,000 x 70,272 B
    assert full.kv_cache_bytes == pytest.approx(s * 5000 * 70_272)
    assert 0 < full.kv_cache_bytes < memory.memory_breakdown(V3, dims, **kw, sequences_per_device=0,
                                                             tokens_per_device=0).free_bytes
