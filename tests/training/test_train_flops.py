"""FLOP counting: Megatron's num_floating_point_operations by hand (GPT-3 175B, Llama 3 405B, DeepSeek-V3), the
2021 / 2022 paper closed forms, and a check against the published Megatron-Bridge tables, whose TFLOP/s/GPU divided
by tok/s/GPU is the FLOPs per token of their own counting."""

from __future__ import annotations

import pytest
from _train_rows import gpt

from cost_models.training.flops import (
    korthikanti_model_flops,
    megatron_flops,
    mfu,
    narayanan_flops,
    six_n_flops,
)
from planner.catalog.models import get_model

GPT3 = gpt("gpt3-175b", hidden=12288, heads=96, layers=96)


def test_gpt3_175b_megatron_count_by_hand():
    # h = 12288, l = 96, s = 2048, V = 51200, plain MLP of 4h, MHA:
    # per layer and token: MLP 6 h (4h x 2) = 48 h^2; QKV + out 6 (3 h^2 + h^2) = 24 h^2; core 6 h s (causal)
    # 72 x 12288^2 = 10,871,635,968; 6 x 12288 x 2048 = 150,994,944 -> 11,022,630,912 x 96 = 1,058,172,567,552
    # logits 6 h V = 6 x 12288 x 51200 = 3,774,873,600 -> 1,061,947,441,152 per token
    assert megatron_flops(GPT3, seq_tokens=2048, batch_sequences=1) == pytest.approx(1_061_947_441_152 * 2048)


def test_gpt3_175b_paper_closed_forms():
    # Narayanan eq. 3 per token: 96 l h^2 + 16 l h s + 6 h V
    #   = 1,391,569,403,904 + 38,654,705,664 + 3,774,873,600 = 1,433,998,983,168
    assert narayanan_flops(GPT3, seq_tokens=2048, batch_sequences=1) == pytest.approx(1_433_998_983_168 * 2048)
    # Korthikanti model FLOPs per token: 72 l h^2 + 12 l h s + 6 h V
    #   = 1,043,677,052,928 + 28,991,029,248 + 3,774,873,600 = 1,076,442,955,776
    assert korthikanti_model_flops(GPT3, seq_tokens=2048, batch_sequences=1) == pytest.approx(
        1_076_442_955_776 * 2048)
    # Megatron today halves the causal core term: exactly 6 l h s per token below Korthikanti's count
    diff = korthikanti_model_flops(GPT3, seq_tokens=2048, batch_sequences=1) - megatron_flops(
        GPT3, seq_tokens=2048, batch_sequences=1)
    assert diff == pytest.approx(6 * 96 * 12288 * 2048 * 2048)


def test_llama3_405b_megatron_count_by_hand():
    # h 16384, l 126, Hq 128, Hkv 8, d 128, ffn 53248 (SwiGLU), V 128256, s 8192; per token:
    # MLP 6 h (3 x 53248) = 15,703,474,176; QKV + out 6 h (16384 + 2 x 1024 + 16384) = 3,422,552,064;
    # core 6 x (128 x 128) x 8192 = 805,306,368 -> 19,931,332,608 x 126 = 2,511,347,908,608;
    # logits 6 x 16384 x 128256 = 12,608,077,824 -> 2,523,955,986,432
    model = get_model("llama-3.1-405b")
    assert megatron_flops(model, seq_tokens=8192, batch_sequences=1) == pytest.approx(2_523_955_986_432 * 8192)


def test_deepseek_v3_megatron_count_by_hand():
    # MLA per layer-token (Megatron: qk_head_dim = 128 no-rope, qk_pos_emb_head_dim = 64):
    #   q 1536 (7168 + 128 x 192 + 1) = 48,760,320; kv 512 (7168 + 128 x 256 + 1) = 20,447,744;
    #   rope key 7168 x 64 = 458,752; out 128 x 128 x 7168 = 117,440,512 -> 187,107,328
    #   x 6 x 62 layers (61 + 1 MTP) = 69,603,926,016
    # core 6 x 128 x (192 + 128) / 2 x 4096 x 62 = 31,205,621,760
    # dense MLP 6 x 7168 x 18432 x 3 x 3 layers = 7,134,511,104
    # MoE 6 x 7168 x (2048 x 8 + 2048) x 3 x 59 (58 + MTP) = 140,312,051,712
    # MTP norms + eh projection 6 (3 x 7168 + 2 x 7168^2) = 616,691,712; logits 6 x 7168 x 129280 x 2 = 11,120,148,480
    # total 259,992,950,784 per token
    model = get_model("deepseek-v3")
    assert model.num_mtp_layers == 1
    assert megatron_flops(model, seq_tokens=4096, batch_sequences=1) == pytest.approx(259_992_950_784 * 4096)


@pytest.mark.parametrize(("model_id", "tflops", "tok_per_s"), [
    ("deepseek-v3", 338.0, 1297.0),  # TR-DSV3-H100
    ("qwen3-235b-a22b", 253.0, 1712.0),  # TR-Q235-H100-FP8
    ("qwen3-235b-a22b", 233.0, 1575.0),  # TR-Q235-H100-FP8-GBS2K
])
def test_megatron_count_matches_the_published_tables(model_id, tflops, tok_per_s):
    """Megatron-Bridge performance-summary-archive.md prints both TFLOP/s/GPU and tok/s/GPU; their ratio is the
    FLOPs per token of Megatron's counting.  The published figures have 3-4 significant digits: 1 %."""
    per_token = megatron_flops(get_model(model_id), seq_tokens=4096, batch_sequences=1) / 4096
    assert per_token == pytest.approx(tflops * 1e12 / tok_per_s, rel=0.01)


def test_six_n_adds_the_embedding_to_megatrons_count():
    # Llama 3 405B: 6N counts the input embedding (128256 x 16384) that Megatron leaves out (a lookup, no GEMM)
    model = get_model("llama-3.1-405b")
    extra = six_n_flops(model, seq_tokens=8192, batch_sequences=1) - megatron_flops(model, seq_tokens=8192,
                                                                                    batch_sequences=1)
    assert extra == pytest.approx(6 * 128256 * 16384 * 8192, rel=1e-9)


def test_mfu():
    # 1e18 FLOPs in 1 s on 1000 devices of 1e15 FLOP/s = 100 %
    assert mfu(1e18, 1.0, 1000, 1e15) == pytest.approx(1.0)
