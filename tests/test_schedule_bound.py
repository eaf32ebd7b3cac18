"""The provable period bound of a layer's overlap schedule (planner/cpsat/schedule_bound.py).

Hand-derived bounds on tiny block graphs (durations in ticks, arithmetic in the comments), the CP-SAT solve that
stops as OPTIMAL once its incumbent meets the bound, and the bound never above a schedule the solver finds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cost_models.ops import OpCost
from planner.cpsat.schedule import ScheduleInstance, check_schedule, schedule_layer, solve_layer
from planner.cpsat.schedule_bound import BlockGraph, period_bound

US = 1e-6


def inst(ops: list[tuple[str, str, int]], *, k: int, w: int, c: int) -> ScheduleInstance:
    """ops: (name, resource, ticks of 1 ns)."""
    return ScheduleInstance(names=tuple(o[0] for o in ops), resources=tuple(o[1] for o in ops),
                            duration_ticks=tuple(o[2] for o in ops), micro_batches=k, comm_demand=c, window_layers=w)


def comp(name: str, us: float) -> OpCost:
    return OpCost(name=name, kind="compute", seconds=us * US, bound="compute")


def comm(name: str, us: float) -> OpCost:
    return OpCost(name=name, kind="comm", seconds=us * US, bound="scale_out", scale_out_bytes=1.0)


def graph(blocks: list[tuple[str, int]], c: int) -> BlockGraph:
    """A chain of blocks (resource, ticks); compute blocks stretch to ceil(d 1000 / (1000 - c))."""
    return BlockGraph(resource=tuple(r for r, _ in blocks), block_ticks=tuple(d for _, d in blocks),
                      shared_ticks=tuple(-(-d * 1000 // (1000 - c)) if r == "compute" else d for r, d in blocks),
                      preds=tuple(() if i == 0 else (i - 1,) for i in range(len(blocks))))


def test_work_and_chain_without_sm_share():
    # compute 10 -> scale_out 30 -> compute 10.  K=1: chain 50, work max(20, 30) = 30.  K=2: work 60 > chain 50.
    g = graph([("compute", 10), ("scale_out", 30), ("compute", 10)], 0)
    assert period_bound(g, 1, 0).ticks == 50
    b = period_bound(g, 2, 0)
    assert (b.work_ticks, b.chain_ticks, b.coverage_ticks, b.ticks) == (60, 50, 0, 60)


def test_coverage_counts_comm_no_shared_block_can_overlap_cheaply():
    # A 100 -> X 40 (link) -> B 100, K=2, c=500: a shared block stretches to 200 (+100).  X_b can overlap only
    # the other micro-batch's A or B (its own are its predecessor and successor); sharing one costs 100 > 40 of
    # idle compute, so each X costs 40: P >= 4 x 100 + 2 x 40 = 480.  Work: 400 + 80 x 0.5 = 440.
    b = period_bound(graph([("compute", 100), ("scale_out", 40), ("compute", 100)], 500), 2, 500)
    assert (b.work_ticks, b.coverage_ticks) == (440, 480)


def test_one_block_cannot_overlap_two_comm_blocks_with_compute_between():
    # A 100 -> X 30 -> E 100 -> Y 30, K=2, c=200: stretch 100 -> 125 (+25).  A block of micro-batch 1 cannot
    # overlap both X_0 and Y_0 (E_0 lies between them, A_0 before X_0), so covering all four comm blocks takes
    # four shared blocks: 400 + 4 x 25 = 500 (one block per micro-batch covering both would give 450).
    # Work: 400 + 120 x 0.2 = 424.
    b = period_bound(graph([("compute", 100), ("scale_out", 30), ("compute", 100), ("scale_out", 30)], 200), 2, 200)
    assert (b.work_ticks, b.coverage_ticks) == (424, 500)


def test_solve_stops_optimal_when_the_incumbent_meets_the_bound():
    # The instance above: A0, A1 (covers X0), E0 (covers X1), E1 (covers Y0), next A0 (covers Y1) is feasible
    # at P = 500 = the bound, so the solve is OPTIMAL with bound 500 (the work bound alone left 424).
    i = inst([("a", "compute", 100), ("x", "scale_out", 30), ("e", "compute", 100), ("y", "scale_out", 30)],
             k=2, w=2, c=200)
    sol = solve_layer(i, time_limit_s=5.0, seed=0)
    assert sol.period_ticks == 500
    assert sol.stats.status == "OPTIMAL" and sol.stats.gap == 0.0
    assert round(sol.stats.bound * 1e9) == 500


def test_bound_on_a_deepseek_like_prefill_layer():
    # DeepSeek-V3-like prefill layer (shared expert beside dispatch / experts / combine) at K=2, SM share 20/132:
    # the bound is tighter than the busiest resource's work and not above the schedule found (up to the tick
    # rounding of durations, under 0.1 % here), which re-checks clean.
    ops = (comp("attn", 420.0), comp("moe.norm", 4.0), comp("moe.router", 3.0),
           comm("moe.dispatch", 68.0), comp("moe.experts", 322.0), comm("moe.combine", 131.0),
           comp("moe.shared.up", 34.0))
    sch = schedule_layer(ops, micro_batches=2, comm_sm_fraction=20 / 132, time_limit_s=1.0)
    assert check_schedule(sch) == []
    assert sch.stats.bound <= sch.makespan_s * 1.001
    assert sch.stats.bound > sch.busiest_resource_s + 10 * US  # tighter than the busiest resource's work


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 60), min_size=4, max_size=4), st.sampled_from([0, 150, 400]),
       st.sampled_from([1, 2]))
def test_bound_never_above_a_feasible_schedule(d: list[int], c: int, w: int):
    i: ScheduleInstance = inst([("a", "compute", d[0]), ("x", "scale_out", d[1]), ("e", "compute", d[2]),
                                ("y", "scale_up", d[3])], k=2, w=w, c=c)
    sol = solve_layer(i, time_limit_s=1.0, seed=0)
    assert i.period_lower_bound_ticks() <= sol.period_ticks
