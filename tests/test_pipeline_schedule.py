"""The pipeline-schedule CP-SAT model (planner.cpsat.pipeline): published schedules' closed forms as special
cases, free solves between the bound and the best family, one feasible and one infeasible micro-model per
constraint, the solver-free validator, the text Gantt.

Durations are whole milliseconds (1 us ticks, :func:`tick_ns_for`), so the integer model is exact and the
closed forms must come out to float rounding."""

from __future__ import annotations

import dataclasses

import pytest

from planner.cpsat import pipeline_families as pf
from planner.cpsat.pipeline import build, solve, solve_pipeline, tick_ns_for
from planner.cpsat.pipeline_result import Op, ScheduledSlot, check_schedule, schedule_of
from planner.cpsat.stats import SolveStats
from planner.render.pipeline_gantt import gantt_text

MS = 1e-3
NO_SOLVE = SolveStats(status="", objective=0.0, bound=0.0, gap=0.0, wall_s=0.0)


def _family(inst, order):
    out = solve_pipeline(inst, order=order, time_limit_s=5.0)
    assert out.stats.status == "OPTIMAL" and out.source == "solver"
    assert check_schedule(inst, out.schedule) == []
    return out


# --- special cases: the model constrained to a family's order gives its closed form ------------------------

@pytest.mark.parametrize(("p", "m", "f", "b", "w"), [(4, 8, 1, 1, 1), (4, 8, 1, 2, 1), (16, 64, 1, 2, 1)])
def test_1f1b_makespan_and_bubble(p, m, f, b, w):
    # (m + p - 1)(f + b + w): p=4, m=8, 1/1/1 ms -> 11 x 3 = 33 ms; 1/2/1 -> 11 x 4 = 44; p=16, m=64 -> 79 x 4
    inst = pf.uniform(pf.straight_routes(p, m), f * MS, b * MS, w * MS)
    out = _family(inst, pf.order_1f1b(p, m))
    want = (m + p - 1) * (f + b + w) * MS
    assert out.schedule.makespan_s == pytest.approx(want, rel=1e-12)
    assert out.stats.objective == pytest.approx(want, rel=1e-12)
    # every device idles (p - 1)(f + b + w): 3 x 3 = 9 ms at p=4, 1/1/1
    assert out.schedule.bubble_s == pytest.approx([(p - 1) * (f + b + w) * MS] * p, rel=1e-9)


@pytest.mark.parametrize(("p", "v", "m", "f", "b", "w"), [(4, 2, 8, 1, 1, 1), (4, 3, 12, 2, 3, 1)])
def test_interleaved_1f1b_bubble_is_divided_by_v(p, v, m, f, b, w):
    # per device F = v f, B = v (b + w); makespan m (F + B) + (p - 1)(F + B) / v
    # p=4, v=2, m=8, 1/1/1: F = 2, B = 4 -> 8 x 6 + 3 x 6 / 2 = 57 ms; p=4, v=3, m=12, 2/3/1: F = 6, B = 12
    # -> 12 x 18 + 3 x 18 / 3 = 234 ms
    inst = pf.uniform(pf.straight_routes(p, m, v), f * MS, b * MS, w * MS)
    out = _family(inst, pf.order_interleaved(p, v, m))
    big = v * (f + b + w)
    assert out.schedule.makespan_s == pytest.approx((m * big + (p - 1) * big / v) * MS, rel=1e-12)
    assert out.schedule.makespan_s == pytest.approx(pf.makespan_interleaved(p, v, m, f, b, w) * MS, rel=1e-12)


@pytest.mark.parametrize(("p", "m", "f", "b", "w"), [(4, 8, 1, 1, 1), (5, 10, 2, 3, 1), (3, 7, 3, 2, 2)])
def test_zb_h1_bubble_matches_the_dualpipe_readme_zb1p_row(p, m, f, b, w):
    # README ZB1P: (PP - 1)(F + B_full - 2W), B_full = b + w. p=4, m=8, 1/1/1: 8 x 3 + 3 x (1 + 2 - 2) = 27;
    # p=5, m=10, 2/3/1: 10 x 6 + 4 x (2 + 4 - 2) = 76; p=3, m=7, 3/2/2: 7 x 7 + 2 x (3 + 4 - 4) = 55
    inst = pf.uniform(pf.straight_routes(p, m), f * MS, b * MS, w * MS)
    out = _family(inst, pf.order_zb_h1(p, m))
    assert out.schedule.makespan_s == pytest.approx((m * (f + b + w) + (p - 1) * (f + b + w - 2 * w)) * MS,
                                                    rel=1e-12)
    one_f_one_b = _family(inst, pf.order_1f1b(p, m)).schedule.makespan_s
    assert one_f_one_b - out.schedule.makespan_s == pytest.approx((p - 1) * 2 * w * MS, rel=1e-9)


@pytest.mark.parametrize(("p", "m", "f", "w", "c"), [(4, 8, 1, 1, 0.5), (8, 16, 1, 1, 0.5), (8, 20, 2, 1, 1),
                                                     (16, 32, 1, 1, 0.5)])
@pytest.mark.parametrize("variant", ["dualpipe", "dualpipev"])
def test_dualpipe_bubble_matches_readme(variant, p, m, f, w, c):
    # README (deepseek-ai/DualPipe@3da1bbe): (PP/2 - 1)(F&B + B_full - 3W), B_full = b + w, here with b = f.
    # PP=8, 1/1/1 ms, overhead 0.5: F&B = max(1, 2) + 0.5 = 2.5 -> 3 x (2.5 + 2 - 3) = 4.5 ms;
    # PP=8, 2/2/1, overhead 1: F&B = 4 -> 3 x (4 + 3 - 3) = 12 ms.  The bubble is the largest per-device idle.
    b = f
    if variant == "dualpipe":
        inst = pf.uniform(pf.dualpipe_routes(p, m), f * MS, b * MS, w * MS, pair_overhead_s=c * MS)
        order = pf.order_dualpipe(p, m)
    else:
        inst = pf.uniform(pf.v_routes(p // 2, m), f * MS, b * MS, w * MS, pair_overhead_s=c * MS)
        order = pf.order_dualpipev(p // 2, m)
    out = _family(inst, order)
    want = (p / 2 - 1) * (max(f, b + w) + c + (b + w) - 3 * w) * MS
    assert max(out.schedule.bubble_s) == pytest.approx(want, rel=1e-9)
    assert want == pytest.approx(pf.bubble_dualpipe(p, max(f, b + w) + c, b, w) * MS)


def test_activations_in_flight_match_the_dualpipe_readme_table():
    # README: 1F1B holds PP micro-batches' activations on the first device, DualPipe and DualPipeV PP + 1 on every
    # device (one unit = one micro-batch on one chunk).  PP = 8, m = 16.
    act = (1.0,) * 8
    one = pf.uniform(pf.straight_routes(8, 16), MS, MS, MS, activation_bytes=act)
    assert schedule_of(one, pf.order_1f1b(8, 16), NO_SOLVE).peak_activation_bytes == (8, 7, 6, 5, 4, 3, 2, 1)
    dual = pf.uniform(pf.dualpipe_routes(8, 16), MS, MS, MS, activation_bytes=act, pair_overhead_s=0.5 * MS)
    assert schedule_of(dual, pf.order_dualpipe(8, 16), NO_SOLVE).peak_activation_bytes == (9,) * 8
    v = pf.uniform(pf.v_routes(4, 16), MS, MS, MS, activation_bytes=act, pair_overhead_s=0.5 * MS)
    assert schedule_of(v, pf.order_dualpipev(4, 16), NO_SOLVE).peak_activation_bytes == (9,) * 4


# --- free solves: at least as good as the best family, never below the bound -------------------------------

@pytest.mark.parametrize(("p", "m", "f", "b", "w"), [(4, 8, 1, 1, 1), (4, 8, 1, 2, 1)])
def test_free_solve_between_bound_and_best_family(p, m, f, b, w):
    inst = pf.uniform(pf.straight_routes(p, m), f * MS, b * MS, w * MS)
    out = solve_pipeline(inst, time_limit_s=2.0, seed=0)
    best = min(pf.makespan_1f1b(p, m, f, b, w), pf.makespan_zb_h1(p, m, f, b, w)) * MS
    assert check_schedule(inst, out.schedule) == []
    assert out.schedule.makespan_s <= best + 1e-12
    assert out.schedule.makespan_s >= m * (f + b + w) * MS - 1e-12  # each stage's own work
    assert out.schedule.makespan_s >= out.schedule.lower_bound_s - 1e-12
    # the bound adds the last stage's wait for the first forward: (p - 1) f + m (f + b + w) = 3 + 24 = 27 ms,
    # which ZB-H1 reaches at 1/1/1, so the solve is proven optimal there
    if (f, b, w) == (1, 1, 1):
        assert out.schedule.lower_bound_s == pytest.approx(27 * MS) and out.stats.status == "OPTIMAL"


def test_free_solve_with_overlapped_pairs_beats_or_ties_dualpipe():
    inst = pf.uniform(pf.dualpipe_routes(4, 8), MS, MS, MS, pair_overhead_s=0.5 * MS)
    family = _family(inst, pf.order_dualpipe(4, 8)).schedule.makespan_s
    out = solve_pipeline(inst, hint=pf.order_dualpipe(4, 8), time_limit_s=1.0, seed=0)
    assert check_schedule(inst, out.schedule) == []
    assert out.schedule.lower_bound_s - 1e-12 <= out.schedule.makespan_s <= family + 1e-12


def test_same_seed_same_schedule():
    inst = pf.uniform(pf.straight_routes(4, 8), MS, 2 * MS, MS)
    a = solve_pipeline(inst, time_limit_s=1.0, seed=3).schedule
    b = solve_pipeline(inst, time_limit_s=1.0, seed=3).schedule
    assert a.slots == b.slots


# --- one feasible and one infeasible micro-model per constraint ---------------------------------------------

def _capped(inst, max_ticks):
    """The model with ``makespan <= max_ticks`` added; returns the status."""
    pm = build(inst)
    pm.model.add(pm.makespan <= max_ticks)
    return solve(pm, time_limit_s=1.0, seed=0)[1].status


def test_precedence_across_stages_with_p2p():
    # one micro-batch on 2 stages, 1 ms passes, 0.5 ms P2P: F0 1 + 0.5 + F1 1 + B1 1 + 0.5 + B0 1 + W0 1 = 6 ms
    inst = pf.uniform(pf.straight_routes(2, 1), MS, MS, MS, p2p_s=0.5 * MS)
    assert tick_ns_for(inst) == 1000  # 1 us ticks: 6 ms = 6000 ticks
    out = solve_pipeline(inst, time_limit_s=1.0)
    assert out.schedule.makespan_s == pytest.approx(6 * MS, rel=1e-12)
    assert _capped(inst, 6000) == "OPTIMAL" and _capped(inst, 5999) == "INFEASIBLE"


def test_a_fixed_order_against_the_dependencies_is_infeasible():
    inst = pf.uniform(pf.straight_routes(2, 2), MS, MS, MS)
    good = pf.order_1f1b(2, 2)
    bad = (good[0], tuple(reversed(good[1])))  # the last stage runs a backward before its forward
    assert solve_pipeline(inst, order=good).stats.status == "OPTIMAL"
    out = solve_pipeline(inst, order=bad)
    assert out.stats.status == "INFEASIBLE" and out.schedule is None and out.source == "none"


def test_one_slot_at_a_time_per_stage():
    # two micro-batches on one stage: 6 passes of 1 ms run back to back, 6 ms, never 5.999
    inst = pf.uniform(pf.straight_routes(1, 2), MS, MS, MS)
    assert solve_pipeline(inst, time_limit_s=1.0).schedule.makespan_s == pytest.approx(6 * MS, rel=1e-12)
    assert _capped(inst, 6000) == "OPTIMAL" and _capped(inst, 5999) == "INFEASIBLE"


def test_memory_limit_below_one_micro_batch_is_infeasible():
    inst = pf.uniform(pf.straight_routes(2, 3), MS, MS, MS, activation_bytes=(1.0, 1.0), memory_limit_bytes=0.99)
    out = solve_pipeline(inst, time_limit_s=1.0)
    assert out.stats.status == "INFEASIBLE" and out.schedule is None


def test_memory_limit_of_one_micro_batch_serialises_the_pipeline():
    # room for one micro-batch per stage: a micro-batch's F0 F1 B1 B0 (4 ms) must end before the next F0 starts;
    # W1 hides under B0 and each W0 under the next F1/B1, except the last: 3 x 4 + 1 = 13 ms (free: ZB-H1's 11)
    act = (1.0, 1.0)
    inst = pf.uniform(pf.straight_routes(2, 3), MS, MS, MS, activation_bytes=act, memory_limit_bytes=1.0)
    out = solve_pipeline(inst, time_limit_s=2.0)
    assert check_schedule(inst, out.schedule) == []
    assert out.schedule.makespan_s == pytest.approx(13 * MS, rel=1e-12)
    assert max(out.schedule.peak_activation_bytes) == 1.0
    free = solve_pipeline(dataclasses.replace(inst, memory_limit_bytes=None), time_limit_s=1.0).schedule
    assert free.makespan_s == pytest.approx(pf.makespan_zb_h1(2, 3, 1, 1, 1) * MS, rel=1e-12)


def test_overlapped_pair_saves_the_shorter_pass():
    # one stage, two micro-batches, 1 ms passes, no pair overhead: F0, then F1 with B0 in one 1 ms pair, then
    # B1, W0, W1: 5 ms (without pairs 6 ms); 4.999 ms is infeasible
    inst = pf.uniform(pf.straight_routes(1, 2), MS, MS, MS, pair_overhead_s=0.0)
    out = solve_pipeline(inst, time_limit_s=1.0)
    assert out.schedule.makespan_s == pytest.approx(5 * MS, rel=1e-12)
    assert any(s.kind.startswith("FB") for s in out.schedule.slots)
    assert _capped(inst, 5000) == "OPTIMAL" and _capped(inst, 4999) == "INFEASIBLE"
    costly = dataclasses.replace(inst, pair_overhead_s=1.0 * MS)  # a pair as long as both passes saves nothing
    assert solve_pipeline(costly, time_limit_s=1.0).schedule.makespan_s == pytest.approx(6 * MS, rel=1e-12)


# --- the validator, without the solver ----------------------------------------------------------------------

def _shift(sch, pick, dt):
    slots = tuple(dataclasses.replace(s, start_s=s.start_s + dt, end_s=s.end_s + dt) if pick(s) else s
                  for s in sch.slots)
    return dataclasses.replace(sch, slots=slots)


def test_validator_flags_each_violation():
    inst = pf.uniform(pf.straight_routes(2, 2), MS, MS, MS, activation_bytes=(1.0, 1.0), memory_limit_bytes=2.0)
    sch = schedule_of(inst, pf.order_1f1b(2, 2), NO_SOLVE)
    assert check_schedule(inst, sch) == []
    early = _shift(sch, lambda s: s.ops == (Op("F", 0, 1),), -0.5 * MS)  # before F0 of stage 0 ends
    assert any("starts before" in e for e in check_schedule(inst, early))
    clash = _shift(sch, lambda s: s.ops == (Op("F", 1, 0),), -0.5 * MS)  # onto F0 on stage 0
    assert any("overlap" in e for e in check_schedule(inst, clash))
    tight = dataclasses.replace(inst, memory_limit_bytes=1.0)  # 1F1B holds 2 micro-batches on stage 0
    assert any("limit" in e for e in check_schedule(tight, sch))
    short = dataclasses.replace(sch, slots=sch.slots[:-1] + (dataclasses.replace(sch.slots[-1],
                                                                                   end_s=sch.slots[-1].start_s),))
    assert any("lasts" in e for e in check_schedule(inst, short))
    wrong = ScheduledSlot(device=1, ops=sch.slots[0].ops, start_s=sch.slots[0].start_s, end_s=sch.slots[0].end_s)
    assert any("runs on device" in e for e in check_schedule(inst, dataclasses.replace(sch, slots=(wrong,)
                                                                                       + sch.slots[1:])))


def test_list_1f1b_hint_is_valid_and_is_1f1b_with_split_backward():
    # on a straight route without a memory limit the rule gives 1F1B with W split off: 27 ms at p=4, m=8
    inst = pf.uniform(pf.straight_routes(4, 8), MS, MS, MS)
    sch = schedule_of(inst, pf.order_list_1f1b(inst), NO_SOLVE)
    assert check_schedule(inst, sch) == []
    assert sch.makespan_s == pytest.approx(27 * MS, rel=1e-12)


def test_gantt_rows_for_1f1b():
    # p=2, m=2, 1 ms passes, width 18 = 0.5 ms per cell.  Stage 1: F0 [1,2], B+W of 0 [2,4], F1 [4,5], B+W [5,7];
    # stage 0: F0 [0,1], F1 [1,2], B+W of 0 [4,6], B+W of 1 [7,9]
    inst = pf.uniform(pf.straight_routes(2, 2), MS, MS, MS)
    text = gantt_text(_family(inst, pf.order_1f1b(2, 2)).schedule, width=18)
    rows = {line[:5]: line[6:] for line in text.splitlines() if line.startswith("dev ")}
    assert rows == {"dev 0": "FFFF....####..####", "dev 1": "..FF####FF####...."}
    assert "makespan 9.000 ms" in text
