"""Training degrees: one feasible and one infeasible case per check, and MoE parallel folding."""

from __future__ import annotations

import pytest

from cost_models.training.dims import (
    ContextParallel,
    Schedule,
    TrainingDims,
    check_training_dims,
)
from planner.catalog.models import get_model

DSV3 = get_model("deepseek-v3")
Q235 = get_model("qwen3-235b-a22b")


def _fields(dims: TrainingDims, model=Q235, devices=256, seq=4096, gbs=2048) -> list[str]:
    return [p.field for p in check_training_dims(dims, model, devices, seq_tokens=seq, global_batch_sequences=gbs)]


def test_published_layouts_are_accepted():
    # TR-Q235-H100: TP2 PP8 VPP4 EP32 DP16 on 256; TR-DSV3-H800: PP16 DualPipe EP64 DP128 on 2048
    assert _fields(TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED)) == []
    assert _fields(TrainingDims(pp=16, dp=128, ep=64, schedule=Schedule.DUALPIPE), DSV3, 2048, 4096, 15360) == []


def test_folding_gives_expert_data_parallelism():
    # TP2 x DP16 = 32 devices per stage = EP32 x ETP1 -> EDP 1; EP8 -> EDP 4
    assert TrainingDims(tp=2, pp=8, dp=16, ep=32).edp == 1
    assert TrainingDims(tp=2, pp=8, dp=16, ep=8).edp == 4


@pytest.mark.parametrize(("dims", "field"), [
    (TrainingDims(tp=2, pp=8, dp=8, ep=32), "tp*cp*dp*pp"),  # 128 devices, not 256
    (TrainingDims(tp=3, pp=8, dp=16, ep=32), "tp"),  # 64 heads
    (TrainingDims(tp=2, pp=8, dp=16, ep=48), "ep"),  # 128 experts
    (TrainingDims(tp=2, pp=8, dp=16, ep=32, etp=5), "etp"),  # expert width 1536
    (TrainingDims(tp=2, pp=8, dp=16, ep=64), "ep*etp"),  # 64 > tp*cp*dp = 32
    (TrainingDims(tp=2, sequence_parallel=False, pp=8, dp=16, ep=32), "sequence_parallel"),
    (TrainingDims(tp=2, pp=8, dp=16, ep=32, vpp=2), "vpp"),  # vpp without the interleaved schedule
    (TrainingDims(tp=2, pp=128, dp=1, ep=2), "pp"),  # 128 stages > 94 layers
    (TrainingDims(tp=2, pp=8, dp=16, ep=32, micro_batch_sequences=3), "micro_batch_sequences"),
    (TrainingDims(tp=2, cp=3, pp=8, dp=16, ep=32), "tp*cp*dp*pp"),
])
def test_each_problem_is_reported(dims, field):
    assert field in _fields(dims)


def test_tp_beyond_the_kv_heads_replicates_them():
    # 4 KV heads: tp 8 is a multiple (each KV head on 2 ranks) -> accepted
    assert _fields(TrainingDims(tp=8, pp=8, dp=4, ep=32)) == []


def test_context_parallel_checks():
    # ring: seq divisible by 2 cp; Ulysses: tp x cp divides the 64 heads
    ok = TrainingDims(tp=2, cp=2, pp=8, dp=8, ep=32)
    assert _fields(ok) == []
    assert "cp" in _fields(TrainingDims(tp=2, cp=2, pp=8, dp=8, ep=32), seq=4098)
    assert "cp" in _fields(TrainingDims(tp=8, cp=16, pp=2, dp=1, ep=32, cp_kind=ContextParallel.ULYSSES), gbs=2048)


def test_schedule_checks():
    # interleaved needs m divisible by pp: GBS 1936 / DP 16 = 121 micro-batches, not a multiple of 8
    assert "schedule" in _fields(TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED),
                                 gbs=1936)
    # DualPipe: even pp, and at least 2 pp micro-batches
    assert "pp" in _fields(TrainingDims(tp=2, pp=7, dp=16, ep=32, schedule=Schedule.DUALPIPE), devices=224,
                           gbs=2240)
    assert "schedule" in _fields(TrainingDims(tp=2, pp=8, dp=16, ep=32, schedule=Schedule.DUALPIPE), gbs=16 * 15)
    assert _fields(TrainingDims(tp=2, pp=8, dp=16, ep=32, schedule=Schedule.DUALPIPE), gbs=16 * 16) == []


def test_dense_model_rejects_experts():
    llama = get_model("llama-3.1-405b")
    assert "ep" in _fields(TrainingDims(tp=8, pp=16, dp=64, ep=8), llama, 8192, 8192, 2048)
    assert _fields(TrainingDims(tp=8, pp=16, dp=64), llama, 8192, 8192, 2048) == []
