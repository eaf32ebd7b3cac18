"""The engine's iteration in aggregated serving (cost_models.iteration): hand-derived arithmetic of the prefill
mix, the mixed iteration's marginal cost, and the mechanism against the one validation row it moves (TRT-H200),
where it is a known gap (README "Accuracy")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cost_models import iteration as it
from cost_models import serving
from planner.inputs.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TRT_AGG = ROOT / "scenarios" / "validation" / "trt_h200_aggregated.yaml"  # DeepSeek-R1, 8 x H200, ADP8 EP8

# The TensorRT-LLM doc's H200 max-throughput command (NVIDIA/TensorRT-LLM
# docs/source/blogs/Best_perf_practice_on_DeepSeek-R1_in_TensorRT-LLM.md): --max_batch_size 128,
# --max_num_tokens 1151, input 1,024, output 2,048, attention DP 8; "MLA chunked context ... not supported on
# Hopper", so a prompt is admitted whole.
TRT = dict(attn_dp=8, batch_per_rank=128, input_tokens=1024, decode_steps_per_request=2048, budget_tokens=1151,
           chunked=False)


def test_trt_h200_budget_admits_one_whole_prompt_beside_127_decode_slots() -> None:
    mix = it.iteration_mix(**TRT, alignment=it.PrefillAlignment.ALIGNED)
    # room = 1151 - (128 - 1) x 1 = 1024: exactly one 1,024-token prompt
    assert mix.room_tokens == 1024
    assert mix.chunk_tokens == 1024
    # a slot frees every 2048 / 128 = 16 iterations: 128 x 1024 / 2048 = 64 prompt tokens per iteration
    assert mix.prefill_tokens_per_iteration == pytest.approx(64.0)
    # so a rank carries a prompt in 64 / 1024 = 1 / 16 of its iterations
    assert mix.rank_mixed_fraction == pytest.approx(1 / 16)
    # aligned: the same 1 / 16 of iterations everywhere, each with all 8 ranks' prompts
    assert mix.mixed_fraction == pytest.approx(1 / 16)
    assert mix.chunks_per_mixed_iteration == 8
    assert mix.iterations_per_request == 2048
    # one token less and the whole prompt no longer fits: 1024 + 127 = 1151 is the least budget
    with pytest.raises(ValueError, match="at least 1151"):
        it.iteration_mix(**{**TRT, "budget_tokens": 1150})


def test_independent_ranks_meet_a_prompt_somewhere_in_40_percent_of_iterations() -> None:
    mix = it.iteration_mix(**TRT, alignment=it.PrefillAlignment.INDEPENDENT)
    # 1 - (1 - 1/16)^8 = 1 - 0.9375^8 = 1 - 0.5967 = 0.4033
    assert mix.mixed_fraction == pytest.approx(1 - (15 / 16) ** 8)
    assert mix.mixed_fraction == pytest.approx(0.4033, abs=1e-4)
    # expected prompts in such an iteration: 8 x (1/16) / 0.4033 = 1.240
    assert mix.chunks_per_mixed_iteration == pytest.approx(0.5 / (1 - (15 / 16) ** 8))
    # one rank has nobody to wait for: alignment does not matter
    alone = it.iteration_mix(**{**TRT, "attn_dp": 1})
    assert alone.mixed_fraction == pytest.approx(1 / 16) and alone.chunks_per_mixed_iteration == 1


def test_chunked_prompt_and_a_budget_that_binds() -> None:
    # SGLang-style chunking: budget 8192 per rank, 64 slots, prompts of 30,720, 2,048 steps: room
    # 8192 - 63 = 8129 < 30720, so chunks of 8129; demand 64 x 30720 / 2048 = 960 per iteration; p = 960 / 8129
    mix = it.iteration_mix(attn_dp=1, batch_per_rank=64, input_tokens=30720, decode_steps_per_request=2048,
                           budget_tokens=8192)
    assert mix.chunk_tokens == 8129
    assert mix.rank_mixed_fraction == pytest.approx(960 / 8129)
    assert mix.iterations_per_request == 2048
    # budget 160 beside 128 slots: room 160 - 127 = 33 < demand 64, so every iteration is full and a slot lasts
    # 128 x 1024 / 33 = 3971.9 iterations instead of 2,048 (prefill-bound)
    bound = it.iteration_mix(**{**TRT, "budget_tokens": 160, "chunked": True})
    assert bound.chunk_tokens == 33 and bound.rank_mixed_fraction == 1.0
    assert bound.iterations_per_request == pytest.approx(128 * 1024 / 33)
    with pytest.raises(ValueError, match="no room"):
        it.iteration_mix(**{**TRT, "budget_tokens": 127, "chunked": True})


def test_request_cycle_is_the_iterations_at_the_expected_iteration_time() -> None:
    mix = it.iteration_mix(**TRT, alignment=it.PrefillAlignment.ALIGNED)
    # 2048 x (40 ms + 80 ms / 16) = 2048 x 45 ms = 92.16 s; two pipeline stages double it
    assert it.request_cycle_s(mix, 0.040, 0.080) == pytest.approx(92.16)
    assert it.request_cycle_s(mix, 0.040, 0.080, pp=2) == pytest.approx(184.32)


def test_chunk_extra_counts_the_chunk_not_the_weights() -> None:
    sc = load_scenario(TRT_AGG)
    aligned = it.iteration_mix(**TRT, alignment=it.PrefillAlignment.ALIGNED)
    independent = it.iteration_mix(**TRT, alignment=it.PrefillAlignment.INDEPENDENT)
    a = it.chunk_extra_s(sc.model, sc.cluster, sc.plan, sc.workload, aligned, 128)
    i = it.chunk_extra_s(sc.model, sc.cluster, sc.plan, sc.workload, independent, 128)
    full = serving.prefill(sc.model, sc.cluster, sc.plan,
                           dataclasses.replace(sc.workload, prefill_tokens_per_device=1024 + 128)).step.step_s
    # the marginal cost of 1,024 tokens beside 128 is less than a whole forward of 1,152 (weights read once)
    assert 0 < a < full
    # with 1.24 prompts spread over 8 ranks the expert GEMMs see fewer extra tokens than with 8 of 8
    assert 0 < i < a
    no_chunk = it.IterationMix(room_tokens=1024, chunk_tokens=1024, prefill_tokens_per_iteration=0.0,
                               rank_mixed_fraction=0.0, mixed_fraction=0.0, chunks_per_mixed_iteration=0.0,
                               iterations_per_request=2048)
    assert it.chunk_extra_s(sc.model, sc.cluster, sc.plan, sc.workload, no_chunk, 128) == 0.0


@pytest.mark.xfail(strict=True, reason="known gap (README Accuracy): the measured iteration is ~1.9x the modelled "
                                       "decode step at 128 sequences per rank, which no kernel measurement explains")
def test_iteration_model_reproduces_trt_h200() -> None:
    # the published 11.35 output tok/s per user (the TensorRT-LLM doc above) within the anchors' 20 %
    sc = load_scenario(TRT_AGG)
    mix = it.iteration_mix(**TRT, alignment=it.PrefillAlignment.ALIGNED)
    step_s = serving.evaluate(sc.model, sc.cluster, sc.plan, sc.workload).decode.step.step_s
    extra = it.chunk_extra_s(sc.model, sc.cluster, sc.plan, sc.workload, mix, 128)
    user_tok_per_s = 2048 / it.request_cycle_s(mix, step_s, extra)
    assert user_tok_per_s == pytest.approx(11.35, rel=0.20)
