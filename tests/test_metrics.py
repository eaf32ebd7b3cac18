"""One definition per metric: hand-derived values of cost_models.metrics, the plan's latency objective on the
same effective TPOT as its feasibility check, and ``evaluate A B`` agreeing with ``compare`` on every metric
both show."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from cost_models import metrics
from cost_models.kinds import DeploymentMode, PoolRole
from cost_models.parallel import ParallelDims
from planner.analysis import compare as cmp
from planner.cli import app, main
from planner.cpsat.deployment import DeploymentInstance, solve_top_k
from planner.search.layouts import Candidate
from planner.search.validate import recost

ROOT = Path(__file__).resolve().parents[1]
ASCEND_16 = str(ROOT / "scenarios" / "ascend_910b_deepseek_v3_16cards.yaml")
ASCEND_64 = str(ROOT / "scenarios" / "ascend_910b_deepseek_v3_64cards.yaml")
AGG, DIS = DeploymentMode.AGGREGATED, DeploymentMode.DISAGGREGATED


def _mem(static: float, weights: float) -> SimpleNamespace:
    return SimpleNamespace(static_bytes=static, weight_bytes=weights)


def _result(*, pre_tok: float, dec_tok: float, agg_tok: float, user_tok: float, ttft: float, tpot: float,
            pre_static: float, dec_static: float) -> SimpleNamespace:
    """The attributes of a ServingResult the metrics read."""
    return SimpleNamespace(
        prefill=SimpleNamespace(throughput_tok_per_s_per_device=pre_tok, latency_s=ttft,
                                memory=_mem(pre_static, 10.0)),
        decode=SimpleNamespace(throughput_tok_per_s_per_device=dec_tok, latency_s=tpot,
                               memory=_mem(dec_static, 10.0)),
        aggregated_output_tok_per_s_per_device=agg_tok, aggregated_user_tok_per_s=user_tok)


def _pool(r: SimpleNamespace, n: int) -> SimpleNamespace:
    return SimpleNamespace(result=r, pool_devices=n)


R = _result(pre_tok=2000.0, dec_tok=200.0, agg_tok=120.0, user_tok=8.0, ttft=2.0, tpot=0.05,
            pre_static=46.0, dec_static=45.0)


def test_aggregated_metrics_by_hand():
    pool = _pool(R, 16)
    assert metrics.deployment_devices(AGG, pool, pool) == 16                    # one pool, counted once
    assert metrics.output_tok_per_s(AGG, pool, pool, input_tokens=2048, output_tokens=512) == 120.0 * 16
    assert metrics.output_tok_per_s_per_device(AGG, pool, pool, input_tokens=2048, output_tokens=512) == 120.0
    assert metrics.static_bytes_per_device(AGG, pool, pool) == 46.0            # max of prefill 46, decode 45
    assert metrics.effective_tpot_s(AGG, R) == 1 / 8.0                         # the cycle, not the 50 ms step
    assert metrics.deployment_end_to_end_s(AGG, pool, pool, 512) == 2.0 + 512 / 8.0   # 66 s


def test_disaggregated_metrics_by_hand():
    pre, dec = _pool(R, 4), _pool(R, 12)
    assert metrics.deployment_devices(DIS, pre, dec) == 16
    # decode pool: 200 x 12 = 2,400 tok/s; prefill pool feeds 2,000 x 4 x 512 / 2048 = 2,000 tok/s: the minimum
    assert metrics.output_tok_per_s(DIS, pre, dec, input_tokens=2048, output_tokens=512) == 2000.0
    assert metrics.output_tok_per_s_per_device(DIS, pre, dec, input_tokens=2048, output_tokens=512) == 125.0
    # prefill pool's prefill (46) vs decode pool's decode (45); neither pool runs the other phase
    assert metrics.static_bytes_per_device(DIS, pre, dec) == 46.0
    assert metrics.pool_static_bytes(PoolRole.DECODE, R) == 45.0
    assert metrics.effective_tpot_s(DIS, R) == 0.05
    assert metrics.deployment_end_to_end_s(DIS, pre, dec, 512) == pytest.approx(2.0 + 512 * 0.05)  # 27.6 s
    # intake 2,000 x 4 / 2048 = 3.906 requests/s; service 200 x 12 / 512 = 4.6875: the prefill pool binds
    assert metrics.request_rates_per_s(DIS, pre, dec, input_tokens=2048, output_tokens=512) == (8000 / 2048,
                                                                                                2400 / 512)


def test_pool_memory_and_aggregated_request_rate_by_hand():
    r = SimpleNamespace(prefill=SimpleNamespace(memory=SimpleNamespace(used_bytes=70.0)),
                        decode=SimpleNamespace(memory=SimpleNamespace(used_bytes=90.0)))
    assert metrics.pool_used_bytes(PoolRole.PREFILL, r) == 70.0       # a prefill pool never decodes
    assert metrics.pool_used_bytes(PoolRole.AGGREGATED, r) == 90.0    # both phases: the busier
    pool = _pool(R, 16)
    # 120 tok/s x 16 devices / 512 answer tokens = 3.75 requests/s, taken in and served by the one cycle
    assert metrics.request_rates_per_s(AGG, pool, pool, input_tokens=2048, output_tokens=512) == (3.75, 3.75)


def test_aggregated_tpot_is_infinite_when_nothing_is_decoded():
    assert metrics.aggregated_tpot_s(0.0) == float("inf")


def _cand(tag: int, *, agg: float, tpot: float, agg_tpot: float) -> Candidate:
    return Candidate(dims=ParallelDims(attn_dp=8, moe_ep=8, dense_tp=1 + tag), devices_per_replica=8,
                     prefill_tok_per_s_per_device=0.0, ttft_s=1.0, decode_tok_per_s_per_device=0.0, tpot_s=tpot,
                     decode_batch_per_device=1.0, aggregated_tok_per_s_per_device=agg,
                     aggregated_user_tok_per_s=1 / agg_tpot, aggregated_tpot_s=agg_tpot, memory_used_bytes=0.0,
                     prefill_ok=True, decode_ok=True, aggregated_ok=True, costed=None)  # type: ignore[arg-type]


def test_latency_objective_ranks_aggregated_layouts_by_the_tpot_users_see():
    # A decodes in 20 ms steps but its prompt phases stretch a user's TPOT to 200 ms; B: 50 ms steps, 60 ms seen.
    # The feasibility check uses the 200 / 60 ms; so must the objective: B.
    a = _cand(0, agg=100.0, tpot=0.02, agg_tpot=0.2)
    b = _cand(1, agg=100.0, tpot=0.05, agg_tpot=0.06)
    inst = DeploymentInstance(candidates=(a, b), cluster_devices=8, input_tokens=1000, output_tokens=1000,
                              objective="latency", allow_disaggregated=False)
    found, _ = solve_top_k(inst, k=1)
    assert found[0].decode is b
    assert recost(found[0], inst).tpot_s == 0.06


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by metric name: the cells after the name, ratios in brackets dropped."""
    out = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) >= 3 and cells[0]:
            out[cells[0]] = [c.split(" (x")[0] for c in cells[1:]]
    return out


def test_evaluate_side_by_side_and_compare_agree(monkeypatch):
    monkeypatch.setattr(app, "out", Console(width=1000, soft_wrap=False, color_system=None))
    ev = CliRunner().invoke(main, ["evaluate", ASCEND_16, ASCEND_64])
    assert ev.exit_code == 0, ev.output
    side = _rows(ev.output.split("Side by side")[1])
    co = CliRunner().invoke(main, ["compare", ASCEND_16, "--baseline", ASCEND_16, "--candidate", ASCEND_64])
    assert co.exit_code == 0, co.output
    both = _rows(co.output.split("Compare (ratio")[1])
    shared = set(side) & set(both)
    assert shared == set(cmp.SIDE_BY_SIDE)            # every side-by-side row is a compare row
    for name in shared:
        assert side[name] == both[name][:2], name      # same baseline and candidate figure
    # the figures the issue found apart: static memory (max of the phases) and the deployment's output rate
    assert side[cmp.STATIC] == ["46.5 GiB", "17.9 GiB"]
    # 1,926 -> 3,077 before the collective-algorithm model; 1,970 -> 3,082 before the auxiliary kernels (activation
    # quantization passes, KV-cache write); 1,873 -> 2,917 before the expert GEMMs on the busiest EP device;
    # 1,860 -> 2,908 before the NCCL protocol model (collectives.py: LL / Simple, kernel base, fitted NVLink steps)
    assert side[cmp.THROUGHPUT] == ["1,841", "2,902"]
