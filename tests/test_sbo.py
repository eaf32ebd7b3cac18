"""Single-batch overlap (SGLang SBO, sgl-project/sglang@0ac832c single_batch_overlap.py): hand-derived layer
time, the plan-string and dims rules, and that ``plan`` searches it."""

from __future__ import annotations

import dataclasses

import pytest

from cost_models import serving
from cost_models.all_to_all_ll import LOW_LATENCY_FIXED_S
from cost_models.kinds import OpKind
from cost_models.ops import OpCost
from cost_models.parallel import OverlapPolicy, ParallelDims, check_dims
from cost_models.step import SBO_COMBINE_SM_FRACTION, compose_single_batch
from planner.inputs.scenario import load_scenario, parse_plan
from planner.search.layouts import _moe_variants

US = 1e-6
TRT = "scenarios/validation/trt_h200_aggregated.yaml"


def _k(name: str, us: float) -> OpCost:
    return OpCost(name=name, kind=OpKind.COMPUTE, seconds=us * US)


def _ll(name: str, *, tier_us: float, wire_us: float, memory_us: float) -> OpCost:
    fixed_us = LOW_LATENCY_FIXED_S / US
    return OpCost(name=name, kind=OpKind.COMM, seconds=(fixed_us + tier_us + wire_us + memory_us) * US,
                  algorithm="deepep_low_latency",
                  detail={"scale_up_s": wire_us * US, "scale_out_s": 0.0, "memory_s": memory_us * US})


def _layer(algorithm: str = "deepep_low_latency") -> tuple[OpCost, ...]:
    dispatch = dataclasses.replace(_ll("moe.dispatch", tier_us=2, wire_us=30, memory_us=3), algorithm=algorithm)
    return (_k("attn.all", 100), _k("moe.router", 5), dispatch, _k("moe.experts_up_gate", 40),
            _k("moe.experts_act", 4), _k("moe.experts_down", 25.8),
            _ll("moe.combine", tier_us=2, wire_us=20, memory_us=1),
            _k("moe.shared.up_gate", 28), _k("moe.shared.act", 2), _k("moe.shared.down", 10))


def test_sbo_layer_time_hand_derived():
    layer = compose_single_batch("moe", 1, _layer())
    # rest = attn 100 + router 5 + up 40 + act 4 = 149 us
    # dispatch: fixed 10.7 exposed; in flight 2 + 30 = 32 us under the shared expert 28 + 2 + 10 = 40 -> 40; recv 3
    # down on 129 of 132 SMs: 25.8 x 132 / 129 = 26.4 us; combine fixed + wire 10.7 + 20 = 30.7 -> max 30.7
    # then the last block's tier latency 2 and the receiver's reduction 1
    # layer = 149 + 10.7 + 40 + 3 + 30.7 + 2 + 1 = 236.4 us  (back to back: 214.8 compute + 79.4 comm = 294.2 us)
    assert SBO_COMBINE_SM_FRACTION == pytest.approx(3 / 132)
    assert LOW_LATENCY_FIXED_S == pytest.approx(10.7e-6)
    assert layer.layer_s == pytest.approx(236.4 * US)
    assert layer.compute_s + layer.comm_s == pytest.approx(294.2 * US)
    assert layer.overlap_overhead_s == pytest.approx(0.6 * US)  # 26.4 - 25.8
    assert layer.exposed_comm_s == pytest.approx(21.0 * US)  # 236.4 - 214.8 - 0.6
    assert layer.overlapped_comm_s == pytest.approx(58.4 * US)  # 79.4 - 21.0


def test_sbo_without_low_latency_kernels_runs_back_to_back():
    layer = compose_single_batch("moe", 1, _layer(algorithm="deepep_normal"))
    assert layer.layer_s == pytest.approx(294.2 * US)
    assert layer.exposed_comm_s == pytest.approx(79.4 * US)


def test_plan_string_and_dims_rules():
    dims = parse_plan("attn_dp=8,moe_ep=8,overlap=single_batch")
    assert dims.overlap is OverlapPolicy.SINGLE_BATCH and dims.micro_batches == 1
    sc = load_scenario(TRT)
    assert check_dims(dims, sc.model, 8) == []
    bad = check_dims(dataclasses.replace(dims, micro_batches=2), sc.model, 8)
    assert [p.field for p in bad] == ["overlap"]


def test_sbo_beats_two_batch_at_small_batch_and_none_everywhere():
    """On the TRT-H200 node (ADP8 EP8, DeepSeek-R1 FP8) SBO splits no batch, so it stays under TBO at small
    batches, and it hides part of the dispatch / combine, so it stays under no overlap."""
    sc = load_scenario(TRT)
    times = {}
    for ov, mb in ((OverlapPolicy.NONE, 1), (OverlapPolicy.TWO_BATCH, 2), (OverlapPolicy.SINGLE_BATCH, 1)):
        d = dataclasses.replace(sc.plan, overlap=ov, micro_batches=mb)
        times[ov] = [serving._decode_step(sc.model, sc.cluster, d, sc.workload, b).step_s for b in (4, 32, 128)]
    assert all(s < t for s, t in zip(times[OverlapPolicy.SINGLE_BATCH], times[OverlapPolicy.TWO_BATCH], strict=True))
    assert all(s < n for s, n in zip(times[OverlapPolicy.SINGLE_BATCH], times[OverlapPolicy.NONE], strict=True))


def test_plan_searches_sbo():
    from collections import Counter
    sc = load_scenario(TRT)
    variants = list(_moe_variants(sc.model, sc.cluster, 8, 1, 1, Counter()))
    assert {d.overlap for d in variants if d.moe_ep > 1} == set(OverlapPolicy)
    assert all(d.micro_batches == 1 for d in variants if d.overlap is OverlapPolicy.SINGLE_BATCH)
    assert isinstance(variants[0], ParallelDims)


def test_sglang_launch_line_enables_single_batch_overlap_and_others_say_they_cannot():
    from click.testing import CliRunner

    from planner.cli import main
    plan = "attn_tp=1,attn_dp=16,moe_ep=16,redundant_experts=16,overlap=single_batch"
    res = CliRunner().invoke(main, ["evaluate", "scenarios/deepseek_v3_h200_16.yaml", "--plan", plan,
                                    "--overlap-model", "closed-form", "--emit", "sglang"])
    assert res.exit_code == 0, res.output
    assert "--enable-single-batch-overlap" in res.output and "--enable-two-batch-overlap" not in res.output
    res = CliRunner().invoke(main, ["evaluate", "scenarios/deepseek_v3_h200_16.yaml", "--plan", plan,
                                    "--overlap-model", "closed-form", "--emit", "vllm"])
    assert res.exit_code == 0, res.output
    assert "single-batch overlap) has no vllm setting" in res.output
