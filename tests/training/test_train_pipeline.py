"""Pipeline closed forms: the DualPipe README table reproduced exactly, 1F1B and interleaved bubbles, in-flight
micro-batches, and what each DualPipe rank holds."""

from __future__ import annotations

import itertools

import pytest
from _train_rows import gpt

from cost_models.training.dims import Schedule, TrainingDims, chunk_layers, rank_chunks
from cost_models.training.memory import rank_parameters
from cost_models.training.pipeline import (
    ChunkTimes,
    activation_stage_units,
    bubble_fraction,
    bubble_s,
    combined_step_chunks,
    devices,
    in_flight_chunks,
    parameter_copies,
    pipeline_s,
    unpaired_layer_share,
    warmup_chunks,
)

# deepseek-ai/DualPipe README @3da1bbea53606543d7f5f232338fc58096db30e3, "Pipeline Bubbles and Memory Usage
# Comparison (based on the same number of PP stages)", transcribed: (bubble, parameters, activations, devices)
README = {
    Schedule.ONE_F_ONE_B: (lambda pp, f, b, w, fb: (pp - 1) * (f + b), 1, lambda pp: pp, lambda pp: pp),
    Schedule.ZERO_BUBBLE: (lambda pp, f, b, w, fb: (pp - 1) * (f + b - 2 * w), 1, lambda pp: pp, lambda pp: pp),
    Schedule.DUALPIPE: (lambda pp, f, b, w, fb: (pp / 2 - 1) * (fb + b - 3 * w), 2, lambda pp: pp + 1,
                        lambda pp: pp),
    Schedule.DUALPIPE_V: (lambda pp, f, b, w, fb: (pp / 2 - 1) * (fb + b - 3 * w), 2, lambda pp: pp + 1,
                          lambda pp: pp // 2),
}


@pytest.mark.parametrize("schedule", list(README))
@pytest.mark.parametrize(("pp", "f", "b", "w", "fb"), [
    (pp, f, b, w, fb) for pp, (f, b, w, fb) in itertools.product(
        (2, 4, 8, 16, 32), ((1.0, 2.0, 1.0, 2.5), (0.3, 0.7, 0.2, 0.9), (5.0, 11.0, 4.0, 13.0)))
])
def test_dualpipe_readme_table_exactly(schedule, pp, f, b, w, fb):
    bubble, params, acts, devs = README[schedule]
    t = ChunkTimes(forward_s=f, backward_s=b, weight_grad_s=w, overlapped_fb_s=fb)
    assert bubble_s(schedule, pp, t) == bubble(pp, f, b, w, fb)
    assert parameter_copies(schedule) == params
    assert activation_stage_units(schedule, pp) == acts(pp)
    assert devices(schedule, pp) == devs(pp)


def test_1f1b_and_interleaved_bubble_fractions():
    # Narayanan et al. 2021 §2.2: (p-1)/m and (p-1)/(v m); p = 8, m = 64, v = 4: 7/64 and 7/256
    assert bubble_fraction(Schedule.ONE_F_ONE_B, 8, 64) == 7 / 64
    assert bubble_fraction(Schedule.INTERLEAVED, 8, 64, vpp=4) == 7 / 256
    t = ChunkTimes(forward_s=1.0, backward_s=2.0, weight_grad_s=1.0, overlapped_fb_s=3.0)
    # 1F1B total: (m + p - 1)(F + B) = 71 x 3 = 213; interleaved: 64 x 3 + 7 x 3 / 4 = 197.25
    assert pipeline_s(Schedule.ONE_F_ONE_B, 8, 64, t) == 213.0
    assert pipeline_s(Schedule.INTERLEAVED, 8, 64, t, vpp=4) == 197.25
    with pytest.raises(ValueError):
        bubble_fraction(Schedule.DUALPIPE, 8, 64)


def test_in_flight_1f1b_is_pp_minus_rank():
    assert [in_flight_chunks(Schedule.ONE_F_ONE_B, 4, r, 16) for r in range(4)] == [4, 3, 2, 1]
    # fewer micro-batches than stages: only m in flight
    assert in_flight_chunks(Schedule.ONE_F_ONE_B, 8, 0, 3) == 3


@pytest.mark.parametrize(("p", "v"), [(4, 2), (8, 4), (8, 3), (16, 2)])
def test_interleaved_first_rank_matches_megatrons_memory_penalty(p, v):
    # Megatron's estimator: first-stage activations = p micro-batches of a stage x (1 + (p-1)/(p v));
    # in chunk units (a chunk is 1/v of a stage): v p (1 + (p-1)/(p v)) = v p + p - 1
    chunks = in_flight_chunks(Schedule.INTERLEAVED, p, 0, 1000, vpp=v)
    assert chunks / v == pytest.approx(p * (1 + (p - 1) / (p * v)))


def test_dualpipe_rank_holds_two_stages_and_twice_the_parameters():
    # 16 layers, PP 8: rank r holds stages r and 7 - r; each rank 2 x 2 layers, twice what 1F1B gives it
    model = gpt("g", hidden=1024, heads=16, layers=16)
    dual = TrainingDims(pp=8, schedule=Schedule.DUALPIPE)
    plain = TrainingDims(pp=8, schedule=Schedule.ONE_F_ONE_B)
    assert rank_chunks(dual, 2) == [2, 5]
    assert chunk_layers(model, dual) == [2] * 8
    assert rank_parameters(model, dual, 3).dense_layers == 2 * rank_parameters(model, plain, 3).dense_layers
    # DualPipeV: 2 x 4 ranks = 8 stages, rank r holds stages r and 7 - r, the 1F1B parameters of 4 ranks
    v = TrainingDims(pp=4, schedule=Schedule.DUALPIPE_V)
    assert v.stages == 8 and rank_chunks(v, 0) == [0, 7]
    assert rank_parameters(model, v, 1).dense_layers == 4


def test_uneven_layers_leave_first_and_last_chunks_lighter():
    # DeepSeek-V3: 61 layers on 16 stages -> 3 x 16 = 48, 13 extra to chunks 1..13
    from planner.catalog.models import get_model

    counts = chunk_layers(get_model("deepseek-v3"), TrainingDims(pp=16, schedule=Schedule.DUALPIPE))
    assert sum(counts) == 61 and counts[0] == 3 and counts[-1] == 3 and counts[1:14] == [4] * 13


def test_combined_1f1b_warm_up_runs_one_more_forward_and_it_runs_unpaired():
    # Megatron interleaved warm-up on rank 0, p = 8, v = 4: 2 (8 - 1) + 3 x 8 = 38 forward chunks; the combined
    # 1F1B (all-to-all overlap) adds one: 39.  m = 16 micro-batches -> 64 chunks per rank; 39 / 64 of the chunk
    # passes run alone (F + B), the rest as F&B pairs, plus the interleaved bubble (p - 1)(F + B) / v
    assert warmup_chunks(Schedule.INTERLEAVED, 8, 0, vpp=4) == 38
    assert warmup_chunks(Schedule.INTERLEAVED, 8, 0, vpp=4, paired=True) == 39
    assert warmup_chunks(Schedule.ONE_F_ONE_B, 8, 0, paired=True) == 7  # the extra forward is interleaved-only
    t = ChunkTimes(forward_s=1.0, backward_s=2.0, weight_grad_s=0.5, overlapped_fb_s=2.5)
    alone = 39 / 64
    expected = 16 * (alone * 3.0 + (1 - alone) * 2.5) + 7 * 3.0 / 4
    assert pipeline_s(Schedule.INTERLEAVED, 8, 16, t, vpp=4, paired=True) == pytest.approx(expected)


def test_combined_steps_pair_chunks_as_megatron_numbers_them_and_unequal_chunks_leave_layers_alone():
    # p = 2, v = 2, m = 4: 8 virtual micro-batches on rank 0, warm-up 2 (2 - 0 - 1) + (2 - 1) 2 + 1 = 5, so 3
    # steady steps k = 0, 1, 2 pair forward k + 5 with backward k; chunk of forward i = (i mod 4) // 2, of backward
    # 1 - (i mod 4) // 2: forward 5, 6, 7 -> chunks 0, 1, 1; backward 0, 1, 2 -> chunks 1, 1, 0
    steps = combined_step_chunks(2, 0, 4, 2)
    assert steps == [(0, 1), (1, 1), (1, 0)]
    # chunks of 3 and 1 layers: |3-1| + 0 + |1-3| = 4 layers alone of (3+1) + (1+1) + (1+3) = 10 layer passes
    assert unpaired_layer_share([3, 1], steps) == pytest.approx(0.4)
    assert unpaired_layer_share([2, 2], steps) == 0.0
