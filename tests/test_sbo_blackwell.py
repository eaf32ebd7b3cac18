"""SGLang's single-batch overlap on Blackwell (cost_models.sbo_blackwell, sgl-project/sglang@0ac832c
single_batch_overlap.py): hand-derived layer times on the same toy layer as tests/test_sbo.py, and which devices
and expert formats take which path."""

from __future__ import annotations

import pytest

from cost_models.sbo_blackwell import BLACKWELL_SBO_COMMUNICATE_SMS, runs_blackwell_sbo
from cost_models.step import compose_single_batch
from planner.catalog.devices import device_ids, get_device
from planner.inputs.scenario import load_scenario
from tests.test_sbo import _layer

US = 1e-6


def test_fp8_experts_combine_waits_for_the_whole_down_gemm():
    layer = compose_single_batch("moe", 1, _layer(), blackwell=(148, False))
    # rest = attn 100 + router 5 + up 40 + act 4 = 149 us; dispatch whole: 10.7 + 2 + 30 + 3 = 45.7 us
    # down 25.8 us on every SM, then the shared expert (28 + 2 + 10 = 40 us) on 148 - 32 = 116 SMs:
    # 40 x 148 / 116 = 51.03 us beside the whole combine 10.7 + 2 + 20 + 1 = 33.7 us -> 51.03
    # layer = 149 + 45.7 + 25.8 + 51.03 = 271.53 us
    assert BLACKWELL_SBO_COMMUNICATE_SMS == 32
    assert layer.layer_s == pytest.approx((149 + 45.7 + 25.8 + 40 * 148 / 116) * US)
    assert layer.overlap_overhead_s == pytest.approx(40 * (148 / 116 - 1) * US)  # 11.03 us
    assert layer.exposed_comm_s == pytest.approx(layer.layer_s - layer.compute_s - layer.overlap_overhead_s)


def test_nvfp4_experts_stream_the_combine_behind_the_signalling_down_gemm():
    layer = compose_single_batch("moe", 1, _layer(), blackwell=(148, True))
    # down 25.8 and shared 40 on 116 SMs: 65.8 x 148 / 116 = 83.95 us; the combine starts with the down GEMM:
    # max(25.8 x 148 / 116 = 32.92, fixed 10.7 + wire 20 = 30.7) + tier latency 2 + reduction 1 = 35.92 us
    # layer = 149 + 45.7 + max(83.95, 35.92) = 278.65 us
    assert layer.layer_s == pytest.approx((149 + 45.7 + 65.8 * 148 / 116) * US)
    assert layer.overlap_overhead_s == pytest.approx(65.8 * (148 / 116 - 1) * US)


def test_blackwell_paths_are_taken_on_fp4_capable_nvidia_parts_only():
    # the catalog's Blackwell parts; every Hopper / Ampere / AMD / Ascend entry keeps the Hopper schedule
    assert {d for d in device_ids() if runs_blackwell_sbo(get_device(d))} == {"b200", "gb200_nvl72"}


def test_the_gb200_rows_take_their_runners_paths():
    """2b (FP8 experts, DeepGEMM) exposes the down GEMM before its combine, 2a (NVFP4, CuTe DSL) streams it."""
    from cost_models import serving

    for stem, signal in (("sgl_gb200_2a_decode", True), ("sgl_gb200_2b_decode", False)):
        sc = load_scenario(f"scenarios/validation/{stem}.yaml")
        step = serving._decode_step(sc.model, sc.cluster, sc.plan, sc.workload, sc.workload.decode_batch_per_device)
        moe = next(layer for layer in step.layers if layer.kind == "moe")
        again = compose_single_batch("moe", 1, moe.ops, blackwell=(148, signal))
        assert moe.layer_s == pytest.approx(again.layer_s)
