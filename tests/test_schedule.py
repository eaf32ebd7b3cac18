"""CP-SAT layer schedule (planner/cpsat/schedule.py) and its document and chart (planner/documents/schedule.py, planner/render/gantt.py).

Micro-models: one feasible and one infeasible tiny instance per constraint, durations in ns with the optimum
derived by hand in the comments.  Then the DeepSeek-V3 decode layer from hand-made OpCosts (the acceptance
example), bounds that hold for every schedule (Hypothesis), the float re-costing, the cache and the report.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cost_models.ops import OpCost
from planner.cpsat import schedule as sc
from planner.cpsat.schedule import ScheduleInstance, check_schedule, schedule_layer, solve_instance
from planner.cpsat.schedule_result import ScheduledOp, fold
from planner.documents.base import as_dict
from planner.documents.schedule import schedule_document
from planner.render.gantt import gantt_text

US = 1e-6


def inst(ops: list[tuple[str, str, int]], *, k: int = 1, w: int = 1, c: int = 0) -> ScheduleInstance:
    """ops: (name, resource, ns)."""
    return ScheduleInstance(names=tuple(o[0] for o in ops), resources=tuple(o[1] for o in ops),
                            duration_ticks=tuple(o[2] for o in ops), micro_batches=k, comm_demand=c, window_layers=w)


def feasible(i: ScheduleInstance, **bound: int) -> bool:
    return solve_instance(i, time_limit_s=5.0, **bound) is not None


def comp(name: str, us: float) -> OpCost:
    return OpCost(name=name, kind="compute", seconds=us * US, bound="compute")


def comm(name: str, us: float, bound: str = "scale_out", **kw) -> OpCost:
    return OpCost(name=name, kind="comm", seconds=us * US, bound=bound, **kw)


# DeepSeek-V3 decode, one micro-batch of a two-batch-overlap step on one device (hand-made, realistic sizes):
# MLA attention 150 us in 8 kernels, router 10 us, low-latency dispatch 70 us and combine 100 us over RDMA
# (no SMs), routed experts 130 us, shared expert 20 us.  Per micro-batch: compute 310 us, comm 170 us.
DEEPSEEK_DECODE = (
    comp("attn.norm", 3), comp("attn.qkv_a_proj", 12), comp("attn.q_b_proj", 10), comp("attn.absorb_uk", 15),
    comp("attn.core", 80), comp("attn.absorb_uv", 12), comp("attn.rope", 3), comp("attn.o_proj", 15),
    comp("moe.norm", 3), comp("moe.router", 4), comp("moe.topk", 3), comm("moe.dispatch", 70),
    comp("moe.experts_up_gate", 80), comp("moe.experts_act", 5), comp("moe.experts_down", 45),
    comm("moe.combine", 100), comp("moe.shared.up_gate", 12), comp("moe.shared.act", 2),
    comp("moe.shared.down", 6),
)
DENSE_TP = (comp("attn.norm", 2), comp("attn.qkv_proj", 40), comp("attn.core", 60), comp("attn.o_proj", 20),
            comm("attn.tp_all_reduce", 35, "scale_up"), comp("ffn.norm", 2), comp("ffn.up_gate", 70),
            comp("ffn.act", 4), comp("ffn.down", 40), comm("ffn.tp_all_reduce", 35, "latency",
                                                           detail={"scale_up_s": 30e-6, "scale_out_s": 0.0}))


# --- one feasible and one infeasible micro-model per constraint ----------------------------------------------

def test_link_carries_one_op_at_a_time():
    # two micro-batches' dispatches (100 ns each) on one link within one layer: span >= 100 + 100
    i = inst([("moe.dispatch", "scale_out", 100)], k=2)
    assert feasible(i, max_span_ticks=200)
    assert not feasible(i, max_span_ticks=199)


def test_compute_stream_runs_one_kernel_at_a_time():
    i = inst([("attn.core", "compute", 100)], k=2)
    assert feasible(i, max_span_ticks=200)
    assert not feasible(i, max_span_ticks=199)


def test_ops_on_different_resources_overlap():
    # compute 100 -> comm 100, two micro-batches: mb1 computes [100, 200] while mb0 sends; span 300, not 400
    i = inst([("a", "compute", 100), ("d", "scale_out", 100)], k=2)
    assert feasible(i, max_span_ticks=300)
    assert not feasible(i, max_span_ticks=299)


def test_precedence_within_a_micro_batch():
    # the two ops are on different resources, so only the chain keeps them apart: 100 + 100
    i = inst([("d", "scale_out", 100), ("e", "compute", 100)])
    assert feasible(i, max_span_ticks=200)
    assert not feasible(i, max_span_ticks=199)


def test_next_layer_waits_for_its_own_micro_batch():
    # one micro-batch, compute 100 -> comm 100, two layers in flight: without the cross-layer edge layer i+1
    # could compute during layer i's comm (period 100 = the busiest resource); with it the period is 200
    i = inst([("a", "compute", 100), ("d", "scale_out", 100)], w=2)
    assert feasible(i, max_period_ticks=200)
    assert not feasible(i, max_period_ticks=199)


def test_window_one_is_a_layer_in_isolation_two_lets_layers_overlap():
    # compute 100 -> comm 100, two micro-batches: in isolation the layer takes 300 (mb1's comm is exposed);
    # with two layers in flight mb0's next attention runs during mb1's comm: period = compute work = 200
    ops = [("a", "compute", 100), ("d", "scale_out", 100)]
    assert feasible(inst(ops, k=2, w=1), max_period_ticks=300)
    assert not feasible(inst(ops, k=2, w=1), max_period_ticks=299)
    assert feasible(inst(ops, k=2, w=2), max_period_ticks=200)
    assert not feasible(inst(ops, k=2, w=2), max_period_ticks=199)


def test_shared_expert_runs_beside_dispatch():
    # main chain: norm 10 + dispatch 100 + experts 50 + combine 100 = 260; the shared expert (100) forks from
    # moe.norm and fits during dispatch [10, 110]; in the chain it would make 360
    ops = [("moe.norm", "compute", 10), ("moe.dispatch", "scale_out", 100), ("moe.experts", "compute", 50),
           ("moe.combine", "scale_out", 100), ("moe.shared.up_gate", "compute", 100)]
    assert sc.dependencies([o[0] for o in ops]) == ((), (0,), (1,), (2,), (0,))
    assert feasible(inst(ops), max_span_ticks=260)
    assert not feasible(inst(ops), max_span_ticks=259)


def test_comm_kernel_takes_compute_units():
    # compute 100 -> comm 100, two micro-batches, comm kernels hold half the units (c = 500 per mille):
    # a full-width compute block cannot run beside a comm kernel, a half-width one takes 100 x 1000/500 = 200:
    # mb0 compute [0, 100], comm [100, 200]; mb1 compute (half) [100, 300] or (full) [200, 300]; comm [300, 400]
    ops = [("a", "compute", 100), ("d", "scale_out", 100)]
    assert feasible(inst(ops, k=2, c=500), max_span_ticks=400)
    assert not feasible(inst(ops, k=2, c=500), max_span_ticks=399)
    # c = 250: half mode takes ceil(100 x 1000/750) = 134: mb1 compute [100, 234], comm [234, 334]
    assert feasible(inst(ops, k=2, c=250), max_span_ticks=334)
    assert not feasible(inst(ops, k=2, c=250), max_span_ticks=333)


# --- the DeepSeek-V3 decode layer (acceptance) ----------------------------------------------------------------

def _overlap_s(a: list[ScheduledOp], b: list[ScheduledOp], period: float) -> float:
    pa = [p for o in a for p in fold(o.start_s, o.end_s, period)]
    pb = [p for o in b for p in fold(o.start_s, o.end_s, period)]
    return sum(max(0.0, min(y, v) - max(x, u)) for x, y in pa for u, v in pb)


def test_deepseek_decode_two_micro_batches_hide_the_all_to_all():
    s = schedule_layer(DEEPSEEK_DECODE, micro_batches=2, comm_sm_fraction=0.0, time_limit_s=5.0)
    assert check_schedule(s) == []
    assert s.stats.status == "OPTIMAL"
    # compute 2 x 310 = 620 us is the busiest resource; comm 2 x 170 = 340 us; back to back 960 us
    assert s.busiest_resource == "compute"
    assert s.busiest_resource_s == pytest.approx(620 * US)
    assert s.no_overlap_s == pytest.approx(960 * US)
    # DeepSeek's two-batch overlap: every all-to-all is hidden, the layer costs its compute
    assert s.makespan_s == pytest.approx(620 * US, abs=1e-9)
    assert s.exposed_comm_s == pytest.approx(0.0, abs=1e-9)
    for b in (0, 1):
        mine = [o for o in s.intervals if o.micro_batch == b and o.kind == "comm"]
        other = [o for o in s.intervals if o.micro_batch == 1 - b and o.kind == "compute"]
        # most of micro-batch b's dispatch + combine (170 us) runs while the other micro-batch computes
        assert _overlap_s(mine, other, s.makespan_s) > 100 * US
    # in isolation (no cross-layer overlap) the same layer exposes part of the last combine
    alone = schedule_layer(DEEPSEEK_DECODE, micro_batches=2, comm_sm_fraction=0.0, window_layers=1)
    assert s.makespan_s < alone.makespan_s < s.no_overlap_s


def test_comm_kernels_on_sms_cost_overlap():
    # prefill-style kernels on 20 of 132 SMs: overlap still pays, but less than with SM-free kernels
    free = schedule_layer(DEEPSEEK_DECODE, micro_batches=2, comm_sm_fraction=0.0)
    sms = schedule_layer(DEEPSEEK_DECODE, micro_batches=2, comm_sm_fraction=20 / 132, time_limit_s=1.0)
    assert check_schedule(sms) == []
    assert free.makespan_s < sms.makespan_s < sms.no_overlap_s
    assert sms.makespan_s >= sms.busiest_resource_s
    assert any(o.sm_shared for o in sms.intervals)


def test_dense_layer_with_tp_all_reduce():
    s = schedule_layer(DENSE_TP, micro_batches=2, comm_sm_fraction=0.0)
    assert check_schedule(s) == []
    assert {o.resource for o in s.intervals} == {"compute", "scale_up"}  # the latency-bound one by its detail
    # compute 2 x 238 = 476 us, NVLink 2 x 70 = 140 us: the all-reduces hide behind the other micro-batch
    assert s.makespan_s == pytest.approx(476 * US, abs=1e-9)


# --- properties -------------------------------------------------------------------------------------------------

op_st = st.tuples(st.sampled_from(["compute", "scale_up", "scale_out"]), st.floats(0.0, 200.0),
                  st.sampled_from(["x", "moe.norm", "moe.shared.a"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_st, min_size=1, max_size=5), k=st.integers(1, 3), f=st.sampled_from([0.0, 0.15]),
       w=st.integers(1, 2))
def test_makespan_between_busiest_resource_and_no_overlap(ops, k, f, w):
    layer = tuple(comp(f"{n}{i}", us) if r == "compute" else comm(f"{n}{i}", us, r)
                  for i, (r, us, n) in enumerate(ops))
    s = schedule_layer(layer, micro_batches=k, comm_sm_fraction=f, window_layers=w, time_limit_s=0.1)
    assert check_schedule(s) == []
    assert s.busiest_resource_s * (1 - 1e-12) <= s.makespan_s <= s.no_overlap_s * (1 + 1e-12)
    assert s.layer_latency_s <= w * s.makespan_s * (1 + 1e-12)


# --- quantization, re-costing, cache, inputs ------------------------------------------------------------------

def test_to_ns_rounds_up_but_ignores_float_noise():
    assert sc.to_ns(1e-6) == 1000
    assert sc.to_ns(3 * 1e-7) == 300  # 300.00000000000006 ns of float noise
    assert sc.to_ns(100.4e-9) == 101


def test_float_recost_uses_exact_durations():
    # 100.4 ns ops quantize to 101: integer period 2 x 101 = 202 ns.  The float schedule keeps the integer
    # starts with exact durations: mb0 a [0, 100.4], d [101, 201.4]; the next layer's a waits for d, so the
    # re-costed period is 201.4 ns, between the float optimum 200.8 and the integer 202 (<= 1 ns per op)
    layer = (comp("a", 100.4e-3), comm("d", 100.4e-3))
    s = schedule_layer(layer, micro_batches=2, comm_sm_fraction=0.0)
    assert check_schedule(s) == []
    assert s.stats.objective == pytest.approx(202e-9)
    assert s.makespan_s == pytest.approx(201.4e-9, rel=1e-9)
    assert all(o.end_s - o.start_s == pytest.approx(100.4e-9) for o in s.intervals)


def test_solves_are_cached_per_duration_set():
    layer = (comp("a", 7.0), comm("d", 5.0))
    before = sc._solve_cached.cache_info().hits
    a = schedule_layer(layer, micro_batches=2, comm_sm_fraction=0.0)
    b = schedule_layer(tuple(reversed(tuple(reversed(layer)))), micro_batches=2, comm_sm_fraction=0.0)
    assert sc._solve_cached.cache_info().hits == before + 1
    assert a == b


def test_overlap_hook_matches_schedule():
    t = sc.overlapped_layer_time(DEEPSEEK_DECODE, 2, 0.0)
    assert t == pytest.approx(620 * US, abs=1e-9)


def test_resource_of_latency_bound_comm():
    assert sc.resource_of(comm("x", 1, "latency", detail={"scale_up_s": 2e-6, "scale_out_s": 1e-6})) == "scale_up"
    assert sc.resource_of(comm("x", 1, "latency", scale_up_bytes=10.0)) == "scale_up"
    assert sc.resource_of(comm("x", 1, "latency")) == "scale_out"


def test_blocks_follow_stream_stages():
    names = [o.name for o in DEEPSEEK_DECODE]
    res = [sc.resource_of(o) for o in DEEPSEEK_DECODE]
    got = [[names[i] for i in b] for b in sc.blocks(names, res)]
    assert [b[0] for b in got] == ["attn.norm", "moe.router", "moe.dispatch", "moe.experts_up_gate", "moe.combine",
                                   "moe.shared.up_gate"]
    assert got[0][-1] == "moe.norm"  # the fork ends a block


@pytest.mark.parametrize("bad", [
    dict(comm_sm_fraction=1.0), dict(comm_sm_fraction=-0.1), dict(micro_batches=0),
])
def test_bad_input(bad):
    kw = dict(micro_batches=2, comm_sm_fraction=0.0) | bad
    with pytest.raises(ValueError):
        schedule_layer(DEEPSEEK_DECODE, **kw)


def test_bad_ops():
    with pytest.raises(ValueError):
        schedule_layer((comp("a", 1), comp("a", 1)), micro_batches=1, comm_sm_fraction=0.0)
    with pytest.raises(ValueError):
        schedule_layer((OpCost(name="a", kind="io", seconds=1e-6),), micro_batches=1, comm_sm_fraction=0.0)


# --- report ---------------------------------------------------------------------------------------------------

def test_gantt_and_document():
    s = schedule_layer(DEEPSEEK_DECODE, micro_batches=2, comm_sm_fraction=0.0)
    text = gantt_text(s, width=80)
    rows = [line for line in text.splitlines() if line.startswith(("compute", "scale_out"))]
    assert [r.split("|")[0].strip() for r in rows] == ["compute mb0", "compute mb1", "scale_out mb0", "scale_out mb1"]
    assert all(len(r.split("|")[1]) == 80 for r in rows)
    assert "620.0 us" in text and "960.0 us" in text and "bottleneck: compute" in text
    assert "D" in rows[2] and "C" in rows[3]
    assert "layer view" in gantt_text(s, width=40, view="layer")
    doc = json.loads(json.dumps(as_dict(schedule_document(s))))
    assert doc["makespan_s"] == pytest.approx(620 * US, abs=1e-9)
    assert doc["busiest_resource"] == "compute" and doc["resources"] == ["compute", "scale_out"]
    assert len(doc["intervals"]) == 2 * len(DEEPSEEK_DECODE)
    assert len(doc["period_intervals"]) >= len(doc["intervals"])
    assert ["moe.norm", "moe.shared.up_gate"] in doc["dependencies"]
    assert doc["solver"]["status"] == "OPTIMAL"


def test_no_solution_in_time_falls_back_to_back_to_back(monkeypatch):
    monkeypatch.setattr(sc.schedule_exact, "solve_exact", lambda *a, **kw: None)  # as if it ran out of work
    monkeypatch.setattr(sc, "solve_instance", lambda *a, **kw: None)
    layer = (comp("a", 11.0), comm("d", 13.0))  # durations no other test uses: not in the cache
    s = schedule_layer(layer, micro_batches=2, comm_sm_fraction=0.0)
    assert s.stats.status == "UNKNOWN"
    # back to back: a0 [0, 11], d0 [11, 24], a1 [24, 35], d1 [35, 48] (no overlap: 48 us).  Repeated every P,
    # the float re-costing keeps this order: the link needs d1 before the next layer's d0, 48 - 11 = 37 us;
    # compute needs a1 before the next a0, 35 us; each micro-batch's chain 24 us; the window 48 / 2 = 24 us
    assert s.no_overlap_s == pytest.approx(48 * US)
    assert s.makespan_s == pytest.approx(37 * US)
    assert s.stats.bound == pytest.approx(26 * US)  # the busiest resource: compute 2 x 11 = 22, link 2 x 13 = 26
    assert check_schedule(s) == []
