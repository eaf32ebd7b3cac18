"""CP-SAT deployment model: tiny feasible / infeasible instances per constraint, and agreement with brute force."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.parallel import ParallelDims
from planner.cpsat import quantize
from planner.cpsat.deployment import DeploymentInstance, solve_top_k
from planner.search.layouts import Candidate
from planner.search.validate import brute_force_best, ranking_preserved, recost


def cand(devices: int, *, pre: float = 0.0, dec: float = 0.0, agg: float = 0.0, tpot: float = 0.05,
         pre_ok: bool = True, dec_ok: bool = True, agg_ok: bool = True, tag: int = 0) -> Candidate:
    return Candidate(dims=ParallelDims(attn_dp=devices, moe_ep=devices, dense_tp=1 + tag),
                     devices_per_replica=devices,
                     prefill_tok_per_s_per_device=pre, ttft_s=1.0, decode_tok_per_s_per_device=dec, tpot_s=tpot,
                     decode_batch_per_device=1.0, aggregated_tok_per_s_per_device=agg, aggregated_user_tok_per_s=1 / tpot,
                     aggregated_tpot_s=tpot, memory_used_bytes=0.0, prefill_ok=pre_ok, decode_ok=dec_ok,
                     aggregated_ok=agg_ok, costed=None)  # type: ignore[arg-type]


def inst(cands, devices=16, objective="throughput", **kw) -> DeploymentInstance:
    return DeploymentInstance(candidates=tuple(cands), cluster_devices=devices, input_tokens=1000, output_tokens=1000,
                              objective=objective, **kw)


def test_device_budget_feasible_and_infeasible():
    # a 16-device layout fits a 16-device cluster ...
    found, stats = solve_top_k(inst([cand(16, agg=100.0)]), k=1)
    assert stats[0].status == "OPTIMAL" and found[0].devices_used == 16
    # ... a 32-device layout does not
    found, stats = solve_top_k(inst([cand(32, agg=100.0)]), k=1)
    assert not found and stats[0].status == "INFEASIBLE"


def test_prefill_rate_feeds_decode_rate():
    # decode pool could emit 8 x 1000 tok/s, but an 8-device prefill pool at 100 input tok/s/device (input =
    # output length) feeds only 800 output tok/s: Z = min(8000, 800) = 800
    p = cand(8, pre=100.0, dec_ok=False, agg_ok=False)
    d = cand(8, dec=1000.0, pre_ok=False, agg_ok=False, tag=1)
    found, _ = solve_top_k(inst([p, d]), k=1)
    assert found[0].mode == "disaggregated"
    assert quantize.from_tok_per_s(found[0].output_tok_per_s_units) == pytest.approx(800.0)


def test_disaggregated_needs_both_pools():
    # only a prefill-capable layout: no decode pool exists, so no deployment (infeasible)
    found, stats = solve_top_k(inst([cand(8, pre=100.0, dec_ok=False, agg_ok=False)]), k=1)
    assert not found and stats[0].status == "INFEASIBLE"


def test_exactly_one_mode():
    a = cand(8, agg=500.0, pre_ok=False, dec_ok=False)
    p = cand(4, pre=10_000.0, dec_ok=False, agg_ok=False, tag=1)
    d = cand(4, dec=900.0, pre_ok=False, agg_ok=False, tag=2)
    found, _ = solve_top_k(inst([a, p, d], devices=8), k=2)
    # aggregated: 8 x 500 = 4000; disaggregated: 4 x 900 = 3600 (prefill feeds 40,000): aggregated wins
    assert [f.mode for f in found] == ["aggregated", "disaggregated"]


def test_devices_objective_meets_rate_with_fewest_devices():
    c = cand(4, agg=100.0)
    found, _ = solve_top_k(inst([c], devices=16, objective="devices", required_output_tok_per_s=750.0), k=1)
    # 750 tok/s at 400 per replica needs 2 replicas = 8 devices
    assert found[0].devices_used == 8
    found, stats = solve_top_k(inst([c], devices=16, objective="devices", required_output_tok_per_s=2000.0), k=1)
    assert not found and stats[0].status == "INFEASIBLE"


def test_latency_objective_prefers_lowest_tpot():
    fast = cand(8, agg=100.0, tpot=0.02)
    slow = cand(8, agg=300.0, tpot=0.05, tag=1)
    found, _ = solve_top_k(inst([fast, slow], devices=8, objective="latency"), k=1)
    assert found[0].decode is fast


_rate = st.floats(min_value=10.0, max_value=5000.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), _rate, _rate, _rate, st.booleans(), st.booleans()),
                min_size=1, max_size=5),
       st.sampled_from([8, 16]))
def test_cpsat_matches_brute_force(rows, devices):
    cands = [cand(n, pre=p, dec=d, agg=a, agg_ok=ok_a, pre_ok=True, dec_ok=ok_d, tag=i)
             for i, (n, p, d, a, ok_a, ok_d) in enumerate(rows)]
    instance = inst(cands, devices=devices)
    best, _ = brute_force_best(instance)
    found, stats = solve_top_k(instance, k=3)
    if best == 0.0:
        assert not found or recost(found[0], instance).output_tok_per_s == pytest.approx(0.0, abs=1.0)
        return
    assert stats[0].status == "OPTIMAL"
    got = recost(found[0], instance).output_tok_per_s
    assert got == pytest.approx(best, abs=quantize.max_rounding_error_tok_per_s(devices) * 2 + 1e-6)
    assert ranking_preserved(found, instance)
